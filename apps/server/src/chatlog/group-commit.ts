import { performance } from "node:perf_hooks";
import { LogDeadlineError, LogQueueFullError } from "./log-errors.js";

interface Pending<D, R> {
  item: D;
  /** performance.now() by which the item's COMMIT must have been sent. */
  deadline: number;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export interface GroupCommitStats {
  batchSize: number;
  seconds: number;
}

/** Back-pressure: how many rows may wait, and for how long. */
export interface GroupCommitLimits {
  /** Rows waiting for a batch (not counting those in flight); a write beyond it is refused at once. */
  maxQueued: number;
  /** From write(): a row still queued when it passes is dropped; a batch gets its oldest row's deadline. */
  deadlineMs: number;
}

export const DEFAULT_GROUP_COMMIT_LIMITS: GroupCommitLimits = { maxQueued: 10_000, deadlineMs: 5_000 };

/**
 * `writeBatch` answers per item: a result, or the Error of that item alone.
 * It gets the batch's deadline (its oldest row's): it must not send COMMIT
 * after it, and must not reject once COMMIT may have taken effect.
 */
export type WriteBatch<D, R> = (items: D[], deadline: number) => Promise<(R | Error)[]>;

/**
 * Group commit: requests that arrive while a batch is being written wait
 * together and go out as the next batch (one statement, one commit). Each
 * caller's promise settles only after its own batch committed. No timer
 * decides the batch size: it adapts to the load by itself.
 *
 * Bounded: at most `maxQueued` rows wait (more are refused with
 * LogQueueFullError), and a row that waits past its deadline is dropped with
 * LogDeadlineError, never written. One timer, armed for the oldest row, does
 * the dropping: deadlines grow in queue order, so the head expires first.
 */
export class GroupCommitWriter<D, R> {
  private queue: Pending<D, R>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private expiryTimer: NodeJS.Timeout | undefined;
  private readonly limits: GroupCommitLimits;

  /**
   * `maxInFlight` batches may be written at once (a server database overlaps
   * one batch's commit with the next one's work; an in-process one gains nothing).
   */
  constructor(
    private readonly writeBatch: WriteBatch<D, R>,
    private readonly maxBatch: number,
    private readonly onBatch?: (stats: GroupCommitStats) => void,
    private readonly maxInFlight = 1,
    limits: Partial<GroupCommitLimits> = {},
  ) {
    this.limits = { ...DEFAULT_GROUP_COMMIT_LIMITS, ...limits };
  }

  /** Rows waiting for a batch now (for tests and gauges). */
  get queued(): number {
    return this.queue.length;
  }

  write(item: D): Promise<R> {
    if (this.closed) return Promise.reject(new Error("chat log writer is closed"));
    if (this.queue.length >= this.limits.maxQueued) {
      return Promise.reject(new LogQueueFullError(this.limits.maxQueued));
    }
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, deadline: performance.now() + this.limits.deadlineMs, resolve, reject });
      this.armExpiry();
      if (!this.scheduled && this.inFlight < this.maxInFlight) {
        this.scheduled = true;
        // Let requests parsed in the same I/O turn join the batch.
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  /** Stops taking writes and waits until every queued write has settled. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.inFlight === 0 && this.queue.length === 0 && !this.scheduled) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Starts batches while there is work and room for another one in flight. */
  private pump(): void {
    this.expire();
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      void this.writeOne(this.queue.splice(0, this.maxBatch));
    }
    // The timer lives only while rows wait (it holds the process like the work it guards).
    if (this.queue.length === 0) this.stopExpiry();
    if (this.queue.length === 0 && this.inFlight === 0 && !this.scheduled) {
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  private async writeOne(batch: Pending<D, R>[]): Promise<void> {
    this.inFlight++;
    const started = process.hrtime.bigint();
    try {
      // FIFO with a fixed deadline per row: the first row's deadline is the batch's earliest.
      const results = await this.writeBatch(
        batch.map((p) => p.item),
        (batch[0] as Pending<D, R>).deadline,
      );
      for (let i = 0; i < batch.length; i++) {
        const result = results[i];
        if (result instanceof Error) batch[i]?.reject(result);
        else batch[i]?.resolve(result as R);
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
    this.onBatch?.({ batchSize: batch.length, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    this.inFlight--;
    this.pump();
  }

  /** Drops the rows whose deadline has passed: they are refused and never written. */
  private expire(): void {
    const now = performance.now();
    let n = 0;
    while (n < this.queue.length && (this.queue[n] as Pending<D, R>).deadline <= now) n++;
    if (n === 0) return;
    for (const p of this.queue.splice(0, n)) p.reject(new LogDeadlineError("queued"));
  }

  private armExpiry(): void {
    if (this.expiryTimer !== undefined) return;
    const head = this.queue[0];
    if (head === undefined) return;
    this.expiryTimer = setTimeout(
      () => {
        this.expiryTimer = undefined;
        this.expire();
        this.armExpiry();
        // Dropping rows may have made the writer idle: wake close().
        if (this.queue.length === 0 && this.inFlight === 0 && !this.scheduled) this.pump();
      },
      Math.max(0, head.deadline - performance.now()) + 1,
    );
  }

  private stopExpiry(): void {
    if (this.expiryTimer === undefined) return;
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
  }
}
