import { ErrorCode } from "@chatrelay/protocol";
import { uuidv7 } from "../core/ids.js";
import { checkChange, MODERATION_LIMITS } from "../core/moderation-rules.js";
import {
  type AuditEntry,
  DEFAULT_ROOM_SETTINGS,
  type ModerationChange,
  type Restriction,
  type RoomModerationState,
} from "../core/moderation-state.js";
import type { ModerationStore } from "../core/ports.js";
import { RelayError } from "../core/relay-error.js";
import type { Prisma } from "../generated/prisma/client.js";
import type { Database } from "./database.js";

type Tx = Prisma.TransactionClient;

export interface ModerationStoreOptions {
  /** The global MAX_TEXT_LENGTH: a room's own limit must stay within it. */
  globalMaxTextLength: number;
  /** Clock in ms since the epoch (timeouts are computed and compared with it). @default Date.now */
  now?: () => number;
}

/** A room's whole state, one row: settings plus the three lists as JSON (ids as text: never rounded). */
interface StateRow {
  slowModeS: number | null;
  moderatorsOnly: boolean | null;
  maxTextLength: number | null;
  version: string | null;
  moderators: string[];
  restrictions: { userId: string; kind: string; untilMs: string | null }[];
  terms: string[];
}

/**
 * Moderation state and audit on PostgreSQL or PGlite, through the chat log's Prisma client.
 * Every change to a room first locks the room's settings row (creating it if needed), so changes
 * to one room are serialised cluster-wide: none is lost, the version grows by one per change, and
 * the audit's timestamps grow strictly within the room (an exact page cursor).
 */
export class PrismaModerationStore implements ModerationStore {
  private readonly now: () => number;

  constructor(
    private readonly db: Database,
    private readonly options: ModerationStoreOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  async loadRoom(roomId: number): Promise<RoomModerationState> {
    checkRoom(roomId);
    return this.readState(this.db.prisma, roomId);
  }

  async apply(raw: ModerationChange): Promise<RoomModerationState> {
    // Checked again here (the service checks first): nothing unchecked reaches SQL.
    const change = checkChange(raw, this.options.globalMaxTextLength);
    const room = BigInt(change.roomId);
    const actor = BigInt(change.actorId);
    const now = this.now();
    // Deletions and clears are the chat log's business: recorded here, but the state does not change.
    const bump = change.action === "delete" || change.action === "clear" ? 0 : 1;
    return this.db.prisma.$transaction(async (tx) => {
      // The lock: an upsert holds the row until commit; another node's change to this room waits here.
      await tx.$executeRaw`INSERT INTO room_settings (room_id, version) VALUES (${room}, ${bump})
        ON CONFLICT (room_id) DO UPDATE SET version = room_settings.version + ${bump}`;
      const target = await this.write(tx, change, room, actor, now);
      await tx.$executeRaw`INSERT INTO moderation_audit (id, room_id, actor_id, action, target, at)
        SELECT ${uuidv7(now)}::uuid, ${room}, ${actor}, ${change.action}, ${JSON.stringify(target)}::jsonb,
          greatest(date_trunc('milliseconds', clock_timestamp()),
                   (SELECT max(at) + interval '1 millisecond' FROM moderation_audit WHERE room_id = ${room}))`;
      return this.readState(tx, change.roomId);
    });
  }

  async audit(roomId: number, before: number | undefined, limit: number): Promise<AuditEntry[]> {
    checkRoom(roomId);
    if (before !== undefined && !(Number.isSafeInteger(before) && before > 0)) {
      throw new RelayError(ErrorCode.InvalidCursor, "before must be a positive integer (ms since the epoch)");
    }
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MODERATION_LIMITS.maxAuditLimit) {
      throw new RelayError(ErrorCode.InvalidCursor, `limit must be from 1 to ${MODERATION_LIMITS.maxAuditLimit}`);
    }
    const rows = await this.db.prisma.moderationAudit.findMany({
      where: { roomId: BigInt(roomId), ...(before === undefined ? {} : { at: { lt: new Date(before) } }) },
      orderBy: { at: "desc" },
      take: limit,
    });
    return rows.map((r) => ({
      id: r.id,
      roomId: Number(r.roomId),
      actorId: Number(r.actorId),
      action: r.action,
      target: r.target,
      at: r.at,
    }));
  }

