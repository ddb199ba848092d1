import type { PostMessageResult } from "@chatrelay/protocol";
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
import { toError } from "./emitter.js";
import { cancel, type FetchLike, host, newClientMsgId, timer } from "./platform.js";
import { currentToken, type TokenSource } from "./token.js";

export interface ChatSenderOptions {
  /** A node or the load balancer: `http(s)://host[:port][/prefix]`. */
  url: string;
  /** The sender's token, or a function giving a current one (asked before every attempt). */
  token: TokenSource;
  /** The fetch implementation: the host's by default. */
  fetch?: FetchLike;
  /** Attempts in all, the first included. @default 6 */
  maxAttempts?: number;
  backoff?: Partial<BackoffOptions>;
  /** A Retry-After longer than this ends the retries (the outcome says how long to wait). @default 30000 */
  maxRetryAfterMs?: number;
  /** One attempt's limit; past it the attempt counts as a network error and is retried. @default 10000 */
  attemptTimeoutMs?: number;
}

export interface SendOptions {
  /** The idempotency key: generated when absent; every retry of this send reuses it. */
  clientMsgId?: string;
}

/** The final outcome of one send, reported once, after the retries. */
export type SendOutcome =
  | {
      ok: true;
      message: PostMessageResult;
      clientMsgId: string;
      attempts: number;
      /** The server had already accepted this clientMsgId (a retry after a lost answer): same id and seq. */
      replayed: boolean;
    }
  | {
      ok: false;
      /** HTTP status of the last attempt; null when the last attempt got no answer. */
      status: number | null;
      /** The server's error code (`rate_limited`, `room_not_live`, ...), or `network_error`. */
      code: string;
      detail: string;
      clientMsgId: string;
      attempts: number;
      /** The server's Retry-After of the last answer, in ms, when it gave one. */
      retryAfterMs?: number;
    };

/** Statuses worth the same request again: the server or a gateway in front of it could not take it now. */
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);

/**
 * Posts chat messages on the v1 surface with at-most-once effect: each send
 * carries a `clientMsgId`, and network errors, timeouts, 502/503/504 and 429
 * are retried with the same id (waiting the server's Retry-After, else with
 * back-off and jitter), so a message whose answer was lost is never stored
 * twice. Every send resolves once, with its final outcome; it never rejects.
 */
export class ChatSender {
  private readonly fetch: FetchLike;
  private readonly backoff: BackoffOptions;
  private readonly maxAttempts: number;
  private readonly maxRetryAfterMs: number;
  private readonly attemptTimeoutMs: number;

  constructor(private readonly options: ChatSenderOptions) {
    const fetchImpl = options.fetch ?? host.fetch?.bind(globalThis);
    if (fetchImpl === undefined) throw new Error("no fetch implementation: pass `fetch`");
    this.fetch = fetchImpl;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 6);
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 30_000;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 10_000;
  }

  async send(roomId: number, text: string, options: SendOptions = {}): Promise<SendOutcome> {
    const clientMsgId = options.clientMsgId ?? newClientMsgId();
    const url = `${this.options.url.replace(/\/+$/, "")}/v1/rooms/${roomId}/messages`;
    const body = JSON.stringify({ text, clientMsgId });
    for (let attempt = 1; ; attempt++) {
      const answer = await this.attempt(url, body);
      if (answer.status === 201 || answer.status === 200) {
        return {
          ok: true,
          message: answer.json as unknown as PostMessageResult,
          clientMsgId,
          attempts: attempt,
          replayed: answer.replayed,
        };
      }
      const retryable = answer.status === null || RETRYABLE_STATUS.has(answer.status);
      const failure: SendOutcome = {
        ok: false,
        status: answer.status,
        code: answer.status === null ? "network_error" : stringField(answer.json, "code", `http_${answer.status}`),
        detail: answer.status === null ? answer.error : stringField(answer.json, "detail", ""),
        clientMsgId,
        attempts: attempt,
        ...(answer.retryAfterMs === undefined ? {} : { retryAfterMs: answer.retryAfterMs }),
      };
      if (!retryable || attempt >= this.maxAttempts) return failure;
      if (answer.retryAfterMs !== undefined && answer.retryAfterMs > this.maxRetryAfterMs) return failure;
      await pause(answer.retryAfterMs ?? backoffDelay(attempt - 1, this.backoff));
    }
  }

  private async attempt(url: string, body: string): Promise<Answer> {
    let token: string;
    try {
      token = await currentToken(this.options.token);
    } catch (err) {
      return { status: null, error: `the token source failed: ${toError(err).message}`, replayed: false };
    }
    const Abort = host.AbortController;
    const controller = Abort === undefined ? undefined : new Abort();
    const deadline = timer(() => controller?.abort(), this.attemptTimeoutMs);
    try {
      const res = await this.fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body,
        ...(controller === undefined ? {} : { signal: controller.signal }),
      });
      const text = await res.text();
      let json: Record<string, unknown> = {};
      try {
        const parsed: unknown = JSON.parse(text);
        if (parsed !== null && typeof parsed === "object") json = parsed as Record<string, unknown>;
      } catch {
        // A gateway's HTML error page: the status says enough.
      }
      const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
      return {
        status: res.status,
        json,
        replayed: res.headers.get("idempotent-replayed") === "true",
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      };
    } catch (err) {
      return { status: null, error: toError(err).message, replayed: false };
    } finally {
      cancel(deadline);
    }
  }
}

type Answer =
  | { status: number; json: Record<string, unknown>; replayed: boolean; retryAfterMs?: number }
  | { status: null; error: string; replayed: false; json?: undefined; retryAfterMs?: undefined };

function stringField(json: Record<string, unknown> | undefined, key: string, fallback: string): string {
  const value = json?.[key];
  return typeof value === "string" ? value : fallback;
}

/** Retry-After in seconds or as an HTTP date, in ms; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => {
    timer(resolve, ms);
  });
}
