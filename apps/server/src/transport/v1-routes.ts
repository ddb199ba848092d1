import {
  ErrorCode,
  type HistoryPage,
  historyPageSchema,
  historyQuerySchema,
  type PostMessageBody,
  postMessageBodySchema,
  postMessageResultSchema,
  presenterSocketQuerySchema,
  problemSchema,
  roomParamsSchema,
} from "@chatrelay/protocol";
import type { FastifyPluginAsync } from "fastify";
import { mayOpenPresenter } from "../auth/presenter-rule.js";
import type { Principal, TokenVerifier } from "../auth/token-verifier.js";
import type { Relay } from "../core/relay.js";
import { RelayError } from "../core/relay-error.js";
import type { Metrics } from "../ops/metrics.js";
import { ApiTag, BEARER_SECURITY } from "./api-doc.js";
import { bearerAuthentication } from "./authenticate.js";
import { parseId, parseSeq } from "./ids.js";
import type { PresenterSockets } from "./presenter-sockets.js";
import { limitSocketOpens } from "./socket-limits.js";
import { checkUpgrade } from "./upgrade-check.js";
import { toHistoryView, v1Codec } from "./v1-codec.js";

interface V1RoutesOptions {
  relay: Relay;
  verifyToken: TokenVerifier;
  sockets: PresenterSockets;
  metrics: Metrics;
  historyMaxLimit: number;
  presenterRoles: readonly string[] | undefined;
  /**
   * Who may read deleted messages' text (`?includeDeleted=true`). Default: the room's presenter and
   * holders of the moderator claim for the room; pass the moderation service's check to add the
   * moderators the presenter appointed.
   */
  canSeeDeleted?: (principal: Principal, roomId: number) => boolean | Promise<boolean>;
}

type HistoryQuery = { before?: string; limit?: string; kinds?: "message" | "all"; includeDeleted?: "true" | "false" };

const presenterOrClaimModerator = (principal: Principal, roomId: number): boolean =>
  principal.userId === roomId || principal.modRooms.includes(roomId);

