import { ErrorCode, problemSchema, roomParamsSchema } from "@chatrelay/protocol";
import type { FastifyPluginAsync } from "fastify";
import type { Principal, TokenVerifier } from "../auth/token-verifier.js";
import type { Database } from "../chatlog/database.js";
import { effectivePolicy, RETENTION_LIMITS, type RetentionPolicy } from "../chatlog/retention-policy.js";
import { RetentionStore } from "../chatlog/retention-store.js";
import { RelayError } from "../core/relay-error.js";
import { ApiTag, BEARER_SECURITY } from "./api-doc.js";
import { parseId } from "./ids.js";
import { operatorAuthentication } from "./operator-auth.js";

interface RetentionRoutesOptions {
  db: Database;
  /** The global policy (RETENTION_MAX_AGE_DAYS, RETENTION_MAX_COUNT). */
  policy: RetentionPolicy;
  verifyToken: TokenVerifier;
}

/** What GET, PUT and DELETE answer. */
interface RoomRetentionView {
  roomId: number;
  /** The room's own policy, or null: it follows the global one. */
  override: { maxAgeDays: number | null; maxCount: number | null; updatedBy: number; updatedAt: string } | null;
  global: RetentionPolicy;
  /** What the pruner applies to this room. */
  effective: RetentionPolicy;
  /** The room's lowest seq still in the log (null: it holds no entry), and its last seq. */
  retainedFrom: number | null;
  lastSeq: number;
}

const maxAgeDays = {
  anyOf: [
    { type: "integer", minimum: RETENTION_LIMITS.maxAgeDays.min, maximum: RETENTION_LIMITS.maxAgeDays.max },
    { type: "null" },
  ],
  description: "Entries older than this many days are pruned; null: no age limit in this room.",
} as const;
const maxCount = {
  anyOf: [
    { type: "integer", minimum: RETENTION_LIMITS.maxCount.min, maximum: RETENTION_LIMITS.maxCount.max },
    { type: "null" },
  ],
  description: "Only the room's newest this many entries are kept; null: no count limit in this room.",
} as const;

const policySchema = {
  type: "object",
  required: ["maxAgeDays", "maxCount"],
  properties: { maxAgeDays, maxCount },
} as const;

export const retentionBodySchema = {
  type: "object",
  required: ["maxAgeDays", "maxCount"],
  additionalProperties: false,
  properties: { maxAgeDays, maxCount },
} as const;

const nullableInteger = { anyOf: [{ type: "integer" }, { type: "null" }] } as const;

export const roomRetentionSchema = {
  type: "object",
  required: ["roomId", "override", "global", "effective", "retainedFrom", "lastSeq"],
  properties: {
    roomId: { type: "integer" },
    override: {
      anyOf: [
        {
          type: "object",
          required: ["maxAgeDays", "maxCount", "updatedBy", "updatedAt"],
          properties: {
            maxAgeDays: nullableInteger,
            maxCount: nullableInteger,
            updatedBy: { type: "integer" },
            updatedAt: { type: "string" },
          },
        },
        { type: "null" },
      ],
    },
    global: policySchema,
    effective: policySchema,
    retainedFrom: nullableInteger,
    lastSeq: { type: "integer" },
  },
} as const;

const responses = {
  200: roomRetentionSchema,
  400: problemSchema,
  401: problemSchema,
  403: problemSchema,
  503: problemSchema,
};

type Params = { roomId: string };

/**
 * Per-room retention overrides (operator token): `GET`, `PUT` and `DELETE
 * /v1/rooms/:roomId/retention`. An override replaces the global policy for its room as a whole.
 */
