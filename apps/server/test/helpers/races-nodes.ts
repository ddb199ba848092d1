import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { messages } from "./cluster.js";
import { request } from "./http.js";
import { NodeProcess } from "./processes.js";
import { mintToken } from "./tokens.js";
import { TestSocket } from "./ws-client.js";

/** Shared pieces of the race tests: nodes with failpoints on, raw presenter sockets, the log read back. */

/** Starts nodes named `${prefix}1..n` with failpoints on; the caller stops them. */
export function startFailpointNodes(
  prefix: string,
  count: number,
  env: Record<string, string>,
): Promise<NodeProcess[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      NodeProcess.start(`${prefix}${i + 1}`, { CHATRELAY_FAILPOINTS: "on", ...env }),
    ),
  );
}

export interface Ready {
  lastSeq: number;
  resumeFrom: number | null;
}

/**
 * A v1 presenter socket, opened but not waited on for `ready`: its attach may be paused at a
 * failpoint, or refused because a newer connection took the room.
 */
export async function connectPresenter(node: NodeProcess, room: number, lastSeq?: number): Promise<TestSocket> {
  const token = await mintToken({ user_idx: room, nickname: `host${room}` });
  const query = lastSeq === undefined ? "" : `&lastSeq=${lastSeq}`;
  const socket = new TestSocket(`${node.ws}/v1/rooms/${room}/presenter?access_token=${token}${query}`);
  await socket.open();
  return socket;
}

/** The socket's `ready` frame, once it came. */
export function readyOf(socket: TestSocket, timeoutMs = 15_000): Promise<Ready> {
  return socket.next<Ready & { type: string }>((f) => f.type === "ready", "ready", timeoutMs);
}

/** Whether the socket ever got `ready`. */
export function gotReady(socket: TestSocket): boolean {
  return socket.json<{ type: string }>().some((f) => f.type === "ready");
}

export function seqsOf(socket: TestSocket): number[] {
  return messages(socket).map((m) => m.seq);
}

/** Seqs `from..to`, both included. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** Waits until the socket delivered every seq up to `seq`. */
export function untilSeq(socket: TestSocket, seq: number, what: string, timeoutMs = 20_000): Promise<void> {
  return socket.until(() => seqsOf(socket).some((s) => s >= seq), what, timeoutMs);
}

interface HistoryItem {
  id: string;
  seq: number;
  text: string;
  kind: string;
}

/** Every message of a room, read through a node's history API (another process than the one that took them). */
export async function readLog(node: NodeProcess, room: number): Promise<HistoryItem[]> {
  const token = await mintToken({ user_idx: 7700 });
  const items: HistoryItem[] = [];
  let before: number | null | undefined;
  for (;;) {
    const query = before === undefined ? "" : `&before=${before}`;
    const res = await request<{ items: HistoryItem[]; nextBefore: number | null }>(
      `${node.http}/v1/rooms/${room}/messages?limit=100${query}`,
      { headers: { authorization: `Bearer ${token}` } },
    );
    if (res.status !== 200) throw new Error(`history of room ${room} on ${node.name}: ${res.status} ${res.text}`);
    items.push(...res.body.items);
    before = res.body.nextBefore;
    if (before === null) break;
  }
  return items.sort((x, y) => x.seq - y.seq);
}

/** A fresh folder for a PGlite log on disk, removed by `remove`. */
export function pgliteDir(): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), "chatrelay-pglite-"));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Stops a process with SIGSTOP / SIGCONT (a node frozen: no heartbeat, no reads). */
export function freeze(node: NodeProcess): void {
  node.child.kill("SIGSTOP");
}

export function thaw(node: NodeProcess): void {
  node.child.kill("SIGCONT");
}
