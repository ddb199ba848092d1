/** A statistics window: whole UTC hours, [from, to), at most STATS_MAX_WINDOW_HOURS long. */
export interface StatsWindow {
  from: Date;
  to: Date;
}

const HOUR_MS = 3_600_000;
/** 31 days: a room's window reads at most this many hourly counters per sender. */
export const STATS_MAX_WINDOW_HOURS = 31 * 24;
/** Without `from`: the last 24 hours. */
export const STATS_DEFAULT_WINDOW_HOURS = 24;

/** Thrown for a window the caller must fix; its message is ours (never the caller's value). */
export class StatsWindowError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StatsWindowError";
  }
}

// A date, or a date and time with its zone (a time without a zone would be read in the server's own).
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/** An ISO 8601 instant as `from`/`to` accept it, or undefined. */
export function parseInstant(raw: string): Date | undefined {
  if (raw.length > 40 || !ISO_TIME.test(raw)) return undefined;
  const ms = Date.parse(raw);
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}

/**
 * The window of `from` and `to` (ISO 8601; a date alone is UTC midnight), widened to whole UTC
 * hours (the counters' granularity): `from` down, `to` up. `to` defaults to now, `from` to 24 h
 * before `to`. Refuses unparseable times, `from` not before `to`, and windows over 31 days.
 */
export function statsWindow(from: string | undefined, to: string | undefined, now = Date.now()): StatsWindow {
  const toAt = to === undefined ? new Date(now) : parseInstant(to);
  if (toAt === undefined) throw new StatsWindowError("to must be an ISO 8601 date or time with a zone");
  const fromAt = from === undefined ? undefined : parseInstant(from);
  if (from !== undefined && fromAt === undefined) {
    throw new StatsWindowError("from must be an ISO 8601 date or time with a zone");
  }
  const end = Math.ceil(toAt.getTime() / HOUR_MS) * HOUR_MS;
  const start =
    fromAt === undefined
      ? end - STATS_DEFAULT_WINDOW_HOURS * HOUR_MS
      : Math.floor(fromAt.getTime() / HOUR_MS) * HOUR_MS;
  if (fromAt !== undefined && fromAt.getTime() >= toAt.getTime()) throw new StatsWindowError("from must be before to");
  if (end - start > STATS_MAX_WINDOW_HOURS * HOUR_MS) {
    throw new StatsWindowError(`the window is at most ${STATS_MAX_WINDOW_HOURS / 24} days`);
  }
  return { from: new Date(start), to: new Date(end) };
}
