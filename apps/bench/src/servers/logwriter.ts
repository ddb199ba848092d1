/**
 * The log-writer benchmark, in its own process so its CPU is measured apart
 * from the bench: the project's PrismaChatLog (group commit) appending into
 * a fresh PostgreSQL database from many concurrent callers. Prints one JSON
 * line with the result, then checks that every room's seqs are gapless.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { openDatabase } from "@chatrelay/server/dist/chatlog/database.js";
import { applyMigrations } from "@chatrelay/server/dist/chatlog/migrate.js";
import { PrismaChatLog } from "@chatrelay/server/dist/chatlog/prisma-chat-log.js";
import { loadConfig } from "@chatrelay/server/dist/config.js";
import type { MessageDraft } from "@chatrelay/server/dist/core/message.js";
import { requireEnv } from "./child-util.js";

const databaseUrl = requireEnv("DATABASE_URL");
const durationMs = Number(requireEnv("DURATION_MS"));
const warmupMs = Number(process.env.WARMUP_MS ?? "1000");
const concurrency = Number(requireEnv("CONCURRENCY"));
const rooms = Number(process.env.ROOMS ?? "100");
// The server's own parsing and defaults for the writer's settings (LOG_BATCH_MAX, LOG_BATCHES_IN_FLIGHT).
const { logWriter } = loadConfig({
  LOG_BATCH_MAX: process.env.LOG_BATCH_MAX,
  LOG_BATCHES_IN_FLIGHT: process.env.LOG_BATCHES_IN_FLIGHT,
});
const { maxBatch, batchesInFlight } = logWriter;
const poolSize = Number(process.env.POOL_SIZE ?? "10");

const db = await openDatabase({ databaseUrl, pgliteDataDir: "memory://", poolSize });
await applyMigrations(db);

let measuring = false;
const batchSizes: number[] = [];
const batchSeconds: number[] = [];
const log = new PrismaChatLog(
  db,
  maxBatch,
  (s) => {
    if (!measuring) return;
    batchSizes.push(s.batchSize);
    batchSeconds.push(s.seconds);
  },
  batchesInFlight,
);

const waits: number[] = [];
let committed = 0;
let failed = 0;
let firstError: string | undefined;
let next = 0;
const cpuStart = { usage: process.cpuUsage(), at: 0 };

const start = performance.now();
const warmEnd = start + warmupMs;
const end = warmEnd + durationMs;
let windowStart = warmEnd;

const worker = async (w: number) => {
  for (;;) {
    const now = performance.now();
    if (now >= end) return;
    if (!measuring && now >= warmEnd) {
      measuring = true;
      windowStart = now;
      cpuStart.usage = process.cpuUsage();
      cpuStart.at = now;
      // The bench snapshots PostgreSQL's CPU on these two lines, while our connections are still open.
      process.stdout.write(`${JSON.stringify({ msg: "logwriter window start" })}\n`);
      setTimeout(() => process.stdout.write(`${JSON.stringify({ msg: "logwriter window end" })}\n`), end - now);
    }
    const i = next++;
    const draft: MessageDraft = {
      id: randomUUID(),
      roomId: (i % rooms) + 1,
      senderId: 1_000_000 + (w % 64),
      nickname: `viewer-${w % 64}`,
      userType: "viewer",
      text: `${i} log writer bench message, padded to a typical chat line length.`,
      clientMsgId: undefined,
    };
    const t0 = performance.now();
    const inWindow = measuring;
    try {
      await log.append(draft);
      const t1 = performance.now();
      if (inWindow && t1 <= end) {
        committed++;
        waits.push(t1 - t0);
      }
    } catch (err) {
      failed++;
      firstError ??= (err as Error).message;
    }
  }
};

await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
const seconds = (Math.min(performance.now(), end) - windowStart) / 1000;
const cpu = process.cpuUsage(cpuStart.usage);
await log.close();

// Durability and order check: the rows are there, and each room's seqs run 1..n without a gap.
const check = await openDatabase({ databaseUrl, pgliteDataDir: "memory://", poolSize: 1 });
const rows = await check.prisma.$queryRawUnsafe<{ rooms: number; rows: number; gapless: boolean }[]>(
  `SELECT count(*)::int AS rooms, coalesce(sum(n), 0)::int AS rows, coalesce(bool_and(n = max_seq), true) AS gapless
   FROM (SELECT room_id, count(*) AS n, max(seq) AS max_seq FROM chat_message GROUP BY room_id) t`,
);
await check.close();

const sorted = Float64Array.from(waits).sort();
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? 0;
const mean = (a: number[]) => (a.length === 0 ? 0 : a.reduce((x, y) => x + y, 0) / a.length);
process.stdout.write(
  `${JSON.stringify({
    msg: "logwriter result",
    concurrency,
    rooms,
    maxBatch,
    batchesInFlight,
    seconds,
    committed,
    failed,
    firstError,
    rowsPerSec: committed / seconds,
    commitWaitMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: sorted[sorted.length - 1] ?? 0 },
    batches: batchSizes.length,
    meanBatch: mean(batchSizes),
    meanBatchMs: mean(batchSeconds) * 1000,
    writerCpuPct: ((cpu.user + cpu.system) / 1000 / (seconds * 1000)) * 100,
    table: rows[0] ?? null,
  })}\n`,
);
process.exit(0);
