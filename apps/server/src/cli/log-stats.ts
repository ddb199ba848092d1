import type { Database } from "../chatlog/database.js";
import { type BusyRoom, type RoomStats, RoomStatsReader } from "../chatlog/room-stats.js";
import { StatsRollup } from "../chatlog/stats-rollup.js";
import { type StatsWindow, StatsWindowError, statsWindow } from "../chatlog/stats-window.js";
import { commandArgs } from "./command-args.js";
import { ExitCode, usageError } from "./exit-codes.js";

const USAGE = `usage: chatrelay log stats --room N [--from ISO] [--to ISO] [--top N] [--json] [--rollup]
       chatrelay log stats --busiest [--limit N] [--from ISO] [--to ISO] [--json] [--rollup]

A room's messages per hour and per day, distinct and top senders, first and last message time; or
the busiest rooms. Chat messages only (moderation events are not counted).
  --from, --to  ISO 8601 (a date alone is UTC midnight; a time needs its zone); widened to whole UTC
                hours; --to defaults to now, --from to 24 hours before --to; at most 31 days
  --top N       top senders to list (1 to 100, default 10)
  --limit N     rooms to list (1 to 100, default 10)
  --json        one JSON object on stdout instead of a table
  --rollup      run a pass of the statistics rollup first (what every running node does each minute)`;

const MAX_COUNT = 100;

/** `chatrelay log stats`: what GET /v1/rooms/:roomId/stats and GET /v1/stats/rooms answer. */
export async function runStats(db: Database, args: string[]): Promise<number> {
  const parsed = commandArgs(
    args,
    {
      room: { type: "string" },
      busiest: { type: "boolean" },
      from: { type: "string" },
      to: { type: "string" },
      top: { type: "string" },
      limit: { type: "string" },
      json: { type: "boolean" },
      rollup: { type: "boolean" },
    },
    USAGE,
  );
  if (parsed === undefined) return ExitCode.ok;
  const values = parsed as {
    room?: string;
    busiest?: boolean;
    from?: string;
    to?: string;
    top?: string;
    limit?: string;
    json?: boolean;
    rollup?: boolean;
  };
  if ((values.room === undefined) === (values.busiest !== true)) {
    throw usageError("give either --room N or --busiest");
  }
  let window: StatsWindow;
  try {
    window = statsWindow(values.from, values.to);
  } catch (err) {
    if (err instanceof StatsWindowError) throw usageError(err.message);
    throw err;
  }
  if (values.rollup === true) {
    const pass = await new StatsRollup(db).runOnce();
    process.stderr.write(
      pass.busy
        ? "rollup: another node's pass holds the lock; reading anyway (the answer is exact either way)\n"
        : `rollup: ${pass.messages} message(s) counted\n`,
    );
  }
  const reader = new RoomStatsReader(db);
  if (values.room !== undefined) {
    const roomId = count(values.room, "--room", Number.MAX_SAFE_INTEGER);
    if (values.limit !== undefined) throw usageError("--limit goes with --busiest (use --top with --room)");
    const stats = await reader.room(roomId, window, count(values.top, "--top", MAX_COUNT, 10));
    process.stdout.write(values.json === true ? `${JSON.stringify(stats)}\n` : roomTable(stats));
  } else {
    if (values.top !== undefined) throw usageError("--top goes with --room (use --limit with --busiest)");
    const rooms = await reader.busiest(window, count(values.limit, "--limit", MAX_COUNT, 10));
    process.stdout.write(
      values.json === true
        ? `${JSON.stringify({ from: window.from, to: window.to, items: rooms })}\n`
        : busiestTable(window, rooms),
    );
  }
  return ExitCode.ok;
}

function count(raw: string | undefined, name: string, max: number, def?: number): number {
  if (raw === undefined) {
    if (def === undefined) throw usageError(`${name} is required`);
    return def;
  }
  const n = /^[1-9]\d{0,15}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n) || n > max) throw usageError(`${name} must be an integer from 1 to ${max}`);
  return n;
}

function roomTable(s: RoomStats): string {
  const lines = [
    `room ${s.roomId}, ${s.from.toISOString()} to ${s.to.toISOString()}`,
    `messages          ${s.messages}`,
    `distinct senders  ${s.distinctSenders}`,
    `first message     ${s.firstMessageAt?.toISOString() ?? "-"}`,
    `last message      ${s.lastMessageAt?.toISOString() ?? "-"}`,
    "",
    "top senders",
    ...table(
      ["sender", "messages"],
      s.topSenders.map((t) => [String(t.senderId), String(t.messages)]),
    ),
    "",
    "per day (UTC)",
    ...table(
      ["day", "messages"],
      s.daily.map((d) => [d.day.toISOString().slice(0, 10), String(d.messages)]),
    ),
    "",
    "per hour (UTC)",
    ...table(
      ["hour", "messages"],
      s.hourly.map((h) => [`${h.hour.toISOString().slice(0, 13).replace("T", " ")}:00`, String(h.messages)]),
    ),
  ];
  return `${lines.join("\n")}\n`;
}

function busiestTable(window: StatsWindow, rooms: BusyRoom[]): string {
  const lines = [
    `busiest rooms, ${window.from.toISOString()} to ${window.to.toISOString()}`,
    ...table(
      ["room", "messages"],
      rooms.map((r) => [String(r.roomId), String(r.messages)]),
    ),
  ];
  return `${lines.join("\n")}\n`;
}

/** Left-aligned first column, right-aligned numbers; "(none)" for no rows. */
function table(head: [string, string], rows: string[][]): string[] {
  if (rows.length === 0) return ["  (none)"];
  const all = [head, ...rows];
  const w0 = Math.max(...all.map((r) => (r[0] ?? "").length));
  const w1 = Math.max(...all.map((r) => (r[1] ?? "").length));
  return all.map((r) => `  ${(r[0] ?? "").padEnd(w0)}  ${(r[1] ?? "").padStart(w1)}`);
}
