import { ErrorCode } from "@chatrelay/protocol";
import { MAX_BLOCKED_TERMS, MAX_TERM_CODE_POINTS, normalizeTerm } from "./blocked-terms.js";
import type { ModerationChange, RoomSettings } from "./moderation-state.js";
import { RelayError } from "./relay-error.js";
import { checkText } from "./text.js";

/** Limits of moderation input (docs/protocol.md "Moderation"). */
export const MODERATION_LIMITS = {
  maxSlowModeS: 120,
  minTimeoutS: 1,
  maxTimeoutS: 14 * 86_400,
  maxTermLength: MAX_TERM_CODE_POINTS,
  maxTermsPerRoom: MAX_BLOCKED_TERMS,
  /** Terms in one add or remove request. */
  maxTermsPerChange: MAX_BLOCKED_TERMS,
  maxModeratorsPerRoom: 500,
  maxReasonLength: 200,
  maxAuditLimit: 200,
} as const;

/**
 * Checks one change and returns it in canonical form (terms normalised and deduplicated,
 * reason trimmed or dropped when empty), or throws a 400 RelayError. Runs before any read
 * or write: bad input changes nothing. `globalMaxTextLength` bounds a room's own limit.
 */
export function checkChange(change: ModerationChange, globalMaxTextLength: number): ModerationChange {
  if (!isId(change.roomId)) throw bad("room id must be a positive integer");
  if (!isId(change.actorId)) throw bad("actor id must be a positive integer");
  switch (change.action) {
    case "settings":
      return { ...change, settings: checkSettings(change.settings, globalMaxTextLength) };
    case "moderator_add":
    case "moderator_remove":
    case "unban":
      checkUser(change.userId);
      return change;
    case "ban": {
      checkUser(change.userId);
      const reason = checkReason(change.reason);
      const { reason: _drop, ...rest } = change;
      return reason === undefined ? rest : { ...rest, reason };
    }
    case "timeout": {
      checkUser(change.userId);
      const { minTimeoutS, maxTimeoutS } = MODERATION_LIMITS;
      if (!Number.isSafeInteger(change.durationS) || change.durationS < minTimeoutS || change.durationS > maxTimeoutS) {
        throw bad(`durationS must be an integer from ${minTimeoutS} to ${maxTimeoutS} (14 days)`);
      }
      const reason = checkReason(change.reason);
      const { reason: _drop, ...rest } = change;
      return reason === undefined ? rest : { ...rest, reason };
    }
    case "terms_add":
    case "terms_remove":
      return { ...change, terms: checkTerms(change.terms) };
    case "delete":
      if (!isId(change.targetSeq)) throw bad("the message seq must be a positive integer");
      return change;
    case "clear":
      return change;
    default:
      throw bad("unknown moderation action");
  }
}

function checkSettings(raw: Partial<RoomSettings>, globalMax: number): Partial<RoomSettings> {
  const out: Partial<RoomSettings> = {};
  if (typeof raw !== "object" || raw === null) throw bad("settings must be an object");
  if (raw.slowModeS !== undefined) {
    const s = raw.slowModeS;
    if (!Number.isSafeInteger(s) || s < 0 || s > MODERATION_LIMITS.maxSlowModeS) {
      throw bad(`slowModeS must be an integer from 0 to ${MODERATION_LIMITS.maxSlowModeS}`);
    }
    out.slowModeS = s;
  }
  if (raw.moderatorsOnly !== undefined) {
    if (typeof raw.moderatorsOnly !== "boolean") throw bad("moderatorsOnly must be true or false");
    out.moderatorsOnly = raw.moderatorsOnly;
  }
  if (raw.maxTextLength !== undefined) {
    const m = raw.maxTextLength;
    if (m !== null && (!Number.isSafeInteger(m) || m < 1 || m > globalMax)) {
      throw bad(`maxTextLength must be null or an integer from 1 to ${globalMax} (the global limit)`);
    }
    out.maxTextLength = m;
  }
  if (Object.keys(out).length === 0)
    throw bad("settings must name at least one of slowModeS, moderatorsOnly, maxTextLength");
  return out;
}

function checkTerms(raw: string[]): string[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MODERATION_LIMITS.maxTermsPerChange) {
    throw bad(`terms must be a list of 1 to ${MODERATION_LIMITS.maxTermsPerChange} strings`);
  }
  const out = new Set<string>();
  for (const term of raw) {
    // Stored in the form the matcher compares (core/blocked-terms.ts), so a duplicate is one row.
    const canonical = typeof term === "string" ? normalizeTerm(term) : undefined;
    if (canonical === undefined) throw badTerm();
    out.add(canonical);
  }
  return [...out];
}

function checkReason(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "string" || raw.length > MODERATION_LIMITS.maxReasonLength * 2) throw badReason();
  if (raw.trim() === "") return undefined;
  const checked = checkText(raw, MODERATION_LIMITS.maxReasonLength);
  if (!checked.ok) throw badReason();
  return checked.text;
}

function checkUser(userId: number): void {
  if (!isId(userId)) throw bad("user id must be a positive integer");
}

function isId(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n > 0;
}

function bad(detail: string): RelayError {
  return new RelayError(ErrorCode.InvalidBody, detail);
}

function badTerm(): RelayError {
  return bad(
    `each term must be 1 to ${MODERATION_LIMITS.maxTermLength} characters once folded (NFKC, lower case), without control or invisible characters; "*term*" (stars at both ends) blocks it inside words too`,
  );
}

function badReason(): RelayError {
  return bad(
    `reason must be at most ${MODERATION_LIMITS.maxReasonLength} characters, without control or invisible characters`,
  );
}
