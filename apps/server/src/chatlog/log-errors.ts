/**
 * The chat log's refusals under back-pressure. Every one of them means the
 * message was NOT saved and never will be: the relay answers 503 with
 * `Retry-After: retryAfterSeconds`, and `publicDetail` (our own words, never
 * a database message) as the problem detail.
 */
export abstract class ChatLogRefusal extends Error {
  abstract readonly retryAfterSeconds: number;
  abstract readonly publicDetail: string;
}

/** The group-commit queue holds `LOG_QUEUE_MAX` rows already: refused at once. */
export class LogQueueFullError extends ChatLogRefusal {
  readonly retryAfterSeconds = 1;
  readonly publicDetail = "chat log busy: too many messages are waiting to be saved; this one was not saved";
  constructor(readonly maxQueued: number) {
    super(`chat log queue full (${maxQueued} rows waiting)`);
    this.name = "LogQueueFullError";
  }
}

/**
 * The row's commit deadline (`LOG_COMMIT_TIMEOUT_MS`) passed before its commit
 * was sent: it was dropped from the queue, or its transaction was abandoned
 * (connection destroyed, which aborts it on the server).
 */
export class LogDeadlineError extends ChatLogRefusal {
  readonly retryAfterSeconds = 2;
  readonly publicDetail = "chat log did not answer in time; the message was not saved";
  constructor(readonly phase: "queued" | "connecting" | "writing") {
    super(`chat log commit deadline passed while ${phase}; nothing was committed`);
    this.name = "LogDeadlineError";
  }
}

/**
 * The connection broke after the batch's commit was sent (its autocommitted
 * statement, or COMMIT), and the database, asked again once the transaction's
 * server process was gone, showed nothing committed.
 */
export class LogNotCommittedError extends ChatLogRefusal {
  readonly retryAfterSeconds = 2;
  readonly publicDetail = "chat log connection lost; the message was not saved";
  constructor(cause: unknown) {
    super("the connection broke during the commit and the transaction did not commit", { cause });
    this.name = "LogNotCommittedError";
  }
}

/** The PostgreSQL SQLSTATE of a driver error, however Prisma wrapped it (P2010 -> meta.driverAdapterError.cause). */
export function sqlState(err: unknown): string | undefined {
  const queue: unknown[] = [err];
  for (let seen = 0; queue.length > 0 && seen < 20; seen++) {
    const e = queue.shift();
    if (!e || typeof e !== "object") continue;
    const o = e as Record<string, unknown>;
    for (const key of ["originalCode", "code"]) {
      const v = o[key];
      // Prisma's own codes (P2010...) look like SQLSTATEs; skip them.
      if (typeof v === "string" && /^[0-9A-Z]{5}$/.test(v) && !/^P\d{4}$/.test(v)) return v;
    }
    if (o.kind === "UniqueConstraintViolation") return "23505";
    queue.push(o.cause, o.meta, o.driverAdapterError);
  }
  return undefined;
}
