import type { MessageDraft } from "../core/message.js";

// One statement appends a whole batch: it skips drafts whose client message
// id the room already has (returning the first message instead), bumps each
// room's counter by its count of new drafts (rooms locked in id order, so
// concurrent batches from other nodes cannot deadlock), and inserts the rows
// with consecutive seqs in arrival order. One transaction per batch: on
// PostgreSQL the statement's own (see pg-append-writer.ts), so a room's
// counter row is locked only while the server runs and commits it.
//
// Moderation events are rows of the same table in the same seq order: kind
// ($8) and event data ($9, JSON text) are NULL for messages, and a batch of
// messages only passes them as empty arrays (unnest pads them with NULLs),
// so the hot path serialises nothing more than before.

const INPUT = `
WITH input AS (
  SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
    WITH ORDINALITY AS t(room_id, id, sender_id, nickname, user_type, text, client_msg_id, kind, event, ord)
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
)`;

const BUMPED = `
, bumped AS (
  INSERT INTO chat_room AS r (room_id, last_seq)
  SELECT room_id, n FROM counts ORDER BY room_id
  ON CONFLICT (room_id) DO UPDATE SET last_seq = r.last_seq + EXCLUDED.last_seq, updated_at = now()
  RETURNING r.room_id, r.last_seq
)`;

const ANSWER = `
SELECT f.ord, ins.id::text AS id, ins.seq, ins.created_at, NULL::text AS text, false AS duplicate
  FROM inserted ins JOIN fresh f ON f.id = ins.id
UNION ALL
SELECT e.ord, e.id::text, e.seq, e.created_at, e.text, true FROM existing e
`;

/** Messages and events that mark nothing (every batch without a `delete` or `clear`): the hot path. */
export const APPEND_BATCH_SQL = `${INPUT}
, counts AS (
  SELECT room_id, count(*) AS n FROM fresh GROUP BY room_id
)${BUMPED}
, inserted AS (
  INSERT INTO chat_message (room_id, seq, id, sender_id, nickname, user_type, text, client_msg_id, kind, event)
  SELECT f.room_id, b.last_seq - c.n + f.rn, f.id, f.sender_id, f.nickname, f.user_type, f.text, f.client_msg_id,
         coalesce(f.kind, 'message'), f.event::jsonb
  FROM fresh f JOIN counts c ON c.room_id = f.room_id JOIN bumped b ON b.room_id = f.room_id
  RETURNING id, seq, created_at
)${ANSWER}`;

/**
 * A batch with `delete` or `clear` events: the same insert, and in the same
 * statement the messages they remove get `deleted_at`/`deleted_by` (the
 * event's actor). A `delete` marks the message at `event.targetSeq` of its
 * room; a `clear` marks every message of its room with a lower seq. When two
 * events of the batch hit one message, the earlier event (lower seq) marks it.
 *
 * Committed messages are marked by UPDATEs, which see the statement's
 * snapshot; on PostgreSQL the writer therefore locks the batch's rooms in a
 * statement of its own first (LOCK_ROOMS_SQL), so that snapshot holds every
 * message committed before this batch's seqs. Messages of the batch itself
 * (invisible to those UPDATEs) are inserted already marked. A clear reads
 * only back to the room's previous clear: everything before it is marked.
 */
export const APPEND_MARKING_SQL = `${INPUT}
, markers AS (
  SELECT room_id, rn, sender_id, kind,
         CASE WHEN kind = 'delete' THEN (event::jsonb ->> 'targetSeq')::bigint END AS target_seq
  FROM fresh WHERE kind IN ('delete', 'clear')
), counts AS (
  SELECT room_id, count(*) AS n, max(rn) FILTER (WHERE kind IN ('delete', 'clear')) AS last_marker
  FROM fresh GROUP BY room_id
)${BUMPED}
, placed AS (
  SELECT f.*, b.last_seq - c.n + f.rn AS seq, c.last_marker
  FROM fresh f JOIN counts c ON c.room_id = f.room_id JOIN bumped b ON b.room_id = f.room_id
), inserted AS (
  INSERT INTO chat_message
    (room_id, seq, id, sender_id, nickname, user_type, text, client_msg_id, kind, event, deleted_at, deleted_by)
  SELECT s.room_id, s.seq, s.id, s.sender_id, s.nickname, s.user_type, s.text, s.client_msg_id,
         coalesce(s.kind, 'message'), s.event::jsonb, CASE WHEN s.deleted_by IS NOT NULL THEN now() END, s.deleted_by
  FROM (
    SELECT p.*,
      CASE WHEN p.kind IS NULL AND p.rn < p.last_marker THEN (
        SELECT mk.sender_id FROM markers mk
        WHERE mk.room_id = p.room_id AND mk.rn > p.rn AND (mk.kind = 'clear' OR mk.target_seq = p.seq)
        ORDER BY mk.rn LIMIT 1
      ) END AS deleted_by
    FROM placed p
  ) s
  RETURNING id, seq, created_at
), deleted AS (
  UPDATE chat_message m SET deleted_at = now(), deleted_by = d.sender_id
  FROM (
    SELECT DISTINCT ON (room_id, target_seq) room_id, target_seq, rn, sender_id
    FROM markers WHERE kind = 'delete' ORDER BY room_id, target_seq, rn
  ) d
  WHERE m.room_id = d.room_id AND m.seq = d.target_seq AND m.kind = 'message' AND m.deleted_at IS NULL
    AND NOT EXISTS (SELECT 1 FROM markers c WHERE c.kind = 'clear' AND c.room_id = d.room_id AND c.rn < d.rn)
  RETURNING 1
), cleared AS (
  UPDATE chat_message m SET deleted_at = now(), deleted_by = cl.sender_id
  FROM (
    SELECT DISTINCT ON (room_id) room_id, rn, sender_id FROM markers WHERE kind = 'clear' ORDER BY room_id, rn
  ) cl
  WHERE m.room_id = cl.room_id AND m.kind = 'message' AND m.deleted_at IS NULL
    AND m.seq > coalesce((SELECT max(p.seq) FROM chat_message p WHERE p.room_id = cl.room_id AND p.kind = 'clear'), 0)
    AND NOT EXISTS (
      SELECT 1 FROM markers d WHERE d.kind = 'delete' AND d.room_id = m.room_id AND d.target_seq = m.seq AND d.rn < cl.rn
    )
  RETURNING 1
)${ANSWER}`;

