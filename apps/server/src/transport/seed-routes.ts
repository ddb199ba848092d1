import {
  ErrorCode,
  SEED_SEND_PATH,
  SEED_SOCKET_PATH,
  SeedHeader,
  SeedMessages,
  type SeedSendBody,
  seedSendBodySchema,
} from "@chatrelay/protocol";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { GATEWAY_SECRET_HEADER, type GatewayTrust } from "../auth/gateway-trust.js";
import type { Relay } from "../core/relay.js";
import { RelayError } from "../core/relay-error.js";
import type { Metrics } from "../ops/metrics.js";
import { ApiTag, GATEWAY_SECURITY, seedSendDoc } from "./api-doc.js";
import { seedError, seedStatusOf, statusOf } from "./error-replies.js";
import { parseId } from "./ids.js";
import type { PresenterSockets } from "./presenter-sockets.js";
import { seedCodec } from "./seed-codec.js";
import { limitSocketOpens } from "./socket-limits.js";
import { checkUpgrade } from "./upgrade-check.js";

interface SeedRoutesOptions {
  relay: Relay;
  gatewayTrust: GatewayTrust;
  sockets: PresenterSockets;
  metrics: Metrics;
  handshakeTimeoutMs: number;
  maxPendingStarts: number;
  /** TRUST_PROXY is set: request.ip is the client behind the gateway or balancer. */
  trustsProxies: boolean;
}

/** The original chatting server's surface, exactly: POST /send/message and the /chatting presenter socket. */
export const seedRoutes: FastifyPluginAsync<SeedRoutesOptions> = async (
  app,
  { relay, gatewayTrust, sockets, metrics, handshakeTimeoutMs, maxPendingStarts, trustsProxies },
) => {
  // Before the body is even read: a caller that is not the gateway learns nothing else.
  const trustGateway = async (request: FastifyRequest, reply: FastifyReply) => {
    const secret = request.headers[GATEWAY_SECRET_HEADER];
    if (!gatewayTrust(request.socket.remoteAddress, typeof secret === "string" ? secret : undefined)) {
      metrics.post(ErrorCode.Unauthorized);
      const message = "gateway headers are not trusted: the request did not come through the configured API gateway";
      return reply.code(401).send(seedError(401, message, SEED_SEND_PATH));
    }
  };

  const route = {
    schema: {
      summary: "Send a chat message (API gateway)",
      description:
        "Called by the API gateway with the sender in `x-forward-*` headers. `presenterIdx` names the room (null: the sender's own, as presenter). A 2xx means the message is committed to the chat log and will reach the presenter.",
      tags: [ApiTag.seed],
      security: GATEWAY_SECURITY,
      body: seedSendBodySchema,
    },
    config: { apiDoc: seedSendDoc },
    onRequest: trustGateway,
  };
  app.post<{ Body: SeedSendBody }>(SEED_SEND_PATH, route, async (request, reply) => {
    const fail = (code: ErrorCode, message: string) => {
      const status = seedStatusOf(code);
      metrics.post(code);
      return reply.code(status).send(seedError(status, message, SEED_SEND_PATH));
    };
    const senderId = parseId(header(request.headers[SeedHeader.userIdx]));
    if (senderId === undefined) return fail(ErrorCode.InvalidHeaders, "missing or invalid x-forward-userIdx header");
    const email = header(request.headers[SeedHeader.email]);
    const rawNickname = header(request.headers[SeedHeader.nickname]);
    if (email === undefined || rawNickname === undefined) {
      return fail(ErrorCode.InvalidHeaders, "missing x-forward-email or x-forward-nickname header");
    }
    let nickname: string;
    try {
      nickname = decodeURIComponent(rawNickname);
    } catch {
      return fail(ErrorCode.InvalidHeaders, "x-forward-nickname is not valid URL-encoded UTF-8");
    }
    const { presenterIdx, userType, textMessage } = request.body;
    if (presenterIdx === null || presenterIdx === undefined) {
      if (userType !== "presenter") return fail(ErrorCode.InvalidBody, "presenterIdx is required for a viewer");
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
        // The peer is the gateway: a per-address limit needs the viewer's address from a trusted proxy.
        address: trustsProxies ? request.ip : undefined,
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
      const message = err.code === ErrorCode.RoomNotLive ? SeedMessages.notBroadcasting : err.message;
      if (statusOf(err.code) >= 500) {
        request.log.warn({ code: err.code, reason: err.message, roomId }, "send refused: service unavailable");
      }
      if (statusOf(err.code) >= 500 || err.retryAfterSeconds !== undefined) {
        reply.header("retry-after", String(err.retryAfterSeconds ?? 1));
      }
      return fail(err.code, message);
    }
  });

  app.route({
    method: "GET",
    url: SEED_SOCKET_PATH,
    schema: {
      summary: "Presenter socket (WebSocket, seed)",
      description:
        "The room's presenter connects and sends its start frame with a JWT; chats arrive as `sendChatting` frames. Frames and close codes: see the tag.",
      tags: [ApiTag.seed],
    },
    // Unauthenticated sockets cost memory until their start frame: a node holds a bounded number of them.
    onRequest: async (request, reply) => {
      await checkUpgrade(request);
      await limitSocketOpens(relay)(request, reply);
      if (sockets.ctx.pendingStarts.count >= maxPendingStarts) {
        throw new RelayError(
          ErrorCode.ServiceUnavailable,
          "too many connections awaiting their start frame",
          undefined,
          1,
        );
      }
    },
    handler: async () => {
      throw new RelayError(ErrorCode.UpgradeRequired, "this path is a WebSocket endpoint: connect with an upgrade");
    },
    wsHandler: (ws) => sockets.open(ws, seedCodec).awaitStart(handshakeTimeoutMs),
  });
};

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
