// Display names, cleaned after UTS #39 (security mechanisms) and UTS #36 (security considerations).
// A display name arrives from the gateway header or the token, not typed per message, so it is
// cleaned rather than refused. What goes: anything that renders as nothing or changes how the
// text around it is ordered, so that "adm\u200Bin" or "\u202Enimda" cannot pass for "admin".

export const MAX_NICKNAME_CODE_POINTS = 64;

/**
 * Removed outright: controls (Cc), format characters (Cf: bidi controls, zero-width characters,
 * tags, soft hyphen, BOM), every default-ignorable code point (Hangul fillers, combining grapheme
 * joiner, variation selectors, Khmer inherent vowels, reserved ranges), unassigned (Cn, includes
 * noncharacters), private use (Co), lone surrogates (Cs), and U+2800 BRAILLE PATTERN BLANK (a
 * visible-nothing favourite for blank names). White space is not removed here: it becomes one space.
 */
// biome-ignore lint/complexity/useRegexLiterals: a `v` literal needs an ES2024 target in TypeScript
const REMOVED = new RegExp(
  String.raw`[[\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}\p{Cn}\p{Co}\p{Cs}\u2800]--\p{White_Space}]`,
  "gv",
);
const WHITE_SPACE_RUN = /\p{White_Space}+/gu;

/**
 * The hot path: a name already made only of these characters, single spaces between words, no
 * space at either end, at most 64 of them, is exactly what the full cleaning would return (a unit
 * test checks every character of this set against it). All are BMP, NFC-stable, not combining:
 * printable ASCII, Latin-1 letters and signs (minus NBSP and the soft hyphen), Hiragana and
 * Katakana (minus the combining voiced marks U+3099/U+309A), CJK unified ideographs, Hangul syllables.
 */
export const CLEAN_NAME =
  /^[\u0021-\u007e\u00a1-\u00ac\u00ae-\u00ff\u3041-\u3096\u309b-\u30ff\u4e00-\u9fff\uac00-\ud7a3]+(?: [\u0021-\u007e\u00a1-\u00ac\u00ae-\u00ff\u3041-\u3096\u309b-\u30ff\u4e00-\u9fff\uac00-\ud7a3]+)*$/;

const GRAPHEMES = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/**
 * NFC-normalised, invisible and direction-changing characters removed, white space collapsed to
 * one ASCII space and trimmed, at most 64 code points cut between grapheme clusters; an empty
 * result falls back to `user-<id>`. Idempotent: cleaning a cleaned name returns it unchanged.
 */
export function cleanNickname(raw: string | undefined, senderId: number): string {
  // Per message: the common, already clean name costs one regex test and no copies.
  if (raw !== undefined && raw.length <= MAX_NICKNAME_CODE_POINTS && CLEAN_NAME.test(raw)) return raw;
  // Order matters for idempotence: removing a character can leave a decomposed pair behind
  // ("e\u200B\u0301"), so NFC comes after removal; NFC can turn one space into another
  // (U+2000 -> U+2002), so white space is collapsed after NFC.
  const normalised = (raw ?? "").replace(REMOVED, "").normalize("NFC");
  const collapsed = normalised.replace(WHITE_SPACE_RUN, " ").trim();
  const cleaned = capAtGraphemes(collapsed, MAX_NICKNAME_CODE_POINTS).trimEnd();
  return cleaned.length > 0 ? cleaned : `user-${senderId}`;
}

/** At most `max` code points, cut between grapheme clusters (a single longer cluster is cut by code points). */
function capAtGraphemes(s: string, max: number): string {
  if (s.length <= max || countCodePointsUpTo(s, max + 1) <= max) return s;
  let end = 0;
  let used = 0;
  for (const { segment, index } of GRAPHEMES.segment(s)) {
    used += countCodePointsUpTo(segment, max + 1);
    if (used > max) break;
    end = index + segment.length;
  }
  if (end > 0) return s.slice(0, end);
  // The first cluster alone is over the cap (a base with dozens of marks): cut it by code points.
  let kept = 0;
  for (const ch of s) {
    if (kept === max) break;
    end += ch.length;
    kept++;
  }
  return s.slice(0, end);
}

/** Code points in `s`, counting no further than `limit`. */
function countCodePointsUpTo(s: string, limit: number): number {
  let n = 0;
  for (const _ of s) if (++n >= limit) break;
  return n;
}
