import {
  type AuditPage,
  auditPageSchema,
  auditQuerySchema,
  type BanBody,
  type BlockedTermsBody,
  banBodySchema,
  blockedTermsBodySchema,
  ErrorCode,
  type ModerationAction,
  type ModerationResult,
  moderationResultSchema,
  problemSchema,
  type RestrictionView,
  type RoomModerationView,
  type RoomSettingsBody,
  roomModerationViewSchema,
  roomParamsSchema,
  roomSeqParamsSchema,
  roomSettingsBodySchema,
  roomUserParamsSchema,
  type TimeoutBody,
  timeoutBodySchema,
} from "@chatrelay/protocol";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import type { Principal, TokenVerifier } from "../auth/token-verifier.js";
import type { ModerationActor, ModerationOutcome, ModerationRequest, ModerationService } from "../core/moderation.js";
import type { RoomModerationState } from "../core/moderation-state.js";
import { RelayError } from "../core/relay-error.js";
import { ApiTag, BEARER_SECURITY } from "./api-doc.js";
import { bearerAuthentication } from "./authenticate.js";
import { parseId } from "./ids.js";

interface ModerationRoutesOptions {
  moderation: ModerationService;
  verifyToken: TokenVerifier;
}

type RoomParams = { roomId: string };
type UserParams = { roomId: string; userId: string };
type SeqParams = { roomId: string; seq: string };
/** Which part of a room's state a route answers with. */
type Part = "settings" | "moderators" | "restrictions" | "terms" | "none";

const AUDIT_DEFAULT_LIMIT = 50;
const AUDIT_MAX_LIMIT = 200;

const errorResponses = {
  400: problemSchema,
  401: problemSchema,
  403: problemSchema,
  404: problemSchema,
  503: problemSchema,
};
const changed = { 200: moderationResultSchema, ...errorResponses };
const viewed = { 200: roomModerationViewSchema, ...errorResponses };

/** The route's entry in the OpenAPI document (descriptive keywords only). */
const doc = (summary: string, description: string) => ({
  summary,
  description,
  tags: [ApiTag.moderation],
  security: BEARER_SECURITY,
});
const CHANGE = "Answers the moderation event's `seq` and `action` with the room's new";

/**
 * The v1 moderation routes (docs/protocol.md "Moderation"): settings, moderators, bans and
 * timeouts, blocked terms, message deletion and clear, audit. The token is checked first; then
 * the path, the body, and only then the service (which authorises, applies and logs the event).
 */
