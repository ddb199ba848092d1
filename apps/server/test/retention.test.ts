import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import pg from "pg";
import t from "tap";
import { Pruner, RETENTION_LOCK_KEY } from "../src/chatlog/retention.js";
import { RetentionStore } from "../src/chatlog/retention-store.js";
import { ConfigError, loadConfig } from "../src/config.js";
import { createTestDatabase } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { age, appendMessages, fillOld, range, seqsOf } from "./helpers/retention.js";
import { startTestServer, type TestServer, testEnv, waitAttached } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { pollUntil } from "./helpers/wait.js";
import { TestSocket } from "./helpers/ws-client.js";

// Retention (issue #13): what a pass removes and what it keeps, on both stores, with posts flowing;
// one pass at a time cluster-wide on PostgreSQL.

/** A node whose background passes never come during the test: the test runs passes itself. */
const QUIET = { RETENTION_INTERVAL_MS: "86400000" };

const pruner = (
  server: TestServer,
  policy: { maxAgeDays: number | null; maxCount: number | null },
  batchRows = 7,
  dutyPercent = 100,
) =>
  new Pruner(server.db, {
    policy,
    intervalMs: 86_400_000,
    batchRows,
    dutyPercent,
    databaseUrl: server.config.databaseUrl,
    statementTimeoutMs: 5000,
    connectTimeoutMs: 5000,
  });

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

