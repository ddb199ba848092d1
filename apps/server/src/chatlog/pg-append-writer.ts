import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { failpoints } from "../ops/failpoints.js";
import {
  APPEND_PLAIN,
  type AppendRow,
  type AppendStatement,
  LOCK_ROOMS_SQL,
  READ_BACK_SQL,
} from "./append-statement.js";
import { LogDeadlineError, LogNotCommittedError } from "./log-errors.js";

/** Runs one batch's append statement in its own transaction. */
export interface BatchAppender {
  /**
   * Resolves with the statement's rows once they are committed. Rejects only
   * when nothing was committed and nothing will be. `deadline`
   * (performance.now()): COMMIT is not sent after it. `statement`: which
   * append statement the batch needs (default: the plain one).
   */
  append(params: unknown[], deadline: number, statement?: AppendStatement): Promise<AppendRow[]>;
  close(): Promise<void>;
}

export interface PgAppendWriterOptions {
  connectionString: string;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
}

/** The plain append statement's prepared name on every writer connection (parsed once per connection). */
export const APPEND_STATEMENT_NAME = APPEND_PLAIN.name;

/**
 * Appends on PostgreSQL over dedicated writer connections (never the read
 * pool), one per batch in flight, created as needed. A plain batch is one
 * statement in its own implicit transaction: one round trip, and the room's
 * counter row is locked only while PostgreSQL runs and commits it, never across
 * a round trip to this node. A batch that marks messages deleted needs a
 * statement before it: BEGIN, both statements, then COMMIT.
 */
export class PgAppendWriter implements BatchAppender {
  private readonly idle: WriterConnection[] = [];
  private closed = false;

  constructor(private readonly options: PgAppendWriterOptions) {}

  async append(params: unknown[], deadline: number, statement = APPEND_PLAIN): Promise<AppendRow[]> {
    const connection = this.idle.pop() ?? new WriterConnection(this.options);
    try {
      return await connection.append(params, deadline, statement);
    } finally {
      if (this.closed) connection.close();
      else this.idle.push(connection);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.idle.splice(0).map((c) => c.close()));
  }
}

/** Which server process ran a transaction: pid and start time (a pid alone can be reused after a restart). */
interface BackendIdentity {
  pid: number;
  started: string;
}

/**
 * One writer connection. The rule it keeps: before the batch's commit is sent
 * (the plain statement, which commits by itself; or COMMIT after BEGIN and the
 * statements), the deadline may abandon it (the socket is destroyed, the
 * server aborts it, the caller is refused); once it is sent, the caller gets
 * the truth, however long it takes to learn it.
 */
class WriterConnection {
  private client: pg.Client | undefined;
  private backend: BackendIdentity | undefined;

  constructor(private readonly options: PgAppendWriterOptions) {}

  async append(params: unknown[], deadline: number, append: AppendStatement): Promise<AppendRow[]> {
    if (performance.now() >= deadline) throw new LogDeadlineError("queued");
    const client = await this.beforeDeadline(this.connect(), deadline, "connecting");
    const backend = this.backend as BackendIdentity;
    return append.lockRoomsFirst
      ? this.inTransaction(client, backend, params, deadline, append)
      : this.autocommit(client, backend, params, deadline, append);
  }

  /**
   * The statement alone: it commits when it completes, so the deadline is checked before it is
   * sent, and once it is sent the caller waits for the truth. Its wait for a room's lock is bounded
   * by the server's statement timeout (an ERROR: rolled back, refused).
   */
  private async autocommit(
    client: pg.Client,
    backend: BackendIdentity,
    params: unknown[],
    deadline: number,
    append: AppendStatement,
  ): Promise<AppendRow[]> {
    if (performance.now() >= deadline) throw new LogDeadlineError("writing");
    try {
      const result = await this.answered(
        client,
        client.query<AppendRow>({ name: append.name, text: append.text, values: params }),
        "the append",
      );
      // A test's lost answer: the statement committed, its answer never arrives.
      if (failpoints.enabled && (await failpoints.hit("log.after-append")) === "drop") {
        throw new Error("failpoint: the append's answer was lost");
      }
      return result.rows;
    } catch (err) {
      // An ERROR answer: the statement (and its implicit transaction) rolled back.
      if (err instanceof pg.DatabaseError && err.severity === "ERROR") throw err;
      this.discard(client);
      const rows = await this.readBackOnceGone(backend, params);
      if (rows !== undefined) return rows;
      throw new LogNotCommittedError(err);
    }
  }