export const moderationRoutes: FastifyPluginAsync<ModerationRoutesOptions> = async (app, opts) => {
  const { moderation } = opts;
  const onRequest = bearerAuthentication(opts.verifyToken);

  /** One change: answered with its event's seq and the route's part of the new state. */
  const act = async (request: FastifyRequest, change: ModerationRequest, part: Part): Promise<ModerationResult> => {
    const actor = actorOf(request);
    request.logContext = { roomId: change.roomId, userId: actor.userId };
    const outcome = await moderation.act(actor, change);
    request.logContext.seq = outcome.event.seq;
    return resultOf(outcome, part);
  };

  const view = async (request: FastifyRequest, roomId: number, part: Exclude<Part, "none">) => {
    const visibility = part === "settings" || part === "moderators" ? "public" : "private";
    request.logContext = { roomId };
    return viewOf(await moderation.view(actorOf(request), roomId, visibility), part);
  };

  // --- settings ---

  app.put<{ Params: RoomParams; Body: RoomSettingsBody }>(
    "/v1/rooms/:roomId/settings",
    {
      schema: {
        ...doc(
          "Change the room's settings",
          `Presenter or moderator: slow mode, moderators only, the room's text limit. ${CHANGE} settings.`,
        ),
        params: roomParamsSchema,
        body: roomSettingsBodySchema,
        response: changed,
      },
      onRequest,
    },
    async (request) =>
      act(request, { roomId: roomIdOf(request.params), action: "settings", settings: request.body }, "settings"),
  );

  app.get<{ Params: RoomParams }>(
    "/v1/rooms/:roomId/settings",
    {
      schema: {
        ...doc("Read the room's settings", "Any token: the settings and the room's moderation version."),
        params: roomParamsSchema,
        response: viewed,
      },
      onRequest,
    },
    async (request): Promise<RoomModerationView> => view(request, roomIdOf(request.params), "settings"),
  );

  // --- moderators ---

  app.put<{ Params: UserParams }>(
    "/v1/rooms/:roomId/moderators/:userId",
    {
      schema: {
        ...doc("Appoint a moderator", `The presenter only. ${CHANGE} moderator list.`),
        params: roomUserParamsSchema,
        response: changed,
      },
      onRequest,
    },
    async (request) => {
      const { roomId, userId } = roomUserOf(request.params);
      return act(request, { roomId, action: "moderator_add", userId }, "moderators");
    },
  );

  app.delete<{ Params: UserParams }>(
    "/v1/rooms/:roomId/moderators/:userId",
    {
      schema: {
        ...doc("Remove a moderator", `The presenter only. ${CHANGE} moderator list.`),
        params: roomUserParamsSchema,
        response: changed,
      },
      onRequest,
    },
    async (request) => {
      const { roomId, userId } = roomUserOf(request.params);
      return act(request, { roomId, action: "moderator_remove", userId }, "moderators");
    },
  );

  app.get<{ Params: RoomParams }>(
    "/v1/rooms/:roomId/moderators",
    {
      schema: {
        ...doc("List the room's moderators", "Any token: the moderators the presenter appointed."),
        params: roomParamsSchema,
        response: viewed,
      },
      onRequest,
    },
    async (request): Promise<RoomModerationView> => view(request, roomIdOf(request.params), "moderators"),
  );

  // --- bans and timeouts ---

  app.put<{ Params: UserParams; Body: BanBody | undefined }>(
    "/v1/rooms/:roomId/bans/:userId",
    {
      schema: {
        ...doc(
          "Ban a user from the room",
          `Presenter or moderator; the body (a reason) is optional. ${CHANGE} bans and timeouts.`,
        ),
        params: roomUserParamsSchema,
        body: banBodySchema,
        response: changed,
      },
      onRequest,
      // The body is optional: none at all reads as `{}` (a body that is there is validated as usual).
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const { roomId, userId } = roomUserOf(request.params);
      const reason = request.body?.reason;
      return act(
        request,
        { roomId, action: "ban", userId, ...(reason === undefined ? {} : { reason }) },
        "restrictions",
      );
    },
  );

  app.put<{ Params: UserParams; Body: TimeoutBody }>(
    "/v1/rooms/:roomId/timeouts/:userId",
    {
      schema: {
        ...doc(
          "Time a user out",
          `Presenter or moderator: no posts for \`durationS\` (1 s to 14 days). ${CHANGE} bans and timeouts.`,
        ),
        params: roomUserParamsSchema,
        body: timeoutBodySchema,
        response: changed,
      },
      onRequest,
    },
    async (request) => {
      const { roomId, userId } = roomUserOf(request.params);
      const { durationS, reason } = request.body;
      const change = { roomId, action: "timeout" as const, userId, durationS };
      return act(request, reason === undefined ? change : { ...change, reason }, "restrictions");
    },
  );

  app.delete<{ Params: UserParams }>(
    "/v1/rooms/:roomId/bans/:userId",
    {
      schema: {
        ...doc("Lift a ban or a timeout", `Presenter or moderator. ${CHANGE} bans and timeouts.`),
        params: roomUserParamsSchema,
        response: changed,
      },
      onRequest,
    },
    async (request) => {
      const { roomId, userId } = roomUserOf(request.params);
      return act(request, { roomId, action: "unban", userId }, "restrictions");
    },
  );

  app.get<{ Params: RoomParams }>(
    "/v1/rooms/:roomId/bans",
    {
      schema: {
        ...doc("List bans and timeouts", "Presenter or moderator: the active bans and timeouts."),
        params: roomParamsSchema,
        response: viewed,
      },
      onRequest,
    },
    async (request): Promise<RoomModerationView> => view(request, roomIdOf(request.params), "restrictions"),
  );

  // --- blocked terms ---

  app.post<{ Params: RoomParams; Body: BlockedTermsBody }>(
    "/v1/rooms/:roomId/blocked-terms",
    {
      schema: {
        ...doc(
          "Block terms",
          `Presenter or moderator: messages containing a blocked term are refused (\`text_blocked\`); at most 500 per room. ${CHANGE} terms.`,
        ),
        params: roomParamsSchema,
        body: blockedTermsBodySchema,
        response: changed,
      },
      onRequest,
    },
    async (request) =>
      act(request, { roomId: roomIdOf(request.params), action: "terms_add", terms: request.body.terms }, "terms"),
  );

  app.delete<{ Params: RoomParams; Body: BlockedTermsBody }>(
    "/v1/rooms/:roomId/blocked-terms",
    {
      schema: {
        ...doc("Unblock terms", `Presenter or moderator; unknown terms are ignored. ${CHANGE} terms.`),
        params: roomParamsSchema,
        body: blockedTermsBodySchema,
        response: changed,
      },
      onRequest,
    },
    async (request) =>
      act(request, { roomId: roomIdOf(request.params), action: "terms_remove", terms: request.body.terms }, "terms"),
  );

  app.get<{ Params: RoomParams }>(
    "/v1/rooms/:roomId/blocked-terms",
    {
      schema: { ...doc("List blocked terms", "Presenter or moderator."), params: roomParamsSchema, response: viewed },
      onRequest,
    },
    async (request): Promise<RoomModerationView> => view(request, roomIdOf(request.params), "terms"),
  );

  // --- messages ---

  app.delete<{ Params: SeqParams }>(
    "/v1/rooms/:roomId/messages/:seq",
    {
      schema: {
        ...doc(
          "Delete a message",
          "Presenter or moderator: the message at `seq` is hidden from history; the presenter receives a `delete` event. `404` unless `seq` is a message of the room.",
        ),
        params: roomSeqParamsSchema,
        response: changed,
      },
      onRequest,
    },
    async (request) => {
      const roomId = roomIdOf(request.params);
      const targetSeq = parseId(request.params.seq);
      if (targetSeq === undefined) throw new RelayError(ErrorCode.InvalidRequest, "seq must be a positive integer");
      return act(request, { roomId, action: "delete", targetSeq }, "none");
    },
  );

  app.post<{ Params: RoomParams }>(
    "/v1/rooms/:roomId/clear",
    {
      schema: {
        ...doc(
          "Clear the chat",
          "Presenter or moderator: every earlier message is marked deleted; the presenter receives a `clear` event.",
        ),
        params: roomParamsSchema,
        response: changed,
      },
      onRequest,
    },
    async (request) => act(request, { roomId: roomIdOf(request.params), action: "clear" }, "none"),
  );

  // --- audit ---

  app.get<{ Params: RoomParams; Querystring: { before?: string; limit?: string } }>(
    "/v1/rooms/:roomId/audit",
    {
      schema: {
        ...doc(
          "Read the audit trail",
          "Presenter or moderator: who did what, when; newest first. `before` is the `nextBefore` of the previous page (ms); `limit` at most 200.",
        ),
        params: roomParamsSchema,
        querystring: auditQuerySchema,
        response: { 200: auditPageSchema, ...errorResponses },
      },
      onRequest,
    },
    async (request): Promise<AuditPage> => {
      const roomId = roomIdOf(request.params);
      const { before: rawBefore, limit: rawLimit } = request.query;
      const before = rawBefore === undefined ? undefined : parseId(rawBefore);
      if (rawBefore !== undefined && before === undefined) {
        throw new RelayError(ErrorCode.InvalidCursor, "before must be a positive integer");
      }
      const limit = Math.min(rawLimit === undefined ? AUDIT_DEFAULT_LIMIT : Number(rawLimit), AUDIT_MAX_LIMIT);
      request.logContext = { roomId };
      const entries = await moderation.audit(actorOf(request), roomId, before, limit);
      const last = entries.at(-1);
      return {
        items: entries.map((e) => ({
          id: e.id,
          actorId: e.actorId,
          action: e.action as ModerationAction,
          target: (typeof e.target === "object" && e.target !== null ? e.target : {}) as Record<string, unknown>,
          at: e.at.toISOString(),
        })),
        nextBefore: entries.length === limit && last !== undefined ? last.at.getTime() : null,
      };
    },
  );
};

