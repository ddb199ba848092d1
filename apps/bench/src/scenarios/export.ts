import { readFileSync } from "node:fs";
import http from "node:http";
import { performance } from "node:perf_hooks";
import { SignJWT } from "jose";
import pg from "pg";
import type { BenchConfig } from "../config.js";
import type { TargetCheck } from "../report.js";
import { startChatrelayNode } from "../targets.js";
import { CpuMeter, type CpuReport } from "../util/cpu.js";
import { createDatabase, JWT_SECRET } from "../util/services.js";

/**
 * `export` (issue #13): one room of 1,000,000 rows (smoke: 20,000; BENCH_EXPORT_ROWS overrides)
 * in a fresh PostgreSQL database, exported by one real chatrelay node over HTTP
 * (GET /v1/rooms/1/export, NDJSON), read and discarded as /dev/null would. Measures rows/s and
 * the node's RSS (VmRSS from /proc/<pid>/status) before, at its peak while streaming, and after.
 * Targets: >= 100,000 rows/s, RSS growth under 50 MB.
 */
export interface ExportBenchResult {
  rows: number;
  rowsReceived: number;
  bytes: number;
  fillSeconds: number;
  seconds: number;
  rowsPerSec: number;
  rssMb: { before: number; peak: number; after: number; growth: number };
  rssSamples: number;
  cpu: CpuReport;
  problems: string[];
}

const ROOM = 1;
const TARGET_ROWS_PER_SEC = 100_000;
const TARGET_RSS_GROWTH_MB = 50;
const RSS_SAMPLE_MS = 20;

let last: ExportBenchResult | undefined;

/** The last run's figures (for the results file), if the scenario ran. */
export function exportBenchResult(): ExportBenchResult | undefined {
  return last;
}

export async function runExportBench(config: BenchConfig): Promise<ExportBenchResult> {
  const rows = Number(process.env.BENCH_EXPORT_ROWS ?? (config.smoke ? 20_000 : 1_000_000));
  const db = await createDatabase("export");
  try {
    // The node migrates the fresh database; the rows go in after, as one statement.
    const node = await startChatrelayNode({
      name: "export",
      env: { DATABASE_URL: db.url },
      profileDir: config.profileDir,
    });
    try {
      const fillSeconds = await fill(db.url, rows);
      const token = await operatorToken();
      const meter = new CpuMeter([node]);
      const before = vmRssBytes(node.proc.pid);
      let peak = before;
      let samples = 0;
      const sampler = setInterval(() => {
        const rss = vmRssBytes(node.proc.pid);
        samples++;
        if (rss > peak) peak = rss;
      }, RSS_SAMPLE_MS);
      meter.start();
      const t0 = performance.now();
      let got: { rows: number; bytes: number };
      try {
        got = await download(`http://127.0.0.1:${node.port}/v1/rooms/${ROOM}/export`, token);
      } finally {
        clearInterval(sampler);
      }
      const seconds = (performance.now() - t0) / 1000;
      const cpu = meter.stop();
      const after = vmRssBytes(node.proc.pid);
      peak = Math.max(peak, after);
      const mb = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
      const problems: string[] = [];
      if (got.rows !== rows) problems.push(`exported ${got.rows} rows of ${rows}`);
      last = {
        rows,
        rowsReceived: got.rows,
        bytes: got.bytes,
        fillSeconds,
        seconds,
        rowsPerSec: got.rows / seconds,
        rssMb: { before: mb(before), peak: mb(peak), after: mb(after), growth: mb(peak - before) },
        rssSamples: samples,
        cpu,
        problems,
      };
      return last;
    } finally {
      await node.proc.stop(10_000);
    }
  } finally {
    await db.drop();
  }
}

/** The targets-table lines of this scenario (none when it did not run). */
export function exportTargets(): TargetCheck[] {
  const r = last;
  if (r === undefined) return [];
  return [
    {
      target: `export of ${r.rows.toLocaleString("en-US")} rows over HTTP`,
      goal: `>= ${TARGET_ROWS_PER_SEC.toLocaleString("en-US")} rows/s`,
      value: `${Math.round(r.rowsPerSec).toLocaleString("en-US")} rows/s (${r.seconds.toFixed(1)} s, ${Math.round(r.bytes / 2 ** 20)} MB)`,
      met: r.rowsPerSec >= TARGET_ROWS_PER_SEC,
    },
    {
      target: "exporting node's RSS growth while streaming",
      goal: `< ${TARGET_RSS_GROWTH_MB} MB`,
      value: `${r.rssMb.growth} MB (before ${r.rssMb.before}, peak ${r.rssMb.peak}, after ${r.rssMb.after} MB)`,
      met: r.rssMb.growth < TARGET_RSS_GROWTH_MB,
    },
  ];
}

/** The scenario's own table for the report. */
export function exportTable(): string {
  const r = last;
  if (r === undefined) return "";
  const pct = (x: number | undefined) => (x === undefined ? "-" : `${Math.round(x)}%`);
  return [
    "export (GET /v1/rooms/:roomId/export, NDJSON, read and discarded)",
    `  rows / received / bytes     ${r.rows} / ${r.rowsReceived} / ${r.bytes}`,
    `  fill (INSERT ... SELECT)    ${r.fillSeconds.toFixed(1)} s`,
    `  export                      ${r.seconds.toFixed(2)} s, ${Math.round(r.rowsPerSec)} rows/s`,
    `  node RSS before/peak/after  ${r.rssMb.before} / ${r.rssMb.peak} / ${r.rssMb.after} MB (${r.rssSamples} samples)`,
    `  node CPU / PostgreSQL CPU   ${pct(r.cpu.targets.export)} / ${pct(r.cpu.postgres)}`,
  ].join("\n");
}

/** One room of `rows` chat rows, 50 ms apart, plausible texts; vacuumed as an old log would be. */
async function fill(url: string, rows: number): Promise<number> {
  const t0 = performance.now();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("INSERT INTO chat_room (room_id, last_seq) VALUES ($1, $2)", [ROOM, rows]);
    await client.query(
      `INSERT INTO chat_message (room_id, seq, id, sender_id, nickname, user_type, text, created_at, kind)
       SELECT $1, g, gen_random_uuid(), 1000 + g % 5000, 'viewer' || (g % 5000), 'viewer',
              'message ' || g || ': a typical line of chat, not too long', now() - interval '2 days' + g * interval '50 ms', 'message'
       FROM generate_series(1, $2::int) AS g`,
      [ROOM, rows],
    );
    await client.query("VACUUM (ANALYZE) chat_message");
  } finally {
    await client.end();
  }
  return (performance.now() - t0) / 1000;
}

function operatorToken(): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ user_idx: 1, role: "operator" })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(new TextEncoder().encode(JWT_SECRET));
}

/** Reads the whole response and throws it away, counting lines (rows) and bytes. */
function download(url: string, token: string): Promise<{ rows: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`the export answered ${res.statusCode}`));
        return;
      }
      let rows = 0;
      let bytes = 0;
      res.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) rows++;
      });
      res.on("end", () => resolve({ rows, bytes }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

/** VmRSS of /proc/<pid>/status in bytes (0 once the process is gone). */
function vmRssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
