import { performance } from "node:perf_hooks";
import { io, type Socket } from "socket.io-client";
import WebSocket from "ws";
import { withTimeout } from "../util/procs.js";
import type { Tracker } from "./tracker.js";

export interface PresenterGroup {
  /** Sockets that closed after they were ready (each one is a failure of the run). */
  readonly unexpectedCloses: string[];
  readonly count: number;
  close(): Promise<void>;
}

interface OpenOptions {
  /** Sockets being opened at once. */
  concurrency: number;
  /** Bound on the whole opening. */
  timeoutMs: number;
}

/** Runs `open` for every item, at most `concurrency` at a time. */
async function forEachLimited<T>(items: T[], concurrency: number, open: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await open(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/**
 * chatrelay v1 presenter sockets, one per room; resolves once every socket got its
 * `ready` frame. Message frames go to the tracker (unless it is undefined: idle sockets).
 */
export async function openChatrelayPresenters(
  wsBase: string,
  rooms: number[],
  tokenOf: (room: number) => Promise<string>,
  tracker: Tracker | undefined,
  options: OpenOptions,
): Promise<PresenterGroup> {
  const sockets: WebSocket[] = [];
  const unexpectedCloses: string[] = [];
  let closing = false;
  const openOne = async (room: number) => {
    const token = await tokenOf(room);
    const ws = new WebSocket(`${wsBase}/v1/rooms/${room}/presenter?access_token=${token}`, {
      perMessageDeflate: false,
    });
    sockets.push(ws);
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      ws.on("message", (data) => {
        const now = performance.now();
        const frame = JSON.parse(data.toString()) as {
          type: string;
          seq?: number;
          text?: string;
          lastSeq?: number;
          message?: string;
        };
        if (frame.type === "message") {
          tracker?.onFrame(room, frame.seq as number, frame.text as string, now);
        } else if (frame.type === "ready") {
          tracker?.roomReady(room, frame.lastSeq ?? 0);
          ready = true;
          resolve();
        } else if (frame.type === "error") {
          tracker?.presenterErrors.push(`room ${room}: ${frame.message}`);
        }
      });
      ws.on("unexpected-response", (_req, res) => {
        reject(new Error(`presenter socket of room ${room} refused: HTTP ${res.statusCode}`));
      });
      ws.on("error", (err) => {
        if (!ready) reject(new Error(`presenter socket of room ${room}: ${err.message}`));
      });
      ws.on("close", (code, reason) => {
        if (!ready) reject(new Error(`presenter socket of room ${room} closed before ready: ${code} ${reason}`));
        else if (!closing) unexpectedCloses.push(`room ${room}: ${code} ${reason.toString()}`);
      });
    });
  };
  try {
    await withTimeout(
      forEachLimited(rooms, options.concurrency, openOne),
      options.timeoutMs,
      `${rooms.length} presenter sockets to be ready`,
    );
  } catch (err) {
    for (const ws of sockets) ws.terminate();
    throw err;
  }
  return {
    unexpectedCloses,
    count: sockets.length,
    async close() {
      closing = true;
      await Promise.all(
        sockets.map(
          (ws) =>
            new Promise<void>((resolve) => {
              if (ws.readyState === WebSocket.CLOSED) return resolve();
              ws.once("close", () => resolve());
              // Normal close: the room stops being live (no grace window left behind).
              ws.close(1000, "bench done");
              setTimeout(() => ws.terminate(), 2000).unref();
            }),
        ),
      );
    },
  };
}

/** Socket.IO presenters of the peer, one connection per room (no multiplexing). */
export async function openSocketIoPresenters(
  baseUrl: string,
  rooms: number[],
  tokenOf: (room: number) => Promise<string>,
  tracker: Tracker,
  options: OpenOptions,
): Promise<PresenterGroup> {
  const sockets: Socket[] = [];
  const unexpectedCloses: string[] = [];
  let closing = false;
  const openOne = async (room: number) => {
    const token = await tokenOf(room);
    const socket = io(baseUrl, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      auth: { token },
      query: { room: String(room) },
    });
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      socket.on("message", (m: { seq: number; text: string }) => {
        tracker.onFrame(room, m.seq, m.text, performance.now());
      });
      socket.on("ready", (info: { lastSeq: number }) => {
        tracker.roomReady(room, info.lastSeq);
        ready = true;
        resolve();
      });
      socket.on("connect_error", (err) => reject(new Error(`socket.io presenter of room ${room}: ${err.message}`)));
      socket.on("disconnect", (reason) => {
        if (!ready) reject(new Error(`socket.io presenter of room ${room} disconnected before ready: ${reason}`));
        else if (!closing) unexpectedCloses.push(`room ${room}: ${reason}`);
      });
    });
  };
  try {
    await withTimeout(
      forEachLimited(rooms, options.concurrency, openOne),
      options.timeoutMs,
      `${rooms.length} socket.io presenters to be ready`,
    );
  } catch (err) {
    for (const s of sockets) s.disconnect();
    throw err;
  }
  return {
    unexpectedCloses,
    count: sockets.length,
    async close() {
      closing = true;
      for (const s of sockets) s.disconnect();
    },
  };
}
