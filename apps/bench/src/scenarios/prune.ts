import { join } from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import type { BenchConfig } from "../config.js";
import { Generator } from "../load/generator.js";
import { type LatencySummary, Phase, summarize, Tracker } from "../load/tracker.js";
import type { TargetCheck } from "../report.js";
import { CpuMeter, type CpuReport } from "../util/cpu.js";
import { ManagedProcess, REPO_DIR, withTimeout } from "../util/procs.js";
import { mintToken } from "../util/services.js";
import { Teardown } from "./deploy-kit.js";
import { deployClusterPath } from "./load.js";

/**
 * `prune` (issue #13): the cluster path (c) (posts to node A, presenters on node B, PostgreSQL +
 * Redis) over a log that already holds 1,000,000 rows 30 days old (smoke: 5,000; BENCH_PRUNE_ROWS
 * overrides) in the same rooms the load posts to. After a closed loop that finds the path's
 * maximum, two open loops at half of it, paired on the same deployment: one without pruning
 * (--duration seconds), one while `chatrelay log prune` (RETENTION_MAX_AGE_DAYS=7: exactly the
 * old rows) deletes them, in 1 s chunks for as long as the prune runs.
 * Target: the pruning phase's end-to-end p99 within 20% of the other's.
 */
export interface PruneBenchResult {
  rows: number;
  fillSeconds: number;
  closedMaxPerSec: number | null;
  rate: number;
  phaseSeconds: number;
  baseline: PrunePhase;
  pruning: PrunePhase;
  /**
   * `seconds` and `rowsPerSec`: from the CLI's start (process start and migration check included) to
   * its exit; `passRowsPerSec`: the pass itself, as the CLI reports it.
   */
  prune: {
    seconds: number;
    rowsDeleted: number;
    rowsPerSec: number;
    passRowsPerSec: number | null;
    exitCode: number | null;
    summary: string;
  };
  /** Share of the pruning phase during which the prune ran (1: all of it). */
  overlap: number;
  /** pruning e2e p99 / baseline e2e p99. */
  p99Ratio: number | null;
  problems: string[];
  warnings: string[];
}

export interface PrunePhase {
  seconds: number;
  ok: number;
  okPerSec: number;
  failed: number;
  lost: number;
  http: LatencySummary | null;
  e2e: LatencySummary | null;
  cpu: CpuReport;
}

const TARGET_RATIO = 1.2;
const OLD_DAYS = 30;
const CLI = join(REPO_DIR, "apps", "server", "dist", "cli.js");

let last: PruneBenchResult | undefined;

/** The last run's figures (for the results file), if the scenario ran. */
export function pruneBenchResult(): PruneBenchResult | undefined {
  return last;
}

