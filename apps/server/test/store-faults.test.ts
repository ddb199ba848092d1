import { performance } from "node:perf_hooks";
import type pg from "pg";
import t, { type Test } from "tap";
import { lastSeqOf, strictlyIncreasing } from "./helpers/chat-load.js";
import { messages, openPresenter } from "./helpers/cluster.js";
import { request } from "./helpers/http.js";
import { PrivatePostgres, withPgClient } from "./helpers/postgres-server.js";
import { NodeProcess } from "./helpers/processes.js";
import { readiness, waitForReadiness } from "./helpers/store-readiness.js";
import { type PostRecord, PostTraffic } from "./helpers/store-traffic.js";
import { mintToken } from "./helpers/tokens.js";
import type { TestSocket } from "./helpers/ws-client.js";

// PostgreSQL dies or restarts under traffic, against real node processes and a private PostgreSQL
// server the test SIGKILLs and starts again: posts get a quick, honest 503 (Retry-After) instead of
// hanging, /readyz says the chat log is down and comes back, both the writer and the read pool
// recover, and the log matches the answers: every 2xx'd post is in it, nothing refused is.

const COMMIT_TIMEOUT_MS = 1500;
// The deadline plus a generous margin for a loaded 2-core machine. A post path without a commit
// deadline (or that waits for the database to come back) answers only after the restart: fails.
const REFUSED_WITHIN_MS = COMMIT_TIMEOUT_MS + 5000;
const ENV = {
  LOG_COMMIT_TIMEOUT_MS: String(COMMIT_TIMEOUT_MS),
  DB_CONNECT_TIMEOUT_MS: "1000",
  DB_STATEMENT_TIMEOUT_MS: "2000",
  // Heartbeat (and its reconcile with the log's tail) every second.
  PRESENCE_TTL_MS: "3000",
};

const server = await PrivatePostgres.start();
t.teardown(() => server.destroy());
const DB = "chatrelay";
const DB_URL = await server.createDatabase(DB);
const withClient = <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => withPgClient(DB_URL, fn);

async function startNode(t: Test, name: string): Promise<NodeProcess> {
  const node = await NodeProcess.start(name, { DATABASE_URL: DB_URL, ...ENV });
  t.teardown(() => node.kill("SIGKILL"));
  return node;
}

/**
 * SIGKILLs the node and waits (bounded poll: only the database can show it) until none of its
 * sessions is left: from then on no transaction of the node can still commit, so the log is final.
 */
