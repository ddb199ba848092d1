import { type BenchConfig, FIXED_RATE_SCENARIOS, type LoadScenarioId } from "../config.js";
import { Generator } from "../load/generator.js";
import type { PresenterGroup } from "../load/presenters.js";
import { type LatencySummary, Phase, type PhaseMode, summarize, Tracker } from "../load/tracker.js";
import { pgliteDataDir, startHelperServer } from "../targets.js";
import { CpuMeter, type CpuReport, weightedCpu } from "../util/cpu.js";
import { diffNodes, type NodePhaseMetrics, snapshotNodes } from "../util/node-metrics.js";
import { withTimeout } from "../util/procs.js";
import { mintToken } from "../util/services.js";
import { type Deployment, pgAndRedis, presenterToken, relayPresenters, startNode, Teardown } from "./deploy-kit.js";
import { blockTerms, checkTermsBlock, LIMITS_NEVER_REACHED } from "./limit-env.js";
import { deploySocketIoPeer } from "./peers.js";
import { busProblems, deployRedisClusterSpread } from "./redis-cluster.js";
import { deployHotRoom, deploySpread, deploySpreadNginx } from "./spread.js";

export const LOAD_TITLES: Record<LoadScenarioId, string> = {
  a: "(a) 1 node, embedded PGlite + in-process bus",
  b: "(b) 1 node, PostgreSQL + Redis",
  c: "(c) cluster path: post to A, presenter on B",
  "c-limits": "(c) with every rate limit on, never reached",
  d: "(d) 3 nodes behind nginx",
  spread2: "spread2: 2 nodes, posts and presenters spread",
  spread3: "spread3: 3 nodes, posts and presenters spread",
  "spread3-nginx": "spread3-nginx: 3 nodes behind nginx",
  "hot-room": "hot-room: 1 room, posts spread over 3 nodes",
  "cluster-redis": "(e) cluster-redis: spread3 on a 3+3 Redis Cluster",
  probe: "probe: 1 sequential sender, 1 node, PG + Redis",
  ceiling: "HTTP ceiling: bare fastify route",
  peer: "peer: Socket.IO 4 + Redis adapter",
  "peer-naive-log": "peer-naive-log: peer + 1 awaited INSERT per message",
};

/**
 * CPU per delivered message (per 2xx where nothing is delivered), from the phase's start until its
 * last delivery: every process counted. `systemUs` is the servers (nginx with its workers),
 * PostgreSQL and Redis; the generator (this process, with the presenters' client side) apart.
 */
export interface CpuPerMessage {
  messages: number;
  systemUs: number;
  generatorUs: number;
  /** Each process: servers by name, then "postgres" and "redis". */
  processUs: Record<string, number>;
}

export interface PhaseResult {
  phase: PhaseMode;
  seconds: number;
  concurrency: number | null;
  offeredRate: number | null;
  issued: number;
  ok: number;
  failed: number;
  failures: Record<string, number>;
  failureSamples: string[];
  okPerSec: number;
  deliveredPerSec: number | null;
  http: LatencySummary | null;
  e2e: LatencySummary | null;
  lost: number;
  duplicates: number;
  orderViolations: number;
  deliveredWithoutAck: number;
  generatorDropped: number;
  /** Closed loop: each round's 2xx/s (okPerSec is their median). */
  rounds?: number[];
  cpu: CpuReport;
  cpuPerMessage: CpuPerMessage | null;
  /** Each chatrelay node's own view of the phase (group commit, bus publish). */
  nodes: Record<string, NodePhaseMetrics>;
  /**
   * Bus payloads all nodes received on their room subscriptions, per message delivered to a
   * presenter (1: each message reached only the node holding its room); null when not exported.
   */
  busPerDelivered: number | null;
}

export interface LoadScenarioResult {
  id: LoadScenarioId;
  title: string;
  delivers: boolean;
  phases: PhaseResult[];
  /** Rows in the chat log after the run vs 2xx answers (PostgreSQL scenarios). */
  durability: { rows: number; acked: number; ok: boolean } | null;
  foreignFrames: number;
  strayOrderViolations: number;
  presenterErrors: string[];
  unexpectedCloses: string[];
  /** Empty when the run kept every promise: no loss, no duplicate, order kept, every post answered 2xx. */
  problems: string[];
  /** Facts that make a figure less meaningful without breaking a promise (a saturated generator). */
  warnings: string[];
  /** How the scenario was set up where it varies (which nginx config). */
  notes: string[];
  profiles: string[];
}