export const retentionRoutes: FastifyPluginAsync<RetentionRoutesOptions> = async (app, opts) => {
  const store = new RetentionStore(opts.db);
  const onRequest = operatorAuthentication(opts.verifyToken);

  const view = async (roomId: number, known?: RoomRetentionView["override"]): Promise<RoomRetentionView> => {
    try {
      const [stored, range] = await Promise.all([
        known === undefined ? store.get(roomId) : Promise.resolve(null),
        store.retainedRange(roomId),
      ]);
      const override =
        known !== undefined ? known : stored === null ? null : { ...stored, updatedAt: stored.updatedAt.toISOString() };
      const own = override === null ? null : { maxAgeDays: override.maxAgeDays, maxCount: override.maxCount };
      return {
        roomId,
        override,
        global: opts.policy,
        effective: effectivePolicy(opts.policy, own),
        retainedFrom: range.from,
        lastSeq: range.lastSeq,
      };
    } catch (err) {
      throw unavailable(err);
    }
  };

  app.get<{ Params: Params }>(
    "/v1/rooms/:roomId/retention",
    {
      schema: {
        summary: "Read a room's retention policy",
        description:
          "Operator token. The room's own policy (`override`, null when it follows the global one), the global policy from `RETENTION_MAX_AGE_DAYS` / `RETENTION_MAX_COUNT`, the one the pruner applies (`effective`), and where the room's retained log starts (`retainedFrom`).",
        tags: [ApiTag.logManagement],
        security: BEARER_SECURITY,
        params: roomParamsSchema,
        response: responses,
      },
      onRequest,
    },
    async (request) => {
      const roomId = roomIdOf(request.params);
      request.logContext = { roomId };
      return view(roomId);
    },
  );

  app.put<{ Params: Params; Body: RetentionPolicy }>(
    "/v1/rooms/:roomId/retention",
    {
      schema: {
        summary: "Set a room's retention policy",
        description:
          "Operator token. Replaces the global policy for this room as a whole: both fields are required, each a number or null (null: no limit of that kind here, kept forever by that rule). `maxAgeDays` 1..36500, `maxCount` at least 1. The next retention pass applies it.",
        tags: [ApiTag.logManagement],
        security: BEARER_SECURITY,
        params: roomParamsSchema,
        body: retentionBodySchema,
        response: responses,
      },
      onRequest,
    },
    async (request) => {
      const roomId = roomIdOf(request.params);
      const principal = request.principal as Principal;
      request.logContext = { roomId, userId: principal.userId };
      const { maxAgeDays, maxCount } = request.body;
      let stored: Awaited<ReturnType<RetentionStore["set"]>>;
      try {
        stored = await store.set(roomId, { maxAgeDays, maxCount }, principal.userId);
      } catch (err) {
        throw unavailable(err);
      }
      request.log.info({ roomId, maxAgeDays, maxCount, operator: principal.userId }, "retention override set");
      return view(roomId, { ...stored, updatedAt: stored.updatedAt.toISOString() });
    },
  );

  app.delete<{ Params: Params }>(
    "/v1/rooms/:roomId/retention",
    {
      schema: {
        summary: "Remove a room's retention policy",
        description:
          "Operator token. The room follows the global policy again (answered as by GET; removing an absent override is not an error).",
        tags: [ApiTag.logManagement],
        security: BEARER_SECURITY,
        params: roomParamsSchema,
        response: responses,
      },
      onRequest,
    },
    async (request) => {
      const roomId = roomIdOf(request.params);
      const principal = request.principal as Principal;
      request.logContext = { roomId, userId: principal.userId };
      try {
        if (await store.clear(roomId)) {
          request.log.info({ roomId, operator: principal.userId }, "retention override removed");
        }
      } catch (err) {
        throw unavailable(err);
      }
      return view(roomId, null);
    },
  );
};

function roomIdOf(params: Params): number {
  const roomId = parseId(params.roomId);
  if (roomId === undefined) throw new RelayError(ErrorCode.InvalidRoom, "room id must be a positive integer");
  return roomId;
}

function unavailable(err: unknown): RelayError {
  return err instanceof RelayError
    ? err
    : new RelayError(ErrorCode.ServiceUnavailable, "the chat log cannot be reached now; try again shortly", err, 2);
}