async function stopNode(node: NodeProcess): Promise<void> {
  await node.kill("SIGKILL");
  const end = Date.now() + 20_000;
  for (;;) {
    const n = await withClient(async (c) => {
      const r = await c.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        [DB],
      );
      return r.rows[0].n as number;
    });
    if (n === 0) return;
    if (Date.now() > end) throw new Error(`${n} sessions of the killed node still in the database`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The room's messages in the log, by text. */
function logRows(room: number): Promise<Map<string, { seq: number; id: string }>> {
  return withClient(async (c) => {
    const r = await c.query<{ text: string; seq: string; id: string }>(
      "SELECT text, seq::text AS seq, id::text AS id FROM chat_message WHERE room_id = $1 AND kind = 'message'",
      [room],
    );
    return new Map(r.rows.map((row) => [row.text, { seq: Number(row.seq), id: row.id }]));
  });
}

/** The rule, checked against the log itself once the node is gone: 201 means in the log, 503 means not. */
async function assertLogMatches(t: Test, room: number, posts: PostRecord[]): Promise<void> {
  const rows = await logRows(room);
  const odd = posts.filter((p) => p.status !== 201 && p.status !== 503);
  t.same(
    odd.map((p) => p.status),
    [],
    "every post was answered 201 or 503 (no 5xx crash, no unanswered request)",
  );
  const created = posts.filter((p) => p.status === 201);
  const refused = posts.filter((p) => p.status === 503);
  const missing = created.filter((p) => rows.get(p.text)?.seq !== p.seq || rows.get(p.text)?.id !== p.id);
  t.same(
    missing.map((p) => p.text),
    [],
    `every one of ${created.length} posts answered 201 is in the log, with its seq and id`,
  );
  t.same(
    refused.filter((p) => rows.has(p.text)).map((p) => p.text),
    [],
    `none of ${refused.length} posts answered 503 is in the log`,
  );
  t.equal(rows.size, created.length, "and the log holds nothing else for the room");
}

/** Waits until the presenter received every seq up to `seq`. */
function presenterReached(presenter: TestSocket, seq: number): Promise<void> {
  return presenter.until(() => lastSeqOf(presenter) >= seq, `the presenter to reach seq ${seq}`, 30_000);
}

/** The presenter got exactly the 2xx'd messages: each once, in order, with the ids the posts were answered with. */
async function assertDelivered(t: Test, presenter: TestSocket, posts: PostRecord[]): Promise<void> {
  const created = posts.filter((p) => p.status === 201).sort((a, b) => (a.seq as number) - (b.seq as number));
  await presenterReached(presenter, created.at(-1)?.seq ?? 0);
  const got = messages(presenter);
  t.ok(strictlyIncreasing(got.map((m) => m.seq)), "delivered in seq order, no duplicate");
  // Nothing answered 503 was committed, so seqs (gapless) are exactly those of the 201s.
  t.same(
    got.map((m) => [m.seq, m.id]),
    created.map((p) => [p.seq, p.id]),
    `the presenter got exactly the ${created.length} 2xx'd messages`,
  );
}

t.test(
  "PostgreSQL killed under traffic: quick 503s, not ready; after its restart ready, posts and reads work",
  async (t) => {
    const node = await startNode(t, "pg-kill");
    const room = 1101;
    const presenter = await openPresenter(node.ws, room);
    t.teardown(() => presenter.close(1000));
    const traffic = await PostTraffic.create(node.http, room, { senders: 4 });
    t.teardown(() => traffic.halt());
    const reader = await mintToken({ user_idx: 7100 });
    traffic.start();
    await traffic.until(() => traffic.answered((p) => p.status === 201).length >= 40, "40 posts committed");
    const before = await readiness(node.ops);
    t.equal(before.status, 200, "ready before the kill");
    t.equal(before.body.checks?.chatlog, "ok", "/readyz: chatlog ok before the kill");

    await server.kill();
    let databaseDown = true;
    // Should the test fail while it is down, the next test still gets a running server.
    t.teardown(async () => {
      if (databaseDown) await server.restart();
    });
    const downAt = performance.now();
    // Probes sent after the kill, one after the other while the stream goes on (its posts that were
    // in flight at the kill may be in doubt and wait for the database: that is allowed).
    for (let i = 0; i < 8; i++) await traffic.send(undefined, 30_000);
    const down = await waitForReadiness(node.ops, 503, 15_000);
    t.not(down.body.checks?.chatlog, "ok", `/readyz: chatlog ${down.body.checks?.chatlog}`);
    const history = await request(`${node.http}/v1/rooms/${room}/messages?limit=5`, {
      headers: { authorization: `Bearer ${reader}` },
    });
    t.equal(history.status, 503, "history: an honest 503 while the database is down");

    const sentWhileDown = traffic.answered((p) => p.sentAt > downAt);
    t.ok(sentWhileDown.length >= 8, `${sentWhileDown.length} posts sent while the database was down`);
    t.same(
      sentWhileDown.filter((p) => p.status !== 503).map((p) => p.status),
      [],
      "every post sent while it was down got 503",
    );
    t.same(
      sentWhileDown.filter((p) => !/^\d+$/.test(p.retryAfter ?? "")).map((p) => p.retryAfter),
      [],
      "each with Retry-After",
    );
    const slowest = Math.max(...sentWhileDown.map((p) => (p.answeredAt as number) - p.sentAt));
    t.ok(slowest < REFUSED_WITHIN_MS, `answered within ${REFUSED_WITHIN_MS} ms (slowest ${Math.round(slowest)} ms)`);

    await server.restart();
    databaseDown = false;
    const up = await waitForReadiness(node.ops, 200, 30_000);
    t.equal(up.body.checks?.chatlog, "ok", "/readyz: ready again after the restart");
    // The writer's connection and the read pool both lost theirs to the crash: the first post and read work.
    const after = await traffic.send();
    t.equal(after.status, 201, "a post right after readiness is back is accepted (writer reconnected)");
    const read = await request<{ items: { seq: number; id: string }[] }>(
      `${node.http}/v1/rooms/${room}/messages?limit=1&before=${(after.seq ?? 0) + 1}`,
      { headers: { authorization: `Bearer ${reader}` } },
    );
    t.equal(read.status, 200, "history answers again (read pool reconnected)");
    t.equal(read.body.items?.[0]?.id, after.id, "and shows the post made after the restart");
    const upAt = performance.now();
    await traffic.until(
      () => traffic.answered((p) => p.status === 201 && p.sentAt > upAt).length >= 40,
      "40 more posts committed after the restart",
    );
    await traffic.stop();
    await assertDelivered(t, presenter, traffic.posts);

    await stopNode(node);
    await assertLogMatches(t, room, traffic.posts);
  },
);

t.test("PostgreSQL restarted quickly mid-stream: every 2xx'd message reaches the presenter", async (t) => {
  const node = await startNode(t, "pg-restart");
  const room = 1102;
  const presenter = await openPresenter(node.ws, room);
  t.teardown(() => presenter.close(1000));
  const traffic = await PostTraffic.create(node.http, room, { senders: 4 });
  t.teardown(() => traffic.halt());
  traffic.start();
  await traffic.until(() => traffic.answered((p) => p.status === 201).length >= 40, "40 posts committed");
  await server.kill();
  await server.restart();
  const upAt = performance.now();
  await traffic.until(
    () => traffic.answered((p) => p.status === 201 && p.sentAt > upAt).length >= 40,
    "40 posts committed after the restart",
    60_000,
  );
  await traffic.stop();
  t.comment(
    `${traffic.posts.length} posts: ${traffic.answered((p) => p.status === 201).length} accepted, ${traffic.answered((p) => p.status === 503).length} refused`,
  );
  await assertDelivered(t, presenter, traffic.posts);

  await stopNode(node);
  await assertLogMatches(t, room, traffic.posts);
});
