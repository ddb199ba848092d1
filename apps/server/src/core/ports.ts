import type { AppendResult, ChatMessage, EventDraft, MessageDraft } from "./message.js";
import type { AuditEntry, ModerationChange, RoomModerationState } from "./moderation-state.js";

/** What a history read includes besides the room's chat messages. */
export interface HistoryOptions {
  /** Moderation events too (entries with their `kind` and `event`); default: messages only. */
  events?: boolean;
}

/**
 * The chat log: the source of truth. `append` is group-committed and assigns
 * the room's next sequence number inside the same commit.
 */
export interface ChatLog {
  append(draft: MessageDraft): Promise<AppendResult>;
  /**
   * Appends a moderation event through the same group commit: it gets the room's next seq, in one
   * order with the messages (publish it like a message). A `delete` (data.targetSeq) or `clear`
   * marks the messages it removes as deleted in the same statement (`deletedBy` on later reads).
   */
  appendEvent(draft: EventDraft): Promise<ChatMessage>;
  /**
   * Newest first, seq < before (or from the newest when before is undefined). Deleted messages are
   * included with their text and `deletedBy`: hiding the text is the reader's decision.
   */
  history(roomId: number, before: number | undefined, limit: number, options?: HistoryOptions): Promise<ChatMessage[]>;
  /** Oldest first, seq > afterSeq: messages and events alike (replay and gap fill). */
  since(roomId: number, afterSeq: number, limit: number): Promise<ChatMessage[]>;
  /** The message a sender sent to a room with this client message id, if any. */
  findByClientMsgId(roomId: number, senderId: number, clientMsgId: string): Promise<ChatMessage | null>;
  /** The room's last committed seq (0 when it has none). */
  lastSeq(roomId: number): Promise<number>;
  /**
   * Where the room's retained log starts (retention prunes a prefix): its lowest seq (null when it
   * holds no entry) and its last committed seq, read in one snapshot.
   */
  retainedRange(roomId: number): Promise<{ from: number | null; lastSeq: number }>;
  /**
   * Records a presenter claim's epoch with the room (never lowering it) and reads the room's tail:
   * the last committed seq, and the highest epoch recorded (above `epoch`: a newer claim exists).
   */
  claimRoom(roomId: number, epoch: number): Promise<{ tail: number; epoch: number }>;
  /** The highest presenter epoch recorded for the room (0 when none). */
  presenterEpoch(roomId: number): Promise<number>;
  /** Last committed seqs of many rooms in one read (rooms without messages are absent). */
  lastSeqs(roomIds: number[]): Promise<Map<number, number>>;
  /** Throws when the store does not answer. */
  ping(): Promise<void>;
  /** Flushes pending writes, then closes. */
  close(): Promise<void>;
}

/** What travels on a room's bus channel. */
export type BusEvent =
  | { kind: "message"; message: ChatMessage }
  /** A presenter connection took the room over; holders with an older epoch let go. */
  | { kind: "takeover"; connId: string; epoch: number };

export type BusHandler = (event: BusEvent) => void;

/** Room fan-out between nodes. At-most-once: the chat log fills any gap. */
export interface Bus {
  publish(roomId: number, event: BusEvent): Promise<void>;
  /** Resolves once the subscription is active. */
  subscribe(roomId: number, handler: BusHandler): Promise<void>;
  unsubscribe(roomId: number): Promise<void>;
  /**
   * Called once subscriptions are restored after a loss: with no argument when the whole
   * connection came back (every room), or with the rooms whose subscriptions were moved to a new
   * shard owner (Redis Cluster failover, slot migration). What was published meanwhile is lost to
   * the bus: the listener reads it from the log.
   */
  onResync(listener: (roomIds?: readonly number[]) => void): void;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export type PresenceState = "live" | "grace";

export interface PresenceRecord {
  nodeId: string;
  connId: string;
  /** Grows with every claim of the room, cluster-wide: the newest claim wins. */
  epoch: number;
  state: PresenceState;
}

export type PresenceClaim = Omit<PresenceRecord, "epoch" | "state">;

/** Which room has a live presenter, on which node; kept alive by heartbeats. */
export interface Presence {
  get(roomId: number): Promise<PresenceRecord | null>;
  /** Marks connId as the room's live presenter, replacing whoever held it; returns the claim's epoch. */
  claim(roomId: number, claim: PresenceClaim): Promise<number>;
  /** Renews the TTL if connId still holds the room; false when it no longer does. */
  renew(roomId: number, connId: string): Promise<boolean>;
  /**
   * Re-asserts connId after a connection loss unless another connection's record with an epoch not
   * below this one's is there; false when taken.
   */
  reassert(roomId: number, record: PresenceRecord): Promise<boolean>;
  /**
   * Lets go of the room if connId still holds it: "stop" makes it not live at
   * once; "grace" keeps it accepting posts for the grace window.
   */
  release(roomId: number, connId: string, mode: "stop" | "grace"): Promise<void>;
  /** The last seq the room's presenter acknowledged (0 when none). */
  ackedSeq(roomId: number): Promise<number>;
  recordAck(roomId: number, seq: number): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Durable moderation state and audit (the source of truth; PostgreSQL / PGlite). */
export interface ModerationStore {
  loadRoom(roomId: number): Promise<RoomModerationState>;
  /** Applies one change in a transaction with its audit row; returns the room's new state (version bumped). */
  apply(change: ModerationChange): Promise<RoomModerationState>;
  audit(roomId: number, before: number | undefined, limit: number): Promise<AuditEntry[]>;
}

/** What the post path asks the gate, once per post. */
export interface AdmissionRequest {
  roomId: number;
  senderId: number;
  /** The sender moderates the room by its token's claim (MODERATOR_CLAIM); the room's own list is the gate's. */
  moderatorByClaim: boolean;
  /** The client's address (after TRUST_PROXY), for the per-address limit; undefined skips it. */
  address: string | undefined;
}

/** The gate's answer: everything the policy step decides on, from one round trip. */
export interface Admission {
  presence: PresenceRecord | null;
  /** The sender is the room's presenter or one of its moderators. */
  privileged: boolean;
  /** Set when a rate limit or slow mode refused the post. */
  limited: { scope: "room" | "sender" | "address" | "slow_mode"; retryAfterMs: number } | undefined;
  /** Set when the sender is banned or timed out in the room. */
  restricted: { kind: "ban" | "timeout"; untilMs: number | null } | undefined;
  /** The room is in moderators-only mode and the sender is not privileged. */
  locked: boolean;
  settings: RoomModerationState["settings"];
  /** The room's moderation version: the caller's cached blocked terms are current when it matches. */
  version: number;
}

/**
 * The hot path's one round trip: presence, rate limits (every limit that applies,
 * counted only when the post is admitted by all of them), the sender's ban or
 * timeout and the room's settings. Keeps a mirror of each room's moderation
 * state, loaded from the ModerationStore the first time (or after Redis lost it).
 */
export interface Gate {
  admit(request: AdmissionRequest): Promise<Admission>;
  /** Writes a room's state into the mirror (after a change): what admit() sees from now on, on every node. */
  syncRoom(state: RoomModerationState): Promise<void>;
  /** The room's blocked terms at the version admit() reported. */
  blockedTerms(roomId: number): Promise<{ version: number; terms: string[] }>;
  /** Counts a WebSocket open from an address; ok false when over the limit. */
  admitSocket(address: string): Promise<{ ok: boolean; retryAfterMs: number }>;
  /**
   * True while presence is being rebuilt after the store lost its data: a room admit() found not
   * live may have a presenter whose node has not re-announced it yet.
   */
  presenceRebuilding(): boolean;
}
