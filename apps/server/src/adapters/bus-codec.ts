import type { UserType } from "@chatrelay/protocol";
import { type ChatMessage, checkEventData, isModerationEventKind } from "../core/message.js";
import type { BusEvent } from "../core/ports.js";
import { checkText, cleanNickname } from "../core/text.js";

/** Bus payloads are JSON; dates travel as ISO strings. */
export function encodeBusEvent(event: BusEvent): string {
  return JSON.stringify(event);
}

/** Why a payload was dropped: a fixed set, so it can label a metric. */
export type BusRejectReason = "size" | "json" | "kind" | "field" | "room";

export type BusDecodeResult = { ok: true; event: BusEvent } | { ok: false; reason: BusRejectReason };

export interface BusCodecLimits {
  /** The relay's MAX_TEXT_LENGTH, in code points: texts longer than any node accepts are forged. */
  maxTextLength: number;
}

/**
 * Largest payload a node can publish: the text (at most 2 UTF-16 units per code point once JSON
 * escapes `"` and `\`; control characters never pass checkText) plus a fixed envelope.
 */
export function maxPayloadChars(limits: BusCodecLimits): number {
  return 2 * limits.maxTextLength + 2048;
}

const ID = /^[0-9A-Za-z-]{1,64}$/;
const MAX_DATE_CHARS = 32;

/**
 * Strict decoding of what arrived on `roomId`'s channel. Anyone who can publish on Redis can
 * write there, so nothing is trusted: the size is checked before parsing, every field's type and
 * range after, and the result is built from fresh objects (unknown keys, `__proto__` included,
 * are never copied). Never throws.
 */
export function decodeBusEvent(payload: unknown, roomId: number, limits: BusCodecLimits): BusDecodeResult {
  if (typeof payload !== "string" || payload.length > maxPayloadChars(limits)) return reject("size");
  let raw: unknown;
  try {
    raw = JSON.parse(payload);
  } catch {
    // Syntax errors, and a RangeError from nesting deeper than the parser's stack.
    return reject("json");
  }
  try {
    return decodeValue(raw, roomId, limits);
  } catch {
    // Not expected (every read is type-checked); a decoder bug must still not reach the handler.
    return reject("field");
  }
}

function decodeValue(raw: unknown, roomId: number, limits: BusCodecLimits): BusDecodeResult {
  if (!isRecord(raw)) return reject("kind");
  const kind = own(raw, "kind");
  if (kind === "takeover") {
    const connId = own(raw, "connId");
    const epoch = own(raw, "epoch");
    if (!isId(connId) || !isPositiveInt(epoch)) return reject("field");
    return { ok: true, event: { kind: "takeover", connId, epoch } };
  }
  if (kind !== "message") return reject("kind");
  const m = own(raw, "message");
  if (!isRecord(m)) return reject("field");
  const message = decodeMessage(m, limits);
  if (message === undefined) return reject("field");
  if (message.roomId !== roomId) return reject("room");
  return { ok: true, event: { kind: "message", message } };
}

function decodeMessage(m: Record<string, unknown>, limits: BusCodecLimits): ChatMessage | undefined {
  const id = own(m, "id");
  const roomId = own(m, "roomId");
  const seq = own(m, "seq");
  const senderId = own(m, "senderId");
  const nickname = own(m, "nickname");
  const userType = own(m, "userType");
  const text = own(m, "text");
  const sentAt = own(m, "sentAt");
  if (!isId(id) || !isPositiveInt(roomId) || !isPositiveInt(seq) || !isPositiveInt(senderId)) return undefined;
  if (userType !== "presenter" && userType !== "viewer") return undefined;
  // The same rules the sending node applied: a clean display name and a clean, bounded text.
  const kind = own(m, "kind");
  if (kind !== undefined && kind !== "message") {
    // A moderation event: no name, no text, and data within the bounds every node writes.
    const event = own(m, "event");
    if (!isModerationEventKind(kind) || nickname !== "" || text !== "" || !checkEventData(kind, event))
      return undefined;
    const date = parseDate(sentAt);
    if (date === undefined) return undefined;
    return { id, roomId, seq, senderId, nickname, userType, text, sentAt: date, kind, event: copyEventData(event) };
  }
  if (typeof nickname !== "string" || cleanNickname(nickname, senderId) !== nickname) return undefined;
  if (typeof text !== "string") return undefined;
  const checked = checkText(text, limits.maxTextLength);
  if (!checked.ok || checked.text !== text) return undefined;
  const date = parseDate(sentAt);
  if (date === undefined) return undefined;
  return { id, roomId, seq, senderId, nickname, userType: userType satisfies UserType, text, sentAt: date };
}

/** A fresh object with the checked data's own keys (letters and digits only: never `__proto__`). */
function copyEventData(data: Record<string, string | number | boolean | null>): ChatMessage["event"] {
  const copy: Record<string, string | number | boolean | null> = {};
  for (const key of Object.keys(data)) copy[key] = data[key] as string | number | boolean | null;
  return copy;
}

/** Exactly what `Date.prototype.toJSON` writes: anything else was not written by a node. */
function parseDate(value: unknown): Date | undefined {
  if (typeof value !== "string" || value.length > MAX_DATE_CHARS) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime()) || date.toISOString() !== value) return undefined;
  return date;
}

function reject(reason: BusRejectReason): BusDecodeResult {
  return { ok: false, reason };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Own properties only: nothing is read through the prototype chain. */
function own(record: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function isId(value: unknown): value is string {
  return typeof value === "string" && ID.test(value);
}

function isPositiveInt(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}
