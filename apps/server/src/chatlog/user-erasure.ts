import { uuidv7 } from "../core/ids.js";
import type { ChatMessage } from "../core/message.js";
import type { ChatLog } from "../core/ports.js";
import type { Database } from "./database.js";
import { sqlState } from "./log-errors.js";

/** One room of an erasure: how many of the user's messages still have their text there. */
export interface ErasureRoom {
  roomId: number;
  messages: number;
}

/** What one room's erasure did: the rows it emptied and the `erase` event's seq (none when 0 rows). */
export interface ErasedRoom extends ErasureRoom {
  eventSeq: number | undefined;
}

export interface ErasureRequest {
  operatorId: number;
  userId: number;
  reason: string | undefined;
  /** Called after each room (its rows emptied, its event appended): progress for the CLI. */
  onRoom?: (room: ErasedRoom) => void;
}

export interface ErasureResult {
  erasureId: string;
  userId: number;
  rooms: number;
  messages: number;
}

/** One audit row (`log_erasure`). */
export interface ErasureRecord extends ErasureResult {
  operatorId: number;
  reason: string | null;
  startedAt: Date;
  /** Null while it runs, or when it was interrupted (rooms and messages then say how far it got). */
  finishedAt: Date | null;
}

export interface UserErasureOptions {
  /** Rows emptied per statement (each statement its own short transaction). */
  batchRows?: number;
}

/** Rows per UPDATE: small enough that a batch holds its row locks for milliseconds. */
export const ERASE_BATCH_ROWS = 500;
/** Deadlock or serialisation failure against a moderator's delete/clear of the same rows: retry the batch. */
const RETRYABLE = new Set(["40P01", "40001"]);
const MAX_ATTEMPTS = 5;

/**
 * A sender's rows that still hold personal data. Messages only (a moderation event's row has no
 * text; the user's own moderation actions stay attributed). Uses the partial index
 * chat_message (sender_id, room_id, seq) WHERE kind = 'message' (migration 20261126000004_erasure).
 */
const NOT_ERASED = `sender_id = $1::bigint AND kind = 'message' AND (text <> '' OR nickname <> '')`;

const PLAN_SQL = `SELECT room_id, count(*) AS n FROM chat_message WHERE ${NOT_ERASED} GROUP BY room_id ORDER BY room_id`;

/**
 * One batch of one room: text and nickname emptied, the row marked deleted (a row a moderator
 * deleted already keeps its first deletion's time and actor). seq, id, sender, kind and
 * client_msg_id stay: the tombstone keeps its place in the log, and a sender's retry with the
 * same client message id still finds it instead of posting the erased text again.
 */
const ERASE_BATCH_SQL = `
WITH target AS (
  SELECT room_id, seq FROM chat_message
  WHERE ${NOT_ERASED} AND room_id = $2::bigint
  ORDER BY seq LIMIT $4::int
), erased AS (
  UPDATE chat_message m
  SET text = '', nickname = '', deleted_at = coalesce(m.deleted_at, now()), deleted_by = coalesce(m.deleted_by, $3::bigint)
  FROM target t WHERE m.room_id = t.room_id AND m.seq = t.seq
  RETURNING 1
)
SELECT count(*) AS n FROM erased`;

/**
 * Erasing one user's messages across all rooms (an operator's action): room by room, in batches of
 * short statements (never one long transaction; the rooms' counter rows, which appends lock, are
 * never touched), then one `erase` moderation event per affected room through the chat log's group
 * commit (after that room's rows are committed, so a presenter that gets the event and re-reads
 * history sees the tombstones), published like any event. Audited in `log_erasure`.
 */
export class UserErasure {
  private readonly batchRows: number;

  constructor(
    private readonly db: Database,
    private readonly log: Pick<ChatLog, "appendEvent">,
    /** Puts a committed event on the room's bus channel (the relay's publish); may be a no-op. */
    private readonly publish: (event: ChatMessage) => void | Promise<void>,
    options: UserErasureOptions = {},
  ) {
    this.batchRows = options.batchRows ?? ERASE_BATCH_ROWS;
  }

