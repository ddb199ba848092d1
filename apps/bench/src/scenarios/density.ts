import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import type { BenchConfig } from "../config.js";
import { openChatrelayPresenters, type PresenterGroup } from "../load/presenters.js";
import { pgliteDataDir, startChatrelayNode, type Target } from "../targets.js";
import { CpuMeter, type CpuReport } from "../util/cpu.js";
import { openFilesLimit } from "../util/limits.js";
import { withTimeout } from "../util/procs.js";
import { presenterToken } from "./deploy-kit.js";

export interface DensityResult {
  sockets: number;
  openSeconds: number;
  pingIntervalMs: number;
  idleSeconds: number;
  baselineRssBytes: number;
  loadedRssBytes: number;
  rssPerSocketBytes: number;
  /** Least-squares slope of settled RSS over the number of open sockets (bytes per socket). */
  rssSlopeBytes: number;
  /**
   * (RSS at N − RSS at the first step) / (N − sockets of the first step): the cost of a socket at scale,
   * free of whatever the node's start-up returns to the OS later (which can make the baseline too high).
   */
  rssMarginalBytes: number;
  /** The larger of the per-socket figures above: what the target is checked against. */
  rssPerSocketForTarget: number;
  steps: { sockets: number; rssBytes: number }[];
  /** From the node's own /metrics: V8 heap used, before and after. */
  heapUsedBeforeBytes: number | null;
  heapUsedAfterBytes: number | null;
  heapPerSocketBytes: number | null;
  /** CPU of the node while the sockets sit idle (heartbeats only), percent of one core. */
  idleCpu: CpuReport;
  /** Client-side RSS of the bench process holding the sockets. */
  clientRssBytes: number;
  problems: string[];
  profiles: string[];
}

async function heapUsed(port: number): Promise<number | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    const m = /^chatrelay_nodejs_heap_size_used_bytes\s+([0-9.e+]+)/m.exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * A full garbage collection in the node, through its inspector (opened on a loopback port with
 * `--inspect=127.0.0.1:0`): what the handshakes and the start-up left behind is not per-socket memory.
 */
async function collectGarbage(inspectorUrl: string): Promise<void> {
  const ws = new WebSocket(inspectorUrl, { perMessageDeflate: false });
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ws.on("open", () => ws.send(JSON.stringify({ id: 1, method: "HeapProfiler.collectGarbage" })));
        ws.on("message", (data) => {
          const reply = JSON.parse(data.toString()) as { id?: number; error?: { message: string } };
          if (reply.id !== 1) return;
          if (reply.error) reject(new Error(`inspector: ${reply.error.message}`));
          else resolve();
        });
        ws.on("error", reject);
      }),
      30_000,
      "a garbage collection in the density node",
    );
  } finally {
    ws.close();
  }
}

/**
 * RSS after a full GC, once it stops moving (four readings 500 ms apart within 1%),
 * or the last reading after `maxMs`.
 */
async function settledRss(node: Target, maxMs: number, inspectorUrl: string): Promise<number> {
  await collectGarbage(inspectorUrl);
  const readings: number[] = [node.proc.rssBytes()];
  const deadline = performance.now() + maxMs;
  while (performance.now() < deadline) {
    // A sampling interval of a measurement, not a wait for an event.
    await new Promise((r) => setTimeout(r, 500));
    readings.push(node.proc.rssBytes());
    const last = readings.slice(-4);
    if (last.length === 4 && Math.max(...last) - Math.min(...last) <= 0.01 * Math.max(...last)) break;
  }
  return readings[readings.length - 1] ?? 0;
}

