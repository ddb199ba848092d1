/**
 * Scenario (e), issue #14: the spread3 deployment (three nodes, posts spread over them, presenters
 * on all of them) on a 3-master, 3-replica Redis Cluster (sharded pub/sub), paired with spread3 on
 * one Redis in the same run. Besides msgs/s and p99 it reports the bus payloads all nodes received
 * per delivered message (`chatrelay_bus_received_total` on each node's ops /metrics): 1 means a
 * message reached only the node that holds its room's presenter, never every node.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { BenchConfig } from "../config.js";
import type { TargetCheck } from "../report.js";
import { onCleanup, REPO_DIR } from "../util/procs.js";
import { createDatabase } from "../util/services.js";
import { type Deployment, spreadPresenters, startNode, type Teardown } from "./deploy-kit.js";
import type { LoadScenarioResult, PhaseResult } from "./load.js";

/** The test suite's cluster harness: the bench uses the same one the cluster tests run on. */
const HARNESS = join(REPO_DIR, "apps", "server", "test", "helpers", "redis-cluster.ts");

/** What the bench uses of the harness' RedisClusterProcesses. */
interface RedisCluster {
  /** "127.0.0.1:p1,127.0.0.1:p2,..." for REDIS_CLUSTER_NODES. */
  readonly spec: string;
  readonly nodes: readonly { port: number }[];
  stop(): Promise<void>;
}

/**
 * Imported at run time, by a path the compiler does not follow: the harness is a test helper of
 * apps/server (outside this package's rootDir, written against that package's dependencies);
 * tsx loads it from source like the rest of the bench.
 */
async function startRedisCluster(): Promise<RedisCluster> {
  const mod = (await import(pathToFileURL(HARNESS).href)) as {
    RedisClusterProcesses: { start(options?: { masters?: number; replicasPerMaster?: number }): Promise<RedisCluster> };
  };
  return mod.RedisClusterProcesses.start({ masters: 3, replicasPerMaster: 1 });
}

/**
 * Pids of the cluster's redis-servers (their process title names the port): killed synchronously
 * if the bench exits without its teardown (a crash); SIGINT runs the teardown's stop() instead.
 */
function redisServerPids(ports: number[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== "redis-server") continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ");
      if (ports.some((p) => new RegExp(`:${p}(?!\\d)`).test(title))) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/** A Redis Cluster stopped by the teardown (and on SIGINT, and killed on any exit). */
async function clusterFor(down: Teardown): Promise<RedisCluster> {
  const cluster = await startRedisCluster();
  const pids = redisServerPids(cluster.nodes.map((n) => n.port));
  const killOnExit = () => {
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  };
  process.on("exit", killOnExit);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    unregister();
    process.off("exit", killOnExit);
    await cluster.stop();
  };
  const unregister = onCleanup(stop);
  down.push(stop);
  return cluster;
}

/** spread3 on a fresh Redis Cluster: `count` nodes with REDIS_CLUSTER_NODES, posts and presenters spread over them. */
export async function deployRedisClusterSpread(
  label: string,
  count: number,
  config: BenchConfig,
  down: Teardown,
): Promise<Deployment> {
  const [cluster, db] = await Promise.all([clusterFor(down), createDatabase(label)]);
  down.push(() => db.drop());
  // A cluster of its own, dropped after the run: its keys need no clean-up.
  const env = {
    DATABASE_URL: db.url,
    REDIS_CLUSTER_NODES: cluster.spec,
    REDIS_KEY_PREFIX: `chatrelay-bench:${label}:`,
  };
  const nodes = await Promise.all(
    Array.from({ length: count }, (_, i) => startNode(`${label}-node-${i + 1}`, env, config, down)),
  );
  return {
    postBases: nodes.map((n) => `http://127.0.0.1:${n.port}`),
    targets: nodes,
    delivers: true,
    openPresenters: spreadPresenters(nodes.map((n) => n.port)),
    db,
  };
}

const n0 = (x: number | null | undefined) =>
  x === null || x === undefined ? "-" : Math.round(x).toLocaleString("en-US");
const ms = (x: number | null | undefined) =>
  x === null || x === undefined ? "-" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
const ratio = (x: number | null | undefined) => (x === null || x === undefined ? "-" : x.toFixed(3));

/** Bus payloads each node received over the phase, in node order ("-" where not exported). */
function perNode(p: PhaseResult): string {
  return Object.values(p.nodes)
    .map((m) => n0(m.busReceived))
    .join(" / ");
}

