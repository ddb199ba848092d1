import type { ModerationCommand } from "../core/moderation.js";

/**
 * What a presenter may send, whatever its surface, once its frame is decoded.
 * Codecs produce these from untrusted text and never throw; the frame loop
 * acts on them.
 */
export type ClientCommand =
  /** `token` undefined: the start frame carried none (or an unusable one); the socket is refused (4003). */
  /** `wantsEvents`: the seed client asked for `moderation` frames (`"events": true`); `wantsGone`: for `gone` frames. */
  | {
      kind: "start";
      token: string | undefined;
      lastSeq: number | undefined;
      wantsReady: boolean;
      wantsEvents: boolean;
      wantsGone: boolean;
    }
  | { kind: "auth"; token: string }
  | { kind: "ack"; seq: number }
  | { kind: "ping" }
  | { kind: "stop" }
  /** v1: a moderation action on the socket's room (answered `moderated` or `error`). */
  | { kind: "moderate"; change: ModerationCommand };

/** A frame the codec refused; `reason` is in our words and never quotes the client. */
export interface InvalidFrame {
  kind: "invalid";
  reason: string;
}

export type DecodedFrame = ClientCommand | InvalidFrame;

export const MAX_TOKEN_CHARS = 8192;

export function invalid(reason: string): InvalidFrame {
  return { kind: "invalid", reason };
}

/**
 * Parses a frame as a plain JSON object, or says why not. JSON.parse builds
 * own data properties only (a "__proto__" key stays an own key), and the
 * result is never stringified or coerced: its values are read through `field`.
 */
export function parseObject(text: string): Record<string, unknown> | InvalidFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return invalid("frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return invalid("frame must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/** An own property of a parsed frame (never one inherited from Object.prototype). */
export function field(frame: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(frame, key) ? frame[key] : undefined;
}

export function isInvalid(value: unknown): value is InvalidFrame {
  return (value as InvalidFrame | undefined)?.kind === "invalid";
}

/** A sequence number from a frame: a non-negative safe integer. */
export function readSeq(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

export function readToken(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_TOKEN_CHARS ? value : undefined;
}
