import {
  type ChatMessageView,
  ErrorCode,
  type HistoryPage,
  historyPageSchema,
  historyQuerySchema,
  type PostMessageBody,
  postMessageBodySchema,
  postMessageResultSchema,
  presenterSocketQuerySchema,
  problemSchema,
  ROOM_ID_PATTERN,
  roomParamsSchema,
  type V1ServerFrame,
} from "@chatrelay/protocol";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { AuthError, bearerToken, type Principal, type TokenVerifier } from "../auth/token-verifier.js";
import type { ChatMessage } from "../core/message.js";
import type { Relay } from "../core/relay.js";
import { RelayError } from "../core/relay-error.js";
import type { Metrics } from "../ops/metrics.js";
import type { PresenterSockets } from "./presenter-sockets.js";

interface V1RoutesOptions {
  relay: Relay;
  verifyToken: TokenVerifier;
  sockets: PresenterSockets;
  metrics: Metrics;
  historyMaxLimit: number;
}

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
}

type RoomParams = { roomId: string };

const ROOM_ID = new RegExp(ROOM_ID_PATTERN);

const errorResponses = {
  400: problemSchema,
  401: problemSchema,
  403: problemSchema,
  409: problemSchema,
  503: problemSchema,
};

/** The v1 surface: rooms addressed by id, bearer JWTs, problem+json errors. */
export const v1Routes: FastifyPluginAsync<V1RoutesOptions> = async (app, opts) => {
  const { relay, verifyToken, sockets, metrics } = opts;

  const authenticate = async (request: FastifyRequest) => {
    const query = request.query as { access_token?: string } | undefined;
    const token = bearerToken(request.headers.authorization) ?? query?.access_token;
    if (token === undefined) throw new RelayError(ErrorCode.Unauthorized, "missing bearer token");
    try {
      request.principal = await verifyToken(token);
    } catch (err) {
      throw new RelayError(ErrorCode.Unauthorized, err instanceof AuthError ? err.message : "invalid token");
    }
  };

  app.post<{ Params: RoomParams; Body: PostMessageBody }>(
    "/v1/rooms/:roomId/messages",
    {
      schema: {
        params: roomParamsSchema,
        body: postMessageBodySchema,
        response: { 200: postMessageResultSchema, 201: postMessageResultSchema, ...errorResponses },
      },
      preHandler: authenticate,
    },
    async (request, reply) => {
      const principal = request.principal as Principal;
      const roomId = Number(request.params.roomId);
      request.logContext = { roomId, userId: principal.userId };
      try {
        const result = await relay.send({
          roomId,
          senderId: principal.userId,
          nickname: principal.nickname ?? "",
          userType: principal.userId === roomId ? "presenter" : "viewer",
          text: request.body.text,
          clientMsgId: request.body.clientMsgId,
        });
        const { message } = result;
        request.logContext.seq = message.seq;
        request.logContext.msgId = message.id;
        metrics.post(result.duplicate ? "duplicate" : result.presence === "grace" ? "accepted_grace" : "accepted");
        if (result.duplicate) reply.header("idempotent-replayed", "true");
        if (result.presence === "grace") reply.header("x-presenter-state", "reconnecting");
        return reply.code(201).send({ id: message.id, roomId, seq: message.seq, sentAt: message.sentAt.toISOString() });
      } catch (err) {
        if (err instanceof RelayError) metrics.post(err.code);
        throw err;
      }
    },
  );

  app.get<{ Params: RoomParams; Querystring: { before?: string; limit?: string } }>(
    "/v1/rooms/:roomId/messages",
    {
      schema: {
        params: roomParamsSchema,
        querystring: historyQuerySchema,
        response: { 200: historyPageSchema, ...errorResponses },
      },
      preHandler: authenticate,
    },
    async (request): Promise<HistoryPage> => {
      const roomId = Number(request.params.roomId);
      const before = request.query.before === undefined ? undefined : Number(request.query.before);
      const limit = Math.min(Number(request.query.limit ?? 50), opts.historyMaxLimit);
      request.logContext = { roomId };
      const items = await relay.history(roomId, before, limit);
      const last = items.at(-1);
      return {
        items: items.map(toView),
        nextBefore: items.length === limit && last !== undefined && last.seq > 1 ? last.seq : null,
      };
    },
  );

  app.get<{ Params: RoomParams; Querystring: { lastSeq?: string; access_token?: string } }>(
    "/v1/rooms/:roomId/presenter",
    {
      websocket: true,
      schema: { params: roomParamsSchema, querystring: presenterSocketQuerySchema },
      // Runs before the upgrade: a refused token gets an HTTP 401/403 instead of a socket.
      preValidation: async (request) => {
        // Schema validation runs after this hook: check the room id first so a bad one is a 400, not a 403.
        if (!ROOM_ID.test(request.params.roomId))
          throw new RelayError(ErrorCode.InvalidRoom, "room id must be a positive integer");
        await authenticate(request);
        const principal = request.principal as Principal;
        if (String(principal.userId) !== request.params.roomId || principal.role === "viewer") {
          throw new RelayError(ErrorCode.Forbidden, "only the room's presenter may open its presenter socket");
        }
      },
    },
    (ws, request) => {
      const roomId = Number(request.params.roomId);
      const lastSeq = request.query.lastSeq === undefined ? undefined : Number(request.query.lastSeq);
      const connection = sockets.open(ws, encodeV1Frame);
      const frame = (body: V1ServerFrame) => connection.sendText(JSON.stringify(body));

      ws.on("message", (data, isBinary) => {
        if (isBinary)
          return frame({ type: "error", code: "invalid_frame", message: "binary frames are not supported" });
        let msg: unknown;
        try {
          msg = JSON.parse(data.toString());
        } catch {
          return frame({ type: "error", code: "invalid_frame", message: "frame is not valid JSON" });
        }
        const { type, seq } = (typeof msg === "object" && msg !== null ? msg : {}) as Record<string, unknown>;
        if (type === "ping") return frame({ type: "pong" });
        if (type === "ack") {
          if (!Number.isSafeInteger(seq) || (seq as number) < 0) {
            return frame({ type: "error", code: "invalid_frame", message: "ack needs a non-negative integer seq" });
          }
          return connection.ack(seq as number);
        }
        if (type === "stop") return connection.stop();
        return frame({ type: "error", code: "invalid_frame", message: `unknown frame type ${JSON.stringify(type)}` });
      });

      void connection.attach(
        roomId,
        lastSeq,
        ({ connId, tail, resumeFrom }) => frame({ type: "ready", roomId, connId, lastSeq: tail, resumeFrom }),
        (message) => frame({ type: "error", code: ErrorCode.ServiceUnavailable, message }),
      );
    },
  );
};

function toView(m: ChatMessage): ChatMessageView {
  return {
    id: m.id,
    roomId: m.roomId,
    seq: m.seq,
    senderId: m.senderId,
    nickname: m.nickname,
    userType: m.userType,
    text: m.text,
    sentAt: m.sentAt.toISOString(),
  };
}

export function encodeV1Frame(m: ChatMessage): string {
  return JSON.stringify({ type: "message", ...toView(m) });
}
