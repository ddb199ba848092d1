import {
  type ChatMessageView,
  CloseCode,
  type ModerationEventView,
  SEED_SOCKET_PATH,
  type UserType,
} from "@chatrelay/protocol";
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
import { Emitter, toError } from "./emitter.js";
import { cancel, host, OPEN, timer, type WebSocketConstructor, type WebSocketLike } from "./platform.js";
import { currentToken, type TokenSource, tokenExpiry } from "./token.js";

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface PresenterClientOptions {
  /** A node or the load balancer in front of the nodes: `http(s)://` or `ws(s)://`, any path prefix kept. */
  url: string;
  roomId: number;
  /** The presenter's token, or a function giving a fresh one (called on every connect and refresh). */
  token: TokenSource;
  /** "v1" (default) or "seed": the original server's `/chatting` socket. */
  surface?: "v1" | "seed";
  /** The WebSocket implementation: the browser's by default; in Node pass `ws`'s `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /**
   * The last seq the application already processed (kept across restarts of the app): the first
   * connect resumes after it. Unset: the first connect starts live (or where the server's
   * RESUME_DEFAULT says), and every later one resumes after the last message delivered.
   */
  lastSeq?: number;
  backoff?: Partial<BackoffOptions>;
  /** A cumulative ack leaves at most this often (and on close). @default 250 */
  ackDelayMs?: number;
  /** v1: send a fresh token this long before the current one expires. @default 30000 */
  refreshBeforeExpiryMs?: number;
  /** v1: an application ping this often; a socket that answers none within `pongTimeoutMs` is dropped and reconnected. @default 20000 */
  pingIntervalMs?: number;
  /** @default 10000 */
  pongTimeoutMs?: number;
  /** From opening the socket to the server's `ready`: past it the attempt is dropped and retried (a node that stalls mid-handshake). @default 10000 */
  connectTimeoutMs?: number;
  /** Seed surface: also deliver moderation events (the start frame's `events` opt-in). @default true */
  moderationEvents?: boolean;
}

export interface ReadyInfo {
  roomId: number;
  connId: string;
  /** The room's last seq when this connection attached. */
  lastSeq: number;
  /** Where the server resumed this connection from (null: live). */
  resumeFrom: number | null;
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** Whether the client reconnects (after `delayMs`). */
  reconnecting: boolean;
  delayMs?: number;
}

export type PresenterEvents = {
  /** A chat message, exactly once and in seq order across reconnects. */
  message: (message: ChatMessageView) => void;
  /** A moderation event (delete, clear, ban, ...), in the same seq order as the messages. */
  moderation: (event: ModerationEventView) => void;
  /**
   * Retention removed seqs fromSeq..toSeq from the log before they reached this client: they will
   * never be delivered. `lastSeq` moves past them, so later resumes do not ask for them again.
   */
  gone: (range: { fromSeq: number; toSeq: number }) => void;
  state: (state: ConnectionState, previous: ConnectionState) => void;
  ready: (info: ReadyInfo) => void;
  close: (info: CloseInfo) => void;
  /** Problems the client handles itself (a failed token refresh, a frame it cannot read, a throwing listener). */
  error: (err: Error) => void;
};

/** How soon a refresh that got no newer token asks the token source again. */
const REFRESH_RETRY_MS = 1000;

/** Closes after which reconnecting cannot help: stopped, or replaced by the same presenter's newer connection. */
const FINAL_CLOSES = new Set<number>([CloseCode.Normal, CloseCode.Replaced]);

/**
 * A presenter's connection that keeps the relay's promise: every message the
 * server accepted is handed to the application once and in seq order, across
 * node crashes, restarts and network drops. It reconnects with back-off and
 * jitter to any node on every close the protocol calls retryable, resumes
 * after the last seq it delivered, drops what a resume repeats, acks
 * cumulatively, and (v1) refreshes its token before it expires.
 */
export class PresenterClient extends Emitter<PresenterEvents> {
  private readonly options: Required<Omit<PresenterClientOptions, "lastSeq" | "backoff" | "WebSocket">> & {
    backoff: BackoffOptions;
    WebSocket: WebSocketConstructor;
  };
  private socket: WebSocketLike | undefined;
  private stateValue: ConnectionState = "idle";
  private lastSeqValue: number | undefined;
  private ackedSeq = 0;
  private attempt = 0;
  private wanted = false;
  private ackTimer: unknown;
  private retryTimer: unknown;
  private refreshTimer: unknown;
  private pingTimer: unknown;
  private pongTimer: unknown;
  private connectTimer: unknown;
  private token = "";
  /** Frames dropped because their seq was already delivered (the seam of a resume). */
  duplicatesDropped = 0;
  /** Connections opened after the first one. */
  reconnects = 0;

