import { performance } from "node:perf_hooks";
import type { BenchConfig } from "../config.js";
import { Generator } from "../load/generator.js";
import { type LatencySummary, Phase, summarize, Tracker } from "../load/tracker.js";
import { startHelperProcess } from "../targets.js";
import { CpuMeter, type CpuReport, weightedCpu } from "../util/cpu.js";
import { withTimeout } from "../util/procs.js";
import { mintToken } from "../util/services.js";
import { Teardown } from "./deploy-kit.js";
import { DEFAULT_LIMITS_ONE_ADDRESS, DEFAULT_ROOM_LIMIT } from "./limit-env.js";
import { deployClusterPath } from "./load.js";

/** The spammer's user id and the one room it floods (a room that also gets normal chat). */
const SPAMMER_ID = 2_000_000;
const SPAM_ROOM = 1;

/** What the normal senders saw over every round of one kind of phase. */
export interface StreamSummary {
  issued: number;
  ok: number;
  failed: number;
  failures: Record<string, number>;
  okPerSec: number;
  http: LatencySummary | null;
  e2e: LatencySummary | null;
  /** Each round's end-to-end p99, ms. */
  roundE2eP99: number[];
  lost: number;
  duplicates: number;
  orderViolations: number;
  generatorDropped: number;
}

