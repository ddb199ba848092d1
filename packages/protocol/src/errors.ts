/**
 * Stable error codes. v1 answers them as `application/problem+json` with
 * `type` = PROBLEM_BASE + code and `code` = the code itself; clients switch
 * on `code`.
 */
export const ErrorCode = {
  InvalidJson: "invalid_json",
  InvalidBody: "invalid_body",
  UnsupportedMediaType: "unsupported_media_type",
  BodyTooLarge: "body_too_large",
  TextEmpty: "text_empty",
  TextTooLong: "text_too_long",
  TextControlCharacters: "text_control_characters",
  InvalidRoom: "invalid_room",
  InvalidCursor: "invalid_cursor",
  /** Seed: a gateway header (x-forward-*) is missing or malformed. */
  InvalidHeaders: "invalid_headers",
  /** The request line's URL does not decode, or the WebSocket upgrade request is malformed. */
  InvalidRequest: "invalid_request",
  Unauthorized: "unauthorized",
  Forbidden: "forbidden",
  RoomNotLive: "room_not_live",
  IdempotencyConflict: "idempotency_conflict",
  NotFound: "not_found",
  /** A presenter-socket path was requested without a WebSocket upgrade. */
  UpgradeRequired: "upgrade_required",
  ServiceUnavailable: "service_unavailable",
  /** Too many messages (per sender per room, per sender, or per address): 429 with Retry-After. */
  RateLimited: "rate_limited",
  /** The room's slow mode: 429 with Retry-After. */
  SlowMode: "slow_mode",
  /** The sender is banned from the room: 403. */
  Banned: "banned",
  /** The sender is timed out in the room: 403 with Retry-After. */
  TimedOut: "timed_out",
  /** The room is in moderators-only mode: 403. */
  RoomLocked: "room_locked",
  /** The text contains one of the room's blocked terms: 400. */
  TextBlocked: "text_blocked",
  Internal: "internal_error",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const PROBLEM_BASE = "https://chatrelay.dev/problems/";

/** RFC 9457 problem details, with our stable `code`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail?: string;
  instance?: string;
}
