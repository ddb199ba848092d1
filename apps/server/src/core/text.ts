import { ErrorCode } from "@chatrelay/protocol";

// C0 and C1 control characters, DEL, and lone surrogates (not valid UTF-8 on the way out).
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export type TextCheck = { ok: true; text: string } | { ok: false; code: ErrorCode; detail: string };

/** Chat text rules shared by every surface. Length is counted in Unicode code points. */
export function checkText(raw: string, maxLength: number): TextCheck {
  const text = raw.trim();
  if (text.length === 0) return { ok: false, code: ErrorCode.TextEmpty, detail: "text must not be empty" };
  if (FORBIDDEN.test(text)) {
    return { ok: false, code: ErrorCode.TextControlCharacters, detail: "text must not contain control characters" };
  }
  // Cheap upper bound first: code points <= UTF-16 units.
  if (text.length > maxLength && countCodePoints(text) > maxLength) {
    return { ok: false, code: ErrorCode.TextTooLong, detail: `text must be at most ${maxLength} characters` };
  }
  return { ok: true, text };
}

function countCodePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

const CONTROL_GLOBAL =
  /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const MAX_NICKNAME = 64;

/**
 * Display names come from the gateway or a token, not from the sender's
 * input: clean them instead of refusing the message. Control characters go,
 * the length is capped, and an empty result falls back to `user-<id>`.
 */
export function cleanNickname(raw: string | undefined, senderId: number): string {
  // Per message: the common, already clean name costs one regex test and no copies.
  if (raw !== undefined && raw.length > 0 && raw.length <= MAX_NICKNAME && !FORBIDDEN.test(raw) && raw.trim() === raw) {
    return raw;
  }
  const cleaned = [...(raw ?? "").replace(CONTROL_GLOBAL, "").trim()].slice(0, MAX_NICKNAME).join("");
  return cleaned.length > 0 ? cleaned : `user-${senderId}`;
}