export interface FloodResult {
  rooms: number;
  normalSenders: number;
  /** Offered rate of all normal senders together, posts/s. */
  normalRate: number;
  spamRate: number;
  phaseSeconds: number;
  /** Seconds of the warm-up (normal senders and the spammer); 0: none. */
  warmupSeconds: number;
  rounds: number;
  /** The rate-limit settings of both nodes. */
  limits: Record<string, string>;
  /** The normal senders alone, and during the flood: the same deployment, phases alternated. */
  baseline: StreamSummary;
  flooded: StreamSummary;
  spam: {
    room: number;
    offered: number;
    ok: number;
    refused429: number;
    otherFailures: Record<string, number>;
    /** The spammer's messages that reached the room's presenter. */
    delivered: number;
    /** 2xx per flood phase, the warm-up's first if there was one (each phase shorter than the limit's window). */
    okPerPhase: number[];
    /** What GCRA allows in one flood phase: count + floor(seconds * count / window), seconds until its last answer. */
    allowedPerPhase: number;
    /** Seconds from the first flood phase's start to the last one's end. */
    spanSeconds: number;
    /** What GCRA allows over that span (the spammer recovers between flood phases). */
    allowedOverSpan: number;
  };
  /** Flooded over baseline p99 of the normal senders. */
  e2eP99Ratio: number | null;
  httpP99Ratio: number | null;
  cpu: { baseline: CpuReport; flooded: CpuReport };
  durability: { rows: number; acked: number; spamRows: number; ok: boolean } | null;
  problems: string[];
  warnings: string[];
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** The spammer's own count of one flood phase (it runs in a child process: src/servers/spammer.ts). */
interface SpamRound {
  n: number;
  issued: number;
  ok: number;
  failures: Record<string, number>;
  samples: string[];
  generatorDropped: number;
}

/** Texts of the spammer's posts start with this; the presenters' tracker counts them apart. */
const SPAM_TAG = "spam ";

/** Phases of one kind pooled: counts summed, latency samples merged. */
function pool(phases: Phase[]): StreamSummary {
  const http: number[] = [];
  const e2e: number[] = [];
  const failures: Record<string, number> = {};
  let seconds = 0;
  const sum = (pick: (p: Phase) => number) => phases.reduce((s, p) => s + pick(p), 0);
  for (const p of phases) {
    for (const x of p.httpLatMs) http.push(x);
    for (const x of p.e2eLatMs) e2e.push(x);
    for (const [k, v] of Object.entries(p.failures)) failures[k] = (failures[k] ?? 0) + v;
    seconds += p.seconds;
  }
  return {
    issued: sum((p) => p.issued),
    ok: sum((p) => p.ok),
    failed: sum((p) => p.failed),
    failures,
    okPerSec: round1(sum((p) => p.ok) / Math.max(1e-9, seconds)),
    http: summarize(http),
    e2e: summarize(e2e),
    roundE2eP99: phases.map((p) => summarize(p.e2eLatMs)?.p99 ?? 0),
    lost: sum((p) => p.lost),
    duplicates: sum((p) => p.duplicates),
    orderViolations: sum((p) => p.orderViolations),
    generatorDropped: sum((p) => p.generatorDropped),
  };
}

/** Each round's CPU report averaged (phases of one kind have the same length). */
function meanCpu(reports: CpuReport[]): CpuReport {
  return weightedCpu(reports.map((cpu) => ({ cpu, weight: 1 / reports.length })));
}

/** GCRA's most admissions within `seconds`: a burst of `count`, then `count` per window. */
function gcraAllows(seconds: number): number {
  return DEFAULT_ROOM_LIMIT.count + Math.floor((seconds * DEFAULT_ROOM_LIMIT.count) / DEFAULT_ROOM_LIMIT.windowS);
}

/**
 * The flood scenario: the cluster path (c) with the default rate limits; 63 normal senders post at an
 * open-loop rate below their limits; in alternate phases one more sender floods one room at 5,000
 * posts/s. Measured: the normal senders' latency with and without the flood (same deployment, same
 * minutes), the spammer's 2xx and 429 counts, and what of the spammer reached the room's presenter.
 */
export async function runFlood(config: BenchConfig): Promise<FloodResult> {
  const { spamRate, normalRatePerSender, phaseS, rounds } = config.flood;
  const normalSenders = Math.max(1, config.senders - 1);
  const normalRate = round1(normalSenders * normalRatePerSender);
  const rooms = Array.from({ length: config.rooms }, (_, i) => i + 1);
  const log = (s: string) => process.stderr.write(`  flood: ${s}\n`);
  const down = new Teardown();
  const tracker = new Tracker();
  const baseline: Phase[] = [];
  const flooded: Phase[] = [];
  const spam: SpamRound[] = [];
  let spamDelivered = 0;
  const cpuBaseline: CpuReport[] = [];
  const cpuFlooded: CpuReport[] = [];
  /** Every phase, the warm-up too: their 2xx are rows in the chat log. */
  const all: Phase[] = [];
  const problems: string[] = [];
  const warnings: string[] = [];
  let spanSeconds = 0;
  let longestFloodSeconds = 0;
  let durability: FloodResult["durability"] = null;
  let completed = false;

  const settle = async (phase: Phase) => {
    await withTimeout(phase.whenDelivered(), config.drainTimeoutMs, "deliveries").catch(() => {});
    tracker.settle(phase);
  };

  const ms = phaseS * 1000;
  try {
    const dep = await deployClusterPath("flood", config, down, DEFAULT_LIMITS_ONE_ADDRESS);
    const presenters = await dep.openPresenters?.(tracker, rooms);
    if (presenters) down.push(() => presenters.close());
    const normalTokens = await Promise.all(
      Array.from({ length: normalSenders }, (_, i) => mintToken(1_000_000 + i, `viewer-${i}`)),
    );
    const normal = new Generator(
      { baseUrls: dep.postBases, senderTokens: normalTokens, rooms, connections: normalSenders },
      tracker,
    );
    down.push(() => normal.close());
    // The spammer runs in a process of its own: its answers must not queue in the event loop that
    // times the normal senders. Its CPU is reported with the targets (it is not part of the server).
    tracker.tag(SPAM_TAG);
    const spammer = startHelperProcess(
      "flood-spammer",
      "spammer.ts",
      {
        SPAM_BASE_URL: dep.postBases[0] as string,
        SPAM_TOKEN: await mintToken(SPAMMER_ID, "spammer"),
        SPAM_ROOM: String(SPAM_ROOM),
      },
      config.profileDir,
    );
    down.push(() => spammer.stop(5000));
    await spammer.waitForLine((l) => l.includes('"spammer ready"'), 30_000, "the spammer to start");
    const meter = new CpuMeter([...dep.targets, { name: "flood-spammer (client)", proc: spammer, port: 0 }]);
    let spanStart: number | undefined;
    /** The normal senders into `normalPhase` and the spammer, together for `phaseMs`. */
    const floodPhase = async (normalPhase: Phase, n: number, phaseMs: number): Promise<SpamRound> => {
      const done = spammer.waitForLine(
        (l) => l.includes('"flood done"') && (JSON.parse(l) as SpamRound).n === n,
        phaseMs + 60_000,
        `flood phase ${n} to end`,
      );
      const start = performance.now();
      spanStart ??= start;
      spammer.child.stdin?.write(`flood ${spamRate} ${phaseMs} ${n}\n`);
      const [, round] = await Promise.all([normal.openLoop(normalPhase, normalRate, phaseMs), done]);
      const answer = JSON.parse(round) as SpamRound;
      // Until the last answer: every admission of the phase happened within this stretch.
      longestFloodSeconds = Math.max(longestFloodSeconds, (performance.now() - start) / 1000);
      spanSeconds = (performance.now() - spanStart) / 1000;
      spam.push(answer);
      const spamOk = spam.reduce((x, p) => x + p.ok, 0);
      await Promise.all([
        settle(normalPhase),
        withTimeout(tracker.whenTagged(SPAM_TAG, spamOk), config.drainTimeoutMs, "spam deliveries").catch(() => {}),
      ]);
      all.push(normalPhase);
      return answer;
    };

    if (!config.smoke && config.warmupS > 0) {
      // The refusal path is warmed up too: the first measured flood phase is not the JIT's.
      log(`warm-up ${config.warmupS}s, normal senders and the spammer`);
      await floodPhase(new Phase("flood-warmup", "warmup"), 0, config.warmupS * 1000);
    }
    for (let r = 1; r <= rounds; r++) {
      const b = new Phase(`flood-baseline-${r}`, "open");
      meter.start();
      await normal.openLoop(b, normalRate, ms);
      cpuBaseline.push(meter.stop());
      await settle(b);
      baseline.push(b);
      all.push(b);

      const f = new Phase(`flood-normal-${r}`, "open");
      meter.start();
      const s = await floodPhase(f, r, ms);
      cpuFlooded.push(meter.stop());
      flooded.push(f);
      const p = (x: Phase) => summarize(x.e2eLatMs)?.p99.toFixed(2) ?? "-";
      log(
        `round ${r}: normal ${normalRate}/s e2e p99 ${p(b)} ms alone, ${p(f)} ms with the flood; spammer ${s.ok} 2xx, ${s.failures["http 429"] ?? 0} 429 of ${s.issued}`,
      );
    }

    completed = true;
    spamDelivered = tracker.taggedCount(SPAM_TAG);
    if (tracker.foreignFrames > 0) problems.push(`${tracker.foreignFrames} frames no post of this run explains`);
    if (tracker.strayOrderViolations > 0) problems.push(`${tracker.strayOrderViolations} unknown frames out of order`);
    if (tracker.presenterErrors.length > 0) {
      problems.push(`presenter error frames: ${tracker.presenterErrors.slice(0, 5).join("; ")}`);
    }
    if (presenters && presenters.unexpectedCloses.length > 0) {
      problems.push(`presenter sockets closed: ${presenters.unexpectedCloses.slice(0, 5).join("; ")}`);
    }
    if (dep.db) {
      const [total] = await dep.db.query<{ n: number }>("SELECT count(*)::int AS n FROM chat_message");
      const [fromSpammer] = await dep.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM chat_message WHERE sender_id = ${SPAMMER_ID}`,
      );
      const acked = all.reduce((x, p) => x + p.ok, 0) + spam.reduce((x, p) => x + p.ok, 0);
      const rows = total?.n ?? 0;
      durability = { rows, acked, spamRows: fromSpammer?.n ?? 0, ok: rows >= acked };
    }
  } catch (err) {
    problems.push(`run failed: ${(err as Error).message}`);
  } finally {
    for (const e of await down.run()) problems.push(`teardown: ${e}`);
  }

  const base = pool(baseline);
  const flood = pool(flooded);
  const spamOk = spam.reduce((x, p) => x + p.ok, 0);
  const spamFailures: Record<string, number> = {};
  for (const p of spam) for (const [k, v] of Object.entries(p.failures)) spamFailures[k] = (spamFailures[k] ?? 0) + v;
  const refused429 = spamFailures["http 429"] ?? 0;
  delete spamFailures["http 429"];
  const result: FloodResult = {
    rooms: config.rooms,
    normalSenders,
    normalRate,
    spamRate,
    phaseSeconds: phaseS,
    warmupSeconds: !config.smoke && config.warmupS > 0 ? config.warmupS : 0,
    rounds,
    limits: DEFAULT_LIMITS_ONE_ADDRESS,
    baseline: base,
    flooded: flood,
    spam: {
      room: SPAM_ROOM,
      offered: spam.reduce((x, p) => x + p.issued + p.generatorDropped, 0),
      ok: spamOk,
      refused429,
      otherFailures: spamFailures,
      delivered: spamDelivered,
      okPerPhase: spam.map((p) => p.ok),
      allowedPerPhase: gcraAllows(longestFloodSeconds),
      spanSeconds: round1(spanSeconds),
      allowedOverSpan: gcraAllows(spanSeconds),
    },
    e2eP99Ratio: base.e2e && flood.e2e ? flood.e2e.p99 / Math.max(1e-9, base.e2e.p99) : null,
    httpP99Ratio: base.http && flood.http ? flood.http.p99 / Math.max(1e-9, base.http.p99) : null,
    cpu: { baseline: meanCpu(cpuBaseline), flooded: meanCpu(cpuFlooded) },
    durability,
    problems,
    warnings,
  };
  // A run that failed to deploy or to finish has no figures to judge.
  if (completed) problems.push(...floodProblems(result));
  for (const p of [...baseline, ...flooded]) {
    if (p.generatorDropped > 0) warnings.push(`${p.name}: the generator skipped ${p.generatorDropped} sends`);
  }
  for (const p of spam) {
    if (p.generatorDropped > 0) warnings.push(`flood ${p.n}: the spammer skipped ${p.generatorDropped} sends`);
  }
  return result;
}

/** The promises the flood must keep (the p99 ratio is a target, checked with the others). */
function floodProblems(r: FloodResult): string[] {
  const problems: string[] = [];
  for (const [what, s] of [
    ["no flood", r.baseline],
    ["flood", r.flooded],
  ] as const) {
    if (s.issued === 0) problems.push(`${what}: the normal senders posted nothing`);
    if (s.failed > 0) problems.push(`${what}: ${s.failed} normal posts failed (${JSON.stringify(s.failures)})`);
    if (s.lost > 0) problems.push(`${what}: ${s.lost} normal messages answered 2xx but never reached their presenter`);
    if (s.duplicates > 0 || s.orderViolations > 0) {
      problems.push(`${what}: ${s.duplicates} duplicate and ${s.orderViolations} out-of-order frames`);
    }
  }
  const { spam: sp } = r;
  if (sp.refused429 === 0) problems.push("the spammer was never refused (429)");
  if (Object.keys(sp.otherFailures).length > 0) {
    problems.push(`the spammer got answers other than 201 and 429: ${JSON.stringify(sp.otherFailures)}`);
  }
  const over = sp.okPerPhase.findIndex((n) => n > sp.allowedPerPhase);
  if (over !== -1) {
    problems.push(
      `flood phase ${over + 1}: ${sp.okPerPhase[over]} spam posts accepted, the limit allows ${sp.allowedPerPhase}`,
    );
  }
  if (sp.delivered > sp.allowedOverSpan) {
    problems.push(`the presenter received ${sp.delivered} spam messages, the limit allows ${sp.allowedOverSpan}`);
  }
  if (sp.delivered < sp.ok) problems.push(`${sp.ok - sp.delivered} accepted spam messages never reached the presenter`);
  if (r.durability && !r.durability.ok) {
    problems.push(`chat log holds ${r.durability.rows} rows for ${r.durability.acked} 2xx answers`);
  }
  if (r.durability && r.durability.spamRows > sp.allowedOverSpan) {
    problems.push(`chat log holds ${r.durability.spamRows} spam rows, the limit allows ${sp.allowedOverSpan}`);
  }
  return problems;
}