for (const [store, open] of stores) {
  t.test(`${store}: a pass removes what the policy says and nothing else`, async (t) => {
    const { env, drop } = await open();
    t.teardown(drop);
    const server = await startTestServer({ ...env, ...QUIET, RETENTION_MAX_AGE_DAYS: "7", RETENTION_BATCH_ROWS: "7" });
    t.teardown(() => server.shutdown());
    const log = server.chatLog;
    const overrides = new RetentionStore(server.db);

    // Room 1, the global age rule: 20 entries 10 days old, then 10 recent ones.
    await appendMessages(log, 1, 30);
    await age(server.db, 1, range(1, 20), 10);
    // Room 2: its override (count 25, no age limit) beats the global policy: only 1..5 go.
    await appendMessages(log, 2, 30);
    await age(server.db, 2, range(1, 20), 10);
    await overrides.set(2, { maxAgeDays: null, maxCount: 25 }, 9000);
    // Room 3: an override that keeps everything, however old.
    await appendMessages(log, 3, 10);
    await age(server.db, 3, range(1, 10), 400);
    await overrides.set(3, { maxAgeDays: null, maxCount: null }, 9000);
    // Room 4: moderation events are entries like messages: pruned by the same rule.
    await appendMessages(log, 4, 3);
    await log.appendEvent({ id: randomUUID(), roomId: 4, actorId: 4, kind: "delete", event: { targetSeq: 2 } });
    await appendMessages(log, 4, 2);
    await age(server.db, 4, range(1, 4), 30);
    // Room 5: the retained range stays contiguous: an old entry above a recent one stays.
    await appendMessages(log, 5, 10);
    await age(server.db, 5, [1, 2, 3, 4, 6, 7, 8, 9, 10], 30);
    // Room 6: everything old: everything goes, the counter stays.
    await appendMessages(log, 6, 12);
    await age(server.db, 6, range(1, 12), 8);
    // Room 7: nothing old: untouched.
    await appendMessages(log, 7, 9);

    const dry = await pruner(server, { maxAgeDays: 7, maxCount: null }).runPass({ dryRun: true });
    t.equal(dry?.rows, 20 + 5 + 4 + 4 + 12, "a dry run counts what a pass would remove");
    t.same(await seqsOf(server.db, 1), range(1, 30), "and removes nothing");

    const batches: number[] = [];
    const result = await server.retention.runPass({ onBatch: (b) => void batches.push(b.rows) });
    t.ok(result, "the pass ran");
    t.equal(result?.rows, 20 + 5 + 4 + 4 + 12);
    t.ok(Math.max(...batches) <= 7, "every delete is a batch of at most RETENTION_BATCH_ROWS");
    t.same(await seqsOf(server.db, 1), range(21, 30), "room 1: entries older than 7 days pruned");
    t.same(await seqsOf(server.db, 2), range(6, 30), "room 2: its own count limit, not the global age");
    t.same(await seqsOf(server.db, 3), range(1, 10), "room 3: kept forever by its override");
    t.same(await seqsOf(server.db, 4), [5, 6], "room 4: the old event went with the old messages");
    t.same(await seqsOf(server.db, 5), range(5, 10), "room 5: only the old prefix, up to the first recent entry");
    t.same(await seqsOf(server.db, 6), [], "room 6: every entry pruned");
    t.same(await seqsOf(server.db, 7), range(1, 9), "room 7: untouched");
    t.same(await log.retainedRange(6), { from: null, lastSeq: 12 }, "room 6 keeps its counter");
    t.equal((await appendMessages(log, 6, 1))[0], 13, "and its next entry continues the seqs");
    t.same(await log.retainedRange(1), { from: 21, lastSeq: 30 });

    t.equal((await server.retention.runPass())?.rows, 0, "a second pass finds nothing more");

    // A global count limit (a pruner with another policy on the same store); overrides still win.
    const byCount = await pruner(server, { maxAgeDays: null, maxCount: 4 }).runPass();
    t.equal(byCount?.rows, 6 + 0 + 0 + 0 + 2 + 0 + 5);
    t.same(await seqsOf(server.db, 1), range(27, 30), "room 1: the newest 4");
    t.same(await seqsOf(server.db, 2), range(6, 30), "room 2: its override still applies");
    t.same(await seqsOf(server.db, 3), range(1, 10), "room 3: its override still applies");
    t.same(await seqsOf(server.db, 6), [13], "room 6: one entry, within the limit");
    t.same(await seqsOf(server.db, 7), range(6, 9), "room 7: the newest 4");
    const one = await pruner(server, { maxAgeDays: null, maxCount: 1 }).runPass({ roomId: 7 });
    t.equal(one?.rows, 3, "--room: one room only");
    t.same(await seqsOf(server.db, 1), range(27, 30), "other rooms untouched");
  });

  t.test(`${store}: posts during a pass all succeed, reach the presenter and stay`, async (t) => {
    const { env, drop } = await open();
    t.teardown(drop);
    const server = await startTestServer({ ...env, ...QUIET, RETENTION_MAX_AGE_DAYS: "1" });
    t.teardown(() => server.shutdown());
    const room = 300;
    const old = store === "PGlite" ? 6000 : 20_000;
    await fillOld(server.db, room, old, 3);
    const presenter = new TestSocket(
      `${server.ws}/v1/rooms/${room}/presenter?access_token=${await mintToken({ user_idx: room })}`,
    );
    const attached = waitAttached(server.relay, room);
    await presenter.open();
    await attached;
    t.teardown(() => presenter.close(1000));
    const viewer = await mintToken({ user_idx: 31 });
    const post = (i: number) =>
      request<{ seq: number }>(`${server.http}/v1/rooms/${room}/messages`, {
        headers: { authorization: `Bearer ${viewer}` },
        body: { text: `live ${i}` },
      });

    const answers: Promise<{ status: number; seq: number; during: boolean }>[] = [];
    let passDone = false;
    let batches = 0;
    const pass = pruner(server, { maxAgeDays: 1, maxCount: null }, 500).runPass({
      onBatch: () => {
        // Two posts per batch, not awaited: they race the following deletes.
        batches++;
        for (let k = 0; k < 2 && answers.length < 40; k++) {
          const i = answers.length;
          answers.push(post(i).then((r) => ({ status: r.status, seq: r.body.seq, during: !passDone })));
        }
      },
    });
    const result = await pass;
    passDone = true;
    const done = await Promise.all(answers);
    t.equal(result?.rows, old, "every old entry pruned");
    t.ok(batches >= old / 500, "in batches");
    t.same(
      done.map((d) => d.status),
      done.map(() => 201),
      "every post during the pass answered 201",
    );
    t.ok(done.filter((d) => d.during).length > 0, "some answered while the pass was still deleting");
    const seqs = done.map((d) => d.seq).sort((a, b) => a - b);
    t.same(seqs, range(old + 1, old + done.length), "their seqs continue the room's counter");
    t.same(await seqsOf(server.db, room), seqs, "the log holds exactly the live posts");
    await presenter.until(
      () => presenter.json().filter((f) => f.type === "message").length === done.length,
      "every live post at the presenter",
    );
    t.same(
      presenter
        .json()
        .filter((f) => f.type === "message")
        .map((f) => f.seq),
      seqs,
      "delivered in seq order, none missing",
    );
  });
}

