import type { MessageDraft } from "../core/message.js";

/**
 * One statement appends a whole batch: it skips drafts whose client message
 * id the room already has (returning the first message instead), bumps each
 * room's counter by its count of new drafts (rooms locked in id order, so
 * concurrent batches from other nodes cannot deadlock), and inserts the rows
 * with consecutive seqs in arrival order. One transaction per batch: on
 * PostgreSQL an explicit one (see pg-append-writer.ts), so that a batch can
 * be abandoned before its COMMIT is sent.
 */
export const APPEND_BATCH_SQL = `
WITH input AS (
  SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
    WITH ORDINALITY AS t(room_id, id, sender_id, nickname, user_type, text, client_msg_id, ord)
), existing AS (
  SELECT i.ord, m.room_id, m.seq, m.id, m.sender_id, m.nickname, m.user_type, m.text, m.created_at
  FROM input i
  JOIN chat_message m
    ON m.room_id = i.room_id AND m.sender_id = i.sender_id AND m.client_msg_id = i.client_msg_id
  WHERE i.client_msg_id IS NOT NULL
), fresh AS (
  SELECT i.*, row_number() OVER (PARTITION BY i.room_id ORDER BY i.ord) AS rn
  FROM input i
  WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.ord = i.ord)
), counts AS (
  SELECT room_id, count(*) AS n FROM fresh GROUP BY room_id
), bumped AS (
  INSERT INTO chat_room AS r (room_id, last_seq)
  SELECT room_id, n FROM counts ORDER BY room_id
  ON CONFLICT (room_id) DO UPDATE SET last_seq = r.last_seq + EXCLUDED.last_seq, updated_at = now()
  RETURNING r.room_id, r.last_seq
), inserted AS (
  INSERT INTO chat_message (room_id, seq, id, sender_id, nickname, user_type, text, client_msg_id)
  SELECT f.room_id, b.last_seq - c.n + f.rn, f.id, f.sender_id, f.nickname, f.user_type, f.text, f.client_msg_id
  FROM fresh f JOIN counts c ON c.room_id = f.room_id JOIN bumped b ON b.room_id = f.room_id
  RETURNING id, seq, created_at
)
SELECT f.ord, ins.id::text AS id, ins.seq, ins.created_at, NULL::text AS text, false AS duplicate
  FROM inserted ins JOIN fresh f ON f.id = ins.id
UNION ALL
SELECT e.ord, e.id::text, e.seq, e.created_at, e.text, true FROM existing e
`;

/** One row of the statement's answer (int8 columns: text from pg, bigint from PGlite). */
export interface AppendRow {
  ord: bigint | number | string;
  id: string;
  seq: bigint | number | string;
  created_at: Date;
  /** Set on duplicates only: the first message's values that may differ from the retry. */
  text: string | null;
  duplicate: boolean;
}

export function appendParams(drafts: MessageDraft[]): unknown[] {
  const n = drafts.length;
  const roomIds = new Array<number>(n);
  const ids = new Array<string>(n);
  const senderIds = new Array<number>(n);
  const nicknames = new Array<string>(n);
  const userTypes = new Array<string>(n);
  const texts = new Array<string>(n);
  const clientMsgIds = new Array<string | null>(n);
  for (let i = 0; i < n; i++) {
    const d = drafts[i] as MessageDraft;
    roomIds[i] = d.roomId;
    ids[i] = d.id;
    senderIds[i] = d.senderId;
    nicknames[i] = d.nickname;
    userTypes[i] = d.userType;
    texts[i] = d.text;
    clientMsgIds[i] = d.clientMsgId ?? null;
  }
  return [roomIds, ids, senderIds, nicknames, userTypes, texts, clientMsgIds];
}