/** The cluster path (c): posts to node A, presenter sockets on node B, PostgreSQL + Redis; `env` for both nodes. */
export async function deployClusterPath(
  label: string,
  config: BenchConfig,
  down: Teardown,
  env: Record<string, string> = {},
): Promise<Deployment> {
  const services = await pgAndRedis(label, down);
  const both = { ...services.env, ...env };
  const [nodeA, nodeB] = await Promise.all([
    startNode(`${label}-node-A-posts`, both, config, down),
    startNode(`${label}-node-B-presenters`, both, config, down),
  ]);
  return {
    postBases: [`http://127.0.0.1:${nodeA.port}`],
    targets: [nodeA, nodeB],
    delivers: true,
    openPresenters: relayPresenters(nodeB.port),
    db: services.db,
  };
}

async function deploy(id: LoadScenarioId, config: BenchConfig, down: Teardown): Promise<Deployment> {
  const node = (name: string, env: Record<string, string> = {}) => startNode(name, env, config, down);

  switch (id) {
    case "a": {
      const pglite = pgliteDataDir();
      down.push(pglite.remove);
      const a = await node("a-node", { PGLITE_DATA_DIR: pglite.dir });
      return {
        postBases: [`http://127.0.0.1:${a.port}`],
        targets: [a],
        delivers: true,
        openPresenters: relayPresenters(a.port),
      };
    }
    case "b":
    case "probe": {
      // The probe is (b)'s deployment: one node, its presenters on it.
      const { db, env } = await pgAndRedis(id, down);
      const b = await node(`${id}-node`, env);
      return {
        postBases: [`http://127.0.0.1:${b.port}`],
        targets: [b],
        delivers: true,
        openPresenters: relayPresenters(b.port),
        db,
      };
    }
    case "c":
      return deployClusterPath("c", config, down);
    case "c-limits": {
      const dep = await deployClusterPath("c-limits", config, down, LIMITS_NEVER_REACHED);
      const base = dep.postBases[0] as string;
      return {
        ...dep,
        prepareRooms: (rooms) => blockTerms(base, rooms, presenterToken),
        checkRooms: (rooms) => checkTermsBlock(base, rooms),
      };
    }
    case "d":
    case "spread3-nginx":
      return deploySpreadNginx(id, 3, config, down);
    case "spread2":
      return deploySpread(id, 2, config, down);
    case "spread3":
      return deploySpread(id, 3, config, down);
    case "hot-room":
      return deployHotRoom(id, 3, config, down);
    case "cluster-redis":
      return deployRedisClusterSpread(id, 3, config, down);
    case "ceiling": {
      const c = await startHelperServer("ceiling", "ceiling.ts", {}, config.profileDir);
      down.push(() => c.proc.stop(5000));
      return { postBases: [`http://127.0.0.1:${c.port}`], targets: [c], delivers: false };
    }
    case "peer":
      return deploySocketIoPeer("peer", config, down, false);
    case "peer-naive-log":
      return deploySocketIoPeer("peer-naive-log", config, down, true);
  }
}

type CpuSeconds = ReturnType<CpuMeter["secondsSinceStart"]>;

/** Messages a phase moved: delivered to a presenter, or answered 2xx where nothing is delivered. */
const movedMessages = (phase: Phase, delivers: boolean) => (delivers ? phase.received : phase.ok);

function perMessage(used: CpuSeconds, messages: number): CpuPerMessage | null {
  if (messages === 0) return null;
  const us = (seconds: number) => Math.round((seconds * 1e6) / messages);
  const processUs: Record<string, number> = {};
  for (const [name, s] of Object.entries(used.targets)) processUs[name] = us(s);
  processUs.postgres = us(used.postgres);
  processUs.redis = us(used.redis);
  const system = Object.values(used.targets).reduce((a, b) => a + b, 0) + used.postgres + used.redis;
  return { messages, systemUs: us(system), generatorUs: us(used.generator), processUs };
}

