/**
 * What the SDK needs from its host, declared structurally: browsers and Node 20
 * both provide it, and the package's own types pull in neither the DOM nor
 * Node's declarations (an application's own lib settings stay in charge).
 */

/** The browser WebSocket API as both browsers and the `ws` package implement it. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
}

/**
 * A listener type checked like a method (bivariantly), so that implementations whose
 * listeners take richer event objects (`ws`'s MessageEvent, the DOM's) still fit.
 */
type Handler<E> = { bivariant(event: E): void }["bivariant"];

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** WebSocket.OPEN, the same in every implementation. */
export const OPEN = 1;

export interface FetchResponseLike {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}

export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal?: unknown },
) => Promise<FetchResponseLike>;

interface Host {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  fetch?: FetchLike;
  WebSocket?: WebSocketConstructor;
  AbortController?: new () => { signal: unknown; abort(): void };
  crypto?: { randomUUID?: () => string };
}

export const host = globalThis as unknown as Host;

/** A timer handle that never keeps a Node process alive on its own (no-op in browsers). */
export function timer(fn: () => void, ms: number): unknown {
  const handle = host.setTimeout(fn, ms) as { unref?: () => void };
  handle.unref?.();
  return handle;
}

export function cancel(handle: unknown): void {
  if (handle !== undefined) host.clearTimeout(handle);
}

/** A client message id: a random UUID where the host has one, else 128 random bits from Math.random. */
export function newClientMsgId(): string {
  const uuid = host.crypto?.randomUUID?.();
  if (uuid !== undefined) return uuid;
  let id = "";
  for (let i = 0; i < 4; i++)
    id += Math.floor(Math.random() * 2 ** 32)
      .toString(16)
      .padStart(8, "0");
  return id;
}
