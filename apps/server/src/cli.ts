// The operator CLI: `node dist/cli.js log <prune|export|erase|stats> [options]`
// (from the repository root: `pnpm chatrelay log ...`). It opens the chat log with the
// server's own store settings (DATABASE_URL, or the PGlite folder PGLITE_DATA_DIR, which a
// running node holds: stop it first, or use the HTTP routes). Exit codes: cli/exit-codes.ts.
import { openDatabase } from "./chatlog/database.js";
import { applyMigrations } from "./chatlog/migrate.js";
import { CliError, ExitCode } from "./cli/exit-codes.js";
import { runErase } from "./cli/log-erase.js";
import { runExport } from "./cli/log-export.js";
import { runPrune } from "./cli/log-prune.js";
import { runStats } from "./cli/log-stats.js";
import { ConfigError, loadStoreConfig, type StoreConfig } from "./config.js";

const COMMANDS = { prune: runPrune, export: runExport, erase: runErase, stats: runStats } as const;
type Command = keyof typeof COMMANDS;

const USAGE = `usage: chatrelay log <prune|export|erase|stats> [options]   (--help after a command for its options)`;

async function main(argv: string[]): Promise<number> {
  const [group, name, ...rest] = argv;
  if (group !== "log" || name === undefined || !Object.hasOwn(COMMANDS, name)) {
    process.stderr.write(`${USAGE}\n`);
    return group === "--help" || group === "-h" ? ExitCode.ok : ExitCode.usage;
  }
  let store: StoreConfig;
  try {
    store = loadStoreConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`chatrelay log ${name}: ${err.message}\n`);
      return ExitCode.config;
    }
    throw err;
  }
  let db: Awaited<ReturnType<typeof openDatabase>>;
  try {
    db = await openDatabase({
      databaseUrl: store.databaseUrl,
      pgliteDataDir: store.pgliteDataDir,
      pgliteThread: store.pgliteThread,
    });
    await applyMigrations(db, store.migrationsDir);
  } catch (err) {
    process.stderr.write(`chatrelay log ${name}: the chat log is unreachable: ${messageOf(err)}\n`);
    return ExitCode.unavailable;
  }
  try {
    return await COMMANDS[name as Command](db, rest);
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`chatrelay log ${name}: ${err.message}\n`);
      if (err.exitCode === ExitCode.usage) process.stderr.write(`${USAGE}\n`);
      return err.exitCode;
    }
    process.stderr.write(`chatrelay log ${name}: ${messageOf(err)}\n`);
    return ExitCode.failed;
  } finally {
    await db.close();
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

process.exitCode = await main(process.argv.slice(2));