function addCpuSeconds(a: CpuSeconds, b: CpuSeconds): CpuSeconds {
  const targets = { ...a.targets };
  for (const [name, s] of Object.entries(b.targets)) targets[name] = (targets[name] ?? 0) + s;
  return {
    generator: a.generator + b.generator,
    targets,
    postgres: a.postgres + b.postgres,
    redis: a.redis + b.redis,
  };
}

function busPerDelivered(nodes: Record<string, NodePhaseMetrics>, delivered: number): number | null {
  const counts = Object.values(nodes).map((m) => m.busReceived);
  if (delivered === 0 || counts.length === 0 || counts.some((c) => c === null)) return null;
  return Math.round((counts.reduce((s: number, c) => s + (c ?? 0), 0) / delivered) * 1000) / 1000;
}

function toResult(
  phase: Phase,
  delivers: boolean,
  cpu: CpuReport,
  nodes: Record<string, NodePhaseMetrics>,
  cpuSeconds: CpuSeconds | null,
): PhaseResult {
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    phase: phase.mode,
    seconds: r(phase.seconds),
    concurrency: phase.concurrency ?? null,
    offeredRate: phase.offeredRate ?? null,
    issued: phase.issued,
    ok: phase.ok,
    failed: phase.failed,
    failures: phase.failures,
    failureSamples: phase.failureSamples,
    okPerSec: r(phase.ok / phase.seconds),
    deliveredPerSec: delivers ? r(phase.received / phase.seconds) : null,
    http: summarize(phase.httpLatMs),
    e2e: delivers ? summarize(phase.e2eLatMs) : null,
    lost: phase.lost,
    duplicates: phase.duplicates,
    orderViolations: phase.orderViolations,
    deliveredWithoutAck: phase.deliveredWithoutAck,
    generatorDropped: phase.generatorDropped,
    cpu,
    cpuPerMessage: cpuSeconds ? perMessage(cpuSeconds, movedMessages(phase, delivers)) : null,
    nodes,
    busPerDelivered: busPerDelivered(nodes, delivers ? phase.received : 0),
  };
}

const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
};

interface MeasuredPhase {
  phase: Phase;
  cpuSeconds: CpuSeconds;
  result: PhaseResult;
}

/** Several closed-loop rounds as one phase: counts and samples pooled, throughput the median round. */
function mergeRounds(rounds: MeasuredPhase[], delivers: boolean): PhaseResult {
  const merged = new Phase("closed", "closed");
  let seconds = 0;
  for (const { phase } of rounds) {
    seconds += phase.seconds;
    merged.issued += phase.issued;
    merged.ok += phase.ok;
    merged.failed += phase.failed;
    for (const [k, v] of Object.entries(phase.failures)) merged.failures[k] = (merged.failures[k] ?? 0) + v;
    merged.failureSamples.push(...phase.failureSamples.slice(0, 5 - merged.failureSamples.length));
    merged.received += phase.received;
    merged.duplicates += phase.duplicates;
    merged.orderViolations += phase.orderViolations;
    merged.deliveredWithoutAck += phase.deliveredWithoutAck;
    merged.lost += phase.lost;
    merged.generatorDropped += phase.generatorDropped;
    for (const x of phase.httpLatMs) merged.httpLatMs.push(x);
    for (const x of phase.e2eLatMs) merged.e2eLatMs.push(x);
  }
  merged.concurrency = rounds[0]?.phase.concurrency;
  merged.startedAt = 0;
  merged.endedAt = seconds * 1000;
  const weight = (r: PhaseResult) => r.seconds / Math.max(1e-9, seconds);
  const cpu = weightedCpu(rounds.map(({ result }) => ({ cpu: result.cpu, weight: weight(result) })));
  const nodes: Record<string, NodePhaseMetrics> = {};
  for (const name of Object.keys(rounds[0]?.result.nodes ?? {})) {
    const all = rounds.map((r) => r.result.nodes[name]).filter((m): m is NodePhaseMetrics => m !== undefined);
    const batches = all.reduce((s, m) => s + m.batches, 0);
    const publishes = all.reduce((s, m) => s + m.publishes, 0);
    const wmean = (pick: (m: NodePhaseMetrics) => number | null, by: (m: NodePhaseMetrics) => number, total: number) =>
      total === 0 ? null : Math.round((all.reduce((s, m) => s + (pick(m) ?? 0) * by(m), 0) / total) * 1000) / 1000;
    nodes[name] = {
      batches,
      meanBatchRows: wmean(
        (m) => m.meanBatchRows,
        (m) => m.batches,
        batches,
      ),
      meanCommitMs: wmean(
        (m) => m.meanCommitMs,
        (m) => m.batches,
        batches,
      ),
      publishes,
      meanPublishMs: wmean(
        (m) => m.meanPublishMs,
        (m) => m.publishes,
        publishes,
      ),
      framesRelayed: all.reduce((s, m) => s + m.framesRelayed, 0),
      busReceived: all.some((m) => m.busReceived === null) ? null : all.reduce((s, m) => s + (m.busReceived ?? 0), 0),
    };
  }
  const used = rounds.map((r) => r.cpuSeconds).reduce(addCpuSeconds);
  const result = toResult(merged, delivers, cpu, nodes, used);
  const perRound = rounds.map((r) => r.result.okPerSec);
  result.okPerSec = Math.round(median(perRound) * 10) / 10;
  if (delivers) result.deliveredPerSec = Math.round(median(rounds.map((r) => r.result.deliveredPerSec ?? 0)) * 10) / 10;
  result.rounds = perRound;
  return result;
}

