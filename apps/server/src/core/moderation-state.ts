/** A room's moderation settings, set by its presenter or a moderator. */
export interface RoomSettings {
  /** Seconds between one viewer's messages (presenter and moderators exempt); 0 = off. At most 120. */
  slowModeS: number;
  /** Only the presenter and moderators may post. */
  moderatorsOnly: boolean;
  /** A room's own limit below the global MAX_TEXT_LENGTH, or null. */
  maxTextLength: number | null;
}

export const DEFAULT_ROOM_SETTINGS: RoomSettings = { slowModeS: 0, moderatorsOnly: false, maxTextLength: null };

/** A sender that may not post in a room: banned (until null: for good) or timed out until a moment. */
export interface Restriction {
  userId: number;
  kind: "ban" | "timeout";
  /** ms since the epoch; null for a permanent ban. */
  untilMs: number | null;
}

/** Everything the post path needs to know about a room's moderation, as one versioned value. */
export interface RoomModerationState {
  roomId: number;
  /** Bumps on every change of anything below (settings, moderators, restrictions, terms). */
  version: number;
  settings: RoomSettings;
  moderators: number[];
  /** Active ones only. */
  restrictions: Restriction[];
  blockedTerms: string[];
}

export function emptyRoomState(roomId: number): RoomModerationState {
  return { roomId, version: 0, settings: DEFAULT_ROOM_SETTINGS, moderators: [], restrictions: [], blockedTerms: [] };
}

/** One change to a room's moderation, as the service applies it (with its audit row). */
export type ModerationChange =
  | { roomId: number; actorId: number; action: "settings"; settings: Partial<RoomSettings> }
  | { roomId: number; actorId: number; action: "moderator_add" | "moderator_remove"; userId: number }
  | { roomId: number; actorId: number; action: "ban"; userId: number; reason?: string }
  | { roomId: number; actorId: number; action: "timeout"; userId: number; durationS: number; reason?: string }
  | { roomId: number; actorId: number; action: "unban"; userId: number }
  | { roomId: number; actorId: number; action: "terms_add" | "terms_remove"; terms: string[] }
  | { roomId: number; actorId: number; action: "delete"; targetSeq: number }
  | { roomId: number; actorId: number; action: "clear" };

export interface AuditEntry {
  id: string;
  roomId: number;
  actorId: number;
  action: string;
  target: unknown;
  at: Date;
}
