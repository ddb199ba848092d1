import { type ChildProcess, spawn } from "node:child_process";
import { freePort } from "./processes.js";

/** A private redis-server for fault tests: stop it, start it again on the same port. */
export class PrivateRedis {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The URL with credentials: a password for the default user (requirepass), or an ACL user's. */
  urlWith(password: string, username = ""): string {
    const u = new URL(this.url);
    u.username = encodeURIComponent(username);
    u.password = encodeURIComponent(password);
    return u.toString();
  }

  static async start(extraArgs: string[] = []): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.restart(extraArgs);
    return redis;
  }

  /** (Re)starts the server, empty (no persistence), and resolves when it accepts connections. */
  async restart(extraArgs: string[] = []): Promise<void> {
    if (this.child) throw new Error("redis is already running");
    const child = spawn(
      "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...extraArgs],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child.on("error", () => {});
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot run redis-server (install it: apt-get install -y redis-server): ${err.message}`));
      });
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}: ${out}`));
      });
    });
  }

  /** Kills the server (SIGKILL: connections drop as in a crash) and waits for it to be gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  }
}