/**
 * One deployed load scenario: its processes, presenters and generator stay up
 * while the orchestrator runs its phases, possibly interleaved with another
 * scenario's (so both see the same machine over the same minutes).
 */
class LoadRun {
  readonly result: LoadScenarioResult;
  private readonly down = new Teardown();
  private readonly tracker = new Tracker();
  private rooms: number[];
  private presenters: PresenterGroup | undefined;
  private dep: Deployment | undefined;
  private gen: Generator | undefined;
  private meter: CpuMeter | undefined;
  private readonly closedRounds: MeasuredPhase[] = [];

  constructor(
    readonly id: LoadScenarioId,
    private readonly config: BenchConfig,
  ) {
    this.rooms = Array.from({ length: config.rooms }, (_, i) => i + 1);
    this.result = {
      id,
      title: LOAD_TITLES[id],
      delivers: id !== "ceiling",
      phases: [],
      durability: null,
      foreignFrames: 0,
      strayOrderViolations: 0,
      presenterErrors: [],
      unexpectedCloses: [],
      problems: [],
      warnings: [],
      notes: [],
      profiles: [],
    };
  }

  get failed(): boolean {
    return this.result.problems.length > 0;
  }

  log(s: string): void {
    process.stderr.write(`  ${this.id}: ${s}\n`);
  }

  /** Deploys, connects the presenters and the generator; a failure is recorded, not thrown. */
  async prepare(): Promise<void> {
    try {
      const dep = await deploy(this.id, this.config, this.down);
      this.dep = dep;
      if (dep.rooms) this.rooms = dep.rooms;
      for (const t of dep.targets) {
        if (t.note === undefined) continue;
        this.result.notes.push(`${t.name}: ${t.note}`);
        this.log(`${t.name}: ${t.note}`);
      }
      if (dep.prepareRooms) {
        const note = await dep.prepareRooms(this.rooms);
        this.result.notes.push(note);
        this.log(note);
      }
      if (dep.openPresenters) {
        const group = await dep.openPresenters(this.tracker, this.rooms);
        this.presenters = group;
        this.down.push(() => group.close());
      }
      await dep.checkRooms?.(this.rooms);
      const senderTokens = await Promise.all(
        Array.from({ length: this.config.senders }, (_, i) => mintToken(1_000_000 + i, `viewer-${i}`)),
      );
      const gen = new Generator(
        { baseUrls: dep.postBases, senderTokens, rooms: this.rooms, connections: Math.max(this.config.senders, 64) },
        this.tracker,
      );
      this.gen = gen;
      this.down.push(() => gen.close());
      this.meter = new CpuMeter(dep.targets);
    } catch (err) {
      this.result.problems.push(`run failed: ${(err as Error).message}`);
    }
  }

