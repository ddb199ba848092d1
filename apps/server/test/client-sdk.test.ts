import {
  type ChatMessageView,
  ChatSender,
  PresenterClient,
  type PresenterClientOptions,
  type ReadyInfo,
  type SendOutcome,
} from "@chatrelay/client";
import t from "tap";
import { WebSocket } from "ws";
import { createTestDatabase, uniqueRedisPrefix } from "./helpers/databases.js";
import { type NginxCluster, nodeAttaching, startNginxCluster } from "./helpers/nginx-cluster.js";
import { withPgClient } from "./helpers/postgres-server.js";
import { NodeProcess } from "./helpers/processes.js";
import { PrivateRedis } from "./helpers/redis-server.js";
import { mintToken } from "./helpers/tokens.js";
import { within } from "./helpers/wait.js";

// @chatrelay/client against what it is for: three real nodes behind the real nginx, on the real
// PostgreSQL and a private redis-server the test restarts. The SDK alone (no test logic on top)
// must keep every accepted message across a node's SIGKILL and a Redis restart, and a sender's
// retries must never store a message twice.

const db = await createTestDatabase();
const redis = await PrivateRedis.start();
const env = {
  DATABASE_URL: db.url,
  REDIS_URL: redis.url,
  REDIS_KEY_PREFIX: uniqueRedisPrefix(),
  CHATRELAY_FAILPOINTS: "on",
};
const clients: PresenterClient[] = [];
let cluster: NginxCluster | undefined;

let cleaned: Promise<void> | undefined;
const cleanup = () => {
  cleaned ??= (async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
    await redis.stop();
    await db.drop();
  })();
  return cleaned;
};
t.teardown(cleanup);

// Everything starts before the first subtest (tap ends the root test once its queue is empty).
try {
  cluster = await startNginxCluster(["c1", "c2", "c3"], env);
} catch (err) {
  await cleanup();
  throw err;
}
const { nodes, proxy: via } = cluster;

/** Replaces a dead node with a new process of the same name on the same port (nginx's upstream). */
async function restart(node: NodeProcess): Promise<void> {
  await node.kill("SIGKILL");
  const fresh = NodeProcess.spawn(node.name, env, node.port);
  nodes[nodes.indexOf(node)] = fresh;
  await fresh.waitFor((l) => l.msg === "chatrelay listening", "listening after a restart", 30_000);
}

/** The node holding this presenter connection (from its log). */
const nodeOf = (connId: string): Promise<NodeProcess> => nodeAttaching(nodes, connId);

