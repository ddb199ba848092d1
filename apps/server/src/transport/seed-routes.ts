import {
  CloseCode,
  CloseReason,
  SEED_SEND_PATH,
  SEED_SOCKET_PATH,
  SeedHeader,
  SeedMessages,
  type SeedSendBody,
  type SeedSendChattingFrame,
  seedSendBodySchema,
} from "@chatrelay/protocol";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { GATEWAY_SECRET_HEADER, type GatewayTrust } from "../auth/gateway-trust.js";
import { AuthError } from "../auth/token-verifier.js";
import type { ChatMessage } from "../core/message.js";
import type { Relay } from "../core/relay.js";
import { RelayError } from "../core/relay-error.js";
import type { Metrics } from "../ops/metrics.js";
import { seedClock, seedError, seedStatusOf } from "./error-replies.js";
import type { PresenterSockets } from "./presenter-sockets.js";

interface SeedRoutesOptions {
  relay: Relay;
  gatewayTrust: GatewayTrust;
  sockets: PresenterSockets;
  metrics: Metrics;
}

/** The original chatting server's surface, exactly: POST /send/message and the /chatting presenter socket. */
export const seedRoutes: FastifyPluginAsync<SeedRoutesOptions> = async (
  app,
  { relay, gatewayTrust, sockets, metrics },
) => {
  // Before the body is even read: a caller that is not the gateway learns nothing else.
  const trustGateway = async (request: FastifyRequest, reply: FastifyReply) => {
    const secret = request.headers[GATEWAY_SECRET_HEADER];
    if (!gatewayTrust(request.socket.remoteAddress, typeof secret === "string" ? secret : undefined)) {
      metrics.post("seed_401");
      const message = "gateway headers are not trusted: the request did not come through the configured API gateway";
      return reply.code(401).send(seedError(401, message, SEED_SEND_PATH));
    }
  };

  const route = { schema: { body: seedSendBodySchema }, onRequest: trustGateway };
  app.post<{ Body: SeedSendBody }>(SEED_SEND_PATH, route, async (request, reply) => {
    const fail = (status: number, message: string) => {
      metrics.post(`seed_${status}`);
      return reply.code(status).send(seedError(status, message, SEED_SEND_PATH));
    };
    const userIdx = header(request.headers[SeedHeader.userIdx]);
    if (userIdx === undefined || !/^[1-9]\d{0,15}$/.test(userIdx)) {
      return fail(400, "missing or invalid x-forward-userIdx header");
    }
    const email = header(request.headers[SeedHeader.email]);
    const rawNickname = header(request.headers[SeedHeader.nickname]);
    if (email === undefined || rawNickname === undefined) {
      return fail(400, "missing x-forward-email or x-forward-nickname header");
    }
    let nickname: string;
    try {
      nickname = decodeURIComponent(rawNickname);
    } catch {
      return fail(400, "x-forward-nickname is not valid URL-encoded UTF-8");
    }
    const senderId = Number(userIdx);
    const { presenterIdx, userType, textMessage } = request.body;
    if (presenterIdx === null || presenterIdx === undefined) {
      if (userType !== "presenter") return fail(400, "presenterIdx is required for a viewer");
    }
    const roomId = presenterIdx ?? senderId;
    request.logContext = { roomId, userId: senderId };
    try {
      const result = await relay.send({
        roomId,
        senderId,
        nickname,
        // Only the room's own presenter chats as "presenter".
        userType: userType === "presenter" && senderId === roomId ? "presenter" : "viewer",
        text: textMessage,
      });
      request.logContext.seq = result.message.seq;
      request.logContext.msgId = result.message.id;
      metrics.post(result.presence === "grace" ? "accepted_grace" : "accepted");
      // The seed told a presenter whose own socket dropped to reconnect; we also keep the message for the resume.
      if (result.presence === "grace" && senderId === roomId) {
        return reply.code(202).send(seedError(202, SeedMessages.reconnectYourSession, SEED_SEND_PATH));
      }
      return reply.code(200).send();
    } catch (err) {
      if (!(err instanceof RelayError)) throw err;
      const status = seedStatusOf(err.code);
      const message = err.code === "room_not_live" ? SeedMessages.notBroadcasting : err.message;
      if (status >= 500) request.log.error({ err: err.cause ?? err, roomId }, "send failed");
      return fail(status, message);
    }
  });

  app.get(SEED_SOCKET_PATH, { websocket: true }, (ws) => {
    const connection = sockets.open(ws, encodeSeedFrame);
    const log = sockets.log;
    const frame = (body: object) => connection.sendText(JSON.stringify(body));
    let phase: "awaiting-start" | "starting" | "started" = "awaiting-start";
    const handshakeTimer = setTimeout(() => {
      if (phase === "awaiting-start") connection.close(CloseCode.HandshakeTimeout, CloseReason.handshakeTimeout);
    }, sockets.config.handshakeTimeoutMs);
    handshakeTimer.unref();
    ws.on("close", () => clearTimeout(handshakeTimer));

    ws.on("message", (data, isBinary) => {
      if (isBinary) return frame({ id: "error", message: "binary frames are not supported; send text JSON" });
      const text = data.toString();
      if (text === "ping") return connection.sendText("pong");
      let msg: unknown;
      try {
        msg = JSON.parse(text);
      } catch {
        return frame({ id: "error", message: "frame is not valid JSON" });
      }
      if (typeof msg !== "object" || msg === null || Array.isArray(msg)) {
        return frame({ id: "error", message: "frame must be a JSON object with an id" });
      }
      const { id, token, lastSeq } = msg as Record<string, unknown>;
      if (id === "start") {
        if (phase !== "awaiting-start") return frame({ id: "error", message: "session already started" });
        if (typeof token !== "string" || token.length === 0) {
          frame({ id: "error", message: "start frame must carry a token" });
          return connection.close(CloseCode.Unauthorized, "missing token");
        }
        if (lastSeq !== undefined && !(Number.isSafeInteger(lastSeq) && (lastSeq as number) >= 0)) {
          return frame({ id: "error", message: "lastSeq must be a non-negative integer" });
        }
        phase = "starting";
        clearTimeout(handshakeTimer);
        void start(token, lastSeq as number | undefined);
        return;
      }
      if (id === "stop" && phase === "started") return connection.stop();
      return frame({ id: "error", message: `Invalid message with id ${String(id)}` });
    });

    async function start(rawToken: string, lastSeq: number | undefined): Promise<void> {
      let roomId: number;
      try {
        const principal = await sockets.verifyToken(rawToken.replace(/^Bearer\s+/i, ""));
        if (principal.role === "viewer") throw new AuthError("a viewer token cannot open a presenter socket");
        roomId = principal.userId;
      } catch (err) {
        const message = err instanceof AuthError ? err.message : "token could not be verified";
        frame({ id: "tokenException", response: "reject", message });
        return connection.close(CloseCode.Unauthorized, CloseReason.unauthorized);
      }
      log.info({ roomId, surface: "seed" }, "seed presenter starting");
      await connection.attach(roomId, lastSeq, undefined, (message) => frame({ id: "error", message }));
      phase = "started";
    }
  });
};

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function encodeSeedFrame(m: ChatMessage): string {
  const frame: SeedSendChattingFrame = {
    id: "sendChatting",
    nickname: m.nickname,
    message: m.text,
    time: seedClock(m.sentAt),
    seq: m.seq,
    messageId: m.id,
    senderId: m.senderId,
    userType: m.userType,
    sentAt: m.sentAt.toISOString(),
  };
  return JSON.stringify(frame);
}