function slope(points: [number, number][]): number {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * Socket density: N idle presenter sockets on one node (embedded defaults),
 * each a different room, server pings on. RSS above the node's baseline per
 * socket, and the node's CPU while idle.
 */
export async function runDensity(config: BenchConfig): Promise<DensityResult> {
  const { sockets, idleS, pingMs } = config.density;
  const problems: string[] = [];
  const limit = openFilesLimit();
  if (limit !== undefined && limit < sockets + 512) {
    throw new Error(
      `open files limit is ${limit}, too low for ${sockets} sockets: run \`ulimit -n ${sockets + 1024}\` (the bench scripts raise it to the hard limit) or lower --sockets`,
    );
  }
  let node: Target | undefined;
  const groups: PresenterGroup[] = [];
  const pglite = pgliteDataDir();
  try {
    node = await startChatrelayNode({
      name: "density-node",
      env: { WS_PING_INTERVAL_MS: String(pingMs), PGLITE_DATA_DIR: pglite.dir },
      nodeArgs: ["--inspect=127.0.0.1:0"],
      profileDir: config.profileDir,
    });
    const wsBase = `ws://127.0.0.1:${node.port}`;
    const inspectorLine = await node.proc.waitForLine(
      (l) => l.startsWith("Debugger listening on ws://"),
      10_000,
      "the inspector's address",
    );
    const inspectorUrl = inspectorLine.slice("Debugger listening on ".length).trim();
    // Mint the tokens first: signing is the bench's cost, not the node's.
    const rooms = Array.from({ length: sockets }, (_, i) => i + 1);
    await Promise.all(rooms.map(presenterToken));
    // Warm the node's code paths (JIT, lazily loaded modules) so the baseline holds them.
    const warmRooms = Array.from({ length: Math.min(100, sockets) }, (_, i) => sockets + 1 + i);
    const warm = await openChatrelayPresenters(wsBase, warmRooms, presenterToken, undefined, {
      concurrency: 50,
      timeoutMs: 30_000,
    });
    await warm.close();

    const settleMs = config.smoke ? 2000 : 20_000;
    const baselineRssBytes = await settledRss(node, settleMs, inspectorUrl);
    const heapUsedBeforeBytes = await heapUsed(node.opsPort ?? node.port);
    // Open in steps and read the settled RSS after each: the slope is the marginal cost of a socket,
    // whatever the node's start-up left behind in its baseline.
    const steps: { sockets: number; rssBytes: number }[] = [{ sockets: 0, rssBytes: baselineRssBytes }];
    const stepCount = Math.min(5, sockets);
    let opened = 0;
    let openMs = 0;
    for (let step = 1; step <= stepCount; step++) {
      const upTo = Math.round((sockets * step) / stepCount);
      const t0 = performance.now();
      const group = await openChatrelayPresenters(wsBase, rooms.slice(opened, upTo), presenterToken, undefined, {
        concurrency: 200,
        timeoutMs: 60_000 + (upTo - opened) * 10,
      });
      openMs += performance.now() - t0;
      groups.push(group);
      opened = upTo;
      steps.push({ sockets: opened, rssBytes: await settledRss(node, settleMs, inspectorUrl) });
    }
    const openSeconds = openMs / 1000;
    process.stderr.write(`  density: ${sockets} sockets open in ${openSeconds.toFixed(1)}s; idle ${idleS}s\n`);

    const meter = new CpuMeter([node]);
    meter.start();
    // The idle window is what is measured (heartbeats at work), not a wait for something to happen.
    await new Promise((r) => setTimeout(r, idleS * 1000));
    const idleCpu = meter.stop();
    const loadedRssBytes = await settledRss(node, settleMs, inspectorUrl);
    const heapUsedAfterBytes = await heapUsed(node.opsPort ?? node.port);
    const first = steps[1];
    const marginal =
      first !== undefined && sockets > first.sockets
        ? Math.round((loadedRssBytes - first.rssBytes) / (sockets - first.sockets))
        : Math.round((loadedRssBytes - baselineRssBytes) / sockets);
    const closed = groups.flatMap((g) => g.unexpectedCloses);
    if (closed.length > 0) problems.push(`${closed.length} sockets closed while idle: ${closed[0]}`);
    if (node.proc.exitInfo) problems.push(`node exited: ${node.proc.describeExit()}`);
    return {
      sockets,
      openSeconds: Math.round(openSeconds * 10) / 10,
      pingIntervalMs: pingMs,
      idleSeconds: idleS,
      baselineRssBytes,
      loadedRssBytes,
      rssPerSocketBytes: Math.round((loadedRssBytes - baselineRssBytes) / sockets),
      rssSlopeBytes: Math.round(slope(steps.map((p) => [p.sockets, p.rssBytes]))),
      rssMarginalBytes: marginal,
      rssPerSocketForTarget: Math.max(marginal, Math.round((loadedRssBytes - baselineRssBytes) / sockets)),
      steps,
      heapUsedBeforeBytes,
      heapUsedAfterBytes,
      heapPerSocketBytes:
        heapUsedBeforeBytes === null || heapUsedAfterBytes === null
          ? null
          : Math.round((heapUsedAfterBytes - heapUsedBeforeBytes) / sockets),
      idleCpu,
      clientRssBytes: process.memoryUsage.rss(),
      problems,
      profiles: [],
    };
  } finally {
    for (const g of groups) await g.close().catch(() => {});
    await node?.proc.stop(15_000);
    await pglite.remove();
  }
}
