/**
 * Moderation on the v1 surface (docs/protocol.md "Moderation"): REST routes under
 * /v1/rooms/:roomId/... and `moderate` frames on the presenter socket.
 */

/** What a moderation request does; audit entries carry the same names. */
export type ModerationAction =
  | "settings"
  | "moderator_add"
  | "moderator_remove"
  | "ban"
  | "timeout"
  | "unban"
  | "terms_add"
  | "terms_remove"
  | "delete"
  | "clear";

export const MODERATION_ACTIONS: readonly ModerationAction[] = [
  "settings",
  "moderator_add",
  "moderator_remove",
  "ban",
  "timeout",
  "unban",
  "terms_add",
  "terms_remove",
  "delete",
  "clear",
];

/** A room's settings as the API shows them. */
export interface RoomSettingsView {
  /** Seconds between one viewer's messages (0: off; at most 120). Presenter and moderators are exempt. */
  slowModeS: number;
  /** Only the presenter and moderators may post. */
  moderatorsOnly: boolean;
  /** The room's own text limit below the global one, or null. */
  maxTextLength: number | null;
}

/** PUT /v1/rooms/:roomId/settings body: at least one field. */
export type RoomSettingsBody = Partial<RoomSettingsView>;

/** A ban (until null) or a timeout (until an instant). */
export interface RestrictionView {
  userId: number;
  kind: "ban" | "timeout";
  until: string | null;
}

/** PUT /v1/rooms/:roomId/bans/:userId body (optional). */
export interface BanBody {
  reason?: string;
}

/** PUT /v1/rooms/:roomId/timeouts/:userId body. */
export interface TimeoutBody {
  /** 1 s to 14 days. */
  durationS: number;
  reason?: string;
}

/** POST (add) and DELETE (remove) /v1/rooms/:roomId/blocked-terms body. */
export interface BlockedTermsBody {
  terms: string[];
}

/**
 * The answer of every change: the moderation event's seq in the room's log and what was done,
 * with the part of the room's state the route is about.
 */
export interface ModerationResult {
  roomId: number;
  /** The event's seq: it reaches the presenter in order with the chat. */
  seq: number;
  action: ModerationAction;
  /** The room's moderation version after the change. */
  version: number;
  settings?: RoomSettingsView;
  moderators?: number[];
  restrictions?: RestrictionView[];
  terms?: string[];
}

/** GET answers: the room's current state (settings, moderators, bans or terms). */
export interface RoomModerationView {
  roomId: number;
  version: number;
  settings?: RoomSettingsView;
  moderators?: number[];
  restrictions?: RestrictionView[];
  terms?: string[];
}

/** One audit entry: who did what, to whom or what, when. */
export interface AuditEntryView {
  id: string;
  actorId: number;
  action: ModerationAction;
  /** The action's details (user id, duration, terms, settings, message seq). */
  target: Record<string, unknown>;
  at: string;
}

/** GET /v1/rooms/:roomId/audit answer: newest first. */
export interface AuditPage {
  items: AuditEntryView[];
  /** Pass as `before` for the next (older) page; null when there is none. */
  nextBefore: number | null;
}

/** Presenter -> server on the v1 socket: one moderation action on the socket's room. */
export type ModerateFrame = { type: "moderate" } & (
  | { action: "settings"; settings: RoomSettingsBody }
  | { action: "moderator_add" | "moderator_remove" | "unban"; userId: number }
  | { action: "ban"; userId: number; reason?: string }
  | { action: "timeout"; userId: number; durationS: number; reason?: string }
  | { action: "terms_add" | "terms_remove"; terms: string[] }
  | { action: "delete"; targetSeq: number }
  | { action: "clear" }
);

/** Server -> presenter: a `moderate` frame was applied (refusals are `error` frames). */
export interface ModeratedFrame {
  type: "moderated";
  action: ModerationAction;
  seq: number;
}

// ---- JSON schemas ----

const REASON = { type: "string", maxLength: 400 } as const;

export const roomSettingsBodySchema = {
  type: "object",
  additionalProperties: false,
  minProperties: 1,
  properties: {
    slowModeS: { type: "integer", minimum: 0, maximum: 120 },
    moderatorsOnly: { type: "boolean" },
    maxTextLength: { anyOf: [{ type: "integer", minimum: 1 }, { type: "null" }] },
  },
} as const;

export const banBodySchema = {
  type: "object",
  additionalProperties: false,
  properties: { reason: REASON },
} as const;

export const timeoutBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["durationS"],
  properties: {
    durationS: { type: "integer", minimum: 1, maximum: 1_209_600 },
    reason: REASON,
  },
} as const;

export const blockedTermsBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["terms"],
  properties: {
    terms: { type: "array", minItems: 1, maxItems: 500, items: { type: "string", minLength: 1, maxLength: 1000 } },
  },
} as const;

/** A room and a user, both positive ids (checked again as safe integers by the server). */
export const roomUserParamsSchema = {
  type: "object",
  required: ["roomId", "userId"],
  properties: {
    roomId: { type: "string", pattern: "^[1-9][0-9]{0,15}$" },
    userId: { type: "string", maxLength: 32 },
  },
} as const;

export const roomSeqParamsSchema = {
  type: "object",
  required: ["roomId", "seq"],
  properties: {
    roomId: { type: "string", pattern: "^[1-9][0-9]{0,15}$" },
    seq: { type: "string", maxLength: 32 },
  },
} as const;

export const auditQuerySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    before: { type: "string", pattern: "^[1-9][0-9]{0,15}$" },
    limit: { type: "string", pattern: "^[1-9][0-9]{0,2}$" },
    access_token: { type: "string", minLength: 1, maxLength: 8192 },
  },
} as const;

const roomSettingsViewSchema = {
  type: "object",
  required: ["slowModeS", "moderatorsOnly", "maxTextLength"],
  properties: {
    slowModeS: { type: "integer" },
    moderatorsOnly: { type: "boolean" },
    maxTextLength: { anyOf: [{ type: "integer" }, { type: "null" }] },
  },
} as const;

const restrictionViewSchema = {
  type: "object",
  required: ["userId", "kind", "until"],
  properties: {
    userId: { type: "integer" },
    kind: { type: "string", enum: ["ban", "timeout"] },
    until: { anyOf: [{ type: "string" }, { type: "null" }] },
  },
} as const;

const stateParts = {
  settings: roomSettingsViewSchema,
  moderators: { type: "array", items: { type: "integer" } },
  restrictions: { type: "array", items: restrictionViewSchema },
  terms: { type: "array", items: { type: "string" } },
} as const;

export const moderationResultSchema = {
  type: "object",
  required: ["roomId", "seq", "action", "version"],
  properties: {
    roomId: { type: "integer" },
    seq: { type: "integer" },
    action: { type: "string", enum: MODERATION_ACTIONS },
    version: { type: "integer" },
    ...stateParts,
  },
} as const;

export const roomModerationViewSchema = {
  type: "object",
  required: ["roomId", "version"],
  properties: { roomId: { type: "integer" }, version: { type: "integer" }, ...stateParts },
} as const;

export const auditPageSchema = {
  type: "object",
  required: ["items", "nextBefore"],
  properties: {
    items: {
      type: "array",
      items: {
        type: "object",
        required: ["id", "actorId", "action", "target", "at"],
        properties: {
          id: { type: "string" },
          actorId: { type: "integer" },
          action: { type: "string" },
          target: { type: "object", additionalProperties: true },
          at: { type: "string" },
        },
      },
    },
    nextBefore: { anyOf: [{ type: "integer" }, { type: "null" }] },
  },
} as const;