  private async phase(mode: PhaseMode, run: (gen: Generator, phase: Phase) => Promise<void>) {
    const { dep, gen, meter } = this;
    if (!dep || !gen || !meter || this.failed) return undefined;
    try {
      const phase = new Phase(`${this.id}-${mode}`, mode);
      const before = await snapshotNodes(dep.targets);
      meter.start();
      await run(gen, phase);
      const cpu = meter.stop();
      if (dep.delivers) {
        await withTimeout(phase.whenDelivered(), this.config.drainTimeoutMs, "deliveries").catch(() => {});
        this.tracker.settle(phase);
      }
      // Per message: up to the last delivery, so the CPU that delivered the phase's tail counts too.
      const cpuSeconds = meter.secondsSinceStart();
      const nodes = diffNodes(before, await snapshotNodes(dep.targets));
      return { phase, cpuSeconds, result: toResult(phase, dep.delivers, cpu, nodes, cpuSeconds) };
    } catch (err) {
      this.result.problems.push(`${mode} phase failed: ${(err as Error).message}`);
      return undefined;
    }
  }

  async warmup(seconds: number): Promise<void> {
    this.log(`warm-up ${seconds}s`);
    const r = await this.phase("warmup", (gen, p) => gen.closedLoop(p, this.config.senders, seconds * 1000));
    if (r) this.result.phases.push(r.result);
  }

  async closedRound(seconds: number, round: number): Promise<void> {
    const r = await this.phase("closed", (gen, p) => gen.closedLoop(p, this.config.senders, seconds * 1000));
    if (!r) return;
    this.closedRounds.push(r);
    this.log(
      `closed loop round ${round}, ${this.config.senders} senders, ${seconds}s: ${Math.round(r.result.okPerSec)} msgs/s`,
    );
  }

  /** The closed rounds as one phase; its median round rate. */
  endClosed(): number | undefined {
    if (this.closedRounds.length === 0) return undefined;
    const merged = mergeRounds(this.closedRounds, this.result.delivers);
    this.result.phases.push(merged);
    return merged.okPerSec;
  }

  async open(rate: number, seconds: number): Promise<void> {
    this.log(`open loop at ${rate} msgs/s, ${seconds}s`);
    const r = await this.phase("open", (gen, p) => gen.openLoop(p, rate, seconds * 1000));
    if (r) this.result.phases.push(r.result);
  }

  /** One sender, `posts` posts one after the other (the probe); `warmup` phases are left out of the tables. */
  async sequential(mode: "warmup" | "sequential", posts: number): Promise<void> {
    this.log(`${mode === "warmup" ? "warm-up: " : ""}${posts} sequential posts`);
    const r = await this.phase(mode, (gen, p) => gen.sequential(p, posts));
    if (r) this.result.phases.push(r.result);
  }

  /** Durability check, teardown, and the verdict. */
  async finish(): Promise<LoadScenarioResult> {
    const result = this.result;
    try {
      if (this.dep?.db && !this.failed) {
        const rows = await this.dep.db.query<{ n: number }>("SELECT count(*)::int AS n FROM chat_message");
        const acked = result.phases.reduce((s, p) => s + p.ok, 0);
        const n = rows[0]?.n ?? 0;
        result.durability = { rows: n, acked, ok: n >= acked };
      }
    } catch (err) {
      result.problems.push(`durability check failed: ${(err as Error).message}`);
    } finally {
      result.foreignFrames = this.tracker.foreignFrames;
      result.strayOrderViolations = this.tracker.strayOrderViolations;
      result.presenterErrors = this.tracker.presenterErrors.slice(0, 20);
      result.unexpectedCloses = this.presenters?.unexpectedCloses.slice(0, 20) ?? [];
      for (const e of await this.down.run()) result.problems.push(`teardown: ${e}`);
    }
    result.problems.push(...integrityProblems(result));
    for (const p of result.phases) {
      if (p.phase !== "warmup" && p.cpu.generator >= 85) {
        result.warnings.push(
          `${p.phase}: the generator used ${p.cpu.generator}% of a core: it is near saturation, so the target may be faster than measured`,
        );
      }
      if (p.generatorDropped === 0) continue;
      const what = `${p.phase}: the generator skipped ${p.generatorDropped} of ${p.issued + p.generatorDropped} sends (4096 in flight): the offered rate was not delivered, so this phase measures the generator/machine, not the target`;
      // A tiny smoke rate must never get there; at full load it is a finding about the run, not a broken promise.
      if (this.config.smoke) result.problems.push(what);
      else result.warnings.push(what);
    }
    return result;
  }
}

