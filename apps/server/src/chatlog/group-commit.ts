interface Pending<D, R> {
  item: D;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export interface GroupCommitStats {
  batchSize: number;
  seconds: number;
}

/**
 * Group commit: requests that arrive while a batch is being written wait
 * together and go out as the next batch (one statement, one commit). Each
 * caller's promise settles only after its own batch committed. No timer:
 * the batch size adapts to the load by itself.
 */
export class GroupCommitWriter<D, R> {
  private queue: Pending<D, R>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  /**
   * `writeBatch` answers per item: a result, or the Error of that item alone.
   * `maxInFlight` batches may be written at once (a server database overlaps
   * one batch's commit with the next one's work; an in-process one gains nothing).
   */
  constructor(
    private readonly writeBatch: (items: D[]) => Promise<(R | Error)[]>,
    private readonly maxBatch: number,
    private readonly onBatch?: (stats: GroupCommitStats) => void,
    private readonly maxInFlight = 1,
  ) {}

  write(item: D): Promise<R> {
    if (this.closed) return Promise.reject(new Error("chat log writer is closed"));
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
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
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      void this.writeOne(this.queue.splice(0, this.maxBatch));
    }
    if (this.queue.length === 0 && this.inFlight === 0 && !this.scheduled) {
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  private async writeOne(batch: Pending<D, R>[]): Promise<void> {
    this.inFlight++;
    const started = process.hrtime.bigint();
    try {
      const results = await this.writeBatch(batch.map((p) => p.item));
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
}
