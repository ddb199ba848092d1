import type { AppendResult, ChatMessage, MessageDraft } from "./message.js";

/**
 * The chat log: the source of truth. `append` is group-committed and assigns
 * the room's next sequence number inside the same commit.
 */
export interface ChatLog {
  append(draft: MessageDraft): Promise<AppendResult>;
  /** Newest first, seq < before (or from the newest when before is undefined). */
  history(roomId: number, before: number | undefined, limit: number): Promise<ChatMessage[]>;
  /** Oldest first, seq > afterSeq. */
  since(roomId: number, afterSeq: number, limit: number): Promise<ChatMessage[]>;
  /** The message a sender sent to a room with this client message id, if any. */
  findByClientMsgId(roomId: number, senderId: number, clientMsgId: string): Promise<ChatMessage | null>;
  /** The room's last committed seq (0 when it has none). */
  lastSeq(roomId: number): Promise<number>;
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
  /** Called after the bus lost its connection and got it back (subscriptions restored). */
  onResync(listener: () => void): void;
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
  /** Re-asserts connId after a connection loss unless someone else took the room; false when taken. */
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