  /** BEGIN, the statements, COMMIT: for a batch that needs a statement before the append. */
  private async inTransaction(
    client: pg.Client,
    backend: BackendIdentity,
    params: unknown[],
    deadline: number,
    append: AppendStatement,
  ): Promise<AppendRow[]> {
    // Pipelined: BEGIN and the statement are answered in one round trip. The driver writes each
    // query as it is submitted; corked, they leave in one system call instead of one each.
    const socket = client.connection.stream;
    socket.cork();
    const begin = client.query("BEGIN");
    // A batch that marks messages deleted first locks its rooms (its statement's snapshot then sees every earlier seq).
    const lock = append.lockRoomsFirst
      ? client.query({ name: LOCK_ROOMS_STATEMENT_NAME, text: LOCK_ROOMS_SQL, values: [params[0]] })
      : undefined;
    const statement = client.query<AppendRow>({ name: append.name, text: append.text, values: params });
    socket.uncork();
    let rows: AppendRow[];
    try {
      rows = (await this.beforeDeadline(Promise.all([begin, lock, statement]), deadline, "writing"))[2].rows;
    } catch (err) {
      // A statement error leaves the transaction aborted: roll it back (or drop the connection).
      if (err instanceof pg.DatabaseError && this.client === client) {
        await this.beforeDeadline(client.query("ROLLBACK"), deadline, "writing").catch(() => this.discard(client));
      }
      throw err;
    }
    if (performance.now() >= deadline) {
      this.discard(client);
      throw new LogDeadlineError("writing");
    }
    // From here on the transaction may commit: never refuse the caller without knowing it did not.
    try {
      await this.answered(client, client.query("COMMIT"), "COMMIT");
      return rows;
    } catch (err) {
      // The server answered COMMIT with an ERROR: it rolled back.
      if (err instanceof pg.DatabaseError && err.severity === "ERROR") throw err;
      this.discard(client);
      const probe = rows.find((r) => !r.duplicate)?.id;
      // Nothing new in the batch (all retries of committed messages): the results stand either way.
      if (probe === undefined) return rows;
      await this.untilGone(backend);
      if (await this.found(probe)) return rows;
      throw new LogNotCommittedError(err);
    }
  }

  close(): void {
    const client = this.client;
    this.client = undefined;
    client?.end().catch(() => {});
  }

