import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childPids, freePort, ManagedProcess, onCleanup, REPO_DIR, SERVER_MAIN } from "./util/procs.js";
import { JWT_SECRET } from "./util/services.js";

/** A process the bench measures: its CPU and RSS are read from /proc. */
export interface Target {
  name: string;
  proc: ManagedProcess;
  port: number;
  /** Extra pids whose CPU belongs to this target (nginx workers). */
  extraPids?: () => number[];
  /** A chatrelay node: its /metrics are read around each phase, from its ops listener. */
  chatrelay?: boolean;
  /** A chatrelay node's ops listener (/readyz, /metrics). */
  opsPort?: number;
  note?: string;
}

/** Polls `check` until it is true; rejects when `proc` exits or after `timeoutMs`. */
async function pollUntil(check: () => Promise<boolean>, proc: ManagedProcess, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(200, delay * 2)) {
    if (proc.exitInfo) throw new Error(`${proc.name} exited (${proc.describeExit()}) before ${what}${proc.tail()}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${proc.tail()}`);
    // Retry interval of a readiness probe, bounded by the deadline above; not a synchronisation sleep.
    await Promise.race([new Promise((r) => setTimeout(r, delay)), proc.exited()]);
  }
}

export async function httpReady(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status === 200;
}

export interface ChatrelayNodeOptions {
  name: string;
  env?: Record<string, string>;
  /** Write a V8 CPU profile of the node into this folder when it exits. */
  profileDir?: string | undefined;
  startTimeoutMs?: number;
  /** Extra flags for node (the density run opens the inspector to trigger garbage collections). */
  nodeArgs?: string[];
}

/**
 * `node --cpu-prof` flags: V8 writes one profile per thread into `<dir>/<name>/` when the process exits
 * cleanly (the main thread's file has thread id 0 in its name; tsx's loader thread gets its own file).
 */
function profileArgs(name: string, dir: string | undefined): string[] {
  if (dir === undefined) return [];
  return ["--cpu-prof", `--cpu-prof-dir=${join(dir, name)}`, "--cpu-prof-interval=500"];
}

/**
 * The embedded chat log's folder: a fresh on-disk PGlite folder (the server's default kind of store,
 * removed by `remove()`), or "memory://" with BENCH_PGLITE=memory.
 */
export function pgliteDataDir(): { dir: string; remove: () => Promise<void> } {
  if (process.env.BENCH_PGLITE === "memory") return { dir: "memory://", remove: async () => {} };
  const dir = mkdtempSync(join(tmpdir(), "chatrelay-bench-pglite-"));
  let removed = false;
  const remove = async () => {
    if (removed) return;
    removed = true;
    unregister();
    rmSync(dir, { recursive: true, force: true });
  };
  const unregister = onCleanup(remove);
  return { dir, remove };
}

/** One chatrelay node (apps/server/dist/main.js) on a loopback port; resolves once /readyz answers 200. */
export async function startChatrelayNode(options: ChatrelayNodeOptions): Promise<Target> {
  if (!existsSync(SERVER_MAIN)) throw new Error(`${SERVER_MAIN} is missing: run \`pnpm -r run build\` first`);
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const opsPort = await freePort();
    const nodeArgs = [...profileArgs(options.name, options.profileDir), ...(options.nodeArgs ?? [])];
    const proc = new ManagedProcess({
      name: options.name,
      command: process.execPath,
      args: [...nodeArgs, SERVER_MAIN],
      env: {
        PORT: String(port),
        HOST: "127.0.0.1",
        OPS_PORT: String(opsPort),
        // The load generator is one address and a few senders: limits off unless a scenario sets them.
        RATE_LIMIT_ROOM: "off",
        RATE_LIMIT_ROOM_PRIVILEGED: "off",
        RATE_LIMIT_SENDER: "off",
        RATE_LIMIT_ADDRESS_POSTS: "off",
        RATE_LIMIT_ADDRESS_SOCKETS: "off",
        NODE_ID: options.name,
        JWT_SECRET,
        LOG_LEVEL: "warn",
        NODE_ENV: "production",
        ...options.env,
      },
    });
    try {
      await pollUntil(
        () => httpReady(`http://127.0.0.1:${opsPort}/readyz`),
        proc,
        options.startTimeoutMs ?? 30_000,
        `${options.name} to answer /readyz`,
      );
      return { name: options.name, proc, port, opsPort, chatrelay: true };
    } catch (err) {
      await proc.stop(1000);
      // Another process may have taken the port between freePort() and listen().
      if (attempt < 3 && proc.lines.some((l) => l.includes("EADDRINUSE"))) continue;
      throw err;
    }
  }
}

/** Runs one of src/servers/*.ts from source with tsx; it exits when its stdin closes. */
export function startHelperProcess(
  name: string,
  script: string,
  env: Record<string, string>,
  profileDir?: string,
): ManagedProcess {
  return new ManagedProcess({
    name,
    command: process.execPath,
    args: [...profileArgs(name, profileDir), "--import", "tsx", join("src", "servers", script)],
    env,
    stdinPipe: true,
  });
}

/** One of the bench's own helper servers (src/servers/*.ts), run from source with tsx. */
export async function startHelperServer(
  name: string,
  script: string,
  env: Record<string, string>,
  profileDir?: string,
): Promise<Target> {
  const proc = startHelperProcess(name, script, env, profileDir);
  try {
    const line = await proc.waitForLine((l) => l.includes('"bench server listening"'), 30_000, `${name} to listen`);
    const { port } = JSON.parse(line) as { port: number };
    return { name, proc, port };
  } catch (err) {
    await proc.stop(1000);
    throw err;
  }
}

export const NGINX_DEPLOY_DIR = join(REPO_DIR, "deploy", "nginx");