/**
 * What an append statement whose answer was lost would have answered, read
 * once its transaction can no longer commit: each draft's own row (inserted by
 * it), else the earlier message with its clientMsgId (a retry). A draft with
 * neither was not committed. $1 room ids, $2 ids, $3 sender ids, $4 client
 * message ids: the append's $1, $2, $3 and $7.
 */
export const READ_BACK_SQL = `
SELECT i.ord, m.id::text AS id, m.seq, m.created_at,
       CASE WHEN m.id = i.id THEN NULL ELSE m.text END AS text, m.id <> i.id AS duplicate
FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::text[])
  WITH ORDINALITY AS i(room_id, id, sender_id, client_msg_id, ord)
CROSS JOIN LATERAL (
  (SELECT c.id, c.seq, c.created_at, c.text FROM chat_message c WHERE c.id = i.id)
  UNION ALL
  (SELECT c.id, c.seq, c.created_at, c.text FROM chat_message c
    WHERE i.client_msg_id IS NOT NULL
      AND c.room_id = i.room_id AND c.sender_id = i.sender_id AND c.client_msg_id = i.client_msg_id)
  LIMIT 1
) m
`;

/**
 * Locks the batch's rooms (creating their counter rows if need be) in id
 * order, in a statement of its own before APPEND_MARKING_SQL: under READ
 * COMMITTED that statement's snapshot is then taken after every batch that
 * got its seqs before ours committed.
 */
export const LOCK_ROOMS_SQL = `
INSERT INTO chat_room AS r (room_id)
SELECT DISTINCT room_id FROM unnest($1::bigint[]) AS t(room_id) ORDER BY room_id
ON CONFLICT (room_id) DO UPDATE SET updated_at = r.updated_at
`;

/** Which statement a batch runs; `name` is its prepared statement's name on every writer connection. */
export interface AppendStatement {
  name: string;
  text: string;
  /** Run LOCK_ROOMS_SQL (with the batch's room ids) in the same transaction first (PostgreSQL). */
  lockRoomsFirst: boolean;
}

export const APPEND_PLAIN: AppendStatement = {
  name: "chatrelay_append",
  text: APPEND_BATCH_SQL,
  lockRoomsFirst: false,
};
export const APPEND_MARKING: AppendStatement = {
  name: "chatrelay_append_marking",
  text: APPEND_MARKING_SQL,
  lockRoomsFirst: true,
};

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

/** A batch ready to run: its statement and parameters ($1 is always the room ids). */
export interface AppendBatch {
  statement: AppendStatement;
  params: unknown[];
}

export function appendBatch(drafts: MessageDraft[]): AppendBatch {
  const n = drafts.length;
  const roomIds = new Array<number>(n);
  const ids = new Array<string>(n);
  const senderIds = new Array<number>(n);
  const nicknames = new Array<string>(n);
  const userTypes = new Array<string>(n);
  const texts = new Array<string>(n);
  const clientMsgIds = new Array<string | null>(n);
  let events = 0;
  let marking = false;
  for (let i = 0; i < n; i++) {
    const d = drafts[i] as MessageDraft;
    roomIds[i] = d.roomId;
    ids[i] = d.id;
    senderIds[i] = d.senderId;
    nicknames[i] = d.nickname;
    userTypes[i] = d.userType;
    texts[i] = d.text;
    clientMsgIds[i] = d.clientMsgId ?? null;
    const kind = d.kind;
    if (kind !== undefined && kind !== "message") {
      events++;
      if (kind === "delete" || kind === "clear") marking = true;
    }
  }
  const params: unknown[] = [roomIds, ids, senderIds, nicknames, userTypes, texts, clientMsgIds, [], []];
  if (events > 0) {
    const kinds = new Array<string | null>(n);
    const data = new Array<string | null>(n);
    for (let i = 0; i < n; i++) {
      const d = drafts[i] as MessageDraft;
      const isEvent = d.kind !== undefined && d.kind !== "message";
      kinds[i] = isEvent ? (d.kind as string) : null;
      data[i] = isEvent ? JSON.stringify(d.event ?? {}) : null;
    }
    params[7] = kinds;
    params[8] = data;
  }
  return { statement: marking ? APPEND_MARKING : APPEND_PLAIN, params };
}