t.test("PostgreSQL: one pass at a time across nodes (the advisory lock)", async (t) => {
  const db = await createTestDatabase();
  t.teardown(db.drop);
  const env = { DATABASE_URL: db.url, RETENTION_MAX_COUNT: "10" };
  const a = await startTestServer({ ...env, ...QUIET });
  t.teardown(() => a.shutdown());
  await fillOld(a.db, 400, 100, 0);
  await fillOld(a.db, 401, 100, 0);

  // Two pruners on one database, as on two nodes: while one is in its pass, the other skips.
  const first = pruner(a, { maxAgeDays: null, maxCount: 10 }, 10);
  const second = pruner(a, { maxAgeDays: null, maxCount: 10 }, 10);
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let inPass: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    inPass = resolve;
  });
  let calls = 0;
  const running = first.runPass({
    onBatch: async () => {
      if (++calls > 1) return;
      inPass();
      await held;
    },
  });
  await started;
  t.equal(await second.runPass(), null, "the second pruner does not run while the first holds the lock");
  t.equal(second.skipped, 1);
  release();
  t.equal((await running)?.rows, 180, "the first finishes its pass");
  t.same(await seqsOf(a.db, 400), range(91, 100));

  // Two real nodes pruning in the background every 100 ms; the lock held by the test stops both.
  await fillOld(a.db, 402, 50, 0);
  const holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query(`SELECT pg_advisory_lock(${RETENTION_LOCK_KEY})`);
  const fast = { ...env, RETENTION_INTERVAL_MS: "100" };
  const [b, c] = await Promise.all([startTestServer(fast), startTestServer(fast)]);
  t.teardown(() => Promise.all([b.shutdown(), c.shutdown()]));
  await pollUntil(
    async () => (b.retention.skipped >= 3 && c.retention.skipped >= 3 ? true : undefined),
    "both nodes trying passes",
    10_000,
  );
  t.equal(b.retention.passes + c.retention.passes, 0, "no node ran a pass while the lock was held");
  t.same(await seqsOf(a.db, 402), range(1, 50), "nothing pruned meanwhile");
  await holder.query(`SELECT pg_advisory_unlock(${RETENTION_LOCK_KEY})`);
  await pollUntil(
    async () => ((await seqsOf(a.db, 402)).length === 10 ? true : undefined),
    "a node pruning once the lock is free",
    10_000,
  );
  t.same(await seqsOf(a.db, 402), range(41, 50), "the newest 10 kept");
  t.ok(b.retention.passes + c.retention.passes >= 1, "passes ran once the lock was free");
});

t.test("RETENTION_* settings: defaults, and each problem named without its value", async (t) => {
  const config = loadConfig(testEnv());
  t.same(config.retention, { maxAgeDays: null, maxCount: null, intervalMs: 60_000, batchRows: 1000, dutyPercent: 25 });
  const set = loadConfig(testEnv({ RETENTION_MAX_AGE_DAYS: "30", RETENTION_MAX_COUNT: "100000" })).retention;
  t.match(set, { maxAgeDays: 30, maxCount: 100_000 });
  const bad = {
    RETENTION_MAX_AGE_DAYS: "secret-ish-value",
    RETENTION_MAX_COUNT: "0",
    RETENTION_INTERVAL_MS: "-5",
    RETENTION_BATCH_ROWS: "1e9",
    RETENTION_DUTY_PERCENT: "0",
  };
  try {
    loadConfig(testEnv(bad));
    t.fail("bad settings must be refused");
  } catch (err) {
    t.ok(err instanceof ConfigError);
    const problems = (err as ConfigError).problems;
    for (const name of Object.keys(bad))
      t.ok(
        problems.some((p) => p.startsWith(name)),
        `${name} reported`,
      );
    t.notOk((err as Error).message.includes("secret-ish-value"), "the value is not echoed");
    t.notOk((err as Error).message.includes("1e9"), "the value is not echoed");
  }
});

t.test("a pass rests between batches in proportion to them (RETENTION_DUTY_PERCENT)", async (t) => {
  const server = await startTestServer({ ...QUIET });
  t.teardown(() => server.shutdown());
  await appendMessages(server.chatLog, 1, 60);
  // Each batch is made to take at least SLOW ms (its onBatch, awaited inside the batch, waits that
  // long: a stand-in for a heavy delete). At 50% the pass then rests at least as long again, so
  // consecutive batches end at least 2 * SLOW apart; without the rest, SLOW and a little.
  const SLOW = 25;
  const ends = async (dutyPercent: number, maxCount: number) => {
    const marks: number[] = [];
    const result = await pruner(server, { maxAgeDays: null, maxCount }, 10, dutyPercent).runPass({
      onBatch: async () => {
        await new Promise((resolve) => setTimeout(resolve, SLOW));
        marks.push(performance.now());
      },
    });
    return { rows: result?.rows, gaps: marks.slice(1).map((m, i) => m - (marks[i] as number)) };
  };
  const paced = await ends(50, 30);
  t.equal(paced.rows, 30, "the pass deleted its prefix, in three batches");
  t.ok(
    paced.gaps.every((g) => g >= 2 * SLOW - 1),
    `at 50%, a rest as long as the batch (${paced.gaps.map((g) => g.toFixed(0)).join(", ")} ms)`,
  );
  const full = await ends(100, 10);
  t.equal(full.rows, 20, "at 100% (the default of a Pruner built directly) the next prefix goes");
});