  constructor(options: PresenterClientOptions) {
    super();
    const WebSocketImpl = options.WebSocket ?? host.WebSocket;
    if (WebSocketImpl === undefined) {
      throw new Error("no WebSocket implementation: pass `WebSocket` (in Node: import { WebSocket } from 'ws')");
    }
    if (!Number.isSafeInteger(options.roomId) || options.roomId < 1)
      throw new Error("roomId must be a positive integer");
    this.options = {
      url: options.url,
      roomId: options.roomId,
      token: options.token,
      surface: options.surface ?? "v1",
      WebSocket: WebSocketImpl,
      backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
      ackDelayMs: options.ackDelayMs ?? 250,
      refreshBeforeExpiryMs: options.refreshBeforeExpiryMs ?? 30_000,
      pingIntervalMs: options.pingIntervalMs ?? 20_000,
      pongTimeoutMs: options.pongTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      moderationEvents: options.moderationEvents ?? true,
    };
    this.lastSeqValue = options.lastSeq;
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** The last seq delivered to the application (undefined before the first). */
  get lastSeq(): number | undefined {
    return this.lastSeqValue;
  }

  /** Connects, and keeps connecting until close() or stop(), or a close that ends the session (stopped, replaced). */
  connect(): void {
    if (this.wanted) return;
    this.wanted = true;
    this.attempt = 0;
    void this.open();
  }

  /** Closes the socket and stops reconnecting; the room stays live for the server's grace period. */
  close(): void {
    this.shutdown(false);
  }

  /** Ends the broadcast: the server releases the room at once. */
  stop(): void {
    this.shutdown(true);
  }

  /** Sends a frame the server understands on this surface (e.g. a v1 `moderate` frame); false when not connected. */
  sendFrame(frame: Record<string, unknown>): boolean {
    const socket = this.socket;
    if (socket === undefined || socket.readyState !== OPEN || this.stateValue !== "open") return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  private shutdown(stop: boolean): void {
    this.wanted = false;
    cancel(this.retryTimer);
    this.retryTimer = undefined;
    const socket = this.socket;
    if (socket !== undefined && socket.readyState === OPEN) {
      this.flushAck();
      if (stop) socket.send(JSON.stringify(this.options.surface === "v1" ? { type: "stop" } : { id: "stop" }));
      socket.close(1000, stop ? "stopped" : "closed");
    }
    this.clearConnectionTimers();
    this.setState("closed");
  }

  private async open(): Promise<void> {
    this.setState(this.reconnects > 0 || this.attempt > 0 ? "reconnecting" : "connecting");
    let token: string;
    try {
      token = await currentToken(this.options.token);
    } catch (err) {
      this.emit("error", new Error(`the token source failed: ${toError(err).message}`));
      this.scheduleReconnect({ code: 1006, reason: "no token" });
      return;
    }
    if (!this.wanted) return;
    this.token = token;
    const { surface, roomId } = this.options;
    const base = this.options.url.replace(/^http/, "ws").replace(/\/+$/, "");
    let url: string;
    if (surface === "v1") {
      const resume = this.lastSeqValue === undefined ? "" : `&lastSeq=${this.lastSeqValue}`;
      url = `${base}/v1/rooms/${roomId}/presenter?access_token=${encodeURIComponent(token)}${resume}`;
    } else {
      url = `${base}${SEED_SOCKET_PATH}`;
    }
    let socket: WebSocketLike;
    try {
      socket = new this.options.WebSocket(url);
    } catch (err) {
      this.emit("error", toError(err));
      this.scheduleReconnect({ code: 1006, reason: "cannot open" });
      return;
    }
    this.socket = socket;
    let closed = false;
    this.connectTimer = timer(() => {
      this.connectTimer = undefined;
      if (this.socket !== socket) return;
      socket.close(4000, "no ready in time");
      socket.onclose?.({ code: 1006, reason: "no ready in time" });
    }, this.options.connectTimeoutMs);
    socket.onopen = () => {
      if (surface === "seed") {
        const start: Record<string, unknown> = { id: "start", token, ready: true };
        if (this.lastSeqValue !== undefined) start.lastSeq = this.lastSeqValue;
        if (this.options.moderationEvents) start.events = true;
        start.gone = true;
        socket.send(JSON.stringify(start));
      }
    };
    socket.onmessage = (event) => {
      if (this.socket === socket) this.onFrame(event.data);
    };
    socket.onerror = () => {
      // Always followed by a close event: handled there.
    };
    socket.onclose = (event) => {
      if (closed) return;
      closed = true;
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.clearConnectionTimers();
      if (!this.wanted) return;
      this.scheduleReconnect({ code: event.code, reason: event.reason });
    };
  }

  private scheduleReconnect(close: { code: number; reason: string }): void {
    const staticTokenRefused = close.code === CloseCode.Unauthorized && typeof this.options.token === "string";
    if (FINAL_CLOSES.has(close.code) || staticTokenRefused) {
      this.wanted = false;
      this.emit("close", { ...close, reconnecting: false });
      this.setState("closed");
      return;
    }
    const delayMs = backoffDelay(this.attempt++, this.options.backoff);
    this.emit("close", { ...close, reconnecting: true, delayMs });
    this.setState("reconnecting");
    this.retryTimer = timer(() => {
      this.retryTimer = undefined;
      if (!this.wanted) return;
      this.reconnects++;
      void this.open();
    }, delayMs);
  }

  private onFrame(data: unknown): void {
    if (typeof data !== "string") return;
    let frame: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(data);
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return;
      frame = parsed as Record<string, unknown>;
    } catch {
      return; // e.g. the seed's bare "pong"
    }
    const kind = this.options.surface === "v1" ? frame.type : frame.id;
    switch (kind) {
      case "ready":
        this.onReady(frame);
        return;
      case "message":
        this.deliver(frame.seq, () => this.emit("message", frame as unknown as ChatMessageView));
        return;
      case "sendChatting":
        this.deliver(frame.seq, () => this.emit("message", seedMessage(frame, this.options.roomId)));
        return;
      case "moderation":
        this.deliver(frame.seq, () => this.emit("moderation", moderationEvent(frame, this.options.surface)));
        return;
      case "gone":
        this.onGone(frame.fromSeq, frame.toSeq);
        return;
      case "pong":
        cancel(this.pongTimer);
        this.pongTimer = undefined;
        return;
      case "authenticated": {
        this.scheduleRefresh();
        return;
      }
      case "error":
      case "tokenException": {
        const code = typeof frame.code === "string" ? frame.code : String(kind);
        const message = typeof frame.message === "string" ? frame.message : "";
        this.emit("error", new Error(`server: ${code}${message ? `: ${message}` : ""}`));
        return;
      }
      default:
        return;
    }
  }

  private onReady(frame: Record<string, unknown>): void {
    const info: ReadyInfo = {
      roomId: Number(frame.roomId),
      connId: String(frame.connId),
      lastSeq: Number(frame.lastSeq),
      resumeFrom: typeof frame.resumeFrom === "number" ? frame.resumeFrom : null,
    };
    // From here on, every reconnect resumes: a live start would skip what was sent while away.
    if (this.lastSeqValue === undefined) this.lastSeqValue = info.resumeFrom ?? info.lastSeq;
    cancel(this.connectTimer);
    this.connectTimer = undefined;
    this.attempt = 0;
    this.setState("open");
    this.emit("ready", info);
    this.scheduleRefresh();
    this.schedulePing();
  }

  /** Retention removed a range: said once, and lastSeq moves past it (the range is never asked for again). */
  private onGone(fromSeq: unknown, toSeq: unknown): void {
    if (!Number.isSafeInteger(fromSeq) || !Number.isSafeInteger(toSeq)) return;
    const range = { fromSeq: fromSeq as number, toSeq: toSeq as number };
    if (range.toSeq < range.fromSeq || (this.lastSeqValue !== undefined && range.toSeq <= this.lastSeqValue)) return;
    this.deliver(range.toSeq, () => this.emit("gone", range));
  }

  /** Hands a seq'd frame to the application unless it was already delivered; then acks (soon). */
  private deliver(rawSeq: unknown, emit: () => void): void {
    if (typeof rawSeq !== "number" || !Number.isSafeInteger(rawSeq)) return;
    if (this.lastSeqValue !== undefined && rawSeq <= this.lastSeqValue) {
      this.duplicatesDropped++;
      return;
    }
    this.lastSeqValue = rawSeq;
    emit();
    if (this.ackTimer === undefined) {
      this.ackTimer = timer(() => {
        this.ackTimer = undefined;
        this.flushAck();
      }, this.options.ackDelayMs);
    }
  }

  private flushAck(): void {
    cancel(this.ackTimer);
    this.ackTimer = undefined;
    const seq = this.lastSeqValue;
    if (seq === undefined || seq <= this.ackedSeq) return;
    const frame = this.options.surface === "v1" ? { type: "ack", seq } : { id: "ack", seq };
    if (this.sendFrame(frame)) this.ackedSeq = seq;
  }

  /** v1: sends a fresh token before the current one expires (the server closes the socket at its expiry). */
  private scheduleRefresh(): void {
    cancel(this.refreshTimer);
    this.refreshTimer = undefined;
    if (this.options.surface !== "v1" || typeof this.options.token === "string") return;
    const expiry = tokenExpiry(this.token);
    if (expiry === undefined) return;
    const inMs = Math.max(0, expiry - Date.now() - this.options.refreshBeforeExpiryMs);
    this.refreshTimer = timer(() => {
      this.refreshTimer = undefined;
      void this.refresh();
    }, inMs);
  }

  private async refresh(): Promise<void> {
    let token: string;
    try {
      token = await currentToken(this.options.token);
    } catch (err) {
      this.emit("error", new Error(`token refresh failed: ${toError(err).message}`));
      return this.retryRefresh();
    }
    // A source that still gives the same token (or one expiring no later) is asked again shortly.
    if (token === this.token || (tokenExpiry(token) ?? 0) <= (tokenExpiry(this.token) ?? 0)) return this.retryRefresh();
    this.token = token;
    // The server's `authenticated` answer schedules the next refresh.
    this.sendFrame({ type: "auth", token });
  }

  private retryRefresh(): void {
    const expiry = tokenExpiry(this.token);
    if (expiry === undefined || expiry <= Date.now() || this.stateValue !== "open") return;
    this.refreshTimer = timer(
      () => {
        this.refreshTimer = undefined;
        void this.refresh();
      },
      Math.min(REFRESH_RETRY_MS, Math.max(0, (expiry - Date.now()) / 2)),
    );
  }

  private schedulePing(): void {
    if (this.options.surface !== "v1") return;
    cancel(this.pingTimer);
    this.pingTimer = timer(() => {
      this.pingTimer = undefined;
      // One answer awaited at a time: while one is, its deadline stands and no new ping goes out.
      if (this.pongTimer !== undefined) return this.schedulePing();
      if (!this.sendFrame({ type: "ping" })) return;
      this.pongTimer = timer(() => {
        // No answer: a half-open socket (the node stalled, a NAT forgot us). Drop it and reconnect.
        this.socket?.close(4000, "no pong");
        const socket = this.socket;
        if (socket !== undefined) socket.onclose?.({ code: 1006, reason: "no pong" });
      }, this.options.pongTimeoutMs);
      this.schedulePing();
    }, this.options.pingIntervalMs);
  }

  private clearConnectionTimers(): void {
    for (const handle of [this.ackTimer, this.refreshTimer, this.pingTimer, this.pongTimer, this.connectTimer]) {
      cancel(handle);
    }
    this.ackTimer = this.refreshTimer = this.pingTimer = this.pongTimer = this.connectTimer = undefined;
  }

  private setState(next: ConnectionState): void {
    const previous = this.stateValue;
    if (previous === next) return;
    this.stateValue = next;
    this.emit("state", next, previous);
  }
}

function seedMessage(frame: Record<string, unknown>, roomId: number): ChatMessageView {
  return {
    id: String(frame.messageId),
    roomId,
    seq: frame.seq as number,
    senderId: Number(frame.senderId),
    nickname: String(frame.nickname),
    userType: (frame.userType === "presenter" ? "presenter" : "viewer") as UserType,
    text: String(frame.message),
    sentAt: String(frame.sentAt),
  };
}

function moderationEvent(frame: Record<string, unknown>, surface: "v1" | "seed"): ModerationEventView {
  const { type: _type, id, eventId, ...rest } = frame;
  return { ...(rest as Omit<ModerationEventView, "id">), id: String(surface === "v1" ? id : eventId) };
}
