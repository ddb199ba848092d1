import { join } from "node:path";
import { parseArgs } from "node:util";
import { REPO_DIR } from "./util/procs.js";

export const LOAD_SCENARIOS = [
  "a",
  "b",
  "c",
  "c-limits",
  "d",
  "spread2",
  "spread3",
  "spread3-nginx",
  "hot-room",
  "cluster-redis",
  "probe",
  "ceiling",
  "peer",
  "peer-naive-log",
] as const;
export const ALL_SCENARIOS = [...LOAD_SCENARIOS, "flood", "density", "logwriter", "export", "prune"] as const;
export type LoadScenarioId = (typeof LOAD_SCENARIOS)[number];
export type ScenarioId = (typeof ALL_SCENARIOS)[number];
/**
 * What runs without --only: all but (d), which is the same deployment as spread3-nginx
 * (three nodes behind the rendered deploy/nginx/nginx.conf, posts and presenters through it).
 */
export const DEFAULT_SCENARIOS: readonly ScenarioId[] = ALL_SCENARIOS.filter((s) => s !== "d");
/** Their open loop runs at the fixed rate the #11 latency target names, not at half their maximum. */
export const FIXED_RATE_SCENARIOS: readonly LoadScenarioId[] = ["spread2", "peer", "peer-naive-log"];

export interface BenchConfig {
  smoke: boolean;
  scenarios: ScenarioId[];
  rooms: number;
  senders: number;
  warmupS: number;
  /** Seconds of the open loop, and of all closed-loop rounds together. */
  durationS: number;
  /** Closed-loop rounds, interleaved with the compared scenario's. */
  rounds: number;
  /** Open-loop rate; default half the closed-loop maximum of the same scenario (smoke: smokeRate). */
  openRate: number | undefined;
  /** Open-loop rate of FIXED_RATE_SCENARIOS (unless openRate is set). */
  fixedRate: number;
  /** The sequential probe: posts after `warmupPosts` unmeasured ones. */
  probe: { warmupPosts: number; posts: number };
  smokeRate: number;
  drainTimeoutMs: number;
  density: { sockets: number; idleS: number; pingMs: number };
  /** maxBatch and batchesInFlight: undefined means the server's defaults. */
  logWriter: { durationS: number; concurrency: number; maxBatch?: number; batchesInFlight?: number };
  /**
   * The flood scenario: one spammer's open-loop rate against the default rate limits, the normal
   * senders' rate each (below the default 60 posts / 30 s per sender), seconds of each phase, rounds.
   */
  flood: { spamRate: number; normalRatePerSender: number; phaseS: number; rounds: number };
  profileDir: string | undefined;
  outDir: string;
}

const HELP = `chatrelay benchmarks

  pnpm bench [options]             full run (default: every scenario but d, which is spread3-nginx)
  pnpm --filter @chatrelay/bench smoke   every default scenario at a tiny rate, asserting no loss

options (environment variable in brackets):
  --smoke                  smoke mode
  --only a,b,...           scenarios: ${ALL_SCENARIOS.join(", ")}            [BENCH_ONLY]
  --duration S             open-loop seconds, and closed-loop seconds split over the rounds
                           (default 15; smoke 3)                             [BENCH_DURATION]
  --rounds N               closed-loop rounds, interleaved with the compared scenario (default 3) [BENCH_ROUNDS]
  --warmup S               closed-loop warm-up seconds (default 3)           [BENCH_WARMUP]
  --rooms N                rooms, one presenter each (default 100; smoke 10) [BENCH_ROOMS]
  --senders N              closed-loop concurrent senders (default 64)       [BENCH_SENDERS]
  --rate N                 open-loop rate, msgs/s (default: half the max)    [BENCH_RATE]
  --fixed-rate N           open-loop rate of ${FIXED_RATE_SCENARIOS.join(", ")} (default 2000) [BENCH_FIXED_RATE]
  --probe-posts N          probe: sequential posts measured, after N/10 (at least 20) unmeasured
                           (default 2000; smoke 100)                         [BENCH_PROBE_POSTS]
  --sockets N              idle presenter sockets for density (default 10000) [BENCH_SOCKETS]
  --idle S                 density idle window seconds (default 20)          [BENCH_IDLE]
  --ping-ms MS             density: server WebSocket ping interval (default 10000) [BENCH_PING_MS]
  --log-seconds S          log writer seconds (default 10)                   [BENCH_LOG_SECONDS]
  --log-concurrency N      log writer concurrent appends (default 4000)      [BENCH_LOG_CONCURRENCY]
  --log-batch N            log writer LOG_BATCH_MAX (default: the server's)  [BENCH_LOG_BATCH]
  --log-in-flight N        log writer LOG_BATCHES_IN_FLIGHT (default: the server's) [BENCH_LOG_IN_FLIGHT]
  --flood-rate N           flood: the spammer's posts/s (default 5000; smoke 200) [BENCH_FLOOD_RATE]
  --flood-seconds S        flood: seconds of each no-flood and flood phase (default 10; smoke 2) [BENCH_FLOOD_SECONDS]
  --profile                CPU-profile every server process (node --cpu-prof) and summarise
  --out DIR                results folder (default <repo>/bench-results)    [BENCH_OUT]

PostgreSQL: BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test)
Redis:      BENCH_REDIS_URL (default redis://127.0.0.1:6379)`;

