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
 * settings {slowModeS, moderatorsOnly, maxTextLength}, moderator_add/remove {userId}, terms {count}.
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
}

/** Server -> presenter frames on the v1 socket. */
export type V1ServerFrame =
  | { type: "ready"; roomId: number; connId: string; lastSeq: number; resumeFrom: number | null }
  | ({ type: "message" } & ChatMessageView)
  | ({ type: "moderation" } & ModerationEventView)
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
  required: ["items", "nextBefore"],
  properties: {
    items: { type: "array", items: chatMessageViewSchema },
    nextBefore: { anyOf: [{ type: "integer" }, { type: "null" }] },
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