export async function runPruneBench(config: BenchConfig): Promise<PruneBenchResult> {
  const rows = Number(process.env.BENCH_PRUNE_ROWS ?? (config.smoke ? 5000 : 1_000_000));
  const down = new Teardown();
  const problems: string[] = [];
  const warnings: string[] = [];
  const log = (s: string) => process.stderr.write(`  prune: ${s}\n`);
  try {
    const dep = await deployClusterPath("prune", config, down);
    const db = dep.db;
    if (db === undefined) throw new Error("the cluster path has no database");
    const rooms = Array.from({ length: config.rooms }, (_, i) => i + 1);
    log(`filling ${rows} rows ${OLD_DAYS} days old into ${rooms.length} rooms`);
    const fillSeconds = await fill(db.url, rooms, rows);
    log(`filled in ${fillSeconds.toFixed(1)} s`);

    const tracker = new Tracker();
    const presenters = await dep.openPresenters?.(tracker, rooms);
    if (presenters) down.push(() => presenters.close());
    const tokens = await Promise.all(
      Array.from({ length: config.senders }, (_, i) => mintToken(1_000_000 + i, `viewer-${i}`)),
    );
    const gen = new Generator(
      { baseUrls: dep.postBases, senderTokens: tokens, rooms, connections: Math.max(config.senders, 64) },
      tracker,
    );
    down.push(() => gen.close());
    const meter = new CpuMeter(dep.targets);

    const run = async (name: string, body: (p: Phase) => Promise<void>, mode: "closed" | "open" | "warmup") => {
      const phase = new Phase(`prune-${name}`, mode);
      meter.start();
      await body(phase);
      const cpu = meter.stop();
      await withTimeout(phase.whenDelivered(), config.drainTimeoutMs, "deliveries").catch(() => {});
      tracker.settle(phase);
      return { phase, cpu };
    };

    let closedMax: number | null = null;
    let rate = config.openRate ?? config.smokeRate;
    if (!config.smoke) {
      if (config.warmupS > 0)
        await run("warmup", (p) => gen.closedLoop(p, config.senders, config.warmupS * 1000), "warmup");
      const closedS = Math.max(3, config.durationS / 3);
      const closed = await run("closed", (p) => gen.closedLoop(p, config.senders, closedS * 1000), "closed");
      closedMax = closed.phase.ok / closed.phase.seconds;
      rate = config.openRate ?? Math.max(1, Math.round(closedMax / 2));
      log(`closed loop ${Math.round(closedMax)} msgs/s; open loops at ${rate} msgs/s`);
    }

    // Open loops in 1 s chunks, back to back: the pruning phase lasts exactly as long as the prune
    // (at least one chunk), so every sample of it is taken while rows are being deleted.
    const chunks = async (name: string, more: (done: number) => boolean) => {
      const phases: Phase[] = [];
      meter.start();
      do {
        const phase = new Phase(`prune-${name}-${phases.length + 1}`, "open");
        phases.push(phase);
        await gen.openLoop(phase, rate, 1000);
      } while (more(phases.length));
      const cpu = meter.stop();
      for (const phase of phases) {
        await withTimeout(phase.whenDelivered(), config.drainTimeoutMs, "deliveries").catch(() => {});
        tracker.settle(phase);
      }
      return { phases, cpu };
    };
    // An unmeasured second at the open rate first: the closed loop's last answers are not in the baseline.
    await chunks("settle", () => false);
    const baselineSeconds = Math.max(1, Math.round(config.durationS));
    const baseline = await chunks("baseline", (n) => n < baselineSeconds);
    log(`without pruning: e2e p99 ${summarize(baseline.phases.flatMap((p) => p.e2eLatMs))?.p99 ?? "-"} ms`);

    const oldBefore = await countOld(db.url);
    let prune: PruneBenchResult["prune"] | undefined;
    const started = performance.now();
    const pass = runPrune(db.url).then((out) => {
      prune = {
        seconds: (performance.now() - started) / 1000,
        rowsDeleted: 0,
        rowsPerSec: 0,
        passRowsPerSec: Number(/\((\d+) rows\/s\)/.exec(out.stdout)?.[1] ?? Number.NaN) || null,
        exitCode: out.code,
        summary: out.stdout.trim().split("\n").at(-1) ?? "",
      };
      if (out.code !== 0) problems.push(`log prune exited ${out.code}: ${out.stderr.trim().slice(-300)}`);
    });
    const pruning = await chunks("pruning", (n) => prune === undefined && n < 600);
    await pass;
    const pruneDone = prune as PruneBenchResult["prune"] | undefined;
    if (pruneDone === undefined) throw new Error("the prune did not report");
    const oldAfter = await countOld(db.url);
    pruneDone.rowsDeleted = oldBefore - oldAfter;
    pruneDone.rowsPerSec = pruneDone.rowsDeleted / Math.max(1e-9, pruneDone.seconds);
    if (oldAfter !== 0) problems.push(`${oldAfter} old rows left after the prune`);
    const overlap = Math.min(1, pruneDone.seconds / pruning.phases.length);
    log(
      `while pruning: e2e p99 ${summarize(pruning.phases.flatMap((p) => p.e2eLatMs))?.p99 ?? "-"} ms; ${pruneDone.summary}`,
    );

    const toPhase = (x: { phases: Phase[]; cpu: CpuReport }): PrunePhase => {
      const sum = (f: (p: Phase) => number) => x.phases.reduce((a, p) => a + f(p), 0);
      return {
        seconds: Math.round(sum((p) => p.seconds) * 10) / 10,
        okPerSec: Math.round((sum((p) => p.ok) / sum((p) => p.seconds)) * 10) / 10,
        ok: sum((p) => p.ok),
        failed: sum((p) => p.failed),
        lost: sum((p) => p.lost),
        http: summarize(x.phases.flatMap((p) => p.httpLatMs)),
        e2e: summarize(x.phases.flatMap((p) => p.e2eLatMs)),
        cpu: x.cpu,
      };
    };
    const result: PruneBenchResult = {
      rows,
      fillSeconds,
      closedMaxPerSec: closedMax === null ? null : Math.round(closedMax),
      rate,
      phaseSeconds: baselineSeconds,
      baseline: toPhase(baseline),
      pruning: toPhase(pruning),
      prune: pruneDone,
      overlap: Math.round(overlap * 100) / 100,
      p99Ratio: null,
      problems,
      warnings,
    };
    const b = result.baseline.e2e?.p99;
    const w = result.pruning.e2e?.p99;
    if (b !== undefined && w !== undefined && b > 0) result.p99Ratio = Math.round((w / b) * 100) / 100;
    for (const [name, p] of [
      ["without pruning", result.baseline],
      ["while pruning", result.pruning],
    ] as const) {
      if (p.failed > 0) problems.push(`${name}: ${p.failed} posts failed`);
      if (p.lost > 0) problems.push(`${name}: ${p.lost} messages answered 2xx never reached their presenter`);
    }
    const durable = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM chat_message WHERE created_at >= now() - interval '1 day'`,
    );
    const acked = result.baseline.ok + result.pruning.ok;
    if ((durable[0]?.n ?? 0) < acked) problems.push(`${durable[0]?.n} live rows for ${acked} 2xx answers`);
    for (const line of [...tracker.presenterErrors.slice(0, 5)]) problems.push(`presenter error: ${line}`);
    last = result;
    return result;
  } catch (err) {
    problems.push(`run failed: ${(err as Error).message}`);
    return { problems, warnings } as unknown as PruneBenchResult;
  } finally {
    for (const e of await down.run()) problems.push(`teardown: ${e}`);
  }
}

/** The targets-table line of this scenario (none when it did not run). */
export function pruneTargets(): TargetCheck[] {
  const r = last;
  if (r === undefined) return [];
  const p99 = (p: PrunePhase) => (p.e2e === null ? "-" : `${p.e2e.p99.toFixed(1)} ms`);
  return [
    {
      target: `(c) e2e p99 while pruning ${r.rows.toLocaleString("en-US")} old rows`,
      goal: `<= ${TARGET_RATIO}x without pruning`,
      value: `${r.p99Ratio ?? "-"}x (${p99(r.pruning)} vs ${p99(r.baseline)} at ${r.rate}/s; prune ${Math.round(r.prune.passRowsPerSec ?? r.prune.rowsPerSec).toLocaleString("en-US")} rows/s)`,
      met: r.p99Ratio === null ? null : r.p99Ratio <= TARGET_RATIO,
    },
  ];
}

/** The scenario's own table for the report. */
export function pruneTable(): string {
  const r = last;
  if (r === undefined) return "";
  const ms = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(1));
  const pct = (x: number | undefined) => (x === undefined ? "-" : `${Math.round(x)}%`);
  const line = (name: string, p: PrunePhase) =>
    `  ${name.padEnd(17)} ${String(p.seconds).padStart(5)} s ${String(Math.round(p.okPerSec)).padStart(6)}/s  http p99 ${ms(p.http?.p99).padStart(6)} ms  e2e p50 ${ms(p.e2e?.p50).padStart(6)} ms  e2e p99 ${ms(p.e2e?.p99).padStart(6)} ms  pg CPU ${pct(p.cpu.postgres)}`;
  return [
    `prune (cluster path (c) open loop at ${r.rate}/s${r.closedMaxPerSec === null ? "" : `, half of ${r.closedMaxPerSec}/s closed`}; ${r.rows.toLocaleString("en-US")} rows ${OLD_DAYS} days old)`,
    line("without pruning", r.baseline),
    line("while pruning", r.pruning),
    `  p99 ratio          ${r.p99Ratio ?? "-"}x (target <= ${TARGET_RATIO}x)`,
    `  prune              ${r.prune.rowsDeleted.toLocaleString("en-US")} rows in ${r.prune.seconds.toFixed(1)} s = ${Math.round(r.prune.rowsPerSec).toLocaleString("en-US")} rows/s with the CLI's start, ${Math.round(r.prune.passRowsPerSec ?? 0).toLocaleString("en-US")} rows/s in the pass (${Math.round(r.overlap * 100)}% of the phase)`,
    `  fill               ${r.fillSeconds.toFixed(1)} s (INSERT ... SELECT generate_series)`,
  ].join("\n");
}

