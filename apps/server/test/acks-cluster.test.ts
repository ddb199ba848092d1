import t, { type Test } from "tap";
import { lastSeqOf } from "./helpers/chat-load.js";
import { messages, openPresenter } from "./helpers/cluster.js";
import { createTestDatabase, REDIS_URL, testRedisClient, uniqueRedisPrefix } from "./helpers/databases.js";
import { NodeProcess } from "./helpers/processes.js";
import { PostTraffic } from "./helpers/store-traffic.js";
import type { TestSocket } from "./helpers/ws-client.js";

// RESUME_DEFAULT=acked across nodes: the presenter's cumulative ack ({"type":"ack","seq":K}, v1) is
// stored in Redis (`<prefix>ack:{room}`), so a presenter that reconnects to another node without a
// lastSeq resumes right after K. Catches: acks kept in node memory only (node B would resume live),
// an ack above what was delivered taken as is (the presenter would skip messages it never got), and
// an ack that moves backwards.

const PREFIX = uniqueRedisPrefix();
const db = await createTestDatabase();
t.teardown(() => db.drop());
const env = {
  DATABASE_URL: db.url,
  REDIS_URL,
  REDIS_KEY_PREFIX: PREFIX,
  RESUME_DEFAULT: "acked",
  // Heartbeat (which also writes acks to Redis) every second.
  PRESENCE_TTL_MS: "3000",
  GRACE_WINDOW_MS: "120000",
};
const [a, b] = await Promise.all([NodeProcess.start("ack-a", env), NodeProcess.start("ack-b", env)]);
t.teardown(() => Promise.all([a.kill("SIGKILL"), b.kill("SIGKILL")]));
const redis = testRedisClient();
t.teardown(() => redis.disconnect());

const ackKey = (room: number) => `${PREFIX}ack:{${room}}`;

/** Polls the ack key (bounded, short interval) until it holds `value`: only Redis can show it. */
async function ackStored(room: number, value: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last: string | null = null;
  while (Date.now() < end) {
    last = await redis.get(ackKey(room));
    if (last === value) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${ackKey(room)} is ${JSON.stringify(last)}, not ${value}, after ${timeoutMs} ms`);
}

/** Frames are handled in order: once the pong is back, every frame sent before the ping was handled. */
async function handled(socket: TestSocket): Promise<void> {
  const pongs = socket.json().filter((f) => f.type === "pong").length;
  socket.send({ type: "ping" });
  await socket.until(
    () => socket.json().filter((f) => f.type === "pong").length > pongs,
    "pong: the frames before it were handled",
  );
}

/** Drops the socket without a close frame (grace) and waits until its node released the room. */
async function dropAndDetach(node: NodeProcess, socket: TestSocket, room: number): Promise<void> {
  const detached = node.lines.filter((l) => l.msg === "presenter detached" && l.roomId === room).length;
  socket.terminate();
  await socket.waitClose();
  await node.waitFor(
    () => node.lines.filter((l) => l.msg === "presenter detached" && l.roomId === room).length > detached,
    `${node.name} to detach room ${room}`,
  );
}

async function postAndReceive(t: Test, traffic: PostTraffic, socket: TestSocket, count: number): Promise<number> {
  const posts = await traffic.sendMany(count);
  t.same(
    posts.filter((p) => p.status !== 201).map((p) => p.status),
    [],
    `${count} posts accepted`,
  );
  const last = Math.max(...posts.map((p) => p.seq as number));
  await socket.until(() => lastSeqOf(socket) >= last, `the presenter to get seq ${last}`);
  return last;
}

t.test("an ack on node A is kept in Redis; a presenter on node B without lastSeq resumes after it", async (t) => {
  const room = 1401;
  const traffic = await PostTraffic.create(a.http, room, { senders: 2 });
  const first = await openPresenter(a.ws, room);
  t.teardown(() => first.terminate());
  const delivered = await postAndReceive(t, traffic, first, 10);
  t.equal(delivered, 10, "the first presenter got seqs 1..10");

  const K = 6;
  first.send({ type: "ack", seq: K });
  await handled(first);
  // Written by node A's heartbeat while the socket is still open.
  await ackStored(room, String(K));
  t.pass(`ack ${K} stored in Redis at ${ackKey(room)}`);

  // Neither an ack beyond what was delivered nor one below the stored ack may move it.
  first.send({ type: "ack", seq: delivered + 40 });
  first.send({ type: "ack", seq: K - 3 });
  await handled(first);
  await dropAndDetach(a, first, room);
  // Node A writes a pending ack when the presenter leaves: whatever it had, it has written now.
  t.equal(await redis.get(ackKey(room)), String(K), `still ${K}: the ack above seq ${delivered} was ignored`);

  // While the presenter is away (grace), more posts.
  const away = await traffic.sendMany(5);
  t.same(
    away.map((p) => p.status),
    [201, 201, 201, 201, 201],
    "posts while away accepted",
  );
  const tail = Math.max(...away.map((p) => p.seq as number));
  const ids = new Map(traffic.posts.map((p) => [p.seq as number, p.id as string]));

  const second = await openPresenter(b.ws, room);
  t.teardown(() => second.terminate());
  const ready = second.json().find((f) => f.type === "ready");
  t.equal(ready?.resumeFrom, K, `ready.resumeFrom is the stored ack (${K}), read on the other node`);
  t.equal(ready?.lastSeq, tail, "ready.lastSeq is the room's tail");
  await second.until(() => lastSeqOf(second) >= tail, `seq ${tail} on node B`);
  const got = messages(second);
  t.same(
    got.map((m) => m.seq),
    Array.from({ length: tail - K }, (_, i) => K + 1 + i),
    `node B replays ${K + 1}..${tail}: exactly once, in order, nothing at or below the ack`,
  );
  t.same(
    got.filter((m) => ids.get(m.seq) !== m.id).map((m) => m.seq),
    [],
    "with the ids the posts were answered with",
  );

  // The new presenter's own ack moves the stored one forward, again through Redis.
  second.send({ type: "ack", seq: tail });
  await handled(second);
  await ackStored(room, String(tail));
  t.pass(`node B's ack ${tail} stored`);
  second.close(1000);
});

t.test("control: a room whose presenter never acked resumes live on the other node", async (t) => {
  // Without this, a node that replays everything by default would pass the test above too.
  const room = 1402;
  const traffic = await PostTraffic.create(a.http, room, { senders: 2 });
  const first = await openPresenter(a.ws, room);
  t.teardown(() => first.terminate());
  await postAndReceive(t, traffic, first, 5);
  await dropAndDetach(a, first, room);
  t.equal(await redis.get(ackKey(room)), null, "no ack stored");
  const second = await openPresenter(b.ws, room);
  t.teardown(() => second.terminate());
  const ready = second.json().find((f) => f.type === "ready");
  t.equal(ready?.resumeFrom, null, "ready.resumeFrom is null: live only");
  const next = await traffic.send();
  await second.until(() => lastSeqOf(second) >= (next.seq as number), "the next live post");
  t.same(
    messages(second).map((m) => m.seq),
    [next.seq],
    "only the live post arrives, nothing replayed",
  );
  second.close(1000);
});
