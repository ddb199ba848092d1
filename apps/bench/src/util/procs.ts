import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const REPO_DIR = join(BENCH_DIR, "..", "..");
export const SERVER_MAIN = join(REPO_DIR, "apps", "server", "dist", "main.js");

const CLOCK_TICKS = 100; // USER_HZ; 100 on every Linux this runs on (getconf CLK_TCK)
const PAGE_SIZE = 4096;

/** A free loopback TCP port (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Rejects after `ms` unless `promise` settles first; the message says what was awaited. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** User + system CPU seconds a process has used so far; undefined once it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** Resident set size in bytes; undefined once the process is gone. */
export function processRssBytes(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[21]) * PAGE_SIZE;
  } catch {
    return undefined;
  }
}

/** Pids of every process whose command name is one of `names` (e.g. the shared postgres and redis-server). */
export function pidsByName(names: string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, "utf8").trim();
      if (names.includes(comm)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/** Pids of `pid`'s direct children (nginx workers under their master). */
export function childPids(pid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/** Busy and total jiffies of the whole machine (first line of /proc/stat). */
export function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

export interface SpawnOptions {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Our own helper processes read stdin and exit when it closes (the bench died). */
  stdinPipe?: boolean;
}

const live = new Set<ManagedProcess>();

/** A child process whose output lines can be awaited and which is always killed on the way out. */
export class ManagedProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  private readonly waiters = new Set<{ test: (line: string) => boolean; resolve: (line: string) => void }>();
  private readonly exitWaiters = new Set<() => void>();
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(readonly options: SpawnOptions) {
    this.child = spawn(options.command, options.args, {
      cwd: options.cwd ?? BENCH_DIR,
      env: { ...process.env, ...options.env },
      stdio: [options.stdinPipe ? "pipe" : "ignore", "pipe", "pipe"],
      // Own process group: stop() reaches grandchildren (nginx workers) too.
      detached: true,
    });
    live.add(this);
    const onData = (stream: NodeJS.ReadableStream | null) => {
      let buffer = "";
      stream?.on("data", (chunk: Buffer) => {
        buffer += chunk.toString();
        let nl = buffer.indexOf("\n");
        while (nl !== -1) {
          this.onLine(buffer.slice(0, nl));
          buffer = buffer.slice(nl + 1);
          nl = buffer.indexOf("\n");
        }
      });
    };
    onData(this.child.stdout);
    onData(this.child.stderr);
    this.child.on("exit", (code, signal) => {
      this.exitInfo = { code, signal };
      live.delete(this);
      for (const wake of this.exitWaiters) wake();
      this.exitWaiters.clear();
    });
    this.child.on("error", (err) => this.onLine(`spawn error: ${err.message}`));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get name(): string {
    return this.options.name;
  }

  /** Resolves with the first line (already seen or future) that passes `test`; rejects if the process exits first. */
  waitForLine(test: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    const seen = this.lines.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    let waiter: { test: (line: string) => boolean; resolve: (line: string) => void } | undefined;
    let onExit: (() => void) | undefined;
    const found = new Promise<string>((resolve, reject) => {
      waiter = { test, resolve };
      this.waiters.add(waiter);
      onExit = () => reject(new Error(`${this.name} exited (${this.describeExit()}) before ${what}${this.tail()}`));
      if (this.exitInfo) onExit();
      else this.exitWaiters.add(onExit);
    });
    return withTimeout(found, timeoutMs, `${this.name}: ${what}${this.tail()}`).finally(() => {
      if (waiter) this.waiters.delete(waiter);
      if (onExit) this.exitWaiters.delete(onExit);
    });
  }

  /** Resolves when the process has exited. */
  exited(): Promise<void> {
    if (this.exitInfo) return Promise.resolve();
    return new Promise((resolve) => this.exitWaiters.add(resolve));
  }

  cpuSeconds(): number {
    return processCpuSeconds(this.pid) ?? 0;
  }

  rssBytes(): number {
    return processRssBytes(this.pid) ?? 0;
  }

  /** SIGTERM (or `signal`), then SIGKILL to the whole group if it has not exited within `graceMs`. */
  async stop(graceMs = 5000, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.exitInfo) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // Already gone.
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), graceMs);
    });
    const late = await Promise.race([this.exited().then(() => false), timedOut]);
    clearTimeout(timer);
    this.killGroup();
    if (late) await withTimeout(this.exited(), 5000, `${this.name} to die after SIGKILL`);
  }

  /** SIGKILL to the process group; safe to call at any time, also from an exit handler. */
  killGroup(): void {
    try {
      process.kill(-this.pid, "SIGKILL");
    } catch {
      // Group already gone.
    }
  }

  describeExit(): string {
    return this.exitInfo ? `code ${this.exitInfo.code}, signal ${this.exitInfo.signal}` : "running";
  }

  /** The last output lines, for error messages. */
  tail(n = 8): string {
    const last = this.lines.slice(-n);
    return last.length === 0 ? "" : `\n  last output of ${this.name}:\n    ${last.join("\n    ")}`;
  }

  private onLine(line: string): void {
    this.lines.push(line);
    if (this.lines.length > 2000) this.lines.splice(0, 1000);
    for (const w of this.waiters) {
      if (w.test(line)) {
        this.waiters.delete(w);
        w.resolve(line);
      }
    }
  }
}

/** Kills every child still running; synchronous, so it also works from `process.on("exit")`. */
export function killAllChildren(): void {
  for (const p of live) p.killGroup();
}

const cleanups = new Set<() => Promise<void>>();

/** Registers an async clean-up (drop a database, delete Redis keys) that also runs on SIGINT/SIGTERM. */
export function onCleanup(fn: () => Promise<void>): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

let handlersInstalled = false;

/** Kills children on any exit, and runs the registered clean-ups on SIGINT/SIGTERM before exiting. */
export function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", killAllChildren);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}: stopping children and cleaning up\n`);
      killAllChildren();
      const all = [...cleanups].map((fn) => fn().catch(() => {}));
      void withTimeout(Promise.all(all), 5000, "clean-up")
        .catch(() => {})
        .finally(() => process.exit(130));
    });
  }
}