type RoomParams = { roomId: string };

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
  const canSeeDeleted = opts.canSeeDeleted ?? presenterOrClaimModerator;

  // onRequest: the token is checked first, before the body is read or anything else is validated.
  const authenticate = bearerAuthentication(verifyToken);

  app.post<{ Params: RoomParams; Body: PostMessageBody }>(
    "/v1/rooms/:roomId/messages",
    {
      schema: {
        summary: "Post a chat message",
        description:
          "The sender is the token's user. `201` means the message is committed to the chat log and will reach the presenter in seq order. A retry with the same `clientMsgId` returns the first result (header `idempotent-replayed: true`); the same id with another text is `422`. While the presenter reconnects, the answer carries `x-presenter-state: reconnecting`.",
        tags: [ApiTag.messages],
        security: BEARER_SECURITY,
        params: roomParamsSchema,
        body: postMessageBodySchema,
        response: { 200: postMessageResultSchema, 201: postMessageResultSchema, ...errorResponses },
      },
      onRequest: authenticate,
    },
    async (request, reply) => {
      const principal = request.principal as Principal;
      const roomId = roomIdOf(request.params);
      request.logContext = { roomId, userId: principal.userId };
      if (principal.operator === true) {
        throw new RelayError(ErrorCode.Forbidden, "an operator token cannot post chat messages");
      }
      const result = await relay.send({
        roomId,
        senderId: principal.userId,
        nickname: principal.nickname ?? "",
        userType: principal.userId === roomId ? "presenter" : "viewer",
        text: request.body.text,
        clientMsgId: request.body.clientMsgId,
        address: request.ip,
        moderatorByClaim: principal.modRooms.includes(roomId),
      });
      const { message } = result;
      request.logContext.seq = message.seq;
      request.logContext.msgId = message.id;
      metrics.post(result.duplicate ? "duplicate" : result.presence === "grace" ? "accepted_grace" : "accepted");
      if (result.duplicate) reply.header("idempotent-replayed", "true");
      if (result.presence === "grace") reply.header("x-presenter-state", "reconnecting");
      return reply.code(201).send({ id: message.id, roomId, seq: message.seq, sentAt: message.sentAt.toISOString() });
    },
  );

  app.get<{ Params: RoomParams; Querystring: HistoryQuery }>(
    "/v1/rooms/:roomId/messages",
    {
      schema: {
        summary: "Read a room's history",
        description:
          "Newest first; pass `nextBefore` as `before` for the next (older) page. `limit` defaults to 50 and is capped by `HISTORY_MAX_LIMIT`. `kinds=all` lists moderation events too; `includeDeleted=true` shows deleted messages' text (the room's presenter and moderators only). `retainedFrom`: the room's lowest seq still in the log (retention pruned everything below it), null when it holds nothing.",
        tags: [ApiTag.messages],
        security: BEARER_SECURITY,
        params: roomParamsSchema,
        querystring: historyQuerySchema,
        response: { 200: historyPageSchema, ...errorResponses },
      },
      onRequest: authenticate,
    },
    async (request): Promise<HistoryPage> => {
      const roomId = roomIdOf(request.params);
      const showDeleted = request.query.includeDeleted === "true";
      if (showDeleted && !(await canSeeDeleted(request.principal as Principal, roomId))) {
        throw new RelayError(ErrorCode.Forbidden, "only the room's presenter or a moderator may read deleted messages");
      }
      let before: number | undefined;
      if (request.query.before !== undefined) {
        before = parseId(request.query.before);
        if (before === undefined) throw new RelayError(ErrorCode.InvalidCursor, "before must be a positive integer");
      }
      const limit = Math.min(Number(request.query.limit ?? 50), opts.historyMaxLimit);
      request.logContext = { roomId };
      const [items, retainedFrom] = await Promise.all([
        relay.history(roomId, before, limit, { events: request.query.kinds === "all" }),
        relay.retainedFrom(roomId),
      ]);
      const last = items.at(-1);
      return {
        items: items.map((m) => toHistoryView(m, showDeleted)),
        nextBefore: items.length === limit && last !== undefined && last.seq > 1 ? last.seq : null,
        retainedFrom,
      };
    },
  );

  app.route<{ Params: RoomParams; Querystring: { lastSeq?: string; access_token?: string } }>({
    method: "GET",
    url: "/v1/rooms/:roomId/presenter",
    schema: {
      summary: "Presenter socket (WebSocket)",
      description:
        "Only the room's presenter (user id = room id, and a role in `PRESENTER_ROLES` when set). The token is checked before the upgrade; `lastSeq` resumes after that seq. Frames and close codes: see the tag.",
      tags: [ApiTag.presenter],
      security: BEARER_SECURITY,
      params: roomParamsSchema,
      querystring: presenterSocketQuerySchema,
    },
    onRequest: [checkUpgrade, limitSocketOpens(relay), authenticate],
    // Runs before the upgrade: a refused token gets an HTTP 401/403 instead of a socket.
    preValidation: async (request) => {
      const roomId = roomIdOf(request.params);
      const { lastSeq } = request.query;
      if (lastSeq !== undefined && parseSeq(lastSeq) === undefined) {
        throw new RelayError(ErrorCode.InvalidCursor, "lastSeq must be a non-negative integer");
      }
      if (!mayOpenPresenter(request.principal as Principal, roomId, opts.presenterRoles)) {
        throw new RelayError(ErrorCode.Forbidden, "only the room's presenter may open its presenter socket");
      }
    },
    handler: async () => {
      throw new RelayError(ErrorCode.UpgradeRequired, "this path is a WebSocket endpoint: connect with an upgrade");
    },
    wsHandler: (ws, request) => {
      const roomId = roomIdOf(request.params);
      const lastSeq = request.query.lastSeq === undefined ? undefined : parseSeq(request.query.lastSeq);
      sockets.open(ws, v1Codec).begin(request.principal as Principal, roomId, lastSeq);
    },
  });
};

function roomIdOf(params: RoomParams): number {
  const roomId = parseId(params.roomId);
  if (roomId === undefined) throw new RelayError(ErrorCode.InvalidRoom, "room id must be a positive integer");
  return roomId;
}
