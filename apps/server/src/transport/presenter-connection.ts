import { randomBytes } from "node:crypto";
import { CloseCode, CloseReason, ErrorCode, type ModerationAction, SocketErrorCode } from "@chatrelay/protocol";
import type { FastifyBaseLogger } from "fastify";
import type { RawData, WebSocket } from "ws";
import { mayOpenPresenter } from "../auth/presenter-rule.js";
import { AuthError, type Principal, type TokenVerifier } from "../auth/token-verifier.js";
import type { ChatMessage } from "../core/message.js";
import type { ModerationCommand } from "../core/moderation.js";
import type { PresenterSession, PresenterSink } from "../core/presenter-session.js";
import type { Relay } from "../core/relay.js";
import { RelayError } from "../core/relay-error.js";
import { type ClientCommand, type DecodedFrame, invalid } from "./client-frame.js";
import type { FrameCodec } from "./frame-codec.js";

/** How long a server-closed socket may take to finish its close handshake before it is cut. */
const CLOSE_GRACE_MS = 2000;
/** setTimeout's longest delay; a later expiry re-arms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** `moderate` frames run one at a time, in order; at most this many wait (more are refused). */
const MAX_MODERATE_PENDING = 8;

/** What every presenter connection of a node shares (one object, not closures per socket). */
export interface SocketContext {
  relay: Relay;
  verifyToken: TokenVerifier;
  /** Roles allowed to open a presenter socket (undefined: any token of the room's user). */
  presenterRoles: readonly string[] | undefined;
  /** Bytes a socket may have waiting to be sent; past it the socket is closed (4002), whatever the frame. */
  sendBufferBytes: number;
  /** More than this many bad frames within `badFrameWindowMs` closes the socket (1008). */
  badFrameLimit: number;
  badFrameWindowMs: number;
  /** Seed sockets of this node still waiting for their start frame (unauthenticated). */
  pendingStarts: { count: number };
  /** Applies a `moderate` frame as the socket's user on its room; undefined: moderation frames are refused. */
  moderate?: (
    principal: Principal,
    roomId: number,
    change: ModerationCommand,
  ) => Promise<{ action: ModerationAction; seq: number }>;
  log: FastifyBaseLogger;
}

type Phase = "awaiting-start" | "starting" | "attached";

/**
 * One presenter socket, whatever its surface: the one frame loop (decode,
 * dispatch, error reply, bad-frame budget), every write bounded by the send
 * buffer, the token's lifetime, liveness pings, and the binding to a relay
 * session. Its close maps to "stop" (normal close or explicit stop) or
 * "grace" (anything else: the presenter is expected back).
 */
export class PresenterConnection implements PresenterSink {
  private session: PresenterSession | undefined;
  private phase: Phase = "awaiting-start";
  /** Set once the socket closed: what its close means for the room. */
  private closedAs: "stop" | "grace" | undefined;
  private stopped = false;
  private principal: Principal | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private badFrames = 0;
  private badFramesSince = 0;
  /** Payload of our last ping while its pong is outstanding; only its echo proves the peer reads. */
  private pingPayload: Buffer | undefined;
  /** The room this socket presents (set when it starts attaching). */
  private roomId: number | undefined;
  private moderatePending = 0;
  /** The last queued `moderate` frame; undefined until the first (idle sockets hold nothing). */
  private moderateQueue: Promise<void> | undefined;
  /** Moderation events are sent as frames: always on v1; on the seed only after `"events": true` at start. */
  private wantsEvents: boolean;
  /** `gone` frames (retention removed a range): always on v1; on the seed only after `"gone": true` at start. */
  private wantsGone: boolean;

  constructor(
    readonly ws: WebSocket,
    private readonly ctx: SocketContext,
    private readonly codec: FrameCodec,
    onClosed: (connection: PresenterConnection) => void,
  ) {
    this.wantsEvents = codec.surface === "v1";
    this.wantsGone = codec.surface === "v1";
    ws.on("message", (data, isBinary) => this.onFrame(data, isBinary));
    ws.on("ping", (data) => this.guard(() => this.onPing(data)));
    ws.on("pong", (data) => {
      if (this.pingPayload?.equals(data)) this.pingPayload = undefined;
    });
    ws.on("close", (code: number) => {
      this.clearTimers();
      this.closedAs = this.stopped || code === CloseCode.Normal ? "stop" : "grace";
      if (this.session) this.ctx.relay.detachPresenter(this.session, this.closedAs);
      onClosed(this);
    });
  }

