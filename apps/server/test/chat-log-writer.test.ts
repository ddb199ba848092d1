import { readdirSync } from "node:fs";
import t from "tap";
import { openDatabase } from "../src/chatlog/database.js";
import { LogQueueFullError } from "../src/chatlog/log-errors.js";
import { applyMigrations, findMigrationsDir } from "../src/chatlog/migrate.js";
import { PrismaChatLog } from "../src/chatlog/prisma-chat-log.js";
import { uuidv7 } from "../src/core/ids.js";
import type { MessageDraft } from "../src/core/message.js";

// The group-committing writer on the real embedded PGlite.
const db = await openDatabase({ databaseUrl: undefined, pgliteDataDir: "memory://" });
await applyMigrations(db);
const log = new PrismaChatLog(db, 100);
t.teardown(() => log.close());

const draft = (roomId: number, extra: Partial<MessageDraft> = {}): MessageDraft => ({
  id: uuidv7(),
  roomId,
  senderId: 5,
  nickname: "n",
  userType: "viewer",
  text: "t",
  clientMsgId: undefined,
  ...extra,
});

t.test("migrations are recorded in Prisma's table and applied once", async (t) => {
  t.same(await applyMigrations(db), [], "nothing pending on a second run");
  const rows = await db.prisma.$queryRawUnsafe<{ migration_name: string; finished_at: Date | null }[]>(
    `SELECT migration_name, finished_at FROM "_prisma_migrations"`,
  );
  const folders = readdirSync(findMigrationsDir(), { withFileTypes: true }).filter((d) => d.isDirectory());
  t.equal(rows.length, folders.length, "one row per migration folder");
  t.ok(rows[0]?.finished_at, "finished");
});

t.test("one bad row fails alone; the rows it shared a batch with are committed", async (t) => {
  const results = await Promise.allSettled([
    log.append(draft(1)),
    log.append(draft(1, { userType: "x".repeat(40) as "viewer" })), // too long for its column
    log.append(draft(1)),
    log.append(draft(2)),
  ]);
  t.same(
    results.map((r) => r.status),
    ["fulfilled", "rejected", "fulfilled", "fulfilled"],
  );
  const seqs = results.flatMap((r) =>
    r.status === "fulfilled" ? [[r.value.message.roomId, r.value.message.seq]] : [],
  );
  t.same(
    seqs,
    [
      [1, 1],
      [1, 2],
      [2, 1],
    ],
    "the failed row consumed no seq",
  );
  t.equal(await log.lastSeq(1), 2);
});

t.test("rows of one batch get consecutive seqs per room in arrival order", async (t) => {
  const results = await Promise.all(
    Array.from({ length: 30 }, (_, i) => log.append(draft(10 + (i % 3), { text: `${i}` }))),
  );
  for (const room of [10, 11, 12]) {
    const mine = results.filter((r) => r.message.roomId === room);
    t.same(
      mine.map((r) => r.message.seq),
      Array.from({ length: 10 }, (_, i) => i + 1),
      `room ${room}`,
    );
  }
  t.same(
    (await log.since(10, 4, 3)).map((m) => m.seq),
    [5, 6, 7],
    "since() pages from a seq",
  );
});

t.test("close flushes pending writes", async (t) => {
  const local = new PrismaChatLog(await openDatabase({ databaseUrl: undefined, pgliteDataDir: "memory://" }), 10);
  await applyMigrations((local as unknown as { db: Parameters<typeof applyMigrations>[0] }).db);
  const pending = Array.from({ length: 25 }, () => local.append(draft(3)));
  const closing = local.close();
  const settled = await Promise.allSettled(pending);
  await closing;
  t.ok(
    settled.every((s) => s.status === "fulfilled"),
    "every write queued before close committed",
  );
  await t.rejects(local.append(draft(3)), /closed/, "no writes after close");
});

t.test("the queue bound applies on PGlite too: the surplus is refused at once and never written", async (t) => {
  // On the shared database, which the file's own log closes.
  const bounded = new PrismaChatLog(db, 100, undefined, 1, { maxQueued: 5, deadlineMs: 60_000 });
  // All 30 are queued in this turn, before the first batch starts: 5 fit, 25 do not.
  const results = await Promise.allSettled(
    Array.from({ length: 30 }, (_, i) => bounded.append(draft(30, { text: `bounded-${i}` }))),
  );
  const refused = results.filter((r) => r.status === "rejected");
  t.equal(refused.length, 25);
  t.ok(
    refused.every((r) => r.status === "rejected" && r.reason instanceof LogQueueFullError),
    "refused with the typed error",
  );
  t.same(
    (await bounded.since(30, 0, 100)).map((m) => m.text),
    ["bounded-0", "bounded-1", "bounded-2", "bounded-3", "bounded-4"],
    "only the rows that fit were written",
  );
});
