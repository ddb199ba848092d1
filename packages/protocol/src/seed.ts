/**
 * The seed surface: the original Spring Boot chatting server's wire contract.
 * Field names, paths and frame shapes here must not change.
 */

import type { ModerationEventView } from "./v1.js";

export const SEED_SOCKET_PATH = "/chatting";
export const SEED_SEND_PATH = "/send/message";

/** Gateway headers (Node lower-cases header names). */
export const SeedHeader = {
  userIdx: "x-forward-useridx",
  email: "x-forward-email",
  nickname: "x-forward-nickname",
} as const;

export type SeedUserType = "presenter" | "viewer";

/**
 * Client -> server, first frame. `lastSeq` (resume), `ready` (ask for a
 * `ready` frame once attached) and `events` (ask for `moderation` frames)
 * are our optional extensions.
 */
export interface SeedStartFrame {
  id: "start";
  token: string;
  lastSeq?: number;
  ready?: boolean;
  events?: boolean;
  /** Ask for `gone` frames (retention removed a range before it was delivered). */
  gone?: boolean;
}

/** Server -> presenter, only to clients that sent `"ready": true` in their start frame. */
export interface SeedReadyFrame {
  id: "ready";
  roomId: number;
  connId: string;
  lastSeq: number;
  resumeFrom: number | null;
}

/** Server -> presenter: one relayed chat. `seq`, `messageId`, `senderId`, `sentAt` are extensions seed clients ignore. */
export interface SeedSendChattingFrame {
  id: "sendChatting";
  nickname: string;
  message: string;
  time: string;
  seq: number;
  messageId: string;
  senderId: number;
  userType: SeedUserType;
  sentAt: string;
}

/**
 * Server -> presenter, only to clients that sent `"events": true` in their start frame: one
 * moderation event, in seq order with the chat (the v1 `moderation` frame's fields, its id as
 * `eventId`, since `id` names the frame). Without the opt-in these frames are skipped and the
 * seqs they hold are simply absent from the stream.
 */
export type SeedModerationFrame = { id: "moderation"; eventId: string } & Omit<ModerationEventView, "id">;

/**
 * Server -> presenter, only to clients that sent `"gone": true` in their start frame: retention
 * removed seqs fromSeq..toSeq (inclusive) before they were delivered. Without the opt-in the
 * range is simply absent from the stream.
 */
export interface SeedGoneFrame {
  id: "gone";
  fromSeq: number;
  toSeq: number;
}

export interface SeedTokenExceptionFrame {
  id: "tokenException";
  response: "reject";
  message: string;
}

export interface SeedErrorFrame {
  id: "error";
  message: string;
}

export type SeedServerFrame =
  | SeedSendChattingFrame
  | SeedModerationFrame
  | SeedGoneFrame
  | SeedTokenExceptionFrame
  | SeedErrorFrame
  | SeedReadyFrame;

/** Body of POST /send/message. */
export interface SeedSendBody {
  presenterIdx: number | null;
  userType: SeedUserType;
  textMessage: string;
}

/** Error body of the seed HTTP surface. */
export interface SeedErrorBody {
  timestamp: string;
  status: number;
  message: string;
  path: string;
}

export const SeedMessages = {
  notBroadcasting: "not broadcasting: the presenter is not connected",
  reconnecting: "session not found, reconnecting, try again shortly",
  reconnectYourSession: "reconnect your session",
} as const;

export const seedSendBodySchema = {
  type: "object",
  required: ["userType", "textMessage"],
  additionalProperties: true,
  properties: {
    presenterIdx: { anyOf: [{ type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER }, { type: "null" }] },
    userType: { type: "string", enum: ["presenter", "viewer"] },
    textMessage: { type: "string" },
  },
} as const;
