import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { CloseCode, CloseReason } from "@chatrelay/protocol";
import type { FastifyBaseLogger } from "fastify";
import type { WebSocket } from "ws";
import type { FrameCodec } from "./frame-codec.js";
import { PresenterConnection, type SocketContext } from "./presenter-connection.js";

/** Every presenter socket of this node: liveness pings and drain. */
export class PresenterSockets {
  private readonly connections = new Set<PresenterConnection>();
  private readonly forget = (connection: PresenterConnection) => this.connections.delete(connection);
  private readonly pinger: NodeJS.Timeout;
  draining = false;

  constructor(
    readonly ctx: SocketContext,
    pingIntervalMs: number,
  ) {
    // A half-open TCP connection would keep its room "live" forever: ping, and drop what does not answer.
    this.pinger = setInterval(() => {
      for (const c of this.connections) c.heartbeat();
    }, pingIntervalMs);
    this.pinger.unref();
  }

  get log(): FastifyBaseLogger {
    return this.ctx.log;
  }

  open(ws: WebSocket, codec: FrameCodec): PresenterConnection {
    releaseUpgradeRequest(ws, this.ctx.log);
    const connection = new PresenterConnection(ws, this.ctx, codec, this.forget);
    this.connections.add(connection);
    return connection;
  }

  /** Stops the pings and closes every socket with 1012 so presenters reconnect elsewhere. */
  async drain(): Promise<void> {
    this.draining = true;
    clearInterval(this.pinger);
    await this.ctx.relay.drain();
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
