import { type RunningNginx, startNginx } from "./nginx.js";
import { NodeProcess } from "./processes.js";
import { pollUntil } from "./wait.js";

/** Node processes behind the real nginx: what `docker compose up --scale chat=N` runs, minus Docker. */
export interface NginxCluster {
  /** In start order; a test that restarts a node replaces its entry. */
  nodes: NodeProcess[];
  proxy: RunningNginx;
  /** Stops nginx and SIGKILLs every node (idempotent). */
  stop(): Promise<void>;
}

/**
 * Starts one node per name with `env`, then nginx in front of them. If any part fails to start,
 * whatever did start is stopped before the error is thrown.
 */
export async function startNginxCluster(names: string[], env: Record<string, string>): Promise<NginxCluster> {
  const nodes: NodeProcess[] = [];
  let proxy: RunningNginx | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      await proxy?.stop();
      await Promise.allSettled(nodes.map((n) => n.kill("SIGKILL")));
    })();
    return stopped;
  };
  try {
    const started = await Promise.allSettled(names.map((name) => NodeProcess.start(name, env)));
    for (const r of started) if (r.status === "fulfilled") nodes.push(r.value);
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    proxy = await startNginx(nodes.map((n) => n.port));
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, proxy, stop };
}

/**
 * The node that logged attaching this presenter connection. The client can see its `ready` before
 * the node's log line has been read from its stdout, so this waits (bounded) for the line.
 */
export function nodeAttaching(nodes: NodeProcess[], connId: string, timeoutMs = 10_000): Promise<NodeProcess> {
  return pollUntil(
    async () => nodes.find((n) => n.lines.some((l) => l.msg === "presenter attached" && l.connId === connId)),
    `a node logging that it attached ${connId}`,
    timeoutMs,
    20,
  );
}
