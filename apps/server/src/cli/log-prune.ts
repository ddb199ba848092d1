import { DATABASE_DEFAULTS, type Database } from "../chatlog/database.js";
import { Pruner } from "../chatlog/retention.js";
import { keepsEverything } from "../chatlog/retention-policy.js";
import { ConfigError, loadRetentionConfig, loadStoreConfig, type RetentionConfig } from "../config.js";
import { commandArgs } from "./command-args.js";
import { CliError, ExitCode, usageError } from "./exit-codes.js";
import { Progress } from "./progress.js";

/** Another retention pass holds the lock (a node is pruning now): sysexits' EX_TEMPFAIL, try again later. */
export const PRUNE_LOCKED_EXIT = 75;

const HELP = `usage: chatrelay log prune [--room N] [--dry-run]

Runs one retention pass now, with the configured policy (RETENTION_MAX_AGE_DAYS,
RETENTION_MAX_COUNT, RETENTION_BATCH_ROWS) and each room's own override (set with
PUT /v1/rooms/:roomId/retention). Deletes each room's oldest entries in batches, each
its own short transaction; the nodes keep appending meanwhile.

  --room N     only this room
  --dry-run    count what would be pruned; delete nothing
  --help       this text

Progress (rows, rate) goes to stderr, the summary to stdout.
Exit codes: 0 done (also when nothing was due), 1 the pass failed or was interrupted
(what it deleted stays deleted), 2 bad arguments, 69 the chat log is unreachable,
75 another pass is running (a node holds the retention lock; try again later),
78 a RETENTION_* or store setting is invalid.`;

/** `chatrelay log prune [--room N] [--dry-run]`: one retention pass now. */
export async function runPrune(db: Database, args: string[]): Promise<number> {
  const parsed = commandArgs(
    args,
    {
      room: { type: "string" },
      "dry-run": { type: "boolean" },
    },
    HELP,
  );
  if (parsed === undefined) return ExitCode.ok;
  const values = parsed as { room?: string; "dry-run"?: boolean };
  let roomId: number | undefined;
  if (values.room !== undefined) {
    roomId = /^[1-9][0-9]{0,15}$/.test(values.room) ? Number(values.room) : Number.NaN;
    if (!Number.isSafeInteger(roomId)) throw usageError("--room must be a positive integer room id");
  }
  let retention: RetentionConfig;
  let databaseUrl: string | undefined;
  try {
    retention = loadRetentionConfig();
    databaseUrl = loadStoreConfig().databaseUrl;
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, ExitCode.config);
    throw err;
  }
  const dryRun = values["dry-run"] === true;
  const pruner = new Pruner(db, {
    policy: retention,
    intervalMs: retention.intervalMs,
    batchRows: retention.batchRows,
    dutyPercent: retention.dutyPercent,
    databaseUrl,
    statementTimeoutMs: DATABASE_DEFAULTS.statementTimeoutMs,
    connectTimeoutMs: DATABASE_DEFAULTS.connectTimeoutMs,
  });
  const policyLine = keepsEverything(retention)
    ? "global policy: keep everything (rooms with an override only)"
    : `global policy: max age ${retention.maxAgeDays ?? "none"} days, max count ${retention.maxCount ?? "none"} per room`;
  process.stderr.write(
    `${policyLine}; batches of ${retention.batchRows} rows, deleting ${retention.dutyPercent}% of the time${dryRun ? "; dry run" : ""}\n`,
  );

  const progress = new Progress(dryRun ? "would prune" : "pruned", undefined);
  // Ctrl-C: stop after the current batch (each batch is committed on its own) and report.
  const interrupt = () => void pruner.stop();
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  let result: Awaited<ReturnType<Pruner["runPass"]>>;
  try {
    result = await pruner.runPass({
      dryRun,
      ...(roomId === undefined ? {} : { roomId }),
      onBatch: (batch) => progress.add(batch.rows),
    });
  } finally {
    process.removeListener("SIGINT", interrupt);
    process.removeListener("SIGTERM", interrupt);
  }
  if (result === null) {
    process.stderr.write("another retention pass is running (a node holds the retention lock); try again later\n");
    return PRUNE_LOCKED_EXIT;
  }
  progress.finish();
  const rate = result.seconds > 0 ? Math.round(result.rows / result.seconds) : result.rows;
  process.stdout.write(
    `${dryRun ? "would prune" : "pruned"} ${result.rows} entries in ${result.prunedRooms} of ${result.rooms} rooms with a limit, ${result.seconds.toFixed(1)} s (${rate} rows/s)${result.interrupted ? ", interrupted" : ""}\n`,
  );
  return result.interrupted ? ExitCode.failed : ExitCode.ok;
}
