import type { ChatMessage } from "./message.js";
import type { ChatLog } from "./ports.js";

/** A presenter's socket, as the relay core sees it; each transport encodes frames its own way. */
export interface PresenterSink {
  /** Sends one message; returns the bytes now waiting in the socket's send buffer. */
  send(message: ChatMessage): number;
  /**
   * Tells the presenter that retention removed seqs fromSeq..toSeq (inclusive); returns the bytes
   * waiting like `send`. A sink without it skips the range silently.
   */
  gone?(fromSeq: number, toSeq: number): number;
  close(code: number, reason: string): void;
}

export interface SessionOptions {
  gapFillMs: number;
  sendBufferBytes: number;
  /** Rows per log read during replay and gap fill. */
  pageSize: number;
  /** Most out-of-order messages held while waiting for a missing seq; past it the log fills the gap. */
  maxPending: number;
}

/** Whether presence still names a session's connection; "unknown" when it cannot be read now. */
export type Holding = "yes" | "no" | "unknown";

export interface SessionEvents {
  onDelivered(session: PresenterSession, message: ChatMessage): void;
  onSlowConsumer(session: PresenterSession): void;
  onError(session: PresenterSession, err: unknown): void;
  /** Asked before rows read from the log are delivered (see catchUp). */
  holds(session: PresenterSession): Promise<Holding>;
  /** A newer connection holds the room: the session must end. */
  onReplaced(session: PresenterSession): void;
}

/**
 * Delivers one room's messages to one presenter connection exactly in seq
 * order. Seqs are gapless (assigned at commit), so a hole is a message still
 * on its way over the bus or lost by it: after `gapFillMs` the session reads
 * it from the chat log. Replay on resume uses the same path, so the seam
 * between replay and live has neither gap nor duplicate.
 *
 * Retention prunes a room's oldest entries. Commits are in seq order per room,
 * so the committed seqs of a room are a prefix 1..last: a hole below a row the
 * log returns, or below the room's last seq when it returns none, is not in
 * flight but gone. The session then says so (`sink.gone`) and moves past it.
 */
export class PresenterSession {
  /** The next seq the presenter needs; 0 until started. */
  private nextSeq = 0;
  /** Out-of-order messages waiting for their predecessors; allocated only while there are any. */
  private pending: Map<number, ChatMessage> | undefined;
  private gapTimer: NodeJS.Timeout | undefined;
  private catchingUp = false;
  private catchUpAgain = false;
  private closedFlag = false;
  lastAcked = 0;
  ackDirty = false;

  constructor(
    readonly roomId: number,
    readonly connId: string,
    readonly epoch: number,
    private readonly sink: PresenterSink,
    private readonly log: ChatLog,
    private readonly options: SessionOptions,
    private readonly events: SessionEvents,
  ) {}

  get closed(): boolean {
    return this.closedFlag;
  }

  get expectedSeq(): number {
    return this.nextSeq;
  }

  /** Starts delivery at `fromSeq`; with `replay`, first sends what the log holds from there. */
  start(fromSeq: number, replay: boolean): Promise<void> {
    this.nextSeq = fromSeq;
    if (replay) return this.catchUp();
    this.drainPending();
    return Promise.resolve();
  }

  /** A message from the bus. */
  offer(message: ChatMessage): void {
    if (this.closedFlag) return;
    if (this.nextSeq === 0) {
      // Not started yet: hold it; start() decides what the presenter needs.
      this.hold(message);
      return;
    }
    if (message.seq < this.nextSeq) return;
    if (message.seq === this.nextSeq && !this.catchingUp) {
      this.deliver(message);
      this.drainPending();
      return;
    }
    this.hold(message);
    this.scheduleGapFill();
  }

