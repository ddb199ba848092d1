// Applies pending chat log migrations and exits: `node dist/migrate-cli.js`
// (DATABASE_URL for PostgreSQL, otherwise the PGlite folder PGLITE_DATA_DIR).
import { openDatabase } from "./chatlog/database.js";
import { applyMigrations } from "./chatlog/migrate.js";
import { ConfigError, loadConfig } from "./config.js";

try {
  const config = loadConfig();
  const db = await openDatabase({ databaseUrl: config.databaseUrl, pgliteDataDir: config.pgliteDataDir });
  try {
    const applied = await applyMigrations(db);
    process.stdout.write(applied.length > 0 ? `applied: ${applied.join(", ")}\n` : "up to date\n");
  } finally {
    await db.close();
  }
} catch (err) {
  process.stderr.write(`chatrelay migrate: ${err instanceof ConfigError ? err.message : String(err)}\n`);
  process.exit(1);
}