/**
 * Scenario (e) next to spread3: each measured phase's throughput, latency, CPU per delivered
 * message (the cluster's six redis-servers counted in "redis", as every redis-server is) and bus
 * payloads received per delivered message. Undefined when (e) did not run.
 */
export function redisClusterTable(load: LoadScenarioResult[]): string | undefined {
  const e = load.find((r) => r.id === "cluster-redis");
  if (!e) return undefined;
  const rows: string[][] = [];
  for (const r of [load.find((x) => x.id === "spread3"), e]) {
    if (!r) continue;
    for (const p of r.phases) {
      if (p.phase === "warmup") continue;
      rows.push([
        r.id === "spread3" ? "one Redis (spread3)" : "Redis Cluster 3+3 (cluster-redis)",
        p.phase === "closed" ? `closed ${p.concurrency}` : `open ${n0(p.offeredRate)}/s`,
        n0(p.deliveredPerSec),
        ms(p.e2e?.p50),
        ms(p.e2e?.p99),
        n0(p.cpuPerMessage?.systemUs),
        n0(p.cpuPerMessage?.processUs.redis),
        ratio(p.busPerDelivered),
        perNode(p),
      ]);
    }
  }
  const header = [
    "(e) 3 nodes, posts and presenters spread",
    "load",
    "delivered/s",
    "e2e p50 ms",
    "e2e p99 ms",
    "CPU µs/msg",
    "redis µs/msg",
    "bus recv / delivered",
    "bus recv per node",
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const fmt = (cells: string[]) =>
    `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(" | ")} |`;
  const sep = `|${widths.map((w, i) => (i < 2 ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [fmt(header), sep, ...rows.map(fmt)].join("\n");
}

/**
 * Reported beside the #11 targets: the cluster's closed-loop msgs/s over one Redis' (no goal: on
 * one machine the cluster's six redis-servers share the cores, so this is its overhead), and the
 * bus payloads per delivered message, which must be 1 (a shard sends a room's messages only to
 * the node subscribed to it; more would mean every node got every message).
 */
export function redisClusterChecks(load: LoadScenarioResult[]): TargetCheck[] {
  const e = load.find((r) => r.id === "cluster-redis");
  if (!e) return [];
  const closedOf = (r: LoadScenarioResult | undefined) => r?.phases.find((p) => p.phase === "closed");
  const a = closedOf(e);
  const b = closedOf(load.find((r) => r.id === "spread3"));
  const checks: TargetCheck[] = [
    a && b && b.okPerSec > 0
      ? {
          target: "(e) Redis Cluster msgs/s vs one Redis (spread3), same machine",
          goal: "reported",
          value: `${(a.okPerSec / b.okPerSec).toFixed(2)}x (${n0(a.okPerSec)} vs ${n0(b.okPerSec)} msgs/s; e2e p99 ${ms(a.e2e?.p99)} vs ${ms(b.e2e?.p99)} ms)`,
          met: null,
        }
      : {
          target: "(e) Redis Cluster msgs/s vs one Redis (spread3)",
          goal: "reported",
          value: "not measured",
          met: null,
        },
  ];
  const measured = e.phases.filter((p) => p.phase !== "warmup" && p.busPerDelivered !== null);
  checks.push({
    target: "(e) bus payloads received by all nodes per delivered message (sharded pub/sub)",
    goal: "1",
    value:
      measured.length === 0
        ? "not measured"
        : measured.map((p) => `${p.phase} ${ratio(p.busPerDelivered)} (per node ${perNode(p)})`).join("; "),
    met: measured.length === 0 ? null : busProblems(e).length === 0,
  });
  return checks;
}

/**
 * (e)'s promise, a failure of the run (smoke too): every node receives only its rooms' messages,
 * so the bus payloads of a phase equal its delivered messages. In steady state nothing else is
 * on the bus (takeover notices come with presenter connects, before the phases).
 */
export function busProblems(r: LoadScenarioResult): string[] {
  const problems: string[] = [];
  for (const p of r.phases) {
    if (p.phase === "warmup" || p.busPerDelivered === null) continue;
    if (Math.abs(p.busPerDelivered - 1) > 0.01) {
      problems.push(
        `${p.phase}: the nodes received ${ratio(p.busPerDelivered)} bus payloads per delivered message (per node ${perNode(p)}), not 1`,
      );
    }
  }
  return problems;
}
