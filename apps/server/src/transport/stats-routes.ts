import {
  type BusiestRoomsView,
  busiestRoomsQuerySchema,
  busiestRoomsSchema,
  ErrorCode,
  problemSchema,
  type RoomStatsView,
  roomParamsSchema,
  roomStatsQuerySchema,
  roomStatsSchema,
} from "@chatrelay/protocol";
import type { FastifyPluginAsync } from "fastify";
import type { TokenVerifier } from "../auth/token-verifier.js";
import type { RoomStatsReader } from "../chatlog/room-stats.js";
import { type StatsWindow, StatsWindowError, statsWindow } from "../chatlog/stats-window.js";
import { RelayError } from "../core/relay-error.js";
import { ApiTag, BEARER_SECURITY } from "./api-doc.js";
import { parseId } from "./ids.js";
import { operatorAuthentication } from "./operator-auth.js";

interface StatsRoutesOptions {
  stats: RoomStatsReader;
  verifyToken: TokenVerifier;
}

const DEFAULT_COUNT = 10;
const MAX_COUNT = 100;

const errorResponses = {
  400: problemSchema,
  401: problemSchema,
  403: problemSchema,
  503: problemSchema,
} as const;

const WINDOW_TEXT =
  "`from` and `to` are ISO 8601 (a date alone is UTC midnight; a time needs its zone); the window is widened to whole UTC hours, `to` defaults to now and `from` to 24 hours before `to`, at most 31 days. Chat messages only: moderation events are not counted.";

/** `GET /v1/rooms/:roomId/stats` and `GET /v1/stats/rooms`: operator token only. */
export const statsRoutes: FastifyPluginAsync<StatsRoutesOptions> = async (app, opts) => {
  const onRequest = operatorAuthentication(opts.verifyToken);

  app.get<{ Params: { roomId: string }; Querystring: { from?: string; to?: string; top?: string } }>(
    "/v1/rooms/:roomId/stats",
    {
      schema: {
        summary: "Read a room's statistics",
        description: `Operator token. Messages per hour and per day, distinct senders, the top senders (\`top\`, 1 to 100, default 10), the first and last message time in the window. ${WINDOW_TEXT}`,
        tags: [ApiTag.logManagement],
        security: BEARER_SECURITY,
        params: roomParamsSchema,
        querystring: roomStatsQuerySchema,
        response: { 200: roomStatsSchema, ...errorResponses },
      },
      onRequest,
    },
    async (request): Promise<RoomStatsView> => {
      const roomId = parseId(request.params.roomId);
      if (roomId === undefined) throw new RelayError(ErrorCode.InvalidRoom, "room id must be a positive integer");
      const window = windowOf(request.query.from, request.query.to);
      const top = countOf(request.query.top, "top");
      request.logContext = { roomId };
      const s = await storeCall(() => opts.stats.room(roomId, window, top));
      return {
        roomId,
        from: s.from.toISOString(),
        to: s.to.toISOString(),
        messages: s.messages,
        distinctSenders: s.distinctSenders,
        firstMessageAt: s.firstMessageAt?.toISOString() ?? null,
        lastMessageAt: s.lastMessageAt?.toISOString() ?? null,
        hourly: s.hourly.map((h) => ({ hour: h.hour.toISOString(), messages: h.messages })),
        daily: s.daily.map((d) => ({ day: d.day.toISOString(), messages: d.messages })),
        topSenders: s.topSenders,
      };
    },
  );

  app.get<{ Querystring: { from?: string; to?: string; limit?: string } }>(
    "/v1/stats/rooms",
    {
      schema: {
        summary: "List the busiest rooms",
        description: `Operator token. The rooms with the most messages in the window, most first (\`limit\`, 1 to 100, default 10); rooms without messages in it are not listed. ${WINDOW_TEXT}`,
        tags: [ApiTag.logManagement],
        security: BEARER_SECURITY,
        querystring: busiestRoomsQuerySchema,
        response: { 200: busiestRoomsSchema, ...errorResponses },
      },
      onRequest,
    },
    async (request): Promise<BusiestRoomsView> => {
      const window = windowOf(request.query.from, request.query.to);
      const limit = countOf(request.query.limit, "limit");
      const items = await storeCall(() => opts.stats.busiest(window, limit));
      return { from: window.from.toISOString(), to: window.to.toISOString(), items };
    },
  );
};

function windowOf(from: string | undefined, to: string | undefined): StatsWindow {
  try {
    return statsWindow(from, to);
  } catch (err) {
    if (err instanceof StatsWindowError) throw new RelayError(ErrorCode.InvalidRequest, err.message);
    throw err;
  }
}

function countOf(raw: string | undefined, name: string): number {
  if (raw === undefined) return DEFAULT_COUNT;
  const n = parseId(raw);
  if (n === undefined || n > MAX_COUNT) {
    throw new RelayError(ErrorCode.InvalidRequest, `${name} must be an integer from 1 to ${MAX_COUNT}`);
  }
  return n;
}

async function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new RelayError(ErrorCode.ServiceUnavailable, "the chat log is unavailable; try again shortly", err, 2);
  }
}
