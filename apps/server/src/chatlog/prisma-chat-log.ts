import {
  type AppendResult,
  type ChatMessage,
  checkEventData,
  type EventDraft,
  isModerationEventKind,
  type MessageDraft,
  type ModerationEventData,
  type ModerationEventKind,
} from "../core/message.js";
import type { ChatLog, HistoryOptions } from "../core/ports.js";
import type { ChatMessage as ChatMessageRow } from "../generated/prisma/client.js";
import { failpoints } from "../ops/failpoints.js";
import { type AppendRow, appendBatch } from "./append-statement.js";
import type { Database } from "./database.js";
import { type GroupCommitLimits, type GroupCommitStats, GroupCommitWriter } from "./group-commit.js";
import { sqlState } from "./log-errors.js";
import { readRetainedRange } from "./retention-store.js";

const RETRYABLE = new Set([
  "23505", // unique violation: another node committed the same client message id first
  "40P01", // deadlock detected
  "40001", // serialization failure
]);
const MAX_ATTEMPTS = 3;

/**
 * The chat log: group-committed appends (bounded queue, commit deadline; on
 * PostgreSQL over dedicated writer connections), reads through Prisma.
 */
export class PrismaChatLog implements ChatLog {
  private readonly writer: GroupCommitWriter<MessageDraft, AppendResult>;
  /** Same-node retries of one client message id share the first attempt (a batch cannot hold both). */
  private readonly inflight = new Map<string, Promise<AppendResult>>();

  constructor(
    private readonly db: Database,
    maxBatch: number,
    onBatch?: (stats: GroupCommitStats) => void,
    batchesInFlight = 1,
    limits: Partial<GroupCommitLimits> = {},
  ) {
    // PGlite runs in this thread: a second batch in flight would only queue behind the first.
    const inFlight = db.kind === "pglite" ? 1 : batchesInFlight;
    this.writer = new GroupCommitWriter(
      (drafts, deadline) => this.writeBatch(drafts, deadline),
      maxBatch,
      onBatch,
      inFlight,
      limits,
    );
  }

  /** Rows waiting for a batch now. */
  get queued(): number {
    return this.writer.queued;
  }

  append(draft: MessageDraft): Promise<AppendResult> {
    if (draft.clientMsgId === undefined) return this.writer.write(draft);
    const key = `${draft.roomId}:${draft.senderId}:${draft.clientMsgId}`;
    const first = this.inflight.get(key);
    if (first) return first.then((r) => ({ message: r.message, duplicate: true }));
    const attempt = this.writer.write(draft).finally(() => this.inflight.delete(key));
    this.inflight.set(key, attempt);
    return attempt;
  }

  /**
   * A moderation event, through the same group commit as messages (so it gets
   * the room's next seq in the one order). Its sender is the actor: userType
   * "presenter" when the actor is the room's presenter (userId === roomId),
   * "viewer" otherwise (a moderator); nickname and text are "". Throws at once
   * (nothing written) for a kind or data `checkEventData` refuses.
   */
  async appendEvent(draft: EventDraft): Promise<ChatMessage> {
    if (!isModerationEventKind(draft.kind) || !checkEventData(draft.kind, draft.event)) {
      throw new TypeError(`invalid moderation event data for kind ${String(draft.kind).slice(0, 32)}`);
    }
    const result = await this.writer.write({
      id: draft.id,
      roomId: draft.roomId,
      senderId: draft.actorId,
      nickname: "",
      userType: draft.actorId === draft.roomId ? "presenter" : "viewer",
      text: "",
      clientMsgId: undefined,
      kind: draft.kind,
      event: draft.event,
    });
    return result.message;
  }

  async history(
    roomId: number,
    before: number | undefined,
    limit: number,
    options: HistoryOptions = {},
  ): Promise<ChatMessage[]> {
    const rows = await this.db.prisma.chatMessage.findMany({
      where: {
        roomId: BigInt(roomId),
        ...(before === undefined ? {} : { seq: { lt: BigInt(before) } }),
        ...(options.events === true ? {} : { kind: "message" }),
      },
      orderBy: { seq: "desc" },
      take: limit,
    });
    return rows.map(toMessage);
  }

  async since(roomId: number, afterSeq: number, limit: number): Promise<ChatMessage[]> {
    const rows = await this.db.prisma.chatMessage.findMany({
      where: { roomId: BigInt(roomId), seq: { gt: BigInt(afterSeq) } },
      orderBy: { seq: "asc" },
      take: limit,
    });
    return rows.map(toMessage);
  }

  async findByClientMsgId(roomId: number, senderId: number, clientMsgId: string): Promise<ChatMessage | null> {
    const row = await this.db.prisma.chatMessage.findUnique({
      where: { roomId_senderId_clientMsgId: { roomId: BigInt(roomId), senderId: BigInt(senderId), clientMsgId } },
    });
    return row ? toMessage(row) : null;
  }

  async lastSeq(roomId: number): Promise<number> {
    const room = await this.db.prisma.chatRoom.findUnique({
      where: { roomId: BigInt(roomId) },
      select: { lastSeq: true },
    });
    return room ? Number(room.lastSeq) : 0;
  }

  retainedRange(roomId: number): Promise<{ from: number | null; lastSeq: number }> {
    return readRetainedRange(this.db, roomId);
  }

