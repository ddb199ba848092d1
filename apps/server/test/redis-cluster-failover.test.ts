import t, { type Test } from "tap";
import { lastSeqOf, strictlyIncreasing } from "./helpers/chat-load.js";
import { messages, openPresenter } from "./helpers/cluster.js";
import type { NodeProcess } from "./helpers/processes.js";
import type { ClusterNodeProcess } from "./helpers/redis-cluster.js";
import { type Answer, RetryingStream, roomTag, startRelayOnCluster } from "./helpers/redis-cluster-relay.js";
import { pollUntil } from "./helpers/wait.js";
import type { TestSocket } from "./helpers/ws-client.js";

// A live room's shard changes under it (slot migration, SIGKILL of its master) while posts flow:
// three chatrelay processes on a real 3+3 Redis Cluster, PostgreSQL as the log.
const relay = await startRelayOnCluster({ GRACE_WINDOW_MS: "20000" });
t.teardown(() => relay.stop());
const { redis, nodes } = relay;
const [, b, c] = nodes as [NodeProcess, NodeProcess, NodeProcess];
const targets = nodes.map((n) => n.http);
/** A post while its shard fails over is answered within this (503 or 2xx), never held. */
const ANSWER_BOUND_MS = 3000;

/** Every 2xx'd message reached the presenter once, in order, with nothing missing in between. */
async function checkDelivery(t: Test, stream: RetryingStream, presenter: TestSocket): Promise<void> {
  const seqs = stream.accepted.map((m) => m.seq).sort((x, y) => x - y);
  const last = seqs.at(-1) ?? 0;
  await presenter.until(() => lastSeqOf(presenter) >= last, `the presenter to reach seq ${last}`, 30_000);
  const got = messages(presenter);
  t.ok(strictlyIncreasing(got.map((m) => m.seq)), "in seq order, no duplicate");
  t.same(
    got.map((m) => m.seq),
    Array.from({ length: got.length }, (_, i) => i + 1),
    "gapless from seq 1",
  );
  const byseq = new Map(got.map((m) => [m.seq, m.id]));
  t.same(
    stream.accepted.filter((m) => byseq.get(m.seq) !== m.id),
    [],
    `all ${stream.accepted.length} 2xx'd messages delivered, each under its own seq`,
  );
  t.equal(new Set(stream.accepted.map((m) => m.seq)).size, stream.accepted.length, "no two posts share a seq");
}

/** Which node serves the room's sharded channel (PUBSUB SHARDCHANNELS), polled until it is `expected`. */
function subscribedOn(room: number, expected: ClusterNodeProcess): Promise<true> {
  return pollUntil(
    async () => {
      const holders: ClusterNodeProcess[] = [];
      for (const n of redis.live) {
        const channels = (await redis.command(n, "PUBSUB", "SHARDCHANNELS", `*${roomTag(room)}*`)) as string[];
        if (channels.length > 0) holders.push(n);
      }
      return holders.length === 1 && holders[0]?.id === expected.id ? true : undefined;
    },
    `room ${room}'s subscription to live on :${expected.port} only`,
    15_000,
  );
}

t.test("slot migration of a live room while posts flow: delivery continues, nothing lost, no duplicate", async (t) => {
  const room = 1601;
  const slot = redis.slotOf(roomTag(room));
  const presenter = await openPresenter(b.ws, room);
  t.teardown(() => presenter.terminate());
  const source = await redis.masterOf(slot);
  await subscribedOn(room, source);
  const stream = await RetryingStream.start(room, targets);
  t.teardown(() => stream.stop());
  await stream.acceptedMore(20);
  const to = (await redis.masters()).find((m) => m.id !== source.id) as ClusterNodeProcess;
  const answersBefore = stream.answers.length;
  const started = Date.now();
  let window: Answer[] = [];
  await redis.migrateSlot(slot, to, {
    // Posts keep coming while the room's keys sit on the target and the source still owns the slot.
    whileMigrating: async () => {
      const from = stream.answers.length;
      await stream.answeredMore(10);
      window = stream.answers.slice(from);
    },
  });
  t.comment(`slot ${slot} moved :${source.port} -> :${to.port} in ${Date.now() - started} ms`);
  t.equal((await redis.masterOf(slot)).id, to.id, "the room's slot is on the new master");
  await subscribedOn(room, to);
  t.pass("node-b re-subscribed the room on the new owner, and only there");
  await stream.acceptedMore(20);
  await stream.stop();

  const during = stream.answers.slice(answersBefore);
  const refused = during.filter((a) => a.status !== 201);
  const slowest = Math.max(0, ...refused.map((a) => a.ms));
  t.comment(
    `while keys were on the target and the slot not yet: ${window.filter((a) => a.status === 201).length}/${window.length} attempts accepted; since the migration began ${refused.length} refused (retried), slowest ${slowest} ms`,
  );
  t.same(
    refused.filter((a) => a.status !== 503),
    [],
    "refusals during the migration are 503s",
  );
  t.same(
    refused.filter((a) => a.ms >= ANSWER_BOUND_MS),
    [],
    `each 503 answered within ${ANSWER_BOUND_MS} ms`,
  );
  await checkDelivery(t, stream, presenter);
  t.equal(presenter.closed, undefined, "the presenter socket stayed open");
  presenter.close(1000);
});

t.test("SIGKILL of the master that owns a live room's slot: fast 503s, then every 2xx'd message arrives", async (t) => {
  const room = 1701;
  const presenter = await openPresenter(c.ws, room);
  t.teardown(() => presenter.terminate());
  await subscribedOn(room, await redis.masterOf(roomTag(room)));
  const stream = await RetryingStream.start(room, targets);
  t.teardown(() => stream.stop());
  await stream.acceptedMore(20);
  const answersBefore = stream.answers.length;
  const started = Date.now();
  const { killed, promoted } = await redis.killMasterOf(roomTag(room));
  t.comment(`:${killed.port} killed, :${promoted.port} owns the slot after ${Date.now() - started} ms`);
  // Promotion is not the end of the outage for clients: posts must succeed again by themselves.
  await stream.acceptedMore(20, 30_000);
  await subscribedOn(room, promoted);
  t.pass("node-c re-subscribed the room on the promoted replica");
  await stream.stop();

  const during = stream.answers.slice(answersBefore);
  const refused = during.filter((a) => a.status !== 201);
  const slowest = Math.max(0, ...refused.map((a) => a.ms));
  t.comment(
    `${stream.accepted.length} accepted; ${refused.length} refused attempts (retried) since the kill, slowest ${slowest} ms`,
  );
  t.same(
    refused.filter((a) => a.status !== 503),
    [],
    "refusals during the failover are 503s",
  );
  t.same(
    refused.filter((a) => a.ms >= ANSWER_BOUND_MS),
    [],
    `each 503 answered within ${ANSWER_BOUND_MS} ms`,
  );
  await checkDelivery(t, stream, presenter);
  t.equal(presenter.closed, undefined, "the presenter socket stayed open (not replaced, not dropped)");
  presenter.close(1000);
});
