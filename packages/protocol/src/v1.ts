import type { ModeratedFrame, ModerateFrame } from "./moderation.js";

/** The v1 surface: this project's own API. */

export type UserType = "presenter" | "viewer";

/** POST /v1/rooms/:roomId/messages body. */
export interface PostMessageBody {
  text: string;
  /** Client-chosen id; a retry with the same id returns the first result. */
  clientMsgId?: string;
}

/** 201 answer of POST /v1/rooms/:roomId/messages. */
export interface PostMessageResult {
  id: string;
  roomId: number;
  seq: number;
  sentAt: string;
}

/** Moderation events: entries of a room's log, in the same seq order as its messages. */
export const MODERATION_EVENT_KINDS = [
  "delete",
  "clear",
  "ban",
  "unban",
  "timeout",
  "settings",
  "moderator_add",
  "moderator_remove",
  "terms",
  "erase",
] as const;
export type ModerationEventKind = (typeof MODERATION_EVENT_KINDS)[number];

/** One message as history and presenter frames show it. */
export interface ChatMessageView {
  id: string;
  roomId: number;
  seq: number;
  senderId: number;
  nickname: string;
  userType: UserType;
  text: string;
  sentAt: string;
  /** History only: "message", or the moderation event this entry is (events only with `?kinds=all`). */
  kind?: "message" | ModerationEventKind;
  /** History only: an event entry's data (as in the `moderation` frame). */
  data?: Record<string, string | number | boolean | null>;
  /** History only: a moderator deleted this message; its text is "" unless `?includeDeleted=true` was allowed. */
  deleted?: boolean;
  /** History only, with `deleted`: who deleted it. */
  deletedBy?: number;
}

/**
 * A moderation event as the v1 presenter socket delivers it (`{"type":"moderation", ...}`), in seq
 * order with the messages. `by`: the acting presenter or moderator. `data` by action: delete
 * {targetSeq, targetId}, clear {upToSeq}, ban/unban {userId}, timeout {userId, until},
 * settings {slowModeS, moderatorsOnly, maxTextLength}, moderator_add/remove {userId}, terms {count},
 * erase {userId, count} (an operator erased that user's messages in the room: `count` of them).
 */
export interface ModerationEventView {
  id: string;
  roomId: number;
  seq: number;
  action: ModerationEventKind;
  by: number;
  sentAt: string;
  data: Record<string, string | number | boolean | null>;
}

/** GET /v1/rooms/:roomId/messages answer: newest first. */
export interface HistoryPage {
  items: ChatMessageView[];
  /** Pass as `before` to get the next (older) page; null when there is none. */
  nextBefore: number | null;
  /** Where the room's retained log starts (retention pruned everything below): its lowest seq, null when it holds no entry. */
  retainedFrom: number | null;
}

/** Server -> presenter frames on the v1 socket. */
export type V1ServerFrame =
  | { type: "ready"; roomId: number; connId: string; lastSeq: number; resumeFrom: number | null }
  | ({ type: "message" } & ChatMessageView)
  | ({ type: "moderation" } & ModerationEventView)
  /** Retention removed seqs fromSeq..toSeq (inclusive) before they were delivered; delivery goes on after toSeq. */
  | { type: "gone"; fromSeq: number; toSeq: number }
  | { type: "pong" }
  /** Answer to an `auth` frame: the socket now lives until the new token's expiry. */
  | { type: "authenticated"; expiresAt: string }
  /** Answer to a `moderate` frame (moderation.ts). */
  | ModeratedFrame
  | { type: "error"; code: string; message: string };

/** Presenter -> server frames on the v1 socket. */
export type V1ClientFrame =
  | { type: "ping" }
  | { type: "ack"; seq: number }
  | { type: "stop" }
  /** A fresh token for the same user, sent before the current one expires. */
  | { type: "auth"; token: string }
  /** A moderation action on the socket's room (moderation.ts). */
  | ModerateFrame;

/** Error codes of v1 socket `error` frames (besides the HTTP ones, e.g. service_unavailable). */
export const SocketErrorCode = {
  InvalidFrame: "invalid_frame",
  TokenExpired: "token_expired",
  TokenRefused: "token_refused",
} as const;

export const ROOM_ID_PATTERN = "^[1-9][0-9]{0,15}$";

export const postMessageBodySchema = {
  type: "object",
  required: ["text"],
  additionalProperties: false,
  properties: {
    text: { type: "string" },
    clientMsgId: { type: "string", minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9._:-]+$" },
  },
} as const;

export const postMessageResultSchema = {
  type: "object",
  required: ["id", "roomId", "seq", "sentAt"],
  properties: {
    id: { type: "string" },
    roomId: { type: "integer" },
    seq: { type: "integer" },
    sentAt: { type: "string" },
  },
} as const;

