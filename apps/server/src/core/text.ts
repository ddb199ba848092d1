import { ErrorCode } from "@chatrelay/protocol";

export { CLEAN_NAME, cleanNickname, MAX_NICKNAME_CODE_POINTS } from "./nickname.js";

// Message text is typed by the sender, so a bad character is refused, not silently dropped
// (docs/protocol.md "Text rules"; UTS #39 / UTS #36). One `v`-flag class, one test per message:
// - C0/C1 controls and DEL (Cc; this includes newline and tab) and lone surrogates (Cs: not UTF-8);
// - U+2028/U+2029: line and paragraph breaks, refused like newline (U+2029 also ends bidi embeddings);
// - every default-ignorable code point: zero-width space, word joiner, invisible operators, BOM,
//   soft hyphen, combining grapheme joiner, Hangul fillers, explicit bidi embeddings, overrides
//   and isolates (U+202A..U+202E, U+2066..U+2069), tag characters, reserved ranges;
// - U+FFF9..U+FFFB interlinear annotation controls (not default-ignorable, but they hide text);
// EXCEPT what scripts and emoji need: ZWNJ U+200C (Persian, Indic), ZWJ U+200D (emoji sequences,
// Indic conjuncts), the implicit marks LRM/RLM/ALM (U+200E, U+200F, U+061C: they reorder nothing
// across the message, mixed RTL text needs them), variation selectors (emoji and text presentation,
// CJK variants), Mongolian free variation selectors and vowel separator (U+180B..U+180F).
// biome-ignore lint/complexity/useRegexLiterals: a `v` literal needs an ES2024 target in TypeScript
const REFUSED = new RegExp(
  String.raw`[[\p{Cc}\p{Cs}\p{Default_Ignorable_Code_Point}\u2028\u2029\uFFF9-\uFFFB]--[\u200C-\u200F\u061C\u180B-\u180F\uFE00-\uFE0F\u{E0100}-\u{E01EF}]]`,
  "v",
);

// Tag characters are allowed only as an emoji subdivision flag (UTS #51): U+1F3F4, a Unicode
// subdivision id (region + 1-4 letters/digits, lower case) in tags, U+E007F. At most 7 tags, so
// tags cannot carry a hidden sentence (the "ASCII smuggling" trick).
const FLAG_TAG_SEQUENCE =
  /\u{1F3F4}(?:[\u{E0061}-\u{E007A}]{2}|[\u{E0030}-\u{E0039}]{3})[\u{E0030}-\u{E0039}\u{E0061}-\u{E007A}]{1,4}\u{E007F}/gu;

export type TextCheck = { ok: true; text: string } | { ok: false; code: ErrorCode; detail: string };

/**
 * Chat text rules shared by every surface. Length is counted in Unicode code points. The text is
 * not normalised: the log keeps what the sender typed (NFC would, for one, replace CJK
 * compatibility ideographs).
 */
export function checkText(raw: string, maxLength: number): TextCheck {
  const text = raw.trim();
  if (text.length === 0) return { ok: false, code: ErrorCode.TextEmpty, detail: "text must not be empty" };
  if (REFUSED.test(text) && REFUSED.test(text.replace(FLAG_TAG_SEQUENCE, ""))) {
    return {
      ok: false,
      code: ErrorCode.TextControlCharacters,
      detail: "text must not contain control, invisible or direction-changing characters",
    };
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