  /** What an erasure of the user would do now: rooms and message counts (a read of the user's rows only). */
  async plan(userId: number): Promise<ErasureRoom[]> {
    const rows = await this.db.prisma.$queryRawUnsafe<{ room_id: bigint; n: bigint }[]>(PLAN_SQL, userId);
    return rows.map((r) => ({ roomId: Number(r.room_id), messages: Number(r.n) }));
  }

  async erase(request: ErasureRequest): Promise<ErasureResult> {
    const { operatorId, userId } = request;
    const erasureId = uuidv7();
    await this.db.prisma.$executeRawUnsafe(
      `INSERT INTO log_erasure (id, operator_id, user_id, reason) VALUES ($1::uuid, $2::bigint, $3::bigint, $4)`,
      erasureId,
      operatorId,
      userId,
      request.reason ?? null,
    );
    let rooms = 0;
    let messages = 0;
    for (const { roomId } of await this.plan(userId)) {
      const count = await this.eraseRoom(operatorId, userId, roomId);
      let eventSeq: number | undefined;
      if (count > 0) {
        rooms++;
        messages += count;
        // Audited before the event: should the event fail, the audit still says what was emptied.
        await this.record(erasureId, rooms, messages, false);
        const event = await this.log.appendEvent({
          id: uuidv7(),
          roomId,
          actorId: operatorId,
          kind: "erase",
          event: { userId, count },
        });
        eventSeq = event.seq;
        await this.publish(event);
      }
      request.onRoom?.({ roomId, messages: count, eventSeq });
    }
    await this.record(erasureId, rooms, messages, true);
    return { erasureId, userId, rooms, messages };
  }

  /** The audit, newest first; `before` is an erasure id (the previous page's last). */
  async list(before: string | undefined, limit: number): Promise<ErasureRecord[]> {
    const rows = await this.db.prisma.$queryRawUnsafe<
      {
        id: string;
        operator_id: bigint;
        user_id: bigint;
        reason: string | null;
        started_at: Date;
        finished_at: Date | null;
        rooms: number;
        messages: bigint;
      }[]
    >(
      // Ids are UUIDv7: their order is their start time's (ties broken by the random part).
      `SELECT id::text AS id, operator_id, user_id, reason, started_at, finished_at, rooms, messages
       FROM log_erasure WHERE ($1::uuid IS NULL OR id < $1::uuid) ORDER BY id DESC LIMIT $2::int`,
      before ?? null,
      limit,
    );
    return rows.map((r) => ({
      erasureId: r.id,
      operatorId: Number(r.operator_id),
      userId: Number(r.user_id),
      reason: r.reason,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      rooms: Number(r.rooms),
      messages: Number(r.messages),
    }));
  }

  private async eraseRoom(operatorId: number, userId: number, roomId: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.batch(operatorId, userId, roomId);
      total += n;
      if (n < this.batchRows) return total;
    }
  }

  private async batch(operatorId: number, userId: number, roomId: number): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        const rows = await this.db.prisma.$queryRawUnsafe<{ n: bigint }[]>(
          ERASE_BATCH_SQL,
          userId,
          roomId,
          operatorId,
          this.batchRows,
        );
        return Number(rows[0]?.n ?? 0);
      } catch (err) {
        if (attempt < MAX_ATTEMPTS && RETRYABLE.has(sqlState(err) ?? "")) continue;
        throw err;
      }
    }
  }

  private async record(erasureId: string, rooms: number, messages: number, finished: boolean): Promise<void> {
    await this.db.prisma.$executeRawUnsafe(
      `UPDATE log_erasure SET rooms = $2::int, messages = $3::bigint,
         finished_at = CASE WHEN $4::boolean THEN now() ELSE finished_at END
       WHERE id = $1::uuid`,
      erasureId,
      rooms,
      messages,
      finished,
    );
  }
}
