import type { Database } from "./database.js";
import type { RetentionPolicy } from "./retention-policy.js";

interface OverrideRow {
  max_age_days: number | null;
  max_count: string | null;
  updated_by: string;
  updated_at: Date;
}

/** A room's override as stored, with who set it and when. */
export interface RetentionOverride extends RetentionPolicy {
  updatedBy: number;
  updatedAt: Date;
}

/**
 * Per-room overrides of the global retention policy (table room_retention). Reads and writes go
 * through the read pool: a single-row upsert, never near the append path's locks.
 */
export class RetentionStore {
  constructor(private readonly db: Database) {}

  async get(roomId: number): Promise<RetentionOverride | null> {
    const rows = await this.db.prisma.$queryRawUnsafe<OverrideRow[]>(
      `SELECT max_age_days, max_count::text AS max_count, updated_by::text AS updated_by, updated_at
       FROM room_retention WHERE room_id = $1::bigint`,
      String(roomId),
    );
    const row = rows[0];
    return row === undefined ? null : toOverride(row);
  }

  async set(roomId: number, policy: RetentionPolicy, operatorId: number): Promise<RetentionOverride> {
    const rows = await this.db.prisma.$queryRawUnsafe<OverrideRow[]>(
      `INSERT INTO room_retention (room_id, max_age_days, max_count, updated_by, updated_at)
       VALUES ($1::bigint, $2::int, $3::bigint, $4::bigint, now())
       ON CONFLICT (room_id) DO UPDATE SET max_age_days = EXCLUDED.max_age_days, max_count = EXCLUDED.max_count,
         updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
       RETURNING max_age_days, max_count::text AS max_count, updated_by::text AS updated_by, updated_at`,
      String(roomId),
      policy.maxAgeDays,
      policy.maxCount === null ? null : String(policy.maxCount),
      String(operatorId),
    );
    const row = rows[0];
    if (row === undefined) throw new Error("the retention upsert returned no row");
    return toOverride(row);
  }

  /** Removes the room's override (it follows the global policy again); false when it had none. */
  async clear(roomId: number): Promise<boolean> {
    const rows = await this.db.prisma.$queryRawUnsafe<{ room_id: string }[]>(
      "DELETE FROM room_retention WHERE room_id = $1::bigint RETURNING room_id::text AS room_id",
      String(roomId),
    );
    return rows.length > 0;
  }

  /** The room's lowest retained seq (null: it holds no entry) and its last seq: one snapshot, two index probes. */
  async retainedRange(roomId: number): Promise<{ from: number | null; lastSeq: number }> {
    return readRetainedRange(this.db, roomId);
  }
}

/** Shared with PrismaChatLog.retainedRange. */
export async function readRetainedRange(
  db: Database,
  roomId: number,
): Promise<{ from: number | null; lastSeq: number }> {
  const rows = await db.prisma.$queryRawUnsafe<{ first: string | null; last_seq: string | null }[]>(
    `SELECT (SELECT min(seq) FROM chat_message WHERE room_id = $1::bigint)::text AS first,
            (SELECT last_seq FROM chat_room WHERE room_id = $1::bigint)::text AS last_seq`,
    String(roomId),
  );
  const row = rows[0];
  return {
    from: row?.first == null ? null : Number(row.first),
    lastSeq: row?.last_seq == null ? 0 : Number(row.last_seq),
  };
}

function toOverride(row: OverrideRow): RetentionOverride {
  return {
    maxAgeDays: row.max_age_days === null ? null : Number(row.max_age_days),
    maxCount: row.max_count === null ? null : Number(row.max_count),
    updatedBy: Number(row.updated_by),
    updatedAt: row.updated_at instanceof Date ? row.updated_at : new Date(row.updated_at),
  };
}