export const chatMessageViewSchema = {
  type: "object",
  required: ["id", "roomId", "seq", "senderId", "nickname", "userType", "text", "sentAt"],
  properties: {
    id: { type: "string" },
    roomId: { type: "integer" },
    seq: { type: "integer" },
    senderId: { type: "integer" },
    nickname: { type: "string" },
    userType: { type: "string", enum: ["presenter", "viewer"] },
    text: { type: "string" },
    sentAt: { type: "string" },
    kind: { type: "string" },
    data: { type: "object", additionalProperties: true },
    deleted: { type: "boolean" },
    deletedBy: { type: "integer" },
  },
} as const;

export const historyPageSchema = {
  type: "object",
  required: ["items", "nextBefore", "retainedFrom"],
  properties: {
    items: { type: "array", items: chatMessageViewSchema },
    nextBefore: { anyOf: [{ type: "integer" }, { type: "null" }] },
    retainedFrom: { anyOf: [{ type: "integer" }, { type: "null" }] },
  },
} as const;

export const roomParamsSchema = {
  type: "object",
  required: ["roomId"],
  properties: { roomId: { type: "string", pattern: ROOM_ID_PATTERN } },
} as const;

export const historyQuerySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    before: { type: "string", pattern: "^[1-9][0-9]{0,15}$" },
    limit: { type: "string", pattern: "^[1-9][0-9]{0,3}$" },
    /** "message" (default): chat messages only; "all": moderation events too, as entries with `kind` and `data`. */
    kinds: { type: "string", enum: ["message", "all"] },
    /** "true": deleted messages keep their text (the room's presenter or a moderator only; 403 otherwise). */
    includeDeleted: { type: "string", enum: ["true", "false"] },
    access_token: { type: "string", minLength: 1, maxLength: 8192 },
  },
} as const;

export const presenterSocketQuerySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    lastSeq: { type: "string", pattern: "^(0|[1-9][0-9]{0,15})$" },
    access_token: { type: "string", minLength: 1, maxLength: 8192 },
  },
} as const;

export const problemSchema = {
  type: "object",
  required: ["type", "title", "status", "code"],
  properties: {
    type: { type: "string" },
    title: { type: "string" },
    status: { type: "integer" },
    code: { type: "string" },
    detail: { type: "string" },
    instance: { type: "string" },
  },
} as const;

/** GET /v1/rooms/:roomId/status answer: whether the room is on air, and where its presenter is connected. */
export interface RoomStatus {
  roomId: number;
  /** "live": a presenter is connected; "grace": it is reconnecting (posts still accepted); "offline". */
  state: "live" | "grace" | "offline";
  /** The node holding the presenter's socket (its NODE_ID), null when offline. */
  presenterNode: string | null;
  /** The room's newest seq in the chat log (0 before its first message). */
  lastSeq: number;
}

export const roomStatusSchema = {
  type: "object",
  required: ["roomId", "state", "presenterNode", "lastSeq"],
  properties: {
    roomId: { type: "integer" },
    state: { type: "string", enum: ["live", "grace", "offline"] },
    presenterNode: { anyOf: [{ type: "string" }, { type: "null" }] },
    lastSeq: { type: "integer" },
  },
} as const;

// ---- Export (issue #13): GET /v1/rooms/:roomId/export ----

/**
 * GET /v1/rooms/:roomId/export query (operator token). All optional; the handler checks each value
 * (one parser with the CLI's `chatrelay log export`) and answers 400 in its own words.
 */
export const exportQuerySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    from: {
      type: "string",
      maxLength: 40,
      description:
        "Rows with created_at at or after this ISO 8601 date or date-time with a zone (2026-11-26, 2026-11-26T09:30:00Z, 2026-11-26T18:30:00+09:00).",
    },
    to: {
      type: "string",
      maxLength: 40,
      description: "Rows with created_at before this time (exclusive); not before `from`.",
    },
    afterSeq: {
      type: "string",
      maxLength: 20,
      description:
        "Rows with a seq above this one (exclusive): resume an interrupted export with the last seq received.",
    },
    toSeq: { type: "string", maxLength: 20, description: "Rows up to this seq (inclusive); not below `afterSeq`." },
    format: { type: "string", maxLength: 16, description: "`ndjson` (default) or `csv`." },
    access_token: { type: "string", minLength: 1, maxLength: 8192 },
  },
} as const;

// ---- Log management (issue #13): erasing a user, statistics. Operator token only. ----

/** DELETE /v1/users/:userId/messages body (optional). */
export interface EraseUserBody {
  /** Why (kept in the erasure's audit row); at most 500 characters. */
  reason?: string;
}

/** DELETE /v1/users/:userId/messages answer: the erasure's audit id and what it emptied. */
export interface ErasureResultView {
  erasureId: string;
  userId: number;
  /** Rooms with at least one message erased (each got an `erase` moderation event). */
  rooms: number;
  messages: number;
}

/** One erasure as GET /v1/erasures lists it. */
export interface ErasureView extends ErasureResultView {
  operatorId: number;
  reason: string | null;
  startedAt: string;
  /** Null while it runs or when it was interrupted (`rooms` and `messages` say how far it got). */
  finishedAt: string | null;
}

