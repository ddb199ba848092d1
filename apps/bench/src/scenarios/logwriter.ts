import type { BenchConfig } from "../config.js";
import { startHelperProcess } from "../targets.js";
import { CpuMeter, type CpuReport } from "../util/cpu.js";
import { createDatabase } from "../util/services.js";

export interface LogWriterResult {
  concurrency: number;
  rooms: number;
  maxBatch: number;
  batchesInFlight: number;
  seconds: number;
  committed: number;
  failed: number;
  firstError?: string;
  rowsPerSec: number;
  commitWaitMs: { p50: number; p90: number; p99: number; max: number };
  batches: number;
  meanBatch: number;
  meanBatchMs: number;
  table: { rooms: number; rows: number; gapless: boolean } | null;
  cpu: CpuReport;
  problems: string[];
  profiles: string[];
}

/** rows/s through the project's group-committing PrismaChatLog into a fresh PostgreSQL database. */
export async function runLogWriter(config: BenchConfig): Promise<LogWriterResult> {
  const { durationS, concurrency, maxBatch, batchesInFlight } = config.logWriter;
  const db = await createDatabase("logwriter");
  try {
    const proc = startHelperProcess(
      "logwriter",
      "logwriter.ts",
      {
        DATABASE_URL: db.url,
        DURATION_MS: String(durationS * 1000),
        WARMUP_MS: config.smoke ? "200" : "2000",
        CONCURRENCY: String(concurrency),
        ROOMS: String(config.smoke ? 10 : 100),
        // Unset: the server's defaults.
        ...(maxBatch === undefined ? {} : { LOG_BATCH_MAX: String(maxBatch) }),
        ...(batchesInFlight === undefined ? {} : { LOG_BATCHES_IN_FLIGHT: String(batchesInFlight) }),
      },
      config.profileDir,
    );
    try {
      const meter = new CpuMeter([{ name: "logwriter", proc, port: 0 }]);
      await proc.waitForLine((l) => l.includes('"logwriter window start"'), 60_000, "the log writer's warm-up");
      meter.start();
      await proc.waitForLine((l) => l.includes('"logwriter window end"'), (durationS + 30) * 1000, "the window end");
      const cpu = meter.stop();
      const line = await proc.waitForLine(
        (l) => l.includes('"logwriter result"'),
        (durationS + 60) * 1000,
        "the log writer's result",
      );
      const r = JSON.parse(line) as Omit<LogWriterResult, "cpu" | "problems" | "profiles">;
      const problems: string[] = [];
      if (r.failed > 0) problems.push(`${r.failed} appends failed: ${r.firstError}`);
      if (r.committed === 0) problems.push("no append committed");
      if (!r.table?.gapless) problems.push("a room's seqs have a gap");
      if ((r.table?.rows ?? 0) < r.committed) problems.push(`${r.table?.rows} rows for ${r.committed} commits`);
      await proc.exited();
      return { ...r, cpu, problems, profiles: [] };
    } finally {
      await proc.stop(5000);
    }
  } finally {
    await db.drop();
  }
}