  /**
   * Reads everything after the last delivered seq from the log (resume, gap fill, bus resync).
   *
   * The fence: rows read from the log are delivered only once presence, read after them, still
   * names this connection. A newer connection claims before it reads the tail it starts from, so
   * anything committed after that tail is read here only after the claim, and the check sees it.
   * (Bus messages need no check: the takeover notice precedes them on the room's channel.)
   */
  async catchUp(): Promise<void> {
    if (this.closedFlag || this.nextSeq === 0) return;
    if (this.catchingUp) {
      this.catchUpAgain = true;
      return;
    }
    this.catchingUp = true;
    this.clearGapTimer();
    let holding: Holding = "yes";
    try {
      do {
        this.catchUpAgain = false;
        for (;;) {
          const page = await this.log.since(this.roomId, this.nextSeq - 1, this.options.pageSize);
          const first = page[0];
          // A hole at the start of what the log holds from here: pruned (see the class comment).
          let goneTo = first === undefined ? undefined : first.seq > this.nextSeq ? first.seq - 1 : undefined;
          let readAgain = false;
          if (first === undefined) {
            // Nothing after nextSeq: either nothing new, or retention removed all of it (one snapshot).
            const range = await this.log.retainedRange(this.roomId);
            const end = range.from === null ? range.lastSeq : range.from - 1;
            if (end >= this.nextSeq) {
              goneTo = end;
              readAgain = range.from !== null;
            }
          }
          if (page.length > 0 || goneTo !== undefined) holding = await this.events.holds(this);
          if (holding !== "yes" || this.closedFlag) break;
          if (goneTo !== undefined) this.skipGone(goneTo);
          for (const m of page) {
            if (this.closedFlag) return;
            if (m.seq === this.nextSeq) this.deliver(m);
          }
          if (this.closedFlag) return;
          if (page.length < this.options.pageSize && !readAgain) break;
        }
      } while (this.catchUpAgain && holding === "yes" && !this.closedFlag);
    } catch (err) {
      this.events.onError(this, err);
    } finally {
      this.catchingUp = false;
    }
    if (holding === "no") this.events.onReplaced(this);
    // "unknown" (presence unreadable, or a resync pending): deliver nothing unfenced; the resync or
    // the heartbeat's reconcile catches up once presence answers.
    else if (holding === "yes") this.drainPending();
  }

  /** True when the log holds messages this session has not delivered yet (a publish that never arrived). */
  isBehind(tail: number): boolean {
    return !this.closedFlag && this.nextSeq > 0 && tail >= this.nextSeq && !this.catchingUp;
  }

  ack(seq: number): void {
    if (seq > this.lastAcked && seq < this.nextSeq) {
      this.lastAcked = seq;
      this.ackDirty = true;
    }
  }

  /** Stops delivery and closes the socket (idempotent). */
  close(code: number, reason: string): void {
    if (this.markClosed()) this.sink.close(code, reason);
  }

  /** Stops delivery after the socket closed by itself; true the first time. */
  markClosed(): boolean {
    if (this.closedFlag) return false;
    this.closedFlag = true;
    this.clearGapTimer();
    this.pending = undefined;
    return true;
  }

  private deliver(message: ChatMessage): void {
    this.nextSeq = message.seq + 1;
    const buffered = this.sink.send(message);
    this.events.onDelivered(this, message);
    if (buffered > this.options.sendBufferBytes) this.events.onSlowConsumer(this);
  }

  /** Retention removed nextSeq..toSeq: says so once, then delivery goes on after it. */
  private skipGone(toSeq: number): void {
    const fromSeq = this.nextSeq;
    this.nextSeq = toSeq + 1;
    const buffered = this.sink.gone?.(fromSeq, toSeq) ?? 0;
    if (buffered > this.options.sendBufferBytes) this.events.onSlowConsumer(this);
  }

  private hold(message: ChatMessage): void {
    this.pending ??= new Map();
    if (this.pending.size < this.options.maxPending) this.pending.set(message.seq, message);
  }

  private drainPending(): void {
    if (this.closedFlag || this.catchingUp || this.pending === undefined) return;
    for (;;) {
      const next = this.pending.get(this.nextSeq);
      if (next === undefined) break;
      this.pending.delete(this.nextSeq);
      this.deliver(next);
      if (this.closedFlag) return;
    }
    for (const seq of this.pending.keys()) if (seq < this.nextSeq) this.pending.delete(seq);
    if (this.pending.size > 0) this.scheduleGapFill();
    else this.pending = undefined;
  }

  private scheduleGapFill(): void {
    if (this.gapTimer || this.catchingUp || this.closedFlag) return;
    const delay = (this.pending?.size ?? 0) >= this.options.maxPending ? 0 : this.options.gapFillMs;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      void this.catchUp();
    }, delay);
  }

  private clearGapTimer(): void {
    if (this.gapTimer) clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
  }
}