export function loadConfig(argv: string[]): BenchConfig {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      smoke: { type: "boolean", default: false },
      only: { type: "string" },
      duration: { type: "string" },
      rounds: { type: "string" },
      warmup: { type: "string" },
      rooms: { type: "string" },
      senders: { type: "string" },
      rate: { type: "string" },
      "fixed-rate": { type: "string" },
      "probe-posts": { type: "string" },
      sockets: { type: "string" },
      idle: { type: "string" },
      "ping-ms": { type: "string" },
      "log-seconds": { type: "string" },
      "log-concurrency": { type: "string" },
      "log-batch": { type: "string" },
      "log-in-flight": { type: "string" },
      "flood-rate": { type: "string" },
      "flood-seconds": { type: "string" },
      profile: { type: "boolean", default: false },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  const env = process.env;
  const num = (flag: string | undefined, envName: string, def: number, min = 0): number => {
    const raw = flag ?? env[envName];
    if (raw === undefined || raw === "") return def;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min)
      throw new Error(`${envName} / --option: ${JSON.stringify(raw)} is not a number >= ${min}`);
    return n;
  };
  const optionalNum = (flag: string | undefined, envName: string): number | undefined =>
    (flag ?? env[envName]) === undefined || (flag ?? env[envName]) === "" ? undefined : num(flag, envName, 1, 1);
  const smoke = values.smoke === true || env.BENCH_SMOKE === "1";
  const onlyRaw = values.only ?? env.BENCH_ONLY;
  let scenarios: ScenarioId[] = [...DEFAULT_SCENARIOS];
  if (onlyRaw) {
    const wanted = onlyRaw.split(",").map((s) => s.trim().toLowerCase());
    for (const w of wanted) {
      if (!(ALL_SCENARIOS as readonly string[]).includes(w)) {
        throw new Error(`unknown scenario ${JSON.stringify(w)}; expected some of ${ALL_SCENARIOS.join(", ")}`);
      }
    }
    scenarios = ALL_SCENARIOS.filter((s) => wanted.includes(s));
  }
  const outDir = values.out ?? env.BENCH_OUT ?? join(REPO_DIR, "bench-results");
  const rateRaw = values.rate ?? env.BENCH_RATE;
  return {
    smoke,
    scenarios,
    rooms: num(values.rooms, "BENCH_ROOMS", smoke ? 10 : 100, 1),
    senders: num(values.senders, "BENCH_SENDERS", smoke ? 8 : 64, 1),
    warmupS: num(values.warmup, "BENCH_WARMUP", smoke ? 0 : 3),
    durationS: num(values.duration, "BENCH_DURATION", smoke ? 3 : 15, 0.5),
    rounds: Math.max(1, Math.round(num(values.rounds, "BENCH_ROUNDS", 3, 1))),
    openRate: rateRaw === undefined ? undefined : num(rateRaw, "BENCH_RATE", 0, 1),
    fixedRate: num(values["fixed-rate"], "BENCH_FIXED_RATE", 2000, 1),
    probe: probeCounts(Math.round(num(values["probe-posts"], "BENCH_PROBE_POSTS", smoke ? 100 : 2000, 1))),
    smokeRate: 100,
    drainTimeoutMs: 10_000,
    density: {
      sockets: num(values.sockets, "BENCH_SOCKETS", smoke ? 200 : 10_000, 1),
      idleS: num(values.idle, "BENCH_IDLE", smoke ? 2.5 : 20, 0.5),
      pingMs: num(values["ping-ms"], "BENCH_PING_MS", smoke ? 1000 : 10_000, 100),
    },
    logWriter: {
      durationS: num(values["log-seconds"], "BENCH_LOG_SECONDS", smoke ? 1 : 10, 0.5),
      concurrency: num(values["log-concurrency"], "BENCH_LOG_CONCURRENCY", smoke ? 256 : 4000, 1),
      maxBatch: optionalNum(values["log-batch"], "BENCH_LOG_BATCH"),
      batchesInFlight: optionalNum(values["log-in-flight"], "BENCH_LOG_IN_FLIGHT"),
    },
    flood: {
      spamRate: num(values["flood-rate"], "BENCH_FLOOD_RATE", smoke ? 200 : 5000, 1),
      // 1.5/s each stays below RATE_LIMIT_SENDER's default 60/30s (2/s): a normal sender is never refused.
      normalRatePerSender: 1.5,
      phaseS: num(values["flood-seconds"], "BENCH_FLOOD_SECONDS", smoke ? 2 : 10, 0.5),
      rounds: smoke ? 1 : Math.max(1, Math.round(num(values.rounds, "BENCH_ROUNDS", 3, 1))),
    },
    profileDir: values.profile ? join(outDir, "profiles") : undefined,
    outDir,
  };
}

function probeCounts(posts: number): BenchConfig["probe"] {
  return { warmupPosts: Math.max(20, Math.round(posts / 10)), posts };
}
