import type { Logger } from "pino";
import type { Database } from "./database.js";

/** The advisory lock every rollup transaction takes (the migrations' is 7283517150). */
export const STATS_ROLLUP_LOCK = 7283517313;
/** How often each node tries a pass; one pass catches up every room (bounded per transaction). */
export const STATS_ROLLUP_INTERVAL_MS = 60_000;

export interface StatsRollupOptions {
  /** Log rows read per transaction (summed over its rooms). */
  maxRowsPerTransaction?: number;
  /** Rooms per transaction. */
  maxRoomsPerTransaction?: number;
  /** Rooms looked at per pass (the rest wait for the next pass). */
  maxRoomsPerPass?: number;
}

export interface RollupPass {
  /** Another node's rollup held the lock: this pass stopped (what it committed before stays). */
  busy: boolean;
  rooms: number;
  messages: number;
}

/** Rooms whose counter (last committed seq) is past the rollup's watermark. */
const BEHIND_SQL = `
SELECT r.room_id, r.last_seq, coalesce(s.rolled_seq, 0) AS rolled
FROM chat_room r LEFT JOIN stats_rollup_room s ON s.room_id = r.room_id
WHERE r.last_seq > coalesce(s.rolled_seq, 0)
ORDER BY r.room_id LIMIT $1::int`;

/**
 * Counts the rows (room, lo, hi] of each planned room into the hourly counters and moves the
 * watermark to hi, in one statement. `hi` is at most a committed `chat_room.last_seq`, and every
 * seq up to a committed counter is committed (seqs are assigned and committed under the room's
 * row lock), so the range is complete and never counted again.
 */
const ROLLUP_SQL = `
WITH plan AS (
  SELECT p.room_id, p.hi, s.rolled_seq AS lo
  FROM unnest($1::bigint[], $2::bigint[]) AS p(room_id, hi)
  JOIN stats_rollup_room s ON s.room_id = p.room_id
  WHERE p.hi > s.rolled_seq
), counted AS (
  SELECT m.room_id, date_trunc('hour', m.created_at, 'UTC') AS hour, m.sender_id, count(*) AS n
  FROM plan JOIN chat_message m ON m.room_id = plan.room_id AND m.seq > plan.lo AND m.seq <= plan.hi
  WHERE m.kind = 'message'
  GROUP BY 1, 2, 3
), senders AS (
  INSERT INTO stats_sender_hour AS t (room_id, hour, sender_id, messages)
  SELECT room_id, hour, sender_id, n FROM counted
  ON CONFLICT (room_id, hour, sender_id) DO UPDATE SET messages = t.messages + EXCLUDED.messages
), hours AS (
  INSERT INTO stats_room_hour AS t (room_id, hour, messages)
  SELECT room_id, hour, sum(n) FROM counted GROUP BY room_id, hour
  ON CONFLICT (room_id, hour) DO UPDATE SET messages = t.messages + EXCLUDED.messages
), moved AS (
  UPDATE stats_rollup_room s SET rolled_seq = plan.hi, rolled_at = now()
  FROM plan WHERE s.room_id = plan.room_id
)
SELECT (SELECT count(*) FROM plan) AS rooms, (SELECT coalesce(sum(n), 0) FROM counted)::bigint AS messages`;

/**
 * The statistics rollup: per room a watermark (stats_rollup_room.rolled_seq); a pass counts each
 * room's messages between its watermark and its current counter into per-hour counters. Every
 * node runs it; each transaction first takes an advisory lock (try, never wait), so one
 * transaction at a time cluster-wide, and a pass that finds the lock taken stops: the node
 * holding it is doing the work. Idempotent: a range is counted in the same transaction that moves
 * the watermark past it. Reads only the rows not counted yet (primary-key ranges); never locks
 * `chat_room` (it reads committed counters), so appends never wait for it.
 */
export class StatsRollup {
  private readonly maxRows: number;
  private readonly maxRooms: number;
  private readonly maxRoomsPerPass: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(
    private readonly db: Database,
    private readonly logger?: Logger,
    options: StatsRollupOptions = {},
  ) {
    this.maxRows = options.maxRowsPerTransaction ?? 20_000;
    this.maxRooms = options.maxRoomsPerTransaction ?? 500;
    this.maxRoomsPerPass = options.maxRoomsPerPass ?? 10_000;
  }

  /** One pass over every room that is behind. */
  async runOnce(): Promise<RollupPass> {
    const behind = await this.db.prisma.$queryRawUnsafe<{ room_id: bigint; last_seq: bigint; rolled: bigint }[]>(
      BEHIND_SQL,
      this.maxRoomsPerPass,
    );
    const pass: RollupPass = { busy: false, rooms: 0, messages: 0 };
    // Packed into transactions of at most maxRows rows; a room further behind takes several.
    const queue = behind.map((r) => ({ roomId: Number(r.room_id), lo: Number(r.rolled), last: Number(r.last_seq) }));
    while (queue.length > 0) {
      const roomIds: number[] = [];
      const his: number[] = [];
      let rows = 0;
      while (queue.length > 0 && rows < this.maxRows && roomIds.length < this.maxRooms) {
        const room = queue[0] as (typeof queue)[number];
        const hi = Math.min(room.last, room.lo + (this.maxRows - rows));
        roomIds.push(room.roomId);
        his.push(hi);
        rows += hi - room.lo;
        if (hi === room.last) queue.shift();
        else room.lo = hi;
      }
      const done = await this.transaction(roomIds, his);
      if (done === undefined) return { ...pass, busy: true };
      pass.messages += done.messages;
      pass.rooms += done.rooms;
    }
    return pass;
  }

  /** Runs a pass now and then every `intervalMs` (each node; the lock keeps them apart). */
  start(intervalMs = STATS_ROLLUP_INTERVAL_MS, firstInMs = Math.min(intervalMs, 5_000)): void {
    this.stopped = false;
    const schedule = (delay: number) => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.running = this.runOnce()
          .then((pass) => {
            if (pass.messages > 0) this.logger?.debug(pass, "stats rollup pass");
          })
          .catch((err: unknown) => this.logger?.warn({ err }, "stats rollup pass failed; retrying next interval"))
          .finally(() => {
            this.running = undefined;
            schedule(intervalMs);
          });
      }, delay);
      // A pending pass must not keep a process alive (the CLI, tests).
      this.timer.unref();
    };
    schedule(firstInMs);
  }

  /** Stops the timer and waits for a pass in progress (before the store closes). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private transaction(roomIds: number[], his: number[]): Promise<{ rooms: number; messages: number } | undefined> {
    return this.db.transaction(async (s) => {
      const [lock] = await s.query<{ ok: boolean }>("SELECT pg_try_advisory_xact_lock($1::bigint) AS ok", [
        STATS_ROLLUP_LOCK,
      ]);
      if (lock?.ok !== true) return undefined;
      // This connection has no statement timeout (db.transaction's); the work is bounded by maxRows.
      await s.query(
        "INSERT INTO stats_rollup_room (room_id) SELECT unnest($1::bigint[]) ORDER BY 1 ON CONFLICT (room_id) DO NOTHING",
        [roomIds],
      );
      const [row] = await s.query<{ rooms: unknown; messages: unknown }>(ROLLUP_SQL, [roomIds, his]);
      return { rooms: Number(row?.rooms ?? 0), messages: Number(row?.messages ?? 0) };
    });
  }
}