  /** Seed: the client must send its start frame within `timeoutMs`. */
  awaitStart(timeoutMs: number): void {
    this.ctx.pendingStarts.count++;
    this.handshakeTimer = setTimeout(() => {
      if (this.phase === "awaiting-start") this.close(CloseCode.HandshakeTimeout, CloseReason.handshakeTimeout);
    }, timeoutMs);
  }

  /** v1: the token was checked before the upgrade; attach at once. */
  begin(principal: Principal, roomId: number, lastSeq: number | undefined): void {
    this.phase = "starting";
    this.adopt(principal);
    this.attach(roomId, lastSeq, true);
  }

  /**
   * PresenterSink: one chat (or moderation event) frame; answers the bytes waiting in the
   * socket's send buffer. An entry this connection gets no frame for is skipped: the session
   * still moves past its seq, so resume and gap fill carry on after it.
   */
  send(message: ChatMessage): number {
    const text = this.codec.message(message, this.wantsEvents);
    if (text !== undefined) this.ws.send(text);
    return this.ws.bufferedAmount;
  }

  /** PresenterSink: retention removed fromSeq..toSeq; a connection that gets no frame for it just moves on. */
  gone(fromSeq: number, toSeq: number): number {
    const text = this.codec.gone(fromSeq, toSeq, this.wantsGone);
    if (text !== undefined) this.ws.send(text);
    return this.ws.bufferedAmount;
  }

  /** A liveness round: a socket that did not echo the previous ping is cut. */
  heartbeat(): void {
    if (this.pingPayload !== undefined) {
      this.ctx.log.debug({ roomId: this.session?.roomId }, "presenter missed a ping; dropping");
      this.ws.terminate();
      return;
    }
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.pingPayload = randomBytes(8);
    this.ws.ping(this.pingPayload);
    this.checkBuffer();
  }

