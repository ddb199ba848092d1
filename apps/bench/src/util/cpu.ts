import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import type { Target } from "../targets.js";
import { machineJiffies, pidsByName, processCpuSeconds } from "./procs.js";

/** CPU used over a window, in percent of one core (200 = both cores of a 2-core machine). */
export interface CpuReport {
  /** This process: the load generator and the presenters' client side. */
  generator: number;
  /** Each measured server process (with its workers, for nginx). */
  targets: Record<string, number>;
  /** The shared PostgreSQL and Redis (every process of theirs, so other users of them count too). */
  postgres: number;
  redis: number;
  /** The whole machine, busy share of all cores in percent (100 = every core busy). */
  machineBusy: number;
  /** Busy CPU not accounted to any process above (other users of the machine), percent of one core. */
  others: number;
}

function sumCpu(pids: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const pid of pids) {
    const s = processCpuSeconds(pid);
    if (s !== undefined) m.set(pid, s);
  }
  return m;
}

function delta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, s] of after) total += s - (before.get(pid) ?? 0);
  return total;
}

/** Snapshots /proc at start() and reports what each process used until stop(). */
export class CpuMeter {
  private t0 = 0;
  private gen0: NodeJS.CpuUsage = process.cpuUsage();
  private targets0 = new Map<string, Map<number, number>>();
  private pg0 = new Map<number, number>();
  private redis0 = new Map<number, number>();
  private machine0 = machineJiffies();

  constructor(private readonly targets: Target[]) {}

  private targetPids(t: Target): number[] {
    return [t.proc.pid, ...(t.extraPids?.() ?? [])];
  }

  start(): void {
    this.t0 = performance.now();
    this.gen0 = process.cpuUsage();
    this.targets0 = new Map(this.targets.map((t) => [t.name, sumCpu(this.targetPids(t))]));
    this.pg0 = sumCpu(pidsByName(["postgres"]));
    this.redis0 = sumCpu(pidsByName(["redis-server"]));
    this.machine0 = machineJiffies();
  }

  /** CPU seconds each process used since start(): the targets by name, PostgreSQL, Redis, the generator. */
  secondsSinceStart(): { generator: number; targets: Record<string, number>; postgres: number; redis: number } {
    const gen = process.cpuUsage(this.gen0);
    const targets: Record<string, number> = {};
    for (const t of this.targets) {
      targets[t.name] = delta(this.targets0.get(t.name) ?? new Map(), sumCpu(this.targetPids(t)));
    }
    return {
      generator: (gen.user + gen.system) / 1e6,
      targets,
      postgres: delta(this.pg0, sumCpu(pidsByName(["postgres"]))),
      redis: delta(this.redis0, sumCpu(pidsByName(["redis-server"]))),
    };
  }

  stop(): CpuReport {
    const seconds = Math.max(1e-6, (performance.now() - this.t0) / 1000);
    const pct = (cpuSeconds: number) => Math.round((cpuSeconds / seconds) * 1000) / 10;
    const gen = process.cpuUsage(this.gen0);
    const targets: Record<string, number> = {};
    for (const t of this.targets) {
      targets[t.name] = pct(delta(this.targets0.get(t.name) ?? new Map(), sumCpu(this.targetPids(t))));
    }
    const m = machineJiffies();
    const total = m.total - this.machine0.total;
    const generator = pct((gen.user + gen.system) / 1e6);
    const postgres = pct(delta(this.pg0, sumCpu(pidsByName(["postgres"]))));
    const redis = pct(delta(this.redis0, sumCpu(pidsByName(["redis-server"]))));
    const machineBusy = total > 0 ? Math.round(((m.busy - this.machine0.busy) / total) * 1000) / 10 : 0;
    const known = generator + postgres + redis + Object.values(targets).reduce((a, b) => a + b, 0);
    const others = Math.max(0, Math.round((machineBusy * availableParallelism() - known) * 10) / 10);
    return { generator, targets, postgres, redis, machineBusy, others };
  }
}

/** The weighted mean of CPU reports (weights summing to 1), each figure to one decimal. */
export function weightedCpu(parts: { cpu: CpuReport; weight: number }[]): CpuReport {
  const avg = (pick: (c: CpuReport) => number) =>
    Math.round(parts.reduce((s, { cpu, weight }) => s + pick(cpu) * weight, 0) * 10) / 10;
  const targets: Record<string, number> = {};
  for (const name of Object.keys(parts[0]?.cpu.targets ?? {})) targets[name] = avg((c) => c.targets[name] ?? 0);
  return {
    generator: avg((c) => c.generator),
    targets,
    postgres: avg((c) => c.postgres),
    redis: avg((c) => c.redis),
    machineBusy: avg((c) => c.machineBusy),
    others: avg((c) => c.others),
  };
}
