import { type ChatMessageView, PresenterClient } from "@chatrelay/client";
import t from "tap";
import { WebSocket } from "ws";
import { Pruner } from "../src/chatlog/retention.js";
import { createTestDatabase } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { age, appendMessages, range } from "./helpers/retention.js";
import { startTestServer, type TestServer, waitAttached } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { within } from "./helpers/wait.js";
import { TestSocket } from "./helpers/ws-client.js";

// A presenter resuming from a seq retention already removed gets an explicit `gone` frame with the
// exact range, then every retained entry in order (v1; the seed only when it opted in); history
// says where the retained range starts. On both stores.

type Frame = Record<string, unknown>;

const stores: [string, () => Promise<{ env: Record<string, string>; drop: () => Promise<void> }>][] = [
  ["PGlite", async () => ({ env: {}, drop: async () => {} })],
  [
    "PostgreSQL",
    async () => {
      const db = await createTestDatabase();
      return { env: { DATABASE_URL: db.url }, drop: db.drop };
    },
  ],
];

async function post(server: TestServer, room: number, text: string): Promise<number> {
  const res = await request<{ seq: number }>(`${server.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${await mintToken({ user_idx: 41 })}` },
    body: { text },
  });
  if (res.status !== 201) throw new Error(`post answered ${res.status}: ${res.text}`);
  return res.body.seq;
}

/** A v1 presenter socket, attached (and its `ready` received). */
async function v1Presenter(server: TestServer, room: number, lastSeq?: number): Promise<TestSocket> {
  const token = await mintToken({ user_idx: room });
  const resume = lastSeq === undefined ? "" : `&lastSeq=${lastSeq}`;
  const socket = new TestSocket(`${server.ws}/v1/rooms/${room}/presenter?access_token=${token}${resume}`);
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready");
  return socket;
}

/** Drops a presenter abnormally: the room stays in grace, so posts keep being accepted. */
async function drop(socket: TestSocket): Promise<void> {
  socket.terminate();
  await socket.waitClose();
}

/** What a socket got after `ready`, as [kind, seq or range] in arrival order. */
const stream = (socket: TestSocket, kindField: "type" | "id") =>
  socket
    .json<Frame>()
    .filter((f) => ["message", "sendChatting", "gone"].includes(String(f[kindField])))
    .map((f) => (f[kindField] === "gone" ? ["gone", f.fromSeq, f.toSeq] : [f.seq]));

