import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { CloseCode, CloseReason } from "@chatrelay/protocol";
import type { FastifyBaseLogger } from "fastify";
import type { WebSocket } from "ws";
import type { TokenVerifier } from "../auth/token-verifier.js";
import type { Config } from "../config.js";
import type { ChatMessage } from "../core/message.js";
import type { PresenterSession, PresenterSink } from "../core/presenter-session.js";
import type { Relay } from "../core/relay.js";
import { RelayError } from "../core/relay-error.js";

/** How long a server-closed socket may take to finish its close handshake before it is cut. */
const CLOSE_GRACE_MS = 2000;

/**
 * One presenter socket, whatever its surface: binds it to a relay session,
 * and maps its close to "stop" (normal close or explicit stop) or "grace"
 * (anything else: the presenter is expected back).
 */
export class PresenterConnection implements PresenterSink {
  private session: PresenterSession | undefined;
  /** Set once the socket closed: what its close means for the room. */
  private closedAs: "stop" | "grace" | undefined;
  private stopped = false;
  alive = true;

  constructor(
    readonly ws: WebSocket,
    private readonly relay: Relay,
    private readonly encode: (message: ChatMessage) => string,
    readonly log: FastifyBaseLogger,
    onClosed: (connection: PresenterConnection) => void,
  ) {
    ws.on("pong", () => {
      this.alive = true;
    });
    ws.on("close", (code: number) => {
      this.closedAs = this.stopped || code === 1000 ? "stop" : "grace";
      if (this.session) this.relay.detachPresenter(this.session, this.closedAs);
      onClosed(this);
    });
  }

  /** PresenterSink: one chat frame; answers the bytes waiting in the socket's send buffer. */
  send(message: ChatMessage): number {
    this.ws.send(this.encode(message));
    return this.ws.bufferedAmount;
  }

  /** Registers the presenter; on failure sends `onError`'s frame and closes with 1013. */
  async attach(
    roomId: number,
    lastSeq: number | undefined,
    onStart: ((info: { connId: string; tail: number; resumeFrom: number | null }) => void) | undefined,
    onError: (message: string) => void,
  ): Promise<void> {
    try {
      const session = await this.relay.attachPresenter(roomId, this, { lastSeq, ...(onStart ? { onStart } : {}) });
      this.session = session;
      // The socket went away while we were registering it.
      if (this.closedAs) this.relay.detachPresenter(session, this.closedAs);
    } catch (err) {
      const message = err instanceof RelayError ? err.message : "could not register the presenter";
      this.log.warn({ err, roomId }, "presenter attach failed");
      if (!this.closedAs) {
        onError(message);
        this.close(CloseCode.TryAgainLater, "try again later");
      }
    }
  }

  /** The presenter ended the broadcast: the room stops being live now. */
  stop(): void {
    this.stopped = true;
    if (this.session) this.relay.detachPresenter(this.session, "stop");
    this.close(CloseCode.Normal, CloseReason.stopped);
  }

  ack(seq: number): void {
    if (this.session) this.relay.ack(this.session, seq);
  }

  sendText(text: string): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(text);
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === this.ws.CLOSED) return;
    this.ws.close(code, reason);
    // A presenter that stopped reading never answers the close frame.
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }
}

/** Every presenter socket of this node: liveness pings and drain. */
export class PresenterSockets {
  private readonly connections = new Set<PresenterConnection>();
  private readonly forget = (connection: PresenterConnection) => this.connections.delete(connection);
  private readonly pinger: NodeJS.Timeout;
  draining = false;

  constructor(
    readonly relay: Relay,
    readonly verifyToken: TokenVerifier,
    readonly config: Config,
    readonly log: FastifyBaseLogger,
  ) {
    // A half-open TCP connection would keep its room "live" forever: ping, and drop what does not answer.
    this.pinger = setInterval(() => {
      for (const c of this.connections) {
        if (!c.alive) {
          c.ws.terminate();
          continue;
        }
        c.alive = false;
        c.ws.ping();
      }
    }, config.wsPingIntervalMs);
    this.pinger.unref();
  }

  open(ws: WebSocket, encode: (message: ChatMessage) => string): PresenterConnection {
    releaseUpgradeRequest(ws, this.log);
    const connection = new PresenterConnection(ws, this.relay, encode, this.log, this.forget);
    this.connections.add(connection);
    return connection;
  }

  /** Stops the pings and closes every socket with 1012 so presenters reconnect elsewhere. */
  async drain(): Promise<void> {
    this.draining = true;
    clearInterval(this.pinger);
    await this.relay.drain();
    for (const c of this.connections) c.close(CloseCode.ServiceRestart, CloseReason.serviceRestart);
  }
}

/**
 * After the upgrade, the HTTP request that carried it stays reachable from the
 * socket (the response still owns the TCP socket; the websocket plugin's
 * 'error' listener closes over request and reply): its headers, URL (with any
 * token) and fastify's request/reply objects, several KB per idle presenter.
 * Nothing needs them once the socket speaks WebSocket.
 */
function releaseUpgradeRequest(ws: WebSocket, log: FastifyBaseLogger): void {
  const raw = (ws as unknown as { _socket?: Socket & { _httpMessage?: ServerResponse | null } })._socket;
  const response = raw?._httpMessage;
  if (raw && response) response.detachSocket(raw);
  ws.removeAllListeners("error");
  // Same as the plugin's default: an errored socket (unclean disconnect, bad frame) is dropped.
  ws.on("error", (err) => {
    log.debug({ err }, "presenter socket error");
    ws.terminate();
  });
}
