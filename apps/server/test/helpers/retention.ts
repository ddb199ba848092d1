import { randomUUID } from "node:crypto";
import type { Database } from "../../src/chatlog/database.js";
import type { ChatLog } from "../../src/core/ports.js";

/** Raw SQL on a node's own store (PGlite or PostgreSQL), through its read client. */
export function sqlOn(db: Database) {
  return <T = Record<string, unknown>>(text: string, ...params: unknown[]) =>
    db.prisma.$queryRawUnsafe<T[]>(text, ...params);
}

/** A statement without rows to return. */
export function execOn(db: Database) {
  return (text: string, ...params: unknown[]) => db.prisma.$executeRawUnsafe(text, ...params);
}

/** Appends `n` chat messages to a room through the real append path; returns their seqs. */
export async function appendMessages(log: ChatLog, roomId: number, n: number, senderId = 77): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await log.append({
      id: randomUUID(),
      roomId,
      senderId,
      nickname: `s${senderId}`,
      userType: "viewer",
      text: `m${i}`,
      clientMsgId: undefined,
    });
    seqs.push(r.message.seq);
  }
  return seqs;
}

/** Makes the given seqs of a room `days` old (created_at), as if written then. */
export async function age(db: Database, roomId: number, seqs: number[], days: number): Promise<void> {
  await execOn(db)(
    `UPDATE chat_message SET created_at = now() - make_interval(days => $3::int)
     WHERE room_id = $1::bigint AND seq = ANY(string_to_array($2, ',')::bigint[])`,
    String(roomId),
    seqs.join(","),
    days,
  );
}

/** Fills a fresh room with `n` entries `days` old in one statement (fast; the counter row too). */
export async function fillOld(db: Database, roomId: number, n: number, days: number): Promise<void> {
  const sql = execOn(db);
  await sql(`INSERT INTO chat_room (room_id, last_seq) VALUES ($1::bigint, $2::bigint)`, String(roomId), String(n));
  await sql(
    `INSERT INTO chat_message (room_id, seq, id, sender_id, nickname, user_type, text, created_at)
     SELECT $1::bigint, s, gen_random_uuid(), 5, 'old', 'viewer', 'old ' || s, now() - make_interval(days => $3::int)
     FROM generate_series(1, $2::int) AS s`,
    String(roomId),
    n,
    days,
  );
}

/** A room's seqs in the log, ascending. */
export async function seqsOf(db: Database, roomId: number): Promise<number[]> {
  const rows = await sqlOn(db)<{ s: string }>(
    "SELECT seq::text AS s FROM chat_message WHERE room_id = $1::bigint ORDER BY seq",
    String(roomId),
  );
  return rows.map((r) => Number(r.s));
}

/** from..to inclusive. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}