for (const [store, open] of stores) {
  t.test(`${store}: resume across a pruned range`, async (t) => {
    const { env, drop: dropDb } = await open();
    t.teardown(dropDb);
    const server = await startTestServer({
      ...env,
      RETENTION_INTERVAL_MS: "86400000",
      RETENTION_MAX_COUNT: "5",
      GRACE_WINDOW_MS: "60000",
    });
    t.teardown(() => server.shutdown());
    const room = 610;

    const first = await v1Presenter(server, room);
    for (let i = 1; i <= 10; i++) await post(server, room, `a${i}`);
    await first.until(() => stream(first, "type").length === 10, "10 live messages");
    await drop(first);
    for (let i = 11; i <= 20; i++) t.equal(await post(server, room, `b${i}`), i);
    t.equal((await server.retention.runPass())?.rows, 15, "the count rule (5) pruned 1..15");

    const history = await request<{ items: { seq: number }[]; nextBefore: number | null; retainedFrom: number | null }>(
      `${server.http}/v1/rooms/${room}/messages?limit=100`,
      { headers: { authorization: `Bearer ${await mintToken({ user_idx: 41 })}` } },
    );
    t.equal(history.status, 200);
    t.equal(history.body.retainedFrom, 16, "history: the retained range starts at 16");
    t.same(
      history.body.items.map((m) => m.seq),
      [20, 19, 18, 17, 16],
    );
    t.equal(history.body.nextBefore, null, "existing fields unchanged");

    // v1: resume after 10: `gone` 11..15, then 16..20, then live.
    const v1 = await v1Presenter(server, room, 10);
    await v1.until(() => stream(v1, "type").length === 6, "gone + 5 retained messages");
    t.equal(await post(server, room, "live"), 21);
    await v1.until(() => stream(v1, "type").length === 7, "the live message");
    t.same(stream(v1, "type"), [["gone", 11, 15], [16], [17], [18], [19], [20], [21]], "v1: gone, then every retained");
    t.same(
      v1.json<Frame>().find((f) => f.type === "gone"),
      { type: "gone", fromSeq: 11, toSeq: 15 },
      "the frame's exact shape",
    );
    await drop(v1);

    // Seed with the opt-in: the same, as `{"id":"gone",...}`.
    const token = await mintToken({ user_idx: room });
    const seed = new TestSocket(`${server.ws}/chatting`);
    await seed.open();
    let attached = waitAttached(server.relay, room);
    seed.send({ id: "start", token, lastSeq: 10, gone: true });
    await attached;
    await seed.until(() => stream(seed, "id").length === 7, "seed: gone + 6 chats");
    t.same(stream(seed, "id"), [["gone", 11, 15], [16], [17], [18], [19], [20], [21]], "seed (opted in)");
    t.same(
      seed.json<Frame>().find((f) => f.id === "gone"),
      { id: "gone", fromSeq: 11, toSeq: 15 },
    );
    await drop(seed);

    // Seed without it: no `gone` frame, the retained chats only.
    const plain = new TestSocket(`${server.ws}/chatting`);
    await plain.open();
    attached = waitAttached(server.relay, room);
    plain.send({ id: "start", token, lastSeq: 10 });
    await attached;
    await plain.until(() => stream(plain, "id").length === 6, "seed: 6 chats");
    t.same(stream(plain, "id"), [[16], [17], [18], [19], [20], [21]], "seed (not opted in): no gone frame");
    await drop(plain);

    // The SDK: a `gone` event, then the messages; its lastSeq moves past the range.
    const client = new PresenterClient({
      url: server.http,
      roomId: room,
      token,
      lastSeq: 10,
      WebSocket: WebSocket as never,
      backoff: { initialMs: 50, maxMs: 200 },
    });
    const got: (number | string)[] = [];
    client.on("gone", (g) => got.push(`gone ${g.fromSeq}..${g.toSeq}`));
    const all = new Promise<void>((resolve) => {
      client.on("message", (m: ChatMessageView) => {
        got.push(m.seq);
        if (m.seq === 21) resolve();
      });
    });
    client.connect();
    t.teardown(() => client.close());
    await within(all, 10_000, "the SDK's messages");
    t.same(got, ["gone 11..15", 16, 17, 18, 19, 20, 21], "SDK: gone event, then every retained message");
    t.equal(client.lastSeq, 21);
  });

  t.test(`${store}: everything pruned: gone up to the room's last seq, then live`, async (t) => {
    const { env, drop: dropDb } = await open();
    t.teardown(dropDb);
    const server = await startTestServer({ ...env, RETENTION_INTERVAL_MS: "86400000", GRACE_WINDOW_MS: "60000" });
    t.teardown(() => server.shutdown());
    const room = 620;
    const first = await v1Presenter(server, room);
    for (let i = 1; i <= 3; i++) await post(server, room, `x${i}`);
    await first.until(() => stream(first, "type").length === 3, "3 live messages");
    await drop(first);
    await age(server.db, room, range(1, 3), 9);
    const pass = await new Pruner(server.db, {
      policy: { maxAgeDays: 7, maxCount: null },
      intervalMs: 86_400_000,
      batchRows: 100,
      databaseUrl: server.config.databaseUrl,
      statementTimeoutMs: 5000,
      connectTimeoutMs: 5000,
    }).runPass();
    t.equal(pass?.rows, 3);
    const history = await request<{ retainedFrom: number | null; items: unknown[] }>(
      `${server.http}/v1/rooms/${room}/messages`,
      { headers: { authorization: `Bearer ${await mintToken({ user_idx: 41 })}` } },
    );
    t.same([history.body.retainedFrom, history.body.items.length], [null, 0], "history: nothing retained");

    const resumed = await v1Presenter(server, room, 1);
    await resumed.until(() => stream(resumed, "type").length === 1, "gone");
    t.equal(await post(server, room, "after"), 4, "the room's seqs continue");
    await resumed.until(() => stream(resumed, "type").length === 2, "the live message");
    t.same(stream(resumed, "type"), [["gone", 2, 3], [4]]);
    resumed.close(1000);
  });

  t.test(`${store}: a live presenter behind a pruned range (the heartbeat's catch-up)`, async (t) => {
    const { env, drop: dropDb } = await open();
    t.teardown(dropDb);
    // Heartbeat (reconcile with the log) every PRESENCE_TTL_MS / 3.
    const server = await startTestServer({ ...env, RETENTION_INTERVAL_MS: "86400000", PRESENCE_TTL_MS: "1500" });
    t.teardown(() => server.shutdown());
    const room = 630;
    const live = await v1Presenter(server, room);
    t.teardown(() => live.close(1000));
    // Appended to the log without a publish (as when a node dies between its commit and its
    // publish), then pruned before the heartbeat finds them: the session learns from the log.
    const pruneAll = () =>
      new Pruner(server.db, {
        policy: { maxAgeDays: 7, maxCount: null },
        intervalMs: 86_400_000,
        batchRows: 100,
        databaseUrl: server.config.databaseUrl,
        statementTimeoutMs: 5000,
        connectTimeoutMs: 5000,
      });
    await server.retention.stop();
    await appendMessages(server.chatLog, room, 5);
    await age(server.db, room, range(1, 3), 9);
    t.equal((await pruneAll().runPass())?.rows, 3);
    await live.until(() => stream(live, "type").length === 3, "gone, then 4 and 5");
    t.same(stream(live, "type"), [["gone", 1, 3], [4], [5]], "below a retained row: gone, then the rest");

    await appendMessages(server.chatLog, room, 2);
    await age(server.db, room, range(4, 7), 9);
    t.equal((await pruneAll().runPass())?.rows, 4);
    await live.until(() => stream(live, "type").length === 4, "gone 6..7");
    t.same(stream(live, "type").at(-1), ["gone", 6, 7], "nothing retained: gone up to the room's last seq");
    t.equal(await post(server, room, "next"), 8);
    await live.until(() => stream(live, "type").length === 5, "the next live message");
    t.same(stream(live, "type").at(-1), [8]);
  });
}
