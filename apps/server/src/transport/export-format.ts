import { EXPORT_TEXT_SQL } from "../chatlog/export-cursor.js";
import type { ExportFormat, ExportRange } from "../chatlog/export-range.js";

/**
 * The encodings of an export (route and CLI alike). Every row has the same fields:
 * seq, id, sentAt, kind, senderId, nickname, userType, text, deleted, deletedBy, data.
 * A tombstone (a deleted or erased message) has deleted true, text "" and deletedBy;
 * `data` is an event's data (a JSON object in NDJSON, its JSON text in CSV), null/empty for messages.
 *
 * Each encoding is an SQL expression the store evaluates per row (chatlog/export-cursor.ts): the
 * node receives finished lines and only joins a chunk's lines into the one string it writes.
 */
export interface ExportEncoder {
  contentType: string;
  extension: string;
  /** What comes before the first row ("" for NDJSON, the header row for CSV). */
  header: string;
  /** One row's encoded line, with its line break, over chat_message's columns. */
  lineSql: string;
}

export const CSV_COLUMNS = [
  "seq",
  "id",
  "sentAt",
  "kind",
  "senderId",
  "nickname",
  "userType",
  "text",
  "deleted",
  "deletedBy",
  "data",
] as const;

/** created_at as `toISOString` writes it: UTC, milliseconds, `Z`. */
const SENT_AT_SQL = `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** A JSON string literal: PostgreSQL's to_json escapes quotes, backslashes and every control character. */
const json = (expr: string) => `to_json(${expr})::text`;

// Numbers, the uuid and the time are PostgreSQL's own text of bigint, uuid and to_char: nothing to escape.
const NDJSON_LINE_SQL = `'{"seq":' || seq || ',"id":"' || id || '","sentAt":"' || ${SENT_AT_SQL}
  || '","kind":' || ${json("kind")} || ',"senderId":' || sender_id
  || ',"nickname":' || ${json("nickname")} || ',"userType":' || ${json("user_type")}
  || ',"text":' || ${json(EXPORT_TEXT_SQL)} || ',"deleted":' || (deleted_at IS NOT NULL)::text
  || ',"deletedBy":' || coalesce(deleted_by::text, 'null') || ',"data":' || coalesce(event::text, 'null') || E'}\\n'`;

/**
 * One CSV text cell (RFC 4180): quotes doubled and the cell quoted when it holds a comma, quote or
 * line break. A cell a spreadsheet would evaluate as a formula (OWASP "CSV injection": it starts
 * with = + - @, a tab or a carriage return) gets a leading ' and quotes. NULL stays NULL.
 */
export function csvCellSql(expr: string): string {
  const quoted = `replace(${expr}, '"', '""')`;
  return `CASE WHEN left(${expr}, 1) IN ('=', '+', '-', '@', E'\\t', E'\\r') THEN '"''' || ${quoted} || '"'
    WHEN strpos(${expr}, ',') > 0 OR strpos(${expr}, '"') > 0 OR strpos(${expr}, E'\\n') > 0 OR strpos(${expr}, E'\\r') > 0
    THEN '"' || ${quoted} || '"' ELSE ${expr} END`;
}

const CSV_LINE_SQL = `seq || ',' || id || ',' || ${SENT_AT_SQL} || ',' || ${csvCellSql("kind")} || ',' || sender_id
  || ',' || ${csvCellSql("nickname")} || ',' || ${csvCellSql("user_type")} || ',' || ${csvCellSql(`(${EXPORT_TEXT_SQL})`)}
  || ',' || (deleted_at IS NOT NULL)::text || ',' || coalesce(deleted_by::text, '')
  || ',' || coalesce(${csvCellSql("event::text")}, '') || E'\\r\\n'`;

const ndjson: ExportEncoder = {
  contentType: "application/x-ndjson; charset=utf-8",
  extension: "ndjson",
  header: "",
  lineSql: NDJSON_LINE_SQL,
};

const csv: ExportEncoder = {
  contentType: "text/csv; charset=utf-8; header=present",
  extension: "csv",
  header: `${CSV_COLUMNS.join(",")}\r\n`,
  lineSql: CSV_LINE_SQL,
};

export function encoderFor(format: ExportFormat): ExportEncoder {
  return format === "csv" ? csv : ndjson;
}

/**
 * `room-<id>-<start>-<end>.<ext>`, built from parsed numbers only: a time bound as a compact UTC
 * stamp (20261126T093000Z), a seq bound as `seq<N>`, an open end as `start` / `end`.
 */
export function exportFileName(roomId: number, range: ExportRange, format: ExportFormat): string {
  const start =
    range.fromMs !== undefined ? stamp(range.fromMs) : range.afterSeq > 0 ? `seq${range.afterSeq + 1}` : "start";
  const end = range.toMs !== undefined ? stamp(range.toMs) : range.toSeq !== undefined ? `seq${range.toSeq}` : "end";
  return `room-${roomId}-${start}-${end}.${encoderFor(format).extension}`;
}

function stamp(ms: number): string {
  // toISOString of a parsed, calendar-checked time: digits, '-', ':', 'T', '.', 'Z' only.
  return new Date(ms)
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z")
    .replaceAll("-", "")
    .replaceAll(":", "");
}