  /** The change's own writes; answers what the audit row records as its target. */
  private async write(tx: Tx, change: ModerationChange, room: bigint, actor: bigint, now: number): Promise<object> {
    switch (change.action) {
      case "settings": {
        const { slowModeS, moderatorsOnly, maxTextLength } = change.settings;
        await tx.roomSettings.update({
          where: { roomId: room },
          data: {
            ...(slowModeS === undefined ? {} : { slowModeS }),
            ...(moderatorsOnly === undefined ? {} : { moderatorsOnly }),
            ...(maxTextLength === undefined ? {} : { maxTextLength }),
          },
        });
        return { settings: change.settings };
      }
      case "moderator_add": {
        const user = BigInt(change.userId);
        await tx.$executeRaw`INSERT INTO room_moderator (room_id, user_id, added_by) VALUES (${room}, ${user}, ${actor})
          ON CONFLICT (room_id, user_id) DO NOTHING`;
        const count = await tx.roomModerator.count({ where: { roomId: room } });
        if (count > MODERATION_LIMITS.maxModeratorsPerRoom) {
          throw invalid(`a room has at most ${MODERATION_LIMITS.maxModeratorsPerRoom} moderators`);
        }
        return { userId: change.userId };
      }
      case "moderator_remove":
        await tx.roomModerator.deleteMany({ where: { roomId: room, userId: BigInt(change.userId) } });
        return { userId: change.userId };
      case "ban":
      case "timeout": {
        const until = change.action === "timeout" ? new Date(now + change.durationS * 1000) : null;
        const reason = change.reason ?? null;
        const row = { kind: change.action, until, reason, issuedBy: actor, issuedAt: new Date(now) };
        // One restriction per user per room: the latest ban or timeout replaces the one before.
        await tx.roomRestriction.upsert({
          where: { roomId_userId: { roomId: room, userId: BigInt(change.userId) } },
          create: { roomId: room, userId: BigInt(change.userId), ...row },
          update: row,
        });
        await this.dropExpired(tx, room, now);
        return {
          userId: change.userId,
          ...(change.action === "timeout" ? { durationS: change.durationS, until: until?.toISOString() } : {}),
          ...(change.reason === undefined ? {} : { reason: change.reason }),
        };
      }
      case "unban": {
        const lifted = await tx.roomRestriction.deleteMany({ where: { roomId: room, userId: BigInt(change.userId) } });
        await this.dropExpired(tx, room, now);
        return { userId: change.userId, lifted: lifted.count > 0 };
      }
      case "terms_add": {
        await tx.roomBlockedTerm.createMany({
          data: change.terms.map((term) => ({ roomId: room, term, addedBy: actor })),
          skipDuplicates: true,
        });
        const count = await tx.roomBlockedTerm.count({ where: { roomId: room } });
        if (count > MODERATION_LIMITS.maxTermsPerRoom) {
          throw invalid(
            `a room has at most ${MODERATION_LIMITS.maxTermsPerRoom} blocked terms (it would have ${count})`,
          );
        }
        return { terms: change.terms };
      }
      case "terms_remove":
        await tx.roomBlockedTerm.deleteMany({ where: { roomId: room, term: { in: change.terms } } });
        return { terms: change.terms };
      case "delete":
        return { targetSeq: change.targetSeq };
      case "clear":
        return {};
    }
  }

  /** Expired timeouts are never read; the room's next change sweeps them. */
  private async dropExpired(tx: Tx, room: bigint, now: number): Promise<void> {
    await tx.roomRestriction.deleteMany({ where: { roomId: room, until: { lte: new Date(now) } } });
  }

  /** One statement: the room's settings, moderators, active restrictions and terms. */
  private async readState(client: Tx, roomId: number): Promise<RoomModerationState> {
    const room = BigInt(roomId);
    const now = new Date(this.now());
    const rows = await client.$queryRaw<StateRow[]>`
      SELECT s.slow_mode_s AS "slowModeS", s.moderators_only AS "moderatorsOnly",
             s.max_text_length AS "maxTextLength", s.version::text AS "version",
        (SELECT coalesce(json_agg(m.user_id::text ORDER BY m.user_id), '[]'::json)
           FROM room_moderator m WHERE m.room_id = ${room}) AS "moderators",
        (SELECT coalesce(json_agg(json_build_object(
                  'userId', r.user_id::text, 'kind', r.kind,
                  'untilMs', (extract(epoch FROM r.until) * 1000)::bigint::text) ORDER BY r.user_id), '[]'::json)
           FROM room_restriction r
          WHERE r.room_id = ${room} AND (r.until IS NULL OR r.until > ${now}::timestamptz)) AS "restrictions",
        (SELECT coalesce(json_agg(t.term ORDER BY t.term), '[]'::json)
           FROM room_blocked_term t WHERE t.room_id = ${room}) AS "terms"
      FROM (SELECT 1) AS one LEFT JOIN room_settings s ON s.room_id = ${room}`;
    const row = rows[0];
    if (row === undefined) throw new Error("moderation state query returned no row");
    return {
      roomId,
      version: row.version === null ? 0 : Number(row.version),
      settings:
        row.slowModeS === null
          ? { ...DEFAULT_ROOM_SETTINGS }
          : {
              slowModeS: row.slowModeS,
              moderatorsOnly: row.moderatorsOnly === true,
              maxTextLength: row.maxTextLength,
            },
      moderators: parseJson<string[]>(row.moderators).map(Number),
      restrictions: parseJson<StateRow["restrictions"]>(row.restrictions).map(
        (r): Restriction => ({
          userId: Number(r.userId),
          kind: r.kind === "timeout" ? "timeout" : "ban",
          untilMs: r.untilMs === null ? null : Number(r.untilMs),
        }),
      ),
      blockedTerms: parseJson<string[]>(row.terms),
    };
  }
}

/** Raw JSON columns arrive parsed or as text depending on the driver. */
function parseJson<T>(value: unknown): T {
  return (typeof value === "string" ? JSON.parse(value) : value) as T;
}

function checkRoom(roomId: number): void {
  if (!Number.isSafeInteger(roomId) || roomId <= 0) throw invalid("room id must be a positive integer");
}

function invalid(detail: string): RelayError {
  return new RelayError(ErrorCode.InvalidBody, detail);
}
