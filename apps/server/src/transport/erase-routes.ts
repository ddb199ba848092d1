import {
  type EraseUserBody,
  type ErasurePage,
  type ErasureResultView,
  ErrorCode,
  eraseUserBodySchema,
  erasurePageSchema,
  erasureResultSchema,
  erasuresQuerySchema,
  problemSchema,
  userParamsSchema,
} from "@chatrelay/protocol";
import type { FastifyPluginAsync } from "fastify";
import type { TokenVerifier } from "../auth/token-verifier.js";
import type { UserErasure } from "../chatlog/user-erasure.js";
import { RelayError } from "../core/relay-error.js";
import { ApiTag, BEARER_SECURITY } from "./api-doc.js";
import { parseId } from "./ids.js";
import { operatorAuthentication } from "./operator-auth.js";

interface EraseRoutesOptions {
  erasure: UserErasure;
  verifyToken: TokenVerifier;
}

const ERASURES_DEFAULT_LIMIT = 50;
const ERASURES_MAX_LIMIT = 200;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const errorResponses = {
  400: problemSchema,
  401: problemSchema,
  403: problemSchema,
  503: problemSchema,
} as const;

/**
 * `DELETE /v1/users/:userId/messages` (erase a user's messages in every room) and
 * `GET /v1/erasures` (the erasure audit): operator token only.
 */
export const eraseRoutes: FastifyPluginAsync<EraseRoutesOptions> = async (app, opts) => {
  const onRequest = operatorAuthentication(opts.verifyToken);

  app.delete<{ Params: { userId: string }; Body: EraseUserBody | null | undefined }>(
    "/v1/users/:userId/messages",
    {
      schema: {
        summary: "Erase a user's messages",
        description:
          'Operator token. Empties the text and nickname of every chat message the user sent, in every room (the entries stay as deleted tombstones with their seq), records the erasure in the audit, and logs an `erase` moderation event (`data` `{userId, count}`) in each affected room, which its presenter receives in seq order. Erasing again finds nothing left (0 messages) and is audited too. Body optional: `{"reason": "..."}`.',
        tags: [ApiTag.logManagement],
        security: BEARER_SECURITY,
        params: userParamsSchema,
        body: eraseUserBodySchema,
        response: { 200: erasureResultSchema, ...errorResponses },
      },
      onRequest,
    },
    async (request): Promise<ErasureResultView> => {
      const userId = parseId(request.params.userId);
      if (userId === undefined) throw new RelayError(ErrorCode.InvalidRequest, "user id must be a positive integer");
      const operatorId = request.principal?.userId as number;
      request.logContext = { userId: operatorId };
      const reason = request.body?.reason;
      try {
        const result = await opts.erasure.erase({ operatorId, userId, reason });
        request.log.info({ ...result, operatorId }, "user erased");
        return result;
      } catch (err) {
        throw new RelayError(
          ErrorCode.ServiceUnavailable,
          "the chat log is unavailable: the erasure did not finish (its audit row says how far it got); repeat the request",
          err,
          2,
        );
      }
    },
  );

  app.get<{ Querystring: { before?: string; limit?: string } }>(
    "/v1/erasures",
    {
      schema: {
        summary: "List erasures",
        description:
          "Operator token. The erasure audit, newest first: who erased whom, why, when it started and finished, rooms and messages. `before` is the `nextBefore` of the previous page; `limit` 1 to 200 (default 50).",
        tags: [ApiTag.logManagement],
        security: BEARER_SECURITY,
        querystring: erasuresQuerySchema,
        response: { 200: erasurePageSchema, ...errorResponses },
      },
      onRequest,
    },
    async (request): Promise<ErasurePage> => {
      const { before, limit: rawLimit } = request.query;
      if (before !== undefined && !UUID.test(before)) {
        throw new RelayError(ErrorCode.InvalidCursor, "before must be the nextBefore of a previous page");
      }
      const limit = rawLimit === undefined ? ERASURES_DEFAULT_LIMIT : parseId(rawLimit);
      if (limit === undefined || limit > ERASURES_MAX_LIMIT) {
        throw new RelayError(ErrorCode.InvalidCursor, `limit must be an integer from 1 to ${ERASURES_MAX_LIMIT}`);
      }
      let records: Awaited<ReturnType<UserErasure["list"]>>;
      try {
        records = await opts.erasure.list(before, limit);
      } catch (err) {
        throw new RelayError(ErrorCode.ServiceUnavailable, "the chat log is unavailable; try again shortly", err, 2);
      }
      const last = records.at(-1);
      return {
        items: records.map((r) => ({
          erasureId: r.erasureId,
          userId: r.userId,
          rooms: r.rooms,
          messages: r.messages,
          operatorId: r.operatorId,
          reason: r.reason,
          startedAt: r.startedAt.toISOString(),
          finishedAt: r.finishedAt === null ? null : r.finishedAt.toISOString(),
        })),
        nextBefore: records.length === limit && last !== undefined ? last.erasureId : null,
      };
    },
  );
};
