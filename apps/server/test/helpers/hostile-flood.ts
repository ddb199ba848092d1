import { connect, type Socket } from "node:net";
import WebSocket from "ws";
import { parseResponse, type RawResponse } from "./hostile-raw-http.js";

/**
 * `count` client-to-server text frames of `payload` (< 126 bytes), written
 * straight to the TCP socket: masked with an all-zero key (RFC 6455 requires
 * the mask bit, not a random key), so a flood costs the test almost nothing.
 */
export function maskedTextFrames(payload: string, count: number): Buffer {
  const body = Buffer.from(payload);
  if (body.length >= 126) throw new Error("payload too long for a short frame");
  const frame = Buffer.concat([Buffer.from([0x81, 0x80 | body.length, 0, 0, 0, 0]), body]);
  return Buffer.concat(Array.from({ length: count }, () => frame));
}

/** The TCP socket under a ws client (to pause reading, or write raw frames). */
export function tcpOf(ws: WebSocket): Socket {
  const socket = (ws as unknown as { _socket?: Socket })._socket;
  if (!socket) throw new Error("the WebSocket has no TCP socket (not open?)");
  return socket;
}

/** A ws client that counts frames instead of keeping them (floods receive millions). */
export class CountingSocket {
  received = 0;
  closed: { code: number; reason: string } | undefined;
  readonly first: Promise<string>;
  private closeWaiters: (() => void)[] = [];

  constructor(readonly ws: WebSocket) {
    this.first = new Promise((resolve) => ws.once("message", (data) => resolve(data.toString())));
    ws.on("message", () => {
      this.received++;
    });
    ws.on("error", () => {});
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.closeWaiters) w();
    });
  }

  static async open(url: string): Promise<CountingSocket> {
    const ws = new WebSocket(url);
    const socket = new CountingSocket(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return socket;
  }

  /** Resolves true once closed, false after `timeoutMs`. */
  waitClose(timeoutMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

/** Resolves on 'drain', or when the socket closes or errors; rejects after `timeoutMs`. */
export function drained(socket: Socket, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      socket.off("drain", done);
      socket.off("close", done);
      socket.off("error", done);
      resolve();
    };
    const timer = setTimeout(() => {
      socket.off("drain", done);
      socket.off("close", done);
      socket.off("error", done);
      reject(new Error(`socket did not drain within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("drain", done);
    socket.once("close", done);
    socket.once("error", done);
  });
}

/** A raw TCP connection that records what the server sends and when it closes. */
export class RawConnection {
  data = Buffer.alloc(0);
  closedAt: number | undefined;
  readonly openedAt = Date.now();
  private waiters: (() => void)[] = [];

  constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk]);
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closedAt = Date.now();
      for (const w of this.waiters) w();
    });
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => resolve(new RawConnection(socket)));
      socket.once("error", reject);
    });
  }

  /** What the server answered before closing, if anything. */
  response(): RawResponse | undefined {
    return this.data.length === 0 ? undefined : parseResponse(this.data, true);
  }

  waitClose(timeoutMs: number): Promise<boolean> {
    if (this.closedAt !== undefined) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}