function actorOf(request: FastifyRequest): ModerationActor {
  const principal = request.principal as Principal;
  return { userId: principal.userId, modRooms: principal.modRooms };
}

function roomIdOf(params: RoomParams): number {
  const roomId = parseId(params.roomId);
  if (roomId === undefined) throw new RelayError(ErrorCode.InvalidRoom, "room id must be a positive integer");
  return roomId;
}

function roomUserOf(params: UserParams): { roomId: number; userId: number } {
  const roomId = roomIdOf(params);
  const userId = parseId(params.userId);
  if (userId === undefined) throw new RelayError(ErrorCode.InvalidRequest, "user id must be a positive integer");
  return { roomId, userId };
}

function resultOf(outcome: ModerationOutcome, part: Part): ModerationResult {
  return {
    ...viewOf(outcome.state, part),
    seq: outcome.event.seq,
    action: outcome.action,
  };
}

function viewOf(state: RoomModerationState, part: Part): RoomModerationView {
  const base = { roomId: state.roomId, version: state.version };
  switch (part) {
    case "settings":
      return { ...base, settings: { ...state.settings } };
    case "moderators":
      return { ...base, moderators: [...state.moderators] };
    case "restrictions":
      return { ...base, restrictions: state.restrictions.map(restrictionView) };
    case "terms":
      return { ...base, terms: [...state.blockedTerms] };
    case "none":
      return base;
  }
}

function restrictionView(r: RoomModerationState["restrictions"][number]): RestrictionView {
  return { userId: r.userId, kind: r.kind, until: r.untilMs === null ? null : new Date(r.untilMs).toISOString() };
}
