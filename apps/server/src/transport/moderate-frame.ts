import type { ModerationCommand } from "../core/moderation.js";
import type { RoomSettings } from "../core/moderation-state.js";
import { type DecodedFrame, field, invalid } from "./client-frame.js";

/** Fields each action's frame may carry besides `type` and `action`; anything else is refused. */
const FIELDS: Record<ModerationCommand["action"], readonly string[]> = {
  settings: ["settings"],
  moderator_add: ["userId"],
  moderator_remove: ["userId"],
  ban: ["userId", "reason"],
  timeout: ["userId", "durationS", "reason"],
  unban: ["userId"],
  terms_add: ["terms"],
  terms_remove: ["terms"],
  delete: ["targetSeq"],
  clear: [],
};

/** Type checks only; ranges and authorisation are the moderation service's (one set of rules for REST and frames). */
const MAX_TERMS = 500;
const MAX_TERM_UNITS = 1000;
const MAX_REASON_UNITS = 400;

/**
 * A v1 `{"type":"moderate","action":...}` frame as a command on the socket's room, or why not.
 * Strict (unknown actions and unknown fields are refused), never throws, never quotes the frame.
 */
export function decodeModerate(frame: Record<string, unknown>): DecodedFrame {
  const action = field(frame, "action");
  if (typeof action !== "string" || !Object.hasOwn(FIELDS, action)) return invalid("unknown moderation action");
  const allowed = FIELDS[action as ModerationCommand["action"]];
  for (const key of Object.keys(frame)) {
    if (key !== "type" && key !== "action" && !allowed.includes(key))
      return invalid("moderate frame has an unknown field");
  }
  const change = commandOf(action as ModerationCommand["action"], frame);
  return typeof change === "string" ? invalid(change) : { kind: "moderate", change };
}

function commandOf(action: ModerationCommand["action"], frame: Record<string, unknown>): ModerationCommand | string {
  switch (action) {
    case "settings": {
      const settings = readSettings(field(frame, "settings"));
      return settings === undefined
        ? "settings must be an object of slowModeS, moderatorsOnly, maxTextLength"
        : { action, settings };
    }
    case "moderator_add":
    case "moderator_remove":
    case "unban": {
      const userId = readId(field(frame, "userId"));
      return userId === undefined ? "userId must be a positive integer" : { action, userId };
    }
    case "ban": {
      const userId = readId(field(frame, "userId"));
      const reason = readReason(field(frame, "reason"));
      if (userId === undefined) return "userId must be a positive integer";
      if (reason === false) return "reason must be a string";
      return reason === undefined ? { action, userId } : { action, userId, reason };
    }
    case "timeout": {
      const userId = readId(field(frame, "userId"));
      const durationS = readId(field(frame, "durationS"));
      const reason = readReason(field(frame, "reason"));
      if (userId === undefined) return "userId must be a positive integer";
      if (durationS === undefined) return "durationS must be a positive integer";
      if (reason === false) return "reason must be a string";
      return reason === undefined ? { action, userId, durationS } : { action, userId, durationS, reason };
    }
    case "terms_add":
    case "terms_remove": {
      const terms = field(frame, "terms");
      const ok =
        Array.isArray(terms) &&
        terms.length > 0 &&
        terms.length <= MAX_TERMS &&
        terms.every((t) => typeof t === "string" && t.length <= MAX_TERM_UNITS);
      return ok ? { action, terms: terms as string[] } : `terms must be a list of 1 to ${MAX_TERMS} strings`;
    }
    case "delete": {
      const targetSeq = readId(field(frame, "targetSeq"));
      return targetSeq === undefined ? "targetSeq must be a positive integer" : { action, targetSeq };
    }
    case "clear":
      return { action };
  }
}

function readSettings(value: unknown): Partial<RoomSettings> | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const raw = value as Record<string, unknown>;
  const out: Partial<RoomSettings> = {};
  for (const key of Object.keys(raw)) {
    const v = raw[key];
    if (key === "slowModeS" && typeof v === "number" && Number.isSafeInteger(v)) out.slowModeS = v;
    else if (key === "moderatorsOnly" && typeof v === "boolean") out.moderatorsOnly = v;
    else if (key === "maxTextLength" && (v === null || (typeof v === "number" && Number.isSafeInteger(v)))) {
      out.maxTextLength = v;
    } else return undefined;
  }
  return out;
}

function readId(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

/** undefined: absent; false: present but not a string of a sane size. */
function readReason(value: unknown): string | undefined | false {
  if (value === undefined) return undefined;
  return typeof value === "string" && value.length <= MAX_REASON_UNITS ? value : false;
}
