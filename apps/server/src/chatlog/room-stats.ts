import type { Database } from "./database.js";
import type { StatsWindow } from "./stats-window.js";

/** A room's activity in a window. Messages only: moderation events are not counted. */
export interface RoomStats {
  roomId: number;
  from: Date;
  to: Date;
  messages: number;
  distinctSenders: number;
  /** Of the messages still in the log (retention may have removed older ones; the counts keep them). */
  firstMessageAt: Date | null;
  lastMessageAt: Date | null;
  /** Hours (UTC) with at least one message, oldest first. */
  hourly: { hour: Date; messages: number }[];
  /** Days (UTC) with at least one message, oldest first. */
  daily: { day: Date; messages: number }[];
  topSenders: { senderId: number; messages: number }[];
}

export interface BusyRoom {
  roomId: number;
  messages: number;
}

/**
 * Counters rolled up (stats_sender_hour, by the StatsRollup job) plus the rows the rollup has not
 * reached yet (a room's seqs above its watermark: a primary-key range, at most one rollup
 * interval of traffic), in one statement, so one snapshot: a rollup committing meanwhile is
 * counted exactly once. Nothing here reads the room's whole log.
 */
const ROOM_SQL = `
WITH mark AS (
  SELECT coalesce((SELECT rolled_seq FROM stats_rollup_room WHERE room_id = $1::bigint), 0) AS seq
), per AS (
  SELECT hour, sender_id, messages AS n FROM stats_sender_hour
  WHERE room_id = $1::bigint AND hour >= $2::timestamptz AND hour < $3::timestamptz
  UNION ALL
  SELECT date_trunc('hour', m.created_at, 'UTC'), m.sender_id, count(*)
  FROM chat_message m, mark
  WHERE m.room_id = $1::bigint AND m.seq > mark.seq AND m.kind = 'message'
    AND m.created_at >= $2::timestamptz AND m.created_at < $3::timestamptz
  GROUP BY 1, 2
), hours AS (
  SELECT hour, sum(n) AS n FROM per GROUP BY hour
), senders AS (
  SELECT sender_id, sum(n) AS n FROM per GROUP BY sender_id
), top AS (
  SELECT sender_id, n FROM senders ORDER BY n DESC, sender_id LIMIT $4::int
)
SELECT
  (SELECT coalesce(json_agg(json_build_object('at', extract(epoch FROM hour) * 1000, 'n', n) ORDER BY hour), '[]'::json) FROM hours)::text AS hourly,
  (SELECT count(*) FROM senders) AS senders,
  (SELECT coalesce(json_agg(json_build_object('id', sender_id::text, 'n', n) ORDER BY n DESC, sender_id), '[]'::json) FROM top)::text AS top,
  (SELECT min(created_at) FROM chat_message WHERE room_id = $1::bigint AND kind = 'message'
     AND created_at >= $2::timestamptz AND created_at < $3::timestamptz) AS first_at,
  (SELECT max(created_at) FROM chat_message WHERE room_id = $1::bigint AND kind = 'message'
     AND created_at >= $2::timestamptz AND created_at < $3::timestamptz) AS last_at`;

/**
 * The busiest rooms: per-room hourly counters in the window (the hour index) plus, for rooms the
 * rollup has not caught up with, their rows above the watermark (primary-key ranges), in one snapshot.
 */
const BUSIEST_SQL = `
WITH per AS (
  SELECT room_id, messages AS n FROM stats_room_hour WHERE hour >= $1::timestamptz AND hour < $2::timestamptz
  UNION ALL
  SELECT r.room_id, tail.n
  FROM chat_room r
  LEFT JOIN stats_rollup_room s ON s.room_id = r.room_id
  CROSS JOIN LATERAL (
    SELECT count(*) AS n FROM chat_message m
    WHERE m.room_id = r.room_id AND m.seq > coalesce(s.rolled_seq, 0) AND m.kind = 'message'
      AND m.created_at >= $1::timestamptz AND m.created_at < $2::timestamptz
  ) tail
  WHERE r.last_seq > coalesce(s.rolled_seq, 0)
)
SELECT room_id, sum(n)::bigint AS n FROM per GROUP BY room_id HAVING sum(n) > 0 ORDER BY sum(n) DESC, room_id LIMIT $3::int`;

const DAY_MS = 86_400_000;

/** Reads of the statistics (the operator routes and `chatrelay log stats`). */
export class RoomStatsReader {
  constructor(private readonly db: Database) {}

  async room(roomId: number, window: StatsWindow, top: number): Promise<RoomStats> {
    const rows = await this.db.prisma.$queryRawUnsafe<
      { hourly: string; senders: bigint; top: string; first_at: Date | null; last_at: Date | null }[]
    >(ROOM_SQL, roomId, window.from, window.to, top);
    const row = rows[0];
    if (row === undefined) throw new Error("stats query returned no row");
    const hourly = (JSON.parse(row.hourly) as { at: number; n: number }[]).map((h) => ({
      hour: new Date(Number(h.at)),
      messages: Number(h.n),
    }));
    const days = new Map<number, number>();
    for (const h of hourly) {
      const day = Math.floor(h.hour.getTime() / DAY_MS) * DAY_MS;
      days.set(day, (days.get(day) ?? 0) + h.messages);
    }
    return {
      roomId,
      from: window.from,
      to: window.to,
      messages: hourly.reduce((sum, h) => sum + h.messages, 0),
      distinctSenders: Number(row.senders),
      firstMessageAt: row.first_at,
      lastMessageAt: row.last_at,
      hourly,
      daily: [...days].map(([day, messages]) => ({ day: new Date(day), messages })),
      topSenders: (JSON.parse(row.top) as { id: string; n: number }[]).map((s) => ({
        senderId: Number(s.id),
        messages: Number(s.n),
      })),
    };
  }

  async busiest(window: StatsWindow, limit: number): Promise<BusyRoom[]> {
    const rows = await this.db.prisma.$queryRawUnsafe<{ room_id: bigint; n: bigint | number | string }[]>(
      BUSIEST_SQL,
      window.from,
      window.to,
      limit,
    );
    return rows.map((r) => ({ roomId: Number(r.room_id), messages: Number(r.n) }));
  }
}