  async claimRoom(roomId: number, epoch: number): Promise<{ tail: number; epoch: number }> {
    // Waits for the room's row lock like an append does: the tail includes every batch committed before it.
    const rows = await this.db.prisma.$queryRaw<{ last_seq: bigint; presenter_epoch: bigint }[]>`
      INSERT INTO chat_room AS r (room_id, last_seq, presenter_epoch) VALUES (${BigInt(roomId)}, 0, ${BigInt(epoch)})
      ON CONFLICT (room_id) DO UPDATE SET presenter_epoch = greatest(r.presenter_epoch, EXCLUDED.presenter_epoch)
      RETURNING r.last_seq, r.presenter_epoch`;
    const row = rows[0];
    if (row === undefined) throw new Error("claimRoom returned no row");
    return { tail: Number(row.last_seq), epoch: Number(row.presenter_epoch) };
  }

  async presenterEpoch(roomId: number): Promise<number> {
    const room = await this.db.prisma.chatRoom.findUnique({
      where: { roomId: BigInt(roomId) },
      select: { presenterEpoch: true },
    });
    return room ? Number(room.presenterEpoch) : 0;
  }

  async lastSeqs(roomIds: number[]): Promise<Map<number, number>> {
    const rows = await this.db.prisma.chatRoom.findMany({
      where: { roomId: { in: roomIds.map(BigInt) } },
      select: { roomId: true, lastSeq: true },
    });
    return new Map(rows.map((r) => [Number(r.roomId), Number(r.lastSeq)]));
  }

  async ping(): Promise<void> {
    await this.db.prisma.$queryRawUnsafe("SELECT 1");
  }

  async close(): Promise<void> {
    await this.writer.close();
    await this.db.close();
  }

  /**
   * One batch, one transaction. Rejects (or answers an Error for a row) only
   * for rows that were not committed: the appender's rule.
   */
  private async writeBatch(drafts: MessageDraft[], deadline: number): Promise<(AppendResult | Error)[]> {
    if (failpoints.enabled) await failpoints.hit("log.before-batch");
    return this.appendBatch(drafts, deadline);
  }

  private async appendBatch(drafts: MessageDraft[], deadline: number): Promise<(AppendResult | Error)[]> {
    const { statement, params } = appendBatch(drafts);
    for (let attempt = 1; ; attempt++) {
      let rows: AppendRow[];
      try {
        rows = await this.db.appender.append(params, deadline, statement);
      } catch (err) {
        const state = sqlState(err) ?? "";
        if (RETRYABLE.has(state) && attempt < MAX_ATTEMPTS) continue;
        // One bad row must not fail the requests it happened to share a batch with: split and retry.
        if (isDataError(state) && drafts.length > 1) {
          const half = Math.ceil(drafts.length / 2);
          const first = await this.appendPart(drafts.slice(0, half), deadline);
          return first.concat(await this.appendPart(drafts.slice(half), deadline));
        }
        if (drafts.length === 1 && isDataError(state)) return [toError(err)];
        throw err;
      }
      return toResults(drafts, rows);
    }
  }

  /** A split batch's part: its failure is its own rows' (the other part may have committed). */
  private async appendPart(drafts: MessageDraft[], deadline: number): Promise<(AppendResult | Error)[]> {
    try {
      return await this.appendBatch(drafts, deadline);
    } catch (err) {
      return drafts.map(() => toError(err));
    }
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity), but not a unique clash, which a retry resolves. */
function isDataError(state: string): boolean {
  return (state.startsWith("22") || state.startsWith("23")) && state !== "23505";
}

function toResults(drafts: MessageDraft[], rows: AppendRow[]): AppendResult[] {
  const results = new Array<AppendResult>(drafts.length);
  for (const row of rows) {
    const i = Number(row.ord) - 1;
    const d = drafts[i] as MessageDraft;
    results[i] = {
      duplicate: row.duplicate,
      message: {
        id: row.id,
        roomId: d.roomId,
        seq: Number(row.seq),
        senderId: d.senderId,
        nickname: d.nickname,
        userType: d.userType,
        text: row.text ?? d.text,
        sentAt: row.created_at,
        kind: d.kind ?? "message",
        event: d.event,
      },
    };
  }
  if (rows.length !== drafts.length) throw new Error(`append returned ${rows.length} rows for ${drafts.length} drafts`);
  return results;
}

function toMessage(row: ChatMessageRow): ChatMessage {
  const kind = isModerationEventKind(row.kind) ? row.kind : "message";
  return {
    id: row.id,
    roomId: Number(row.roomId),
    seq: Number(row.seq),
    senderId: Number(row.senderId),
    nickname: row.nickname,
    userType: row.userType === "presenter" ? "presenter" : "viewer",
    text: row.text,
    sentAt: row.createdAt,
    kind,
    // Written by appendEvent only (checked there); a row edited by hand still reaches the encoders as a flat object.
    event: kind === "message" ? undefined : toEventData(kind, row.event),
    deletedBy: row.deletedBy === null ? undefined : Number(row.deletedBy),
  };
}

function toEventData(kind: ModerationEventKind, value: unknown): ModerationEventData {
  return checkEventData(kind, value) ? value : {};
}