/** `rows` rows OLD_DAYS old spread over the rooms (their counters set to match), vacuumed and analysed. */
async function fill(url: string, rooms: number[], rows: number): Promise<number> {
  const t0 = performance.now();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const perRoom = Math.max(1, Math.floor(rows / rooms.length));
    const extra = rows - perRoom * rooms.length;
    await client.query(
      `INSERT INTO chat_room (room_id, last_seq)
       SELECT r, $2::bigint + (CASE WHEN r <= $3 THEN 1 ELSE 0 END) FROM generate_series(1, $1::int) AS r`,
      [rooms.length, perRoom, extra],
    );
    await client.query(
      `INSERT INTO chat_message (room_id, seq, id, sender_id, nickname, user_type, text, created_at)
       SELECT r.room_id, s, gen_random_uuid(), 1000 + s % 64, 'old viewer', 'viewer', 'an old message number ' || s,
              now() - make_interval(days => ${OLD_DAYS}) + make_interval(secs => s::double precision / 1000)
       FROM chat_room r, generate_series(1, r.last_seq::int) AS s`,
    );
    await client.query("VACUUM ANALYZE chat_message");
    await client.query("VACUUM ANALYZE chat_room");
  } finally {
    await client.end();
  }
  return (performance.now() - t0) / 1000;
}

async function countOld(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM chat_message WHERE created_at < now() - interval '7 days'`,
    );
    return r.rows[0]?.n ?? 0;
  } finally {
    await client.end();
  }
}

/** One pass of `chatrelay log prune` (the operator CLI, its defaults) against the database; killed with the bench. */
async function runPrune(url: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = new ManagedProcess({
    name: "log-prune",
    command: process.execPath,
    args: [CLI, "log", "prune"],
    env: { DATABASE_URL: url, RETENTION_MAX_AGE_DAYS: "7", RETENTION_MAX_COUNT: "" },
  });
  await proc.exited();
  const out = proc.lines.join("\n");
  // Its summary is the one line that starts with "pruned"; progress lines say "pruned: ...".
  const summary = proc.lines.filter((l) => /^pruned \d/.test(l)).join("\n");
  return { code: proc.exitInfo?.code ?? null, stdout: summary, stderr: out };
}