/**
 * Runs load scenarios side by side: all deployed at once, the closed-loop
 * rounds interleaved (a, ceiling, a, ceiling, ...) so that a pair compared by
 * a target sees the same machine, then each one's open loop at half its own
 * median closed-loop rate (FIXED_RATE_SCENARIOS: at the fixed rate). Smoke:
 * one open loop at a tiny rate each. The probe runs sequential posts instead
 * (smoke too: its count is small there).
 */
export async function runLoadGroup(ids: LoadScenarioId[], config: BenchConfig): Promise<LoadScenarioResult[]> {
  const all = ids.map((id) => new LoadRun(id, config));
  const probes = all.filter((r) => r.id === "probe");
  const runs = all.filter((r) => r.id !== "probe");
  try {
    for (const run of all) await run.prepare();
    for (const probe of probes) {
      await probe.sequential("warmup", config.probe.warmupPosts);
      await probe.sequential("sequential", config.probe.posts);
    }
    if (config.smoke) {
      for (const run of runs) await run.open(config.openRate ?? config.smokeRate, config.durationS);
    } else {
      if (config.warmupS > 0) for (const run of runs) await run.warmup(config.warmupS);
      const roundSeconds = config.durationS / config.rounds;
      for (let round = 1; round <= config.rounds; round++) {
        for (const run of runs) await run.closedRound(roundSeconds, round);
      }
      for (const run of runs) {
        const max = run.endClosed();
        if (max === undefined) continue;
        const fixed = FIXED_RATE_SCENARIOS.includes(run.id) ? config.fixedRate : undefined;
        if (config.openRate === undefined && fixed !== undefined && fixed > max) {
          run.result.warnings.push(
            `open: the fixed ${fixed} msgs/s is above this run's closed-loop maximum (${Math.round(max)}): the open loop measures overload, its latency is queueing`,
          );
        }
        await run.open(config.openRate ?? fixed ?? Math.max(1, Math.round(max / 2)), config.durationS);
      }
    }
  } finally {
    for (const run of all) await run.finish();
  }
  return all.map((r) => r.result);
}

function integrityProblems(r: LoadScenarioResult): string[] {
  const problems: string[] = [];
  for (const p of r.phases) {
    const tag = `${p.phase}:`;
    if (p.issued === 0) problems.push(`${tag} no message was posted`);
    if (p.failed > 0) problems.push(`${tag} ${p.failed} posts failed (${JSON.stringify(p.failures)})`);
    if (p.lost > 0) problems.push(`${tag} ${p.lost} messages answered 2xx but never reached their presenter`);
    if (p.duplicates > 0) problems.push(`${tag} ${p.duplicates} duplicate frames`);
    if (p.orderViolations > 0) problems.push(`${tag} ${p.orderViolations} frames out of seq order`);
  }
  if (r.durability && !r.durability.ok) {
    problems.push(`chat log holds ${r.durability.rows} rows for ${r.durability.acked} 2xx answers`);
  }
  if (r.id === "cluster-redis") problems.push(...busProblems(r));
  if (r.foreignFrames > 0) problems.push(`${r.foreignFrames} frames no post of this run explains`);
  if (r.strayOrderViolations > 0) problems.push(`${r.strayOrderViolations} unknown frames out of order`);
  if (r.presenterErrors.length > 0) problems.push(`presenter error frames: ${r.presenterErrors.join("; ")}`);
  if (r.unexpectedCloses.length > 0) problems.push(`presenter sockets closed: ${r.unexpectedCloses.join("; ")}`);
  return problems;
}
