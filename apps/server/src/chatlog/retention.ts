import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import type { Logger } from "pino";
import { redactUrl } from "../ops/redact-url.js";
import type { Database } from "./database.js";
import { effectivePolicy, keepsEverything, type RetentionPolicy } from "./retention-policy.js";

/**
 * The session-level advisory lock one pass holds on PostgreSQL: one pass at a time cluster-wide.
 * (Next to the migration lock, 7283517150.) Tests take it to show that a node then prunes nothing.
 */
export const RETENTION_LOCK_KEY = "7283517151";

export interface PrunerSettings {
  /** The global policy; rooms with a row in room_retention follow that row instead. */
  policy: RetentionPolicy;
  intervalMs: number;
  batchRows: number;
  /**
   * Share of wall time a pass spends deleting (1..100): after a batch that took T, it waits
   * T * (100 / dutyPercent - 1). Deleting is WAL, index and fsync work on the database the live
   * path commits to; at full speed a pass of a million rows doubled the cluster path's p99 on a
   * two-core machine. @default 100 (the server passes RETENTION_DUTY_PERCENT, default 25)
   */
  dutyPercent?: number;
  /** PostgreSQL: a pass runs on a dedicated connection of its own (the lock's session); unset: PGlite. */
  databaseUrl: string | undefined;
  statementTimeoutMs: number;
  connectTimeoutMs: number;
}

export interface PassOptions {
  /** Only this room. */
  roomId?: number;
  /** Count what would be pruned; delete nothing. */
  dryRun?: boolean;
  /** After every batch (awaited: a slow listener slows the pass, never the appends). */
  onBatch?: (batch: { roomId: number; rows: number; throughSeq: number }) => void | Promise<void>;
}

export interface PassResult {
  /** Rooms whose policy was applied (rooms that keep everything are not visited). */
  rooms: number;
  /** Rooms that lost at least one entry (or would, in a dry run). */
  prunedRooms: number;
  /** Entries deleted (or that would be, in a dry run). */
  rows: number;
  seconds: number;
  dryRun: boolean;
  /** Stopped before the end (the node is shutting down). */
  interrupted: boolean;
}

/** The statements of a pass: PostgreSQL on the lock's connection, PGlite through Prisma. */
interface PassSession {
  query<T>(sql: string, params: unknown[]): Promise<T[]>;
  end(): Promise<void>;
}

interface RoomRow {
  room_id: string;
  last_seq: string;
  has_override: boolean;
  max_age_days: number | null;
  max_count: string | null;
}

interface BatchRow {
  head: number;
  n: number;
  last: string | null;
}

const ROOMS_PAGE = 500;

/** Rooms after $1 in id order: every room (with its override, if any) when the global policy prunes. */
const ALL_ROOMS_SQL = `
SELECT r.room_id::text AS room_id, r.last_seq::text AS last_seq, o.room_id IS NOT NULL AS has_override,
       o.max_age_days, o.max_count::text AS max_count
FROM chat_room r LEFT JOIN room_retention o ON o.room_id = r.room_id
WHERE r.room_id > $1::bigint ORDER BY r.room_id LIMIT ${ROOMS_PAGE}`;

/** The same, only rooms with an override: the global policy keeps everything. */
const OVERRIDE_ROOMS_SQL = `
SELECT r.room_id::text AS room_id, r.last_seq::text AS last_seq, true AS has_override,
       o.max_age_days, o.max_count::text AS max_count
FROM room_retention o JOIN chat_room r ON r.room_id = o.room_id
WHERE o.room_id > $1::bigint ORDER BY o.room_id LIMIT ${ROOMS_PAGE}`;

const ONE_ROOM_SQL = `
SELECT r.room_id::text AS room_id, r.last_seq::text AS last_seq, o.room_id IS NOT NULL AS has_override,
       o.max_age_days, o.max_count::text AS max_count
FROM chat_room r LEFT JOIN room_retention o ON o.room_id = r.room_id
WHERE r.room_id = $1::bigint`;

/**
 * One batch: the room's first $3 entries after seq $2 (primary key order), and of those the
 * prefix that a rule removes: seq <= $4 (the count rule's bound, -1 when off), or older than $5
 * days up to the first entry that is not (the age rule, off when $5 is null). Either rule removes
 * a prefix, so the retained entries of a room stay one contiguous range of seqs. Never touches
 * chat_room (the appends' row lock); reads last_seq elsewhere, without a lock.
 */
