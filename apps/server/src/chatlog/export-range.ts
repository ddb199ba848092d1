/**
 * What an export of a room's log selects, parsed from the route's query or the CLI's options
 * (one parser, one set of messages). Time bounds are on `created_at`: `from` inclusive, `to`
 * exclusive, so consecutive ranges never share a row; seq bounds: `afterSeq` exclusive (how an
 * interrupted export resumes), `toSeq` inclusive.
 */

export const EXPORT_FORMATS = ["ndjson", "csv"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportRange {
  /** Epoch milliseconds, inclusive. */
  fromMs: number | undefined;
  /** Epoch milliseconds, exclusive. */
  toMs: number | undefined;
  /** Exclusive; 0 = from the first seq. */
  afterSeq: number;
  /** Inclusive; undefined = up to the room's newest seq when the export starts. */
  toSeq: number | undefined;
}

export interface ExportRequest {
  range: ExportRange;
  format: ExportFormat;
}

/** The raw parameters, as strings (query values or CLI option values). */
export interface ExportParams {
  from?: string | undefined;
  to?: string | undefined;
  afterSeq?: string | undefined;
  toSeq?: string | undefined;
  format?: string | undefined;
}

/** A refused parameter; the message names it in our own words, never with the value given. */
export class ExportParamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExportParamError";
  }
}

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|[+-]\d{2}:\d{2}))?$/;
const SEQ = /^(0|[1-9]\d{0,15})$/;

export function parseExportParams(params: ExportParams): ExportRequest {
  const fromMs = params.from === undefined ? undefined : parseTimestamp(params.from, "from");
  const toMs = params.to === undefined ? undefined : parseTimestamp(params.to, "to");
  if (fromMs !== undefined && toMs !== undefined && fromMs > toMs) {
    throw new ExportParamError("from must not be later than to");
  }
  const afterSeq = params.afterSeq === undefined ? 0 : parseSeq(params.afterSeq, "afterSeq");
  const toSeq = params.toSeq === undefined ? undefined : parseSeq(params.toSeq, "toSeq");
  if (toSeq !== undefined && toSeq < afterSeq) throw new ExportParamError("toSeq must not be below afterSeq");
  let format: ExportFormat = "ndjson";
  if (params.format !== undefined) {
    if (!(EXPORT_FORMATS as readonly string[]).includes(params.format)) {
      throw new ExportParamError(`format must be one of: ${EXPORT_FORMATS.join(", ")}`);
    }
    format = params.format as ExportFormat;
  }
  return { range: { fromMs, toMs, afterSeq, toSeq }, format };
}

/**
 * An ISO 8601 date (`2026-11-26`, midnight UTC) or date-time with a zone (`Z` or `+09:00`), at most
 * millisecond precision (the log's own), between the years 1970 and 9999. Calendar-checked: V8's
 * Date.parse alone takes 2026-02-30 for March 2.
 */
function parseTimestamp(raw: string, name: string): number {
  const m = TIMESTAMP.exec(raw);
  const bad = () =>
    new ExportParamError(
      `${name} must be an ISO 8601 date or date-time with a zone (e.g. 2026-11-26 or 2026-11-26T09:30:00Z)`,
    );
  if (m === null) throw bad();
  const [, y, mo, d, h = "00", mi = "00", s = "00", frac = "", zone = "Z"] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const local = Date.UTC(year, month - 1, day, Number(h), Number(mi), Number(s), Number(frac.padEnd(3, "0")));
  const check = new Date(local);
  if (
    year < 1970 ||
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    check.getUTCHours() !== Number(h) ||
    check.getUTCMinutes() !== Number(mi) ||
    check.getUTCSeconds() !== Number(s)
  ) {
    throw bad();
  }
  let offsetMin = 0;
  if (zone !== "Z") {
    const zh = Number(zone.slice(1, 3));
    const zm = Number(zone.slice(4, 6));
    if (zh > 23 || zm > 59) throw bad();
    offsetMin = (zone[0] === "-" ? -1 : 1) * (zh * 60 + zm);
  }
  return local - offsetMin * 60_000;
}

/** 0 or a positive integer up to 2^53 - 1 (a seq JavaScript holds exactly). */
function parseSeq(raw: string, name: string): number {
  const n = SEQ.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n)) {
    throw new ExportParamError(`${name} must be an integer from 0 to 9007199254740991`);
  }
  return n;
}
