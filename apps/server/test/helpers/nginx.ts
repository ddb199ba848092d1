import { type ChildProcess, execFile, spawn } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { freePort } from "./processes.js";

/** The project's own nginx configuration, as docker-compose.yml mounts it. */
export const NGINX_DEPLOY_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "..",
  "..",
  "deploy",
  "nginx",
);

const INSTALL_HINT = "install nginx: apt-get install -y nginx (or set NGINX_BIN to its path)";

/** The nginx binary: NGINX_BIN, else PATH plus the sbin folders a non-root PATH often lacks. */
export function findNginx(): string {
  const fromEnv = process.env.NGINX_BIN;
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"];
  const candidates = fromEnv ? [fromEnv] : dirs.filter(Boolean).map((d) => join(d, "nginx"));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; try the next one
    }
  }
  throw new Error(`nginx is not installed (looked for ${candidates.join(", ")}): ${INSTALL_HINT}`);
}

/** nginx's own quoting, so folders with spaces still work. */
function quote(path: string): string {
  return `"${path.replace(/["\\]/g, "\\$&")}"`;
}

/**
 * Renders deploy/nginx/nginx.conf for loopback upstreams: the lines marked
 * "render:" there are rewritten (Docker's DNS and service name out, a free
 * port and temp-dir paths in); everything else, and the included
 * chatrelay-locations.conf, is used as it is. Each rewrite must match exactly
 * once, so a change to the deploy file that the tests would silently stop
 * covering fails here instead.
 */
export function renderNginxConfig(options: { dir: string; listenPort: number; upstreamPorts: number[] }): string {
  const { dir, listenPort, upstreamPorts } = options;
  if (upstreamPorts.length === 0) throw new Error("renderNginxConfig needs at least one upstream port");
  const source = readFileSync(join(NGINX_DEPLOY_DIR, "nginx.conf"), "utf8");
  // Non-root nginx cannot write to its compiled-in temp folders.
  const tempPaths = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .map((kind) => `    ${kind}_temp_path ${quote(join(dir, `${kind}_temp`))};`)
    .join("\n");
  const rewrites: { what: string; pattern: RegExp; replace: (...groups: string[]) => string }[] = [
    {
      what: "worker_processes",
      pattern: /^([ \t]*)worker_processes\s[^;]*;.*$/gm,
      replace: (_, i) => `${i}worker_processes 1;`,
    },
    {
      what: "pid",
      pattern: /^([ \t]*)pid\s[^;]*;.*$/gm,
      replace: (_, i) => `${i}pid ${quote(join(dir, "nginx.pid"))};`,
    },
    {
      what: "error_log",
      pattern: /^([ \t]*)error_log\s+\S+((?:\s+\w+)?);.*$/gm,
      replace: (_, i, level) => `${i}error_log ${quote(join(dir, "error.log"))}${level};`,
    },
    {
      what: "resolver",
      pattern: /^([ \t]*)resolver\s[^;]*;.*$/gm,
      replace: (_, i) => `${i}# resolver: not needed for loopback`,
    },
    {
      what: "access_log",
      pattern: /^([ \t]*)access_log\s+\S+(\s+\w+);.*$/gm,
      replace: (_, i, format) => `${i}access_log ${quote(join(dir, "access.log"))}${format};`,
    },
    {
      what: "the `server chat:8080 resolve ...` upstream line",
      pattern: /^([ \t]*)server\s+chat:8080\s+resolve\b([^;]*);.*$/gm,
      replace: (_, i, params) => upstreamPorts.map((p) => `${i}server 127.0.0.1:${p}${params};`).join("\n"),
    },
    {
      what: "listen 8080",
      pattern: /^([ \t]*)listen\s+8080;.*$/gm,
      replace: (_, i) => `${i}listen 127.0.0.1:${listenPort};`,
    },
    {
      what: "the chatrelay-locations.conf include",
      pattern: /^([ \t]*)include\s+\/etc\/nginx\/chatrelay-locations\.conf;.*$/gm,
      replace: (_, i) => `${i}include ${quote(join(NGINX_DEPLOY_DIR, "chatrelay-locations.conf"))};`,
    },
    { what: "http {", pattern: /^http\s*\{.*$/gm, replace: (line) => `${line}\n${tempPaths}` },
  ];
  let conf = source;
  for (const { what, pattern, replace } of rewrites) {
    const count = source.match(pattern)?.length ?? 0;
    if (count !== 1) {
      throw new Error(`deploy/nginx/nginx.conf: expected one ${what} line to render for tests, found ${count}`);
    }
    conf = conf.replace(pattern, (...args: unknown[]) => replace(...(args.slice(0, -2) as string[])));
  }
  return conf;
}

/** A temp dir the worker processes can enter (nginx started as root runs them as nobody). */
async function nginxDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "chatrelay-nginx-"));
  await chmod(dir, 0o755);
  return dir;
}