/** nginx's own quoting, so folders with spaces still work. */
function quote(path: string): string {
  return `"${path.replace(/["\\]/g, "\\$&")}"`;
}

/**
 * deploy/nginx/nginx.conf (what production runs) rendered for loopback: the
 * lines marked "render:" there get a temp dir, a free port and one upstream
 * line per node port; worker_processes, keep-alive, least_conn, the access
 * log and the included chatrelay-locations.conf stay as deployed. Undefined
 * when the file is missing or a marked line is not found exactly once.
 */
export function renderDeployNginxConfig(dir: string, listenPort: number, upstreamPorts: number[]): string | undefined {
  const file = join(NGINX_DEPLOY_DIR, "nginx.conf");
  if (!existsSync(file) || !existsSync(join(NGINX_DEPLOY_DIR, "chatrelay-locations.conf"))) return undefined;
  const source = readFileSync(file, "utf8");
  const tempPaths = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .map((kind) => `    ${kind}_temp_path ${quote(join(dir, kind))};`)
    .join("\n");
  const rewrites: [RegExp, (...groups: string[]) => string][] = [
    [/^([ \t]*)pid\s[^;]*;.*$/gm, (_, i) => `${i}pid ${quote(join(dir, "nginx.pid"))};`],
    [
      /^([ \t]*)error_log\s+\S+((?:\s+\w+)?);.*$/gm,
      (_, i, level) => `${i}error_log ${quote(join(dir, "error.log"))}${level};`,
    ],
    [/^([ \t]*)resolver\s[^;]*;.*$/gm, (_, i) => `${i}# resolver: not needed for loopback`],
    [
      /^([ \t]*)access_log\s+\S+(\s+\w+);.*$/gm,
      (_, i, format) => `${i}access_log ${quote(join(dir, "access.log"))}${format};`,
    ],
    [
      /^([ \t]*)server\s+chat:8080\s+resolve\b([^;]*);.*$/gm,
      (_, i, params) => upstreamPorts.map((p) => `${i}server 127.0.0.1:${p}${params};`).join("\n"),
    ],
    [/^([ \t]*)listen\s+8080;.*$/gm, (_, i) => `${i}listen 127.0.0.1:${listenPort};`],
    [
      /^([ \t]*)include\s+\/etc\/nginx\/chatrelay-locations\.conf;.*$/gm,
      (_, i) => `${i}include ${quote(join(NGINX_DEPLOY_DIR, "chatrelay-locations.conf"))};`,
    ],
    [/^http\s*\{.*$/gm, (line) => `${line}\n${tempPaths}`],
  ];
  let conf = source;
  for (const [pattern, replace] of rewrites) {
    if ((source.match(pattern)?.length ?? 0) !== 1) return undefined;
    conf = conf.replace(pattern, (...args: unknown[]) => replace(...(args.slice(0, -2) as string[])));
  }
  return conf;
}

/** A minimal nginx config: one upstream of the node ports, WebSocket upgrade, keep-alive to the upstreams. */
export function renderMinimalNginxConfig(dir: string, listenPort: number, upstreamPorts: number[]): string {
  return `# Rendered by apps/bench for one run (deploy/nginx/nginx.conf was not usable).
worker_processes auto;
pid ${quote(join(dir, "nginx.pid"))};
error_log ${quote(join(dir, "error.log"))} warn;
events { worker_connections 16384; }
http {
  access_log off;
${["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((k) => `  ${k}_temp_path ${quote(join(dir, k))};`).join("\n")}
  upstream chatrelay {
${upstreamPorts.map((p) => `    server 127.0.0.1:${p};`).join("\n")}
    keepalive 64;
    keepalive_timeout 60s;
  }
  map $http_upgrade $connection_upgrade {
    default upgrade;
    "" "";
  }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass http://chatrelay;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }
}
`;
}

export function nginxBinary(): string {
  for (const candidate of [process.env.NGINX_BIN, "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  try {
    return execFileSync("sh", ["-c", "command -v nginx"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("nginx is not installed: `apt-get update && apt-get install -y nginx` (or set NGINX_BIN)");
  }
}

/** nginx in front of the given loopback ports; resolves once a request through it reaches a ready node. */
export async function startNginx(upstreamPorts: number[]): Promise<Target> {
  const bin = nginxBinary();
  const dir = mkdtempSync(join(tmpdir(), "chatrelay-bench-nginx-"));
  // nginx started as root runs its workers as nobody: they must be able to enter the folder.
  chmodSync(dir, 0o755);
  const removeDir = onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const deployed = renderDeployNginxConfig(dir, port, upstreamPorts);
  writeFileSync(join(dir, "nginx.conf"), deployed ?? renderMinimalNginxConfig(dir, port, upstreamPorts));
  const proc = new ManagedProcess({
    name: "nginx",
    command: bin,
    args: ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"],
  });
  const origStop = proc.stop.bind(proc);
  // SIGQUIT would wait for the open WebSockets; SIGTERM is nginx's fast shutdown.
  proc.stop = async (graceMs = 5000) => {
    await origStop(graceMs, "SIGTERM");
    rmSync(dir, { recursive: true, force: true });
    removeDir();
  };
  try {
    // /readyz is on each node's ops listener, never proxied: nginx is ready once it proxies /healthz.
    await pollUntil(() => httpReady(`http://127.0.0.1:${port}/healthz`), proc, 15_000, "nginx to proxy /healthz");
  } catch (err) {
    await proc.stop(1000);
    throw err;
  }
  return {
    name: "nginx",
    proc,
    port,
    extraPids: () => childPids(proc.pid),
    note: deployed ? "deploy/nginx/nginx.conf rendered for loopback" : "minimal bench config",
  };
}
