// Applies pending chat log migrations and exits: `node dist/migrate-cli.js`.
// Reads only the store settings: DATABASE_URL for PostgreSQL, otherwise the PGlite
// folder PGLITE_DATA_DIR (default apps/server/.data/pglite, whatever the cwd), and
// MIGRATIONS_DIR. No JWT settings: it runs as a release step with NODE_ENV=production.
// Exit codes: 0 done, 78 configuration error (like the server), 1 migration failed.
import { openDatabase } from "./chatlog/database.js";
import { applyMigrations } from "./chatlog/migrate.js";
import { ConfigError, loadStoreConfig, type StoreConfig } from "./config.js";

let store: StoreConfig;
try {
  store = loadStoreConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`chatrelay migrate: ${err.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  throw err;
}

try {
  const db = await openDatabase({
    databaseUrl: store.databaseUrl,
    pgliteDataDir: store.pgliteDataDir,
    pgliteThread: store.pgliteThread,
  });
  try {
    const applied = await applyMigrations(db, store.migrationsDir);
    process.stdout.write(applied.length > 0 ? `applied: ${applied.join(", ")}\n` : "up to date\n");
  } finally {
    await db.close();
  }
} catch (err) {
  process.stderr.write(`chatrelay migrate: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
