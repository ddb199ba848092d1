import { ErrorCode, PROBLEM_BASE, type Problem, type SeedErrorBody } from "@chatrelay/protocol";

const STATUS: Record<ErrorCode, number> = {
  invalid_json: 400,
  invalid_body: 400,
  unsupported_media_type: 415,
  body_too_large: 413,
  text_empty: 400,
  text_too_long: 400,
  text_control_characters: 400,
  invalid_room: 400,
  invalid_cursor: 400,
  invalid_headers: 400,
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  room_not_live: 409,
  idempotency_conflict: 422,
  not_found: 404,
  upgrade_required: 426,
  service_unavailable: 503,
  rate_limited: 429,
  slow_mode: 429,
  banned: 403,
  timed_out: 403,
  room_locked: 403,
  text_blocked: 400,
  internal_error: 500,
};

const TITLE: Record<ErrorCode, string> = {
  invalid_json: "Malformed JSON",
  invalid_body: "Invalid request",
  unsupported_media_type: "Unsupported media type",
  body_too_large: "Request body too large",
  text_empty: "Empty message",
  text_too_long: "Message too long",
  text_control_characters: "Control characters in message",
  invalid_room: "Invalid room id",
  invalid_cursor: "Invalid cursor",
  invalid_headers: "Invalid headers",
  invalid_request: "Malformed request",
  unauthorized: "Unauthorized",
  forbidden: "Forbidden",
  room_not_live: "Room not live",
  idempotency_conflict: "Idempotency key reused",
  not_found: "Not found",
  upgrade_required: "WebSocket upgrade required",
  service_unavailable: "Service unavailable",
  rate_limited: "Too many messages",
  slow_mode: "Slow mode",
  banned: "Banned",
  timed_out: "Timed out",
  room_locked: "Moderators only",
  text_blocked: "Blocked term",
  internal_error: "Internal error",
};

export function statusOf(code: ErrorCode): number {
  return STATUS[code];
}

export function problem(code: ErrorCode, detail: string, instance?: string): Problem {
  return {
    type: PROBLEM_BASE + code,
    title: TITLE[code],
    status: STATUS[code],
    code,
    detail,
    ...(instance === undefined ? {} : { instance }),
  };
}

/** The seed's error status: a room that is not live was a plain 400 there. */
export function seedStatusOf(code: ErrorCode): number {
  return code === ErrorCode.RoomNotLive || code === ErrorCode.IdempotencyConflict ? 400 : STATUS[code];
}

export function seedError(status: number, message: string, path: string, now = new Date()): SeedErrorBody {
  return { timestamp: seedTimestamp(now), status, message, path };
}

const pad = (n: number) => String(n).padStart(2, "0");

/** `yyyy-MM-dd HH:mm:ss` in the server's local time zone, like the seed. */
export function seedTimestamp(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `HH:mm` in the server's local time zone, the seed's `time` field. */
export function seedClock(d: Date): string {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
