import { MODERATION_EVENT_KINDS, type ModerationEventKind, type UserType } from "@chatrelay/protocol";

export type { ModerationEventKind } from "@chatrelay/protocol";

/** What a log row is: a chat message, or a moderation event in the same seq order. */
export type LogEntryKind = "message" | ModerationEventKind;

/**
 * A moderation event's data: built by the server only, flat (string, number,
 * boolean or null values under plain keys) and small, so every encoder can
 * pass it through as it is (see `checkEventData`).
 */
export type ModerationEventData = Record<string, string | number | boolean | null>;

/** A chat message (or a moderation event) as the relay core and the chat log hold it. */
export interface ChatMessage {
  id: string;
  roomId: number;
  seq: number;
  /** For an event: the moderator (or presenter) who acted. */
  senderId: number;
  /** "" for events. */
  nickname: string;
  userType: UserType;
  /** "" for events. */
  text: string;
  sentAt: Date;
  /** Absent (a message from a node or a test that predates events): "message". The chat log always sets it. */
  kind?: LogEntryKind | undefined;
  /** Events only: the event's data. */
  event?: ModerationEventData | undefined;
  /** Read from the log only (history, replay): set when a moderator deleted this message. */
  deletedBy?: number | undefined;
}

/**
 * A row before the chat log assigned its seq and commit time. The post path
 * builds plain messages: `kind` and `event` absent (nothing more to allocate).
 * Events come through `ChatLog.appendEvent`, which fills both.
 */
export interface MessageDraft {
  id: string;
  roomId: number;
  senderId: number;
  nickname: string;
  userType: UserType;
  text: string;
  clientMsgId: string | undefined;
  /** Absent: "message". */
  kind?: LogEntryKind | undefined;
  event?: ModerationEventData | undefined;
}

/** A moderation event to append to a room's log (`ChatLog.appendEvent`). */
export interface EventDraft {
  id: string;
  roomId: number;
  actorId: number;
  kind: ModerationEventKind;
  /** `delete` needs `targetSeq` (the deleted message's seq); see `checkEventData` for the shape. */
  event: ModerationEventData;
}

/** What appending a draft produced: the committed message, or the first one with the same client message id. */
export interface AppendResult {
  message: ChatMessage;
  duplicate: boolean;
}

/** Whether a log entry is a moderation event rather than a chat message. */
export function isEvent(m: { kind?: LogEntryKind | undefined }): boolean {
  return m.kind !== undefined && m.kind !== "message";
}

/** Bounds of an event's data: what every node accepts (a bus payload beyond them is forged). */
export const EVENT_DATA_LIMITS = { maxKeys: 8, maxStringChars: 64 } as const;
const EVENT_KEY = /^[A-Za-z][A-Za-z0-9]{0,31}$/;
const EVENT_KINDS: ReadonlySet<string> = new Set(MODERATION_EVENT_KINDS);

export function isModerationEventKind(value: unknown): value is ModerationEventKind {
  return typeof value === "string" && EVENT_KINDS.has(value);
}

/**
 * Whether `data` is a valid event payload for `kind`: a plain object of at
 * most `maxKeys` keys (letters and digits, so never `__proto__`), each value
 * a string of at most `maxStringChars`, a finite number, a boolean or null;
 * a `delete` carries `targetSeq`, a positive safe integer; an `erase` its `userId` (positive) and
 * `count` (non-negative). Never throws.
 */
export function checkEventData(kind: ModerationEventKind, data: unknown): data is ModerationEventData {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return false;
  const proto = Object.getPrototypeOf(data);
  if (proto !== Object.prototype && proto !== null) return false;
  const keys = Object.keys(data);
  if (keys.length > EVENT_DATA_LIMITS.maxKeys) return false;
  for (const key of keys) {
    if (!EVENT_KEY.test(key)) return false;
    const value = (data as Record<string, unknown>)[key];
    if (typeof value === "string") {
      if (value.length > EVENT_DATA_LIMITS.maxStringChars) return false;
    } else if (typeof value === "number") {
      if (!Number.isFinite(value)) return false;
    } else if (typeof value !== "boolean" && value !== null) {
      return false;
    }
  }
  if (kind === "delete") {
    const target = (data as Record<string, unknown>).targetSeq;
    if (typeof target !== "number" || !Number.isSafeInteger(target) || target < 1) return false;
  }
  if (kind === "erase") {
    // An operator's erasure of one user's messages in the room: whom, and how many rows it emptied.
    const { userId, count } = data as Record<string, unknown>;
    if (typeof userId !== "number" || !Number.isSafeInteger(userId) || userId < 1) return false;
    if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) return false;
  }
  return true;
}