const DOOMED = `
WITH head AS (
  SELECT seq, created_at FROM chat_message
  WHERE room_id = $1::bigint AND seq > $2::bigint
  ORDER BY seq LIMIT $3::int
), young AS (
  SELECT min(seq) AS seq FROM head
  WHERE $5::int IS NOT NULL AND created_at >= now() - make_interval(days => $5::int)
), doomed AS (
  SELECT h.seq FROM head h, young y
  WHERE h.seq <= $4::bigint OR ($5::int IS NOT NULL AND (y.seq IS NULL OR h.seq < y.seq))
)`;

const DELETE_BATCH_SQL = `${DOOMED}, gone AS (
  DELETE FROM chat_message
  WHERE room_id = $1::bigint AND seq > $2::bigint AND seq <= (SELECT max(seq) FROM doomed)
  RETURNING seq
)
SELECT (SELECT count(*) FROM head)::int AS head, count(*)::int AS n, max(seq)::text AS last FROM gone`;

const COUNT_BATCH_SQL = `${DOOMED}
SELECT (SELECT count(*) FROM head)::int AS head, count(*)::int AS n, max(seq)::text AS last FROM doomed`;

/**
 * Retention, enforced in the background on every node: at most one pass at a time cluster-wide
 * (a PostgreSQL session advisory lock; PGlite is one process, a flag suffices). A pass visits
 * each room whose policy limits anything and deletes its oldest entries, messages and moderation
 * events alike, in seq order, in batches of `batchRows`, each batch its own short transaction.
 */
export class Pruner {
  /** Passes this node ran to the end (or to a stop). */
  passes = 0;
  /** Passes this node did not run because another one held the lock. */
  skipped = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private localBusy = false;
  private stopping = false;

  constructor(
    private readonly db: Database,
    private readonly settings: PrunerSettings,
    private readonly logger?: Logger,
  ) {}

  /** Passes every `intervalMs` from now on (timer unref'd: it never keeps the process alive). */
  start(): void {
    this.stopping = false;
    this.schedule();
  }

  /** No further pass; a running one stops after its current batch. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
  }

  /**
   * One pass now with the configured policy and the rooms' overrides. Null when another pass
   * holds the lock (elsewhere in the cluster, or on this node).
   */
  async runPass(options: PassOptions = {}): Promise<PassResult | null> {
    if (this.localBusy) {
      this.skipped++;
      return null;
    }
    this.localBusy = true;
    try {
      const session = await this.lockedSession();
      if (session === null) {
        this.skipped++;
        return null;
      }
      try {
        const result = await this.pass(session, options);
        this.passes++;
        return result;
      } finally {
        await session.end();
      }
    } finally {
      this.localBusy = false;
    }
  }

