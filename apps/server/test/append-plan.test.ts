import type pg from "pg";
import t from "tap";
import { openDatabase } from "../src/chatlog/database.js";
import { applyMigrations } from "../src/chatlog/migrate.js";
import { PrismaChatLog } from "../src/chatlog/prisma-chat-log.js";
import { uuidv7 } from "../src/core/ids.js";
import { createTestDatabase } from "./helpers/databases.js";
import { withPgClient } from "./helpers/postgres-server.js";
import { pollUntil } from "./helpers/wait.js";

// The append statement's cached plan on a new, never analysed chat log: the clientMsgId lookup must
// use its index from the first batch on. A plan made while the table was empty used to scan the
// whole table on every batch, ever slower as it grew, until an ANALYZE happened to replace it.
const pgDb = await createTestDatabase();
t.teardown(() => pgDb.drop());
const dbName = new URL(pgDb.url).pathname.slice(1);

interface TableScans {
  seqScan: number;
  idxScan: number;
  inserted: number;
}

/** chat_message's counters, once every other session of the database has ended (ending flushes its counters). */
async function scansWhenQuiet(): Promise<TableScans> {
  await pollUntil(
    () =>
      withPgClient(pgDb.url, async (c) => {
        const r = await c.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
          [dbName],
        );
        return r.rows[0]?.n === 0 ? true : undefined;
      }),
    "every other session of the test database to end",
    15_000,
  );
  return withPgClient(pgDb.url, async (c) => {
    const r = await c.query<{ seq_scan: string; idx_scan: string | null; n_tup_ins: string }>(
      "SELECT seq_scan, idx_scan, n_tup_ins FROM pg_stat_user_tables WHERE relname = 'chat_message'",
    );
    const row = r.rows[0];
    if (!row) throw new Error("chat_message has no statistics row");
    return { seqScan: Number(row.seq_scan), idxScan: Number(row.idx_scan ?? 0), inserted: Number(row.n_tup_ins) };
  });
}

t.test("appends on a fresh table look clientMsgIds up by index, never by scanning the table", async (t) => {
  const migrating = await openDatabase({ databaseUrl: pgDb.url, pgliteDataDir: "" });
  await applyMigrations(migrating);
  await migrating.close();
  const before = await scansWhenQuiet();

  const db = await openDatabase({ databaseUrl: pgDb.url, pgliteDataDir: "" });
  const log = new PrismaChatLog(db, 100);
  // Rounds of concurrent appends: batches of one row and of many, well past the five executions
  // after which PostgreSQL may switch a prepared statement to its generic plan.
  const ROUNDS = 12;
  const PER_ROUND = 10;
  for (let round = 0; round < ROUNDS; round++) {
    const width = round % 2 === 0 ? 1 : PER_ROUND;
    await Promise.all(
      Array.from({ length: width }, (_, i) =>
        log.append({
          id: uuidv7(),
          roomId: 1 + (i % 4),
          senderId: 7,
          nickname: "n",
          userType: "viewer",
          text: `round ${round} message ${i}`,
          clientMsgId: `r${round}-m${i}`,
        }),
      ),
    );
  }
  const written = (ROUNDS / 2) * (1 + PER_ROUND);
  // A retry: found by the lookup, not inserted again.
  const retry = await log.append({
    id: uuidv7(),
    roomId: 1,
    senderId: 7,
    nickname: "n",
    userType: "viewer",
    text: "round 0 message 0",
    clientMsgId: "r0-m0",
  });
  t.ok(retry.duplicate, "a retry is answered from the log");
  await log.close();

  const after = await scansWhenQuiet();
  t.equal(after.inserted - before.inserted, written, "every append wrote its row once");
  t.equal(after.seqScan - before.seqScan, 0, "no batch scanned chat_message sequentially");
  t.ok(after.idxScan - before.idxScan >= ROUNDS + 1, "every batch looked its clientMsgIds up by index");
});

t.test("the writer's planner settings leave the read sessions alone", async (t) => {
  // The settings are per writer session: a plain connection still has the server's defaults.
  const settings = await withPgClient(pgDb.url, (c: pg.Client) =>
    c.query<{ name: string; setting: string }>(
      "SELECT name, setting FROM pg_settings WHERE name IN ('enable_seqscan', 'plan_cache_mode') ORDER BY name",
    ),
  );
  t.same(
    settings.rows.map((r) => [r.name, r.setting]),
    [
      ["enable_seqscan", "on"],
      ["plan_cache_mode", "auto"],
    ],
  );
});