  close(code: number, reason: string): void {
    this.clearTimers();
    if (this.ws.readyState === this.ws.CLOSED) return;
    this.ws.close(code, reason);
    // A presenter that stopped reading never answers the close frame.
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  // --- the frame loop ---

  private onFrame(data: RawData, isBinary: boolean): void {
    this.guard(() => {
      // Closing (too slow, too many bad frames, stopped): whatever else arrives is ignored.
      if (this.ws.readyState !== this.ws.OPEN) return;
      const decoded: DecodedFrame = isBinary
        ? invalid("binary frames are not supported; send text JSON")
        : this.codec.decode(textOf(data));
      if (decoded.kind === "invalid") this.refuse(decoded.reason);
      else this.dispatch(decoded);
    });
  }

  private dispatch(command: ClientCommand): void {
    switch (command.kind) {
      case "ping":
        this.write(this.codec.pong());
        break;
      case "ack":
        // Before the session is bound (a replay still running) an ack is early, not malformed: ignored.
        if (this.session !== undefined) this.ctx.relay.ack(this.session, command.seq);
        break;
      case "stop":
        // The seed refused a stop before its session started; v1 may stop while attaching.
        if (this.codec.surface === "seed" && this.phase !== "attached") {
          this.refuse("Invalid message with id stop: the broadcast has not started");
        } else {
          this.stop();
        }
        break;
      case "start":
        if (this.phase !== "awaiting-start") {
          this.refuse("session already started");
        } else if (command.token === undefined) {
          this.write(this.codec.error(SocketErrorCode.InvalidFrame, "start frame must carry a token"));
          this.close(CloseCode.Unauthorized, CloseReason.unauthorized);
        } else {
          this.phase = "starting";
          this.clearHandshake();
          this.wantsEvents = command.wantsEvents;
          this.wantsGone = command.wantsGone;
          this.run(this.start(command.token, command.lastSeq, command.wantsReady));
        }
        break;
      case "auth":
        if (this.codec.authenticated === undefined || this.principal === undefined) {
          this.refuse("token refresh is not available on this socket");
        } else {
          this.run(this.refresh(command.token));
        }
        break;
      case "moderate":
        this.moderate(command.change);
        break;
    }
  }

  /** A bad frame: answered in our words, and counted; too many in the window close the socket. */
  private refuse(reason: string): void {
    const now = Date.now();
    if (now - this.badFramesSince > this.ctx.badFrameWindowMs) {
      this.badFrames = 0;
      this.badFramesSince = now;
    }
    if (++this.badFrames > this.ctx.badFrameLimit) {
      this.ctx.log.info({ roomId: this.session?.roomId }, "too many malformed frames; closing");
      this.close(CloseCode.PolicyViolation, CloseReason.badFrames);
    } else {
      this.write(this.codec.error(SocketErrorCode.InvalidFrame, reason));
    }
  }

  // --- commands that wait on something ---

  /** One moderation action as the socket's user, answered `moderated` or an error frame, in frame order. */
  private moderate(change: ModerationCommand): void {
    const { moderate } = this.ctx;
    const moderated = this.codec.moderated;
    const principal = this.principal;
    const roomId = this.roomId;
    if (moderate === undefined || moderated === undefined || principal === undefined || roomId === undefined) {
      this.refuse("moderation frames are not available on this socket");
      return;
    }
    if (this.moderatePending >= MAX_MODERATE_PENDING) {
      this.write(this.codec.error(ErrorCode.RateLimited, "too many moderation frames waiting; wait for answers"));
      return;
    }
    this.moderatePending++;
    this.moderateQueue = (this.moderateQueue ?? Promise.resolve()).then(async () => {
      try {
        const done = await moderate(principal, roomId, change);
        this.write(moderated(done.action, done.seq));
      } catch (err) {
        if (err instanceof RelayError) {
          this.write(this.codec.error(err.code, err.message));
        } else {
          this.ctx.log.error({ err, roomId }, "moderation frame failed");
          this.write(this.codec.error(ErrorCode.Internal, "the moderation action failed"));
        }
      } finally {
        this.moderatePending--;
      }
    });
  }

  private async start(rawToken: string, lastSeq: number | undefined, wantsReady: boolean): Promise<void> {
    const principal = await this.verify(rawToken.replace(/^Bearer\s+/i, ""));
    if (principal === undefined) return;
    if (!mayOpenPresenter(principal, principal.userId, this.ctx.presenterRoles)) {
      return this.reject("refused", "this token may not open a presenter socket");
    }
    this.adopt(principal);
    this.ctx.log.info({ roomId: principal.userId, surface: this.codec.surface }, "seed presenter starting");
    this.attach(principal.userId, lastSeq, wantsReady);
  }

  private async refresh(rawToken: string): Promise<void> {
    const current = this.principal as Principal;
    let next: Principal;
    try {
      next = await this.ctx.verifyToken(rawToken);
    } catch (err) {
      if (err instanceof AuthError && err.unavailable) {
        return this.write(this.codec.error(ErrorCode.ServiceUnavailable, "the token could not be checked now; retry"));
      }
      return this.refuseToken(err instanceof AuthError ? err.message : "token could not be verified");
    }
    if (next.userId !== current.userId || !mayOpenPresenter(next, current.userId, this.ctx.presenterRoles)) {
      return this.refuseToken("a refreshed token must be for the same presenter");
    }
    this.adopt(next);
    const authenticated = this.codec.authenticated;
    if (authenticated) this.write(authenticated(new Date(next.expiresAt)));
  }

  /** A refused refresh is answered and counted like a bad frame; the current token stays in force. */
  private refuseToken(message: string): void {
    this.write(this.codec.tokenRejected("refused", message));
    this.refuse("token refused");
  }

  private async verify(token: string): Promise<Principal | undefined> {
    try {
      return await this.ctx.verifyToken(token);
    } catch (err) {
      if (err instanceof AuthError && err.unavailable) {
        this.write(this.codec.error(ErrorCode.ServiceUnavailable, "the token could not be checked now; retry"));
        this.close(CloseCode.TryAgainLater, CloseReason.tryAgainLater);
        return undefined;
      }
      this.reject("refused", err instanceof AuthError ? err.message : "token could not be verified");
      return undefined;
    }
  }

  /** Registers the presenter; on failure answers an error frame and closes with 1013. */
  private attach(roomId: number, lastSeq: number | undefined, sendReady: boolean): void {
    this.roomId = roomId;
    const onStart = sendReady
      ? (info: { connId: string; tail: number; resumeFrom: number | null }) =>
          this.write(this.codec.ready({ roomId, connId: info.connId, lastSeq: info.tail, resumeFrom: info.resumeFrom }))
      : undefined;
    const attaching = this.ctx.relay.attachPresenter(roomId, this, { lastSeq, ...(onStart ? { onStart } : {}) });
    this.run(
      attaching.then(
        (session) => {
          this.session = session;
          this.phase = "attached";
          // The socket went away while we were registering it.
          if (this.closedAs) this.ctx.relay.detachPresenter(session, this.closedAs);
        },
        (err: unknown) => {
          const message = err instanceof RelayError ? err.message : "could not register the presenter";
          this.ctx.log.warn({ err, roomId }, "presenter attach failed");
          if (this.closedAs) return;
          this.write(this.codec.error(ErrorCode.ServiceUnavailable, message));
          this.close(CloseCode.TryAgainLater, CloseReason.tryAgainLater);
        },
      ),
    );
  }

  /** The presenter ended the broadcast: the room stops being live now. */
  private stop(): void {
    this.stopped = true;
    if (this.session) this.ctx.relay.detachPresenter(this.session, "stop");
    this.close(CloseCode.Normal, CloseReason.stopped);
  }

  // --- the token's lifetime ---

  private adopt(principal: Principal): void {
    this.principal = principal;
    this.armExpiry();
  }

  private armExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    const left = (this.principal as Principal).expiresAt - Date.now();
    if (left <= 0) {
      this.reject("expired", "token expired");
      return;
    }
    this.expiryTimer = setTimeout(() => this.guard(() => this.armExpiry()), Math.min(left, MAX_TIMER_MS));
  }

