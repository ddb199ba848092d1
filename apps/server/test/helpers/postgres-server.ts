import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./processes.js";

/**
 * A private PostgreSQL server for fault tests, from the machine's own
 * binaries (Debian: /usr/lib/postgresql/<version>/bin, or TEST_PG_BINDIR):
 * pause it (SIGSTOP: a stalled database), resume it, kill it (SIGKILL: a
 * crash) and start it again on the same data and port. Runs as the
 * `postgres` OS user (the server refuses root), trust auth, fsync off.
 */
export class PrivatePostgres {
  private child: ChildProcess | undefined;
  private paused: number[] = [];

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly bin: string,
    private readonly owner: { uid: number; gid: number },
  ) {}

  /** Connection URL of a database on this server (user postgres, no password). */
  url(database = "postgres"): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/${database}`;
  }

  private get dataDir(): string {
    return join(this.dir, "data");
  }

  static async start(): Promise<PrivatePostgres> {
    const bin = postgresBinDir();
    const owner = postgresUser();
    const dir = mkdtempSync(join(tmpdir(), "chatrelay-pg-"));
    chownSync(dir, owner.uid, owner.gid);
    const server = new PrivatePostgres(await freePort(), dir, bin, owner);
    const init = spawnSync(
      join(bin, "initdb"),
      ["-D", server.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
      { uid: owner.uid, gid: owner.gid, encoding: "utf8", timeout: 60_000 },
    );
    if (init.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`initdb failed (${init.status}): ${init.stderr || init.error?.message}`);
    }
    await server.restart();
    return server;
  }

  /** Creates a database on this server and returns its URL. */
  async createDatabase(name: string): Promise<string> {
    await withPgClient(this.url(), (admin) => admin.query(`CREATE DATABASE ${name}`));
    return this.url(name);
  }

  /** (Re)starts the server on its data folder and port; resolves when it accepts connections. */
  async restart(): Promise<void> {
    if (this.child) throw new Error("postgres is already running");
    const child = spawn(
      join(this.bin, "postgres"),
      [
        "-D",
        this.dataDir,
        "-p",
        String(this.port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        `unix_socket_directories=${this.dir}`,
        "-c",
        "fsync=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "shared_buffers=16MB",
        "-c",
        "max_connections=60",
        "-c",
        "logging_collector=off",
      ],
      { uid: this.owner.uid, gid: this.owner.gid, stdio: ["ignore", "ignore", "pipe"] },
    );
    child.on("error", () => {});
    this.child = child;
    // A test process that dies without its teardown must not leave a server behind (its backends exit with it).
    const reap = () => {
      if (child.pid !== undefined && child.pid > 0) signal(child.pid, "SIGKILL");
    };
    process.once("exit", reap);
    child.once("exit", () => process.off("exit", reap));
    await new Promise<void>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`postgres did not start within 30 s: ${out}`)), 30_000);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${this.bin}/postgres: ${err.message}`));
      });
      child.stderr?.on("data", (chunk: Buffer) => {
        // Keep only the tail: it is for the error message, and the server logs every client error.
        out = (out + chunk.toString()).slice(-4000);
        if (out.includes("database system is ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`postgres exited (${code ?? signal}): ${out}`));
      });
    });
    // Drain what it logs from now on (client errors while we break things) so it never blocks on a full pipe.
    child.stderr?.removeAllListeners("data");
    child.stderr?.resume();
  }

  /**
   * SIGSTOP the whole server: the postmaster first (so it forks nothing new),
   * then every process it forked. Connections stay open and answer nothing;
   * new ones complete the TCP handshake and then hang.
   */
  pause(): void {
    const pid = this.requirePid();
    process.kill(pid, "SIGSTOP");
    const all = [pid, ...childrenOf(pid)];
    for (const p of all.slice(1)) process.kill(p, "SIGSTOP");
    this.paused = all;
  }

  /** SIGCONT what pause() stopped. */
  resume(): void {
    for (const p of this.paused.slice().reverse()) {
      try {
        process.kill(p, "SIGCONT");
      } catch {
        // gone meanwhile
      }
    }
    this.paused = [];
  }

  /** SIGKILL the postmaster and every process it forked (a crash); resolves when they are all gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    const pid = child.pid as number;
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
    // Stop it first so that the list of its children is final.
    signal(pid, "SIGSTOP");
    const children = childrenOf(pid);
    signal(pid, "SIGKILL");
    for (const p of children) signal(p, "SIGKILL");
    this.paused = [];
    await exited;
    await waitGone(children);
  }

  /** Kills the server and removes its folder. */
  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private requirePid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error("postgres is not running");
    return pid;
  }
}

/** A short-lived connection of the test's own (never a node's), closed after `fn`. */
export async function withPgClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  c.on("error", () => {});
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  // Never 0 or negative: those address whole process groups, ours included.
  if (!(pid > 0)) return;
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** PIDs whose parent is `pid` (postgres' backends and helpers: each is its own process group). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProcStat(Number(entry));
    if (stat?.ppid === pid) found.push(Number(entry));
  }
  return found;
}

function readProcStat(pid: number): { ppid: number; state: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse from the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: rest[0] ?? "", ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

/** Resolves when none of `pids` is alive (a zombie counts as gone), polling /proc; bounded. */
async function waitGone(pids: number[], timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const alive = pids.filter((p) => {
      const s = readProcStat(p);
      return s !== undefined && s.state !== "Z";
    });
    if (alive.length === 0) return;
    if (Date.now() > until) throw new Error(`postgres processes still alive after SIGKILL: ${alive.join(", ")}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function postgresBinDir(): string {
  const fromEnv = process.env.TEST_PG_BINDIR;
  if (fromEnv) return fromEnv;
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, "bin", "postgres")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (newest === undefined) {
    throw new Error(`no PostgreSQL server binaries under ${root}; install postgresql or set TEST_PG_BINDIR`);
  }
  return join(root, newest, "bin");
}

/** Who runs the private server: the caller, or (as root) the `postgres` OS user from /etc/passwd. */
function postgresUser(): { uid: number; gid: number } {
  // A developer's own account runs it as is; only root must hand it to the `postgres` user.
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  if (uid !== undefined && gid !== undefined && uid !== 0) return { uid, gid };
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  const fields = line?.split(":");
  if (!fields || fields.length < 4) throw new Error("no `postgres` OS user: the server refuses to run as root");
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}