  /**
   * A statement that may commit, awaited. A server that answers nothing for
   * longer than its own statement timeout allows is stalled or unreachable:
   * drop the socket and learn the outcome on a new connection instead.
   */
  private answered<T>(client: pg.Client, query: Promise<T>, what: string): Promise<T> {
    const patienceMs = this.options.statementTimeoutMs + this.options.connectTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.discard(client);
        reject(new Error(`no answer to ${what} within ${patienceMs} ms`));
      }, patienceMs);
      query.then(
        (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  /**
   * Waits until the server process that ran a transaction whose answer was lost is gone (terminating
   * it if it lingers): only that process could still commit it, so from then on the table tells the
   * truth. Asks again (backing off) until the database answers.
   */
  private async untilGone(backend: BackendIdentity): Promise<void> {
    await this.checking((client) =>
      client
        .query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND ${BACKEND_STARTED} = $2`, [
          backend.pid,
          backend.started,
        ])
        .then((lingering) => (lingering.rowCount === 0 ? true : undefined)),
    );
  }

  /** Whether a message with this id is in the log. */
  private found(id: string): Promise<boolean> {
    return this.checking((client) =>
      client.query("SELECT 1 FROM chat_message WHERE id = $1::uuid", [id]).then((r) => (r.rowCount ?? 0) > 0),
    );
  }

  /**
   * After an autocommitted append lost its answer: once its server process is gone, every draft of a
   * committed batch is in the log, by its own id or (a retry) by its clientMsgId. The rows read back
   * as the statement would have answered them; undefined when a draft is missing (not committed).
   */
  private async readBackOnceGone(backend: BackendIdentity, params: unknown[]): Promise<AppendRow[] | undefined> {
    await this.untilGone(backend);
    const [roomIds, ids, senderIds, , , , clientMsgIds] = params;
    const rows = await this.checking((client) =>
      client.query<AppendRow>(READ_BACK_SQL, [roomIds, ids, senderIds, clientMsgIds]).then((r) => r.rows),
    );
    return rows.length === (ids as unknown[]).length ? rows : undefined;
  }

  /** One question on a fresh connection, asked again (backing off) until the database answers it. */
  private async checking<T>(ask: (client: pg.Client) => Promise<T | undefined>): Promise<T> {
    for (let pauseMs = 50; ; pauseMs = Math.min(pauseMs * 2, 1000)) {
      const client = this.newClient(false);
      try {
        await client.connect();
        const answer = await ask(client);
        client.end().catch(() => {});
        if (answer !== undefined) return answer;
      } catch {
        destroy(client);
      }
      await sleep(pauseMs);
    }
  }

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = this.newClient(true);
    this.client = client;
    try {
      await client.connect();
      // Pipelined: both leave in one round trip.
      const [, me] = await Promise.all([
        client.query(WRITER_PLANNER),
        client.query<BackendIdentity>(
          `SELECT pid, ${BACKEND_STARTED} AS started FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
        ),
      ]);
      const row = me.rows[0];
      if (!row) throw new Error("writer connection: own backend not found in pg_stat_activity");
      this.backend = row;
      return client;
    } catch (err) {
      this.discard(client);
      throw err;
    }
  }

  private newClient(writer: boolean): pg.Client {
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      connectionTimeoutMillis: this.options.connectTimeoutMs,
      statement_timeout: this.options.statementTimeoutMs,
      // A transaction whose writer vanished without closing its socket is not left holding room locks.
      ...(writer ? { idle_in_transaction_session_timeout: this.options.statementTimeoutMs } : {}),
      query_timeout: writer ? undefined : this.options.statementTimeoutMs + 1000,
      pipeline: writer,
      keepAlive: true,
      application_name: writer ? "chatrelay-writer" : "chatrelay-writer-check",
    });
    client.on("error", () => {
      // The socket died (server restart, network): the next batch opens a new connection.
      if (this.client === client) this.client = undefined;
    });
    return client;
  }

  /**
   * Drops a connection at once: whatever transaction it had open is aborted by
   * the server. Names the client, as a late callback must not hit its successor.
   */
  private discard(client = this.client): void {
    if (client === undefined) return;
    if (this.client === client) this.client = undefined;
    destroy(client);
  }

  /**
   * `work` on the current connection, unless the deadline comes first: then
   * that connection is destroyed and the caller refused.
   */
  private beforeDeadline<T>(work: Promise<T>, deadline: number, phase: "connecting" | "writing"): Promise<T> {
    const client = this.client;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.discard(client);
          reject(new LogDeadlineError(phase));
        },
        Math.max(0, deadline - performance.now()),
      );
      work.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (err instanceof pg.DatabaseError) return reject(err);
          this.discard(client);
          // A driver timeout due at the same moment as ours says the same thing.
          reject(performance.now() >= deadline ? new LogDeadlineError(phase) : err);
        },
      );
    });
  }
}

const LOCK_ROOMS_STATEMENT_NAME = "chatrelay_lock_rooms";

/**
 * The append statements are prepared once per connection and their plan is
 * cached: one planned while `chat_message` was small (a new deployment, a
 * fresh database) seq-scanned the whole table for the clientMsgId lookup on
 * every batch, ever slower as the table grew (1.3 ms for 8 rows at 10,000
 * rows, growing), until an ANALYZE happened to invalidate it; and batches of
 * one or two rows, for which a custom plan looked cheaper than the generic
 * one, were re-planned every time (0.4 ms). The writer only ever looks rows up
 * by index, so: one generic plan per statement, built without sequential
 * scans, whatever the statistics say.
 */
const WRITER_PLANNER = "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan";

/** A backend's start time as text that no session setting (DateStyle, TimeZone) changes. */
const BACKEND_STARTED = "to_char(backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')";

function destroy(client: pg.Client): void {
  client.connection.stream.destroy();
}