async function writeConfig(dir: string, listenPort: number, upstreamPorts: number[]): Promise<string> {
  const file = join(dir, "nginx.conf");
  await writeFile(file, renderNginxConfig({ dir, listenPort, upstreamPorts }));
  return file;
}

/** `nginx -t` on the rendered project config; never throws for an invalid config, it reports it. */
export async function nginxConfigTest(upstreamPorts: number[]): Promise<{ ok: boolean; output: string }> {
  const bin = findNginx();
  const dir = await nginxDir();
  try {
    const conf = await writeConfig(dir, await freePort(), upstreamPorts);
    return await new Promise((resolve) => {
      execFile(bin, ["-t", "-p", dir, "-c", conf, "-e", join(dir, "error.log")], (err, stdout, stderr) => {
        resolve({ ok: err === null, output: `${stdout}${stderr}`.trim() });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface RunningNginx {
  port: number;
  http: string;
  ws: string;
  /** The rendered config, logs and temp folders (removed by stop()). */
  dir: string;
  stop(): Promise<void>;
}

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
}

/**
 * Runs the real nginx, in the foreground as a child of this process, with the
 * project's config rendered for `upstreamPorts` on loopback. Resolves once it
 * accepts TCP connections.
 */
export async function startNginx(upstreamPorts: number[], timeoutMs = 10_000): Promise<RunningNginx> {
  const bin = findNginx();
  const dir = await nginxDir();
  const port = await freePort();
  const conf = await writeConfig(dir, port, upstreamPorts);
  const errorLog = join(dir, "error.log");
  // Same process group as the test: whatever kills the test run's group also ends nginx.
  const child: ChildProcess = spawn(bin, ["-p", dir, "-c", conf, "-e", errorLog, "-g", "daemon off;"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    output += c.toString();
  });
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = `code ${code}, signal ${signal}`;
      resolve();
    });
    child.once("error", (err) => {
      exited = err.message;
      resolve();
    });
  });
  // The master ends its workers on SIGTERM/SIGQUIT.
  const signal = (name: NodeJS.Signals) => {
    if (exited === undefined) child.kill(name);
  };
  // A test process that exits without its teardown must not leave nginx running.
  const onExit = () => signal("SIGTERM");
  process.once("exit", onExit);

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      process.removeListener("exit", onExit);
      if (exited === undefined) {
        // SIGTERM is nginx's fast shutdown: open presenter sockets are cut, not waited for.
        signal("SIGTERM");
        const timer = setTimeout(() => signal("SIGKILL"), 5000);
        await exit;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited !== undefined) {
      const log = readOr(errorLog, "");
      await stop();
      throw new Error(`nginx exited before accepting connections (${exited}): ${output}${log}`);
    }
    if (await tcpAccepts(port)) break;
    if (Date.now() > deadline) {
      const log = readOr(errorLog, "");
      await stop();
      throw new Error(`nginx did not accept connections on 127.0.0.1:${port} within ${timeoutMs} ms: ${output}${log}`);
    }
    await delay(20);
  }
  return { port, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}`, dir, stop };
}