/** A presenter client recording what it hands to the application, with event-driven waits. */
function presenter(roomId: number, extra: Partial<PresenterClientOptions> = {}) {
  const received: ChatMessageView[] = [];
  const readies: ReadyInfo[] = [];
  const states: string[] = [];
  const waiters: { check: () => boolean; resolve: () => void }[] = [];
  const notify = () => {
    for (const w of [...waiters]) {
      if (w.check()) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const client = new PresenterClient({
    url: via.http,
    roomId,
    token: () => mintToken({ user_idx: roomId }),
    WebSocket,
    backoff: { initialMs: 50, maxMs: 1000 },
    ackDelayMs: 50,
    ...extra,
  });
  clients.push(client);
  client.on("message", (m) => {
    received.push(m);
    notify();
  });
  client.on("ready", (info) => {
    readies.push(info);
    notify();
  });
  client.on("state", (s) => states.push(s));
  const until = (check: () => boolean, what: string, timeoutMs = 30_000) =>
    check()
      ? Promise.resolve()
      : within(new Promise<void>((resolve) => waiters.push({ check, resolve })), timeoutMs, what);
  return { client, received, readies, states, until };
}

t.test(
  "a presenter client keeps every accepted message across a SIGKILL of its node and a Redis restart",
  async (t) => {
    const room = 9101;
    const p = presenter(room);
    p.client.connect();
    await p.until(() => p.readies.length === 1, "the first ready");

    const sender = new ChatSender({
      url: via.http,
      token: () => mintToken({ user_idx: 50_000 }),
      backoff: { initialMs: 50, maxMs: 1000 },
      maxAttempts: 40,
      attemptTimeoutMs: 5000,
    });
    const outcomes: SendOutcome[] = [];
    let posting = true;
    const poster = (async () => {
      for (let i = 0; posting; i++) outcomes.push(await sender.send(room, `sdk ${i}`));
    })();
    const accepted = () => outcomes.filter((o) => o.ok).length;

    await p.until(() => p.received.length >= 15, "15 messages before the crash");
    const first = p.readies[0] as ReadyInfo;
    await restart(await nodeOf(first.connId));
    await p.until(() => p.readies.length >= 2, "a ready after the node died");
    const before = p.received.length;
    await p.until(() => p.received.length >= before + 15, "15 messages after the crash");

    await redis.stop();
    await redis.restart();
    const afterRedis = accepted();
    await p.until(
      () => p.received.length >= before + 30 && accepted() >= afterRedis + 15,
      "posts after Redis restarted",
    );

    posting = false;
    await poster;
    const seqs = outcomes.flatMap((o) => (o.ok ? [o.message.seq] : []));
    const failedOutcomes = outcomes.filter((o) => !o.ok);
    t.same(failedOutcomes, [], "every send ended accepted (the sender retried through the outages)");
    const top = Math.max(...seqs);
    await p.until(() => (p.client.lastSeq ?? 0) >= top, "every accepted seq delivered", 45_000);

    const delivered = p.received.map((m) => m.seq);
    t.ok(
      delivered.every((seq, i) => i === 0 || seq > (delivered[i - 1] as number)),
      "the application saw seqs strictly increasing: nothing twice, nothing out of order",
    );
    const deliveredSet = new Set(delivered);
    t.same(
      seqs.filter((s) => !deliveredSet.has(s)),
      [],
      "every 2xx'd message reached the application",
    );
    const logged = await withPgClient(db.url, (c) =>
      c.query<{ seq: string }>("SELECT seq FROM chat_message WHERE room_id = $1 AND seq > $2 ORDER BY seq", [
        room,
        delivered[0] ?? 0,
      ]),
    );
    t.same(
      delivered.slice(1),
      logged.rows.map((r) => Number(r.seq)),
      "what the application saw is the room's log, seq for seq",
    );
    t.ok(p.client.reconnects >= 1, `the client reconnected (${p.client.reconnects} times)`);
    t.ok(p.states.includes("reconnecting"), "its state showed the reconnect");
    p.client.close();
    t.equal(p.client.state, "closed");
  },
);

t.test("a sender whose answer is lost retries with the same clientMsgId: one row, the first seq", async (t) => {
  const room = 9102;
  const p = presenter(room);
  p.client.connect();
  await p.until(() => p.readies.length === 1, "ready");
  // Every node dies right after committing its next post, before answering it: the answer is lost.
  await Promise.all(nodes.map((n) => n.failpoint("post.before-publish", "1*crash")));
  const sender = new ChatSender({
    url: via.http,
    token: () => mintToken({ user_idx: 50_001 }),
    backoff: { initialMs: 100, maxMs: 1000 },
    maxAttempts: 40,
  });
  const outcome = await sender.send(room, "exactly once");
  t.ok(outcome.ok, "the send ended accepted");
  t.ok(outcome.attempts >= 2, `after a retry (${outcome.attempts} attempts)`);
  if (outcome.ok) t.ok(outcome.replayed, "answered from the log: the first attempt had been stored");
  const rows = await withPgClient(db.url, (c) =>
    c.query<{ seq: string; client_msg_id: string }>(
      "SELECT seq, client_msg_id FROM chat_message WHERE room_id = $1 AND text = 'exactly once'",
      [room],
    ),
  );
  t.equal(rows.rows.length, 1, "stored once");
  t.equal(rows.rows[0]?.client_msg_id, outcome.clientMsgId, "under the sender's clientMsgId");
  if (outcome.ok) t.equal(Number(rows.rows[0]?.seq), outcome.message.seq, "the answer names the stored seq");
  await p.until(() => p.received.some((m) => m.text === "exactly once"), "the presenter got it");
  t.equal(p.received.filter((m) => m.text === "exactly once").length, 1, "the presenter got it once");
  // Whatever crashed comes back, and no failpoint stays armed.
  for (const n of [...nodes]) if (n.exit) await restart(n);
  await Promise.all(nodes.map((n) => n.failpoint("post.before-publish", "off")));
  p.client.close();
});

t.test("a stalled node (SIGSTOP): the client misses its pong, drops the socket and resumes elsewhere", async (t) => {
  const room = 9103;
  const p = presenter(room, { pingIntervalMs: 300, pongTimeoutMs: 700, connectTimeoutMs: 2000 });
  p.client.connect();
  await p.until(() => p.readies.length === 1, "ready");
  const stalled = await nodeOf((p.readies[0] as ReadyInfo).connId);
  stalled.child.kill("SIGSTOP");
  t.teardown(() => {
    stalled.child.kill("SIGCONT");
  });
  // Posted while the presenter's node is frozen: the presence key still names it for a while.
  const sender = new ChatSender({
    url: via.http,
    token: () => mintToken({ user_idx: 50_002 }),
    backoff: { initialMs: 50, maxMs: 500 },
    maxAttempts: 40,
    attemptTimeoutMs: 2000,
  });
  const outcomes: SendOutcome[] = [];
  for (let i = 0; i < 5; i++) outcomes.push(await sender.send(room, `while frozen ${i}`));
  t.ok(
    outcomes.every((o) => o.ok),
    "every send accepted (retried away from the frozen node)",
  );
  await p.until(() => p.received.length === 5, "the five messages, on a new connection", 45_000);
  t.same(
    p.received.map((m) => m.text),
    outcomes.map((_, i) => `while frozen ${i}`),
    "in order, once each",
  );
  t.ok(p.readies.length >= 2, "a new connection took over");
  t.not(await nodeOf((p.readies.at(-1) as ReadyInfo).connId), stalled, "on another node");
  stalled.child.kill("SIGCONT");
  p.client.close();
});