/** GET /v1/erasures answer: newest first. */
export interface ErasurePage {
  items: ErasureView[];
  /** Pass as `before` for the next (older) page; null when there is none. */
  nextBefore: string | null;
}

/** GET /v1/rooms/:roomId/stats answer: chat messages only (moderation events are not counted). */
export interface RoomStatsView {
  roomId: number;
  /** The window, widened to whole UTC hours: [from, to). */
  from: string;
  to: string;
  messages: number;
  distinctSenders: number;
  /** Of the messages still in the chat log within the window; null when none. */
  firstMessageAt: string | null;
  lastMessageAt: string | null;
  /** UTC hours with messages, oldest first. */
  hourly: { hour: string; messages: number }[];
  /** UTC days with messages, oldest first. */
  daily: { day: string; messages: number }[];
  /** Most messages first (ties: lower id first). */
  topSenders: { senderId: number; messages: number }[];
}

/** GET /v1/stats/rooms answer: the busiest rooms of the window, most messages first. */
export interface BusiestRoomsView {
  from: string;
  to: string;
  items: { roomId: number; messages: number }[];
}

export const userParamsSchema = {
  type: "object",
  required: ["userId"],
  properties: { userId: { type: "string", maxLength: 32 } },
} as const;

export const eraseUserBodySchema = {
  anyOf: [
    { type: "null" },
    {
      type: "object",
      additionalProperties: false,
      properties: { reason: { type: "string", minLength: 1, maxLength: 500 } },
    },
  ],
} as const;

const erasureResultProperties = {
  erasureId: { type: "string" },
  userId: { type: "integer" },
  rooms: { type: "integer" },
  messages: { type: "integer" },
} as const;

export const erasureResultSchema = {
  type: "object",
  required: ["erasureId", "userId", "rooms", "messages"],
  properties: erasureResultProperties,
} as const;

export const erasurePageSchema = {
  type: "object",
  required: ["items", "nextBefore"],
  properties: {
    items: {
      type: "array",
      items: {
        type: "object",
        required: ["erasureId", "userId", "rooms", "messages", "operatorId", "reason", "startedAt", "finishedAt"],
        properties: {
          ...erasureResultProperties,
          operatorId: { type: "integer" },
          reason: { anyOf: [{ type: "string" }, { type: "null" }] },
          startedAt: { type: "string" },
          finishedAt: { anyOf: [{ type: "string" }, { type: "null" }] },
        },
      },
    },
    nextBefore: { anyOf: [{ type: "string" }, { type: "null" }] },
  },
} as const;

export const erasuresQuerySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    before: { type: "string", maxLength: 64 },
    limit: { type: "string", maxLength: 8 },
    access_token: { type: "string", minLength: 1, maxLength: 8192 },
  },
} as const;

export const roomStatsQuerySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    from: { type: "string", maxLength: 64 },
    to: { type: "string", maxLength: 64 },
    /** How many top senders (1..100, default 10). */
    top: { type: "string", maxLength: 8 },
    access_token: { type: "string", minLength: 1, maxLength: 8192 },
  },
} as const;

export const busiestRoomsQuerySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    from: { type: "string", maxLength: 64 },
    to: { type: "string", maxLength: 64 },
    /** How many rooms (1..100, default 10). */
    limit: { type: "string", maxLength: 8 },
    access_token: { type: "string", minLength: 1, maxLength: 8192 },
  },
} as const;

/** `{ <key>: <type>, messages }`: one bucket or one sender or room with its message count. */
function countedSchema<K extends string, T extends "integer" | "string">(key: K, type: T) {
  return {
    type: "object",
    required: [key, "messages"],
    properties: { [key]: { type }, messages: { type: "integer" } } as Record<K | "messages", { type: T | "integer" }>,
  } as const;
}

export const roomStatsSchema = {
  type: "object",
  required: [
    "roomId",
    "from",
    "to",
    "messages",
    "distinctSenders",
    "firstMessageAt",
    "lastMessageAt",
    "hourly",
    "daily",
    "topSenders",
  ],
  properties: {
    roomId: { type: "integer" },
    from: { type: "string" },
    to: { type: "string" },
    messages: { type: "integer" },
    distinctSenders: { type: "integer" },
    firstMessageAt: { anyOf: [{ type: "string" }, { type: "null" }] },
    lastMessageAt: { anyOf: [{ type: "string" }, { type: "null" }] },
    hourly: { type: "array", items: countedSchema("hour", "string") },
    daily: { type: "array", items: countedSchema("day", "string") },
    topSenders: { type: "array", items: countedSchema("senderId", "integer") },
  },
} as const;

export const busiestRoomsSchema = {
  type: "object",
  required: ["from", "to", "items"],
  properties: {
    from: { type: "string" },
    to: { type: "string" },
    items: { type: "array", items: countedSchema("roomId", "integer") },
  },
} as const;