  private reject(reason: "expired" | "refused", message: string): void {
    this.write(this.codec.tokenRejected(reason, message));
    this.close(CloseCode.Unauthorized, reason === "expired" ? CloseReason.tokenExpired : CloseReason.unauthorized);
  }

  // --- bounded writes ---

  /** Every server frame goes through here (or `send`): nothing bypasses the send-buffer limit. */
  private write(text: string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(text);
    this.checkBuffer();
  }

  private onPing(data: Buffer): void {
    // autoPong is off: answering a ping is a write like any other.
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.pong(data);
    this.checkBuffer();
  }

  /** A peer that does not read cannot make this node queue more than the send-buffer limit. */
  private checkBuffer(): void {
    if (this.ws.bufferedAmount <= this.ctx.sendBufferBytes) return;
    this.ctx.log.warn({ roomId: this.session?.roomId }, "presenter socket over its send buffer; closing");
    if (this.session) this.ctx.relay.detachPresenter(this.session, "grace");
    this.close(CloseCode.SlowConsumer, CloseReason.slowConsumer);
  }

  // --- failures ---

  /** Nothing a client sends may throw out of a listener: an unexpected error closes this socket only. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err);
    }
  }

  private run(work: Promise<void>): void {
    work.catch((err: unknown) => this.fail(err));
  }

  private fail(err: unknown): void {
    this.ctx.log.error({ err, roomId: this.session?.roomId }, "presenter socket handler failed");
    try {
      this.close(CloseCode.InternalError, CloseReason.internalError);
    } catch {
      this.ws.terminate();
    }
  }

  private clearTimers(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    this.clearHandshake();
  }

  /** Once per socket, by the start frame or by the close, whichever comes first. */
  private clearHandshake(): void {
    if (this.handshakeTimer === undefined) return;
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.ctx.pendingStarts.count--;
  }
}

function textOf(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}
