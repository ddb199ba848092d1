import type { Database } from "../../src/chatlog/database.js";
import type { RunningServer } from "../../src/server.js";

/** One NDJSON export row as a client reads it. */
export interface ExportedRow {
  seq: number;
  id: string;
  sentAt: string;
  kind: string;
  senderId: number;
  nickname: string;
  userType: string;
  text: string;
  deleted: boolean;
  deletedBy: number | null;
  data: Record<string, unknown> | null;
}

/**
 * The node's own store handle, for rows no API can write (hostile texts, chosen commit times,
 * an erased message): the in-memory PGlite lives inside the node, so the test goes through it.
 */
export function storeOf(server: RunningServer): Database {
  return server.db;
}

export async function sql<T = Record<string, unknown>>(db: Database, text: string, params: unknown[] = []) {
  return db.transaction((s) => s.query<T>(text, params));
}

/**
 * `count` messages in `room` (seqs 1..count) committed one minute apart from `start`, texts
 * `text <seq>`, senders 100..106; the room's counter set as the append path would have.
 */
export async function insertRows(db: Database, room: number, count: number, start: Date): Promise<void> {
  await sql(
    db,
    `INSERT INTO chat_room (room_id, last_seq) VALUES ($1::bigint, $2::bigint)
     ON CONFLICT (room_id) DO UPDATE SET last_seq = EXCLUDED.last_seq`,
    [String(room), String(count)],
  );
  await sql(
    db,
    `INSERT INTO chat_message (room_id, seq, id, sender_id, nickname, user_type, text, created_at, kind)
     SELECT $1::bigint, g, gen_random_uuid(), 100 + g % 7, 'nick' || (g % 7), 'viewer', 'text ' || g,
            $3::timestamptz + g * interval '1 minute', 'message'
     FROM generate_series(1, $2::int) AS g`,
    [String(room), count, start.toISOString()],
  );
}

/** Appends messages with exactly these texts and nicknames after the room's last seq (no text rules). */
export async function insertTexts(
  db: Database,
  room: number,
  rows: { text: string; nickname?: string }[],
): Promise<number[]> {
  const seqs: number[] = [];
  for (const row of rows) {
    const [bumped] = await sql<{ seq: string }>(
      db,
      `INSERT INTO chat_room (room_id, last_seq) VALUES ($1::bigint, 1)
       ON CONFLICT (room_id) DO UPDATE SET last_seq = chat_room.last_seq + 1 RETURNING last_seq::text AS seq`,
      [String(room)],
    );
    const seq = Number(bumped?.seq);
    await sql(
      db,
      `INSERT INTO chat_message (room_id, seq, id, sender_id, nickname, user_type, text, kind)
       VALUES ($1::bigint, $2::bigint, gen_random_uuid(), 55, $3, 'viewer', $4, 'message')`,
      [String(room), String(seq), row.nickname ?? "plain", row.text],
    );
    seqs.push(seq);
  }
  return seqs;
}

export function parseNdjson(body: string): ExportedRow[] {
  if (body === "") return [];
  if (!body.endsWith("\n")) throw new Error("an NDJSON export ends with a newline");
  return body
    .slice(0, -1)
    .split("\n")
    .map((line) => JSON.parse(line) as ExportedRow);
}

/** The complete lines of a possibly cut-off NDJSON stream (a partial last line is dropped). */
export function completeLines(body: string): ExportedRow[] {
  const end = body.lastIndexOf("\n");
  return end < 0 ? [] : parseNdjson(body.slice(0, end + 1));
}

/** A strict RFC 4180 reader (CRLF records, quoted fields with doubled quotes): the test's own, not the encoder's. */
export function parseCsv(body: string): string[][] {
  const records: string[][] = [];
  let field = "";
  let record: string[] = [];
  let i = 0;
  let quoted = false;
  while (i < body.length) {
    const c = body[i] as string;
    if (quoted) {
      if (c === '"' && body[i + 1] === '"') {
        field += '"';
        i += 2;
      } else if (c === '"') {
        quoted = false;
        i++;
        if (i < body.length && body[i] !== "," && body[i] !== "\r")
          throw new Error(`text after a closing quote at ${i}`);
      } else {
        field += c;
        i++;
      }
    } else if (c === '"') {
      if (field !== "") throw new Error(`a quote inside an unquoted field at ${i}`);
      quoted = true;
      i++;
    } else if (c === ",") {
      record.push(field);
      field = "";
      i++;
    } else if (c === "\r") {
      if (body[i + 1] !== "\n") throw new Error(`a bare CR at ${i}`);
      record.push(field);
      records.push(record);
      record = [];
      field = "";
      i += 2;
    } else if (c === "\n") {
      throw new Error(`a bare LF outside quotes at ${i}`);
    } else {
      field += c;
      i++;
    }
  }
  if (quoted) throw new Error("an unterminated quoted field");
  if (field !== "" || record.length > 0) throw new Error("the last record does not end with CRLF");
  return records;
}
