import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { RATE_LIMITS_OFF, TEST_JWT_SECRET } from "./tokens.js";

export const SERVER_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const SERVER_MAIN = process.env.CHATRELAY_TEST_SERVER_MAIN ?? join(SERVER_DIR, "dist", "main.js");

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

/** One chatrelay node as its own OS process, built from dist/ (what the image runs). */
export class NodeProcess {
  readonly lines: Record<string, unknown>[] = [];
  private waiters: { check: () => boolean; resolve: () => void }[] = [];
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly child: ChildProcess;

  private constructor(
    readonly name: string,
    readonly port: number,
    env: Record<string, string>,
  ) {
    if (!existsSync(SERVER_MAIN)) throw new Error(`${SERVER_MAIN} is missing: run \`pnpm -r run build\` first`);
    this.child = spawn(process.execPath, [SERVER_MAIN], {
      env: { ...process.env, ...env, PORT: String(port), HOST: "127.0.0.1", NODE_ID: name },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let buffer = "";
    this.child.stdout?.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl = buffer.indexOf("\n");
      while (nl !== -1) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.lines.push({ msg: line });
        }
        nl = buffer.indexOf("\n");
      }
      this.notify();
    });
    this.child.stderr?.on("data", (chunk: Buffer) => {
      this.lines.push({ stderr: chunk.toString() });
    });
    this.child.on("exit", (code, signal) => {
      this.exit = { code, signal };
      this.notify();
    });
  }

  get http(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get ws(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Starts a node and resolves once it logged that it listens. */
  static async start(
    name: string,
    env: Record<string, string>,
    timeoutMs = 30_000,
    pickPort: () => Promise<number> = freePort,
  ): Promise<NodeProcess> {
    for (let attempt = 1; ; attempt++) {
      const node = NodeProcess.spawn(name, env, await pickPort());
      try {
        await node.waitFor((l) => l.msg === "chatrelay listening", "listening", timeoutMs);
        return node;
      } catch (err) {
        // freePort() picks from the ephemeral range, so another process's outgoing connection can take
        // the port before the node binds it (pick-then-bind races): then try another port.
        if (attempt < 3 && node.exit !== undefined && node.lostItsPort()) continue;
        throw err;
      }
    }
  }

  private lostItsPort(): boolean {
    return this.lines.some((l) => typeof l.stderr === "string" && l.stderr.includes("EADDRINUSE"));
  }

  /** Spawns a node without waiting for it (for start-up failures). */
  static spawn(name: string, env: Record<string, string>, port = 0): NodeProcess {
    return new NodeProcess(name, port, {
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: "info",
      TRUSTED_PROXIES: "127.0.0.1,::1",
      PGLITE_DATA_DIR: "memory://",
      // Several nodes per machine: each ops listener on a port of its own (read from the start-up line).
      OPS_PORT: "0",
      // Limits are tested on purpose (rate-limits tests); elsewhere a test posts as fast as it likes.
      ...RATE_LIMITS_OFF,
      ...env,
    });
  }

  /** The ops listener (/healthz, /readyz, /metrics), from the node's "chatrelay listening" line. */
  get ops(): string {
    const line = this.lines.find((l) => l.msg === "chatrelay listening");
    if (typeof line?.opsUrl !== "string") throw new Error(`${this.name} has not logged its ops address yet`);
    return line.opsUrl.replace("[::1]", "127.0.0.1");
  }

  /**
   * Sets a failpoint on this node (it must have started with CHATRELAY_FAILPOINTS, e.g. "on"):
   * "pause", "crash", "drop", "error", "sleep(ms)", "N*<task>", or "off" (which lets paused hits go on).
   */
  async failpoint(name: string, action: string): Promise<void> {
    const res = await fetch(`${this.ops}/failpoints/${name}`, {
      method: "PUT",
      headers: { "content-type": "text/plain" },
      body: action,
    });
    if (res.status !== 204)
      throw new Error(`${this.name}: failpoint ${name}=${action} refused: ${res.status} ${await res.text()}`);
  }

  /** Hits of the failpoint this node has logged so far (take it before the action that hits it). */
  failpointHits(name: string): number {
    return this.lines.filter((l) => l.msg === "failpoint hit" && l.failpoint === name).length;
  }

  /** Resolves once this node logged a hit of the failpoint (the `n`-th hit, counting from the start). */
  failpointHit(name: string, n = 1, timeoutMs = 15_000): Promise<void> {
    return this.waitFor(
      () => this.lines.filter((l) => l.msg === "failpoint hit" && l.failpoint === name).length >= n,
      `hit #${n} of failpoint ${name}`,
      timeoutMs,
    );
  }

  /** Resolves when the process exits. */
  exited(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return new Promise((resolve, reject) => {
      if (this.exit) return resolve(this.exit);
      const timer = setTimeout(() => reject(new Error(`${this.name} still running after ${timeoutMs} ms`)), timeoutMs);
      this.child.once("exit", (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });
  }

  /** Everything the process wrote to stderr. */
  stderr(): string {
    return this.lines.map((l) => (typeof l.stderr === "string" ? l.stderr : "")).join("");
  }

  waitFor(match: (line: Record<string, unknown>) => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    const check = () => {
      if (this.lines.some(match)) return true;
      if (this.exit)
        throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before ${what}: ${this.tail()}`);
      return false;
    };
    return new Promise<void>((resolve, reject) => {
      try {
        if (check()) return resolve();
      } catch (err) {
        return reject(err);
      }
      const waiter = {
        check: () => {
          try {
            return check();
          } catch (err) {
            clearTimeout(timer);
            reject(err);
            return true;
          }
        },
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.name}: timed out waiting for ${what}: ${this.tail()}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Sends a signal and waits for the process to exit. */
  async kill(
    signal: NodeJS.Signals = "SIGKILL",
    timeoutMs = 20_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exit) this.child.kill(signal);
    await new Promise<void>((resolve, reject) => {
      if (this.exit) return resolve();
      const timer = setTimeout(
        () => reject(new Error(`${this.name} did not exit within ${timeoutMs} ms after ${signal}`)),
        timeoutMs,
      );
      this.child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.exit as { code: number | null; signal: NodeJS.Signals | null };
  }

  tail(n = 8): string {
    return this.lines
      .slice(-n)
      .map((l) => JSON.stringify(l))
      .join("\n");
  }

  private notify(): void {
    for (const w of [...this.waiters]) {
      if (w.check()) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve();
      }
    }
  }
}
