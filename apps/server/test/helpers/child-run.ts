import { spawn } from "node:child_process";

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Our settings a child must not inherit from the test process: a CLI test states its whole environment. */
const OUR_SETTINGS = /^(JWT_|NODE_ENV|HOST|DATABASE_URL|PGLITE_|MIGRATIONS_DIR|RETENTION_|REDIS_)/;

/** Runs `node <args>` to its end (killed and rejected past `timeoutMs`), with only `env` of our settings. */
export function runNode(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<Run> {
  const { env = {}, cwd, timeoutMs = 60_000 } = options;
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !OUR_SETTINGS.test(k)));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd,
      env: { ...inherited, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`node ${args.join(" ")} still running after ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      // Decoded once at the end: a chunk boundary may split a UTF-8 character.
      resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
    });
  });
}