  private schedule(): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const pass = this.runPass().then(
        (result) => {
          if (result === null) this.logger?.debug("retention: another node is pruning; skipped this pass");
          else if (result.rows > 0) {
            this.logger?.info(
              { rows: result.rows, rooms: result.prunedRooms, seconds: result.seconds },
              "retention pass pruned the chat log",
            );
          }
        },
        (err: unknown) => this.logger?.warn({ err }, "retention pass failed; the next one retries"),
      );
      this.running = pass;
      void pass.finally(() => {
        if (this.running === pass) this.running = undefined;
        this.schedule();
      });
    }, this.settings.intervalMs);
    this.timer.unref();
  }

  private async pass(session: PassSession, options: PassOptions): Promise<PassResult> {
    const started = performance.now();
    const dryRun = options.dryRun === true;
    const global = this.settings.policy;
    const result: PassResult = { rooms: 0, prunedRooms: 0, rows: 0, seconds: 0, dryRun, interrupted: false };
    let after = "0";
    for (;;) {
      const rooms =
        options.roomId !== undefined
          ? await session.query<RoomRow>(ONE_ROOM_SQL, [String(options.roomId)])
          : await session.query<RoomRow>(keepsEverything(global) ? OVERRIDE_ROOMS_SQL : ALL_ROOMS_SQL, [after]);
      for (const room of rooms) {
        if (this.stopping) {
          result.interrupted = true;
          break;
        }
        const override = room.has_override
          ? {
              maxAgeDays: room.max_age_days === null ? null : Number(room.max_age_days),
              maxCount: room.max_count === null ? null : Number(room.max_count),
            }
          : null;
        const policy = effectivePolicy(global, override);
        if (keepsEverything(policy)) continue;
        result.rooms++;
        const rows = await this.pruneRoom(session, Number(room.room_id), Number(room.last_seq), policy, options);
        if (rows > 0) result.prunedRooms++;
        result.rows += rows;
      }
      const last = rooms.at(-1);
      if (options.roomId !== undefined || rooms.length < ROOMS_PAGE || last === undefined || result.interrupted) break;
      after = last.room_id;
    }
    if (this.stopping) result.interrupted = true;
    result.seconds = Math.round(performance.now() - started) / 1000;
    return result;
  }

  /** One room's batches, oldest first, until a batch reaches an entry the policy keeps. */
  private async pruneRoom(
    session: PassSession,
    roomId: number,
    lastSeq: number,
    policy: RetentionPolicy,
    options: PassOptions,
  ): Promise<number> {
    // last_seq as read at the start of the room: a later append only moves the bound up (kept longer).
    const countBound = policy.maxCount === null ? -1 : lastSeq - policy.maxCount;
    if (countBound <= 0 && policy.maxAgeDays === null) return 0;
    const sql = options.dryRun === true ? COUNT_BATCH_SQL : DELETE_BATCH_SQL;
    const batchRows = this.settings.batchRows;
    const restFactor = 100 / Math.min(100, Math.max(1, this.settings.dutyPercent ?? 100)) - 1;
    let after = 0;
    let total = 0;
    for (;;) {
      const batchStarted = performance.now();
      const [batch] = await session.query<BatchRow>(sql, [
        String(roomId),
        String(after),
        batchRows,
        String(countBound),
        policy.maxAgeDays,
      ]);
      const n = batch?.n ?? 0;
      if (n > 0 && batch?.last != null) {
        total += n;
        after = Number(batch.last);
        await options.onBatch?.({ roomId, rows: n, throughSeq: after });
      }
      // Done when the batch kept something (the prefix ended) or reached the room's end.
      if (batch === undefined || n < batch.head || batch.head < batchRows || this.stopping) return total;
      // Lets the event loop serve requests between batches (PGlite on the main thread, the CLI's progress),
      // then rests in proportion to the batch, so the live path keeps most of the database.
      await nextTurn();
      const restMs = (performance.now() - batchStarted) * restFactor;
      if (restMs >= 1 && options.dryRun !== true) await sleep(restMs);
      if (this.stopping) return total;
    }
  }

  /** A session holding the pass lock, or null when another pass holds it. */
  private async lockedSession(): Promise<PassSession | null> {
    const url = this.settings.databaseUrl;
    if (url === undefined) {
      // PGlite: one process holds the store; `localBusy` is the lock.
      return {
        query: <T>(sql: string, params: unknown[]) => this.db.prisma.$queryRawUnsafe<T[]>(sql, ...params),
        end: async () => {},
      };
    }
    const client = new pg.Client({
      connectionString: url,
      application_name: "chatrelay-retention",
      connectionTimeoutMillis: this.settings.connectTimeoutMs,
      statement_timeout: this.settings.statementTimeoutMs,
      query_timeout: this.settings.statementTimeoutMs + 1000,
    });
    client.on("error", () => {});
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => {});
      throw new Error(
        `retention: cannot connect to PostgreSQL at DATABASE_URL (${redactUrl(url)}): ${err instanceof Error ? err.message.slice(0, 200) : "error"}`,
      );
    }
    try {
      const rows = (
        await client.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock(${RETENTION_LOCK_KEY}) AS locked`)
      ).rows;
      if (rows[0]?.locked !== true) {
        await client.end().catch(() => {});
        return null;
      }
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    return {
      query: async (sql, params) => (await client.query(sql, params)).rows,
      // Ending the session releases the lock, also when the unlock itself fails.
      end: async () => {
        await client.query(`SELECT pg_advisory_unlock(${RETENTION_LOCK_KEY})`).catch(() => {});
        await client.end().catch(() => {});
      },
    };
  }
}
