import pg from "pg";
import t from "tap";
import { ChatStream } from "./helpers/chat-load.js";
import { post } from "./helpers/cluster.js";
import { createTestDatabase, REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { withPgClient } from "./helpers/postgres-server.js";
import { NodeProcess } from "./helpers/processes.js";
import {
  connectPresenter,
  pgliteDir,
  readLog,
  readyOf,
  seqsOf,
  startFailpointNodes,
  untilSeq,
} from "./helpers/races-nodes.js";
import { mintToken } from "./helpers/tokens.js";

// "2xx means durable", proven the hard way: the node is SIGKILLed the moment answers arrive, and the
// rows are read back by another process (a restarted node on the same PGlite folder, or a fresh
// PostgreSQL connection). And the converse: no answer before the commit.
const db = await createTestDatabase();
t.teardown(() => db.drop());

/** Posts streaming into a room on one node; SIGKILL the node once `answers` posts were answered 201. */
async function killMidStream(node: NodeProcess, room: number, answers: number): Promise<ChatStream> {
  const socket = await connectPresenter(node, room);
  await readyOf(socket);
  const stream = await ChatStream.start(room, () => [node.http], 4);
  await stream.until(() => stream.accepted.length >= answers, `${answers} answers`);
  await node.kill("SIGKILL");
  // Posts in flight when it died fail; answers the node wrote before dying may still arrive.
  await stream.stop();
  return stream;
}

t.test("PGlite on disk: rows answered 201 are there after SIGKILL and restart", async (t) => {
  const dir = pgliteDir();
  t.teardown(dir.remove);
  const env = { PGLITE_DATA_DIR: dir.path };
  const node = await NodeProcess.start("pglite-1", env);
  t.teardown(() => node.kill("SIGKILL"));
  const room = 901;
  const stream = await killMidStream(node, room, 30);
  t.ok(stream.accepted.length >= 30, `${stream.accepted.length} posts answered 201 before the kill`);

  const again = await NodeProcess.start("pglite-1-again", env);
  t.teardown(() => again.kill("SIGKILL"));
  const logged = new Map((await readLog(again, room)).map((m) => [m.id, m.seq]));
  t.same(
    stream.accepted.filter((a) => logged.get(a.id) !== a.seq),
    [],
    "every 2xx'd message is in the log with its seq",
  );
});

t.test("PostgreSQL: rows answered 201 are read by a fresh connection after SIGKILL", async (t) => {
  const node = await NodeProcess.start("pg-1", { DATABASE_URL: db.url });
  t.teardown(() => node.kill("SIGKILL"));
  const room = 902;
  const stream = await killMidStream(node, room, 30);
  t.ok(stream.accepted.length >= 30, `${stream.accepted.length} posts answered 201 before the kill`);

  const reader = new pg.Client({ connectionString: db.url });
  await reader.connect();
  t.teardown(() => reader.end());
  const rows = await reader.query<{ id: string; seq: string }>("SELECT id, seq FROM chat_message WHERE room_id = $1", [
    room,
  ]);
  const logged = new Map(rows.rows.map((r) => [r.id, Number(r.seq)]));
  t.same(
    stream.accepted.filter((a) => logged.get(a.id) !== a.seq),
    [],
    "every 2xx'd message is in the database with its seq",
  );
});

t.test("PostgreSQL: an append whose answer is lost after it committed is read back, never refused", async (t) => {
  const node = await NodeProcess.start("lost-answer", { DATABASE_URL: db.url, CHATRELAY_FAILPOINTS: "on" });
  t.teardown(() => node.kill("SIGKILL"));
  const room = 905;
  const socket = await connectPresenter(node, room);
  await readyOf(socket);
  const viewer = await mintToken({ user_idx: 9051 });
  const send = (text: string, clientMsgId?: string) =>
    request<Record<string, unknown>>(`${node.http}/v1/rooms/${room}/messages`, {
      headers: { authorization: `Bearer ${viewer}` },
      body: clientMsgId === undefined ? { text } : { text, clientMsgId },
    });
  t.equal((await send("before")).status, 201);

  // The statement commits; its answer is dropped as if the connection broke right after.
  await node.failpoint("log.after-append", "1*drop");
  const lost = await send("answer lost", "lost-1");
  t.equal(lost.status, 201, "the post is answered 201: the writer found its batch committed");
  t.equal(lost.body.seq, 2, "with the seq the batch got");
  await node.failpoint("log.after-append", "1*drop");
  const noId = await send("answer lost, no clientMsgId");
  t.equal(noId.status, 201, "a post without a clientMsgId too (found by its own id)");
  t.equal(noId.body.seq, 3);
  await node.failpoint("log.after-append", "1*drop");
  const retry = await send("answer lost", "lost-1");
  t.equal(retry.body.seq, 2, "a retry whose answer was lost: the first message's seq, read back by its clientMsgId");
  t.equal(retry.body.id, lost.body.id, "and its id");
  await untilSeq(socket, 3, "both messages on the presenter");
  t.same(seqsOf(socket), [1, 2, 3], "delivered once each");
  const rows = await withPgClient(db.url, (c) =>
    c.query<{ seq: string; text: string }>("SELECT seq, text FROM chat_message WHERE room_id = $1 ORDER BY seq", [
      room,
    ]),
  );
  t.same(
    rows.rows.map((r) => [Number(r.seq), r.text]),
    [
      [1, "before"],
      [2, "answer lost"],
      [3, "answer lost, no clientMsgId"],
    ],
    "one row each: nothing written twice",
  );
});

t.test(
  "no 2xx before the commit: a post held before its batch is written gets no answer and is not logged",
  async (t) => {
    const dir = pgliteDir();
    t.teardown(dir.remove);
    const env = { PGLITE_DATA_DIR: dir.path, CHATRELAY_FAILPOINTS: "on" };
    const node = await NodeProcess.start("held-1", env);
    t.teardown(() => node.kill("SIGKILL"));
    const room = 903;
    const socket = await connectPresenter(node, room);
    await readyOf(socket);
    const viewer = await mintToken({ user_idx: 9031 });
    t.equal((await post(node.http, room, viewer, "committed")).status, 201);

    await node.failpoint("log.before-batch", "pause");
    let answer: { status: number } | undefined;
    const held = post(node.http, room, viewer, "held").then(
      (res) => {
        answer = res;
      },
      () => {},
    );
    await node.failpointHit("log.before-batch");
    // A round trip through the same node after the hit: an answer sent before the commit would be out by now.
    t.equal((await request(`${node.ops}/healthz`)).status, 200);
    t.equal(answer?.status, undefined, "no answer while the batch is held");
    await node.kill("SIGKILL");
    await held;
    t.equal(answer?.status, undefined, "the post never got an answer (the node died before committing it)");

    const again = await NodeProcess.start("held-1-again", { PGLITE_DATA_DIR: dir.path });
    t.teardown(() => again.kill("SIGKILL"));
    t.same(
      (await readLog(again, room)).map((m) => m.text),
      ["committed"],
      "after restart the log holds the committed post only",
    );
  },
);

t.test("a node dies between commit and publish: the presenter still gets the message, from the log", async (t) => {
  const [d1, d2] = (await startFailpointNodes("publish-", 2, {
    DATABASE_URL: db.url,
    REDIS_URL,
    REDIS_KEY_PREFIX: uniqueRedisPrefix(),
    // Heartbeat (and its reconcile with the log) every 500 ms.
    PRESENCE_TTL_MS: "1500",
  })) as [NodeProcess, NodeProcess];
  t.teardown(() => Promise.all([d1.kill("SIGKILL"), d2.kill("SIGKILL")]));
  const room = 904;
  const presenter = await connectPresenter(d2, room);
  await readyOf(presenter);
  await d1.failpoint("post.before-publish", "1*crash");
  const viewer = await mintToken({ user_idx: 9041 });
  const outcome = await post(d1.http, room, viewer, "committed, never published").then(
    (res) => `answered ${res.status}`,
    () => "no answer",
  );
  t.equal(outcome, "no answer", "the client got no answer");
  t.same(await d1.exited(), { code: null, signal: "SIGKILL" }, "the node died at the failpoint");

  await untilSeq(presenter, 1, "the message on the presenter", 15_000);
  t.same(seqsOf(presenter), [1], "delivered once");
  await d2.waitFor((l) => l.msg === "catching up a missed publish", "the reconcile's catch-up line");
  t.same(
    (await readLog(d2, room)).map((m) => [m.seq, m.text]),
    [[1, "committed, never published"]],
    "the row is in the log",
  );
  presenter.close(1000);
});
