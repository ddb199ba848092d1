import { createHash, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Database } from "./database.js";

/**
 * Applies `prisma/migrations/<name>/migration.sql` in name order, each whole
 * in one transaction, recording them in Prisma's own `_prisma_migrations`
 * table: the same folder also works with `prisma migrate deploy`. An advisory
 * lock keeps nodes that start together from applying a migration twice.
 */
export async function applyMigrations(db: Database, migrationsDir = findMigrationsDir()): Promise<string[]> {
  const names = readdirSync(migrationsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(migrationsDir, d.name, "migration.sql")))
    .map((d) => d.name)
    .sort();
  const applied: string[] = [];
  for (const name of names) {
    const sql = readFileSync(join(migrationsDir, name, "migration.sql"), "utf8");
    const checksum = createHash("sha256").update(sql).digest("hex");
    const ran = await db.transaction(async (s) => {
      await s.query("SELECT pg_advisory_xact_lock(7283517150)");
      await s.exec(MIGRATIONS_TABLE);
      const rows = await s.query<{ checksum: string }>(
        `SELECT checksum FROM "_prisma_migrations" WHERE migration_name = $1 AND finished_at IS NOT NULL AND rolled_back_at IS NULL`,
        [name],
      );
      const done = rows[0];
      if (done) {
        if (done.checksum !== checksum) {
          throw new Error(`migration ${name} was changed after it was applied (checksum mismatch)`);
        }
        return false;
      }
      await s.exec(sql);
      await s.query(
        `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
         VALUES ($1, $2, $3, now(), now(), 1)`,
        [randomUUID(), checksum, name],
      );
      return true;
    });
    if (ran) applied.push(name);
  }
  return applied;
}

const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id" VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum" VARCHAR(64) NOT NULL,
  "finished_at" TIMESTAMPTZ,
  "migration_name" VARCHAR(255) NOT NULL,
  "logs" TEXT,
  "rolled_back_at" TIMESTAMPTZ,
  "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

/** `MIGRATIONS_DIR`, or the nearest `prisma/migrations` above this module (source tree, build, or container image). */
export function findMigrationsDir(): string {
  const fromEnv = process.env.MIGRATIONS_DIR?.trim();
  if (fromEnv) {
    const dir = resolve(fromEnv);
    // A clear line instead of readdirSync's ENOENT stack (config.ts reports this before start-up too).
    if (statSync(dir, { throwIfNoEntry: false })?.isDirectory() !== true) {
      throw new Error(`MIGRATIONS_DIR=${JSON.stringify(fromEnv)} is not a folder`);
    }
    return dir;
  }
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "prisma", "migrations");
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error("prisma/migrations not found; set MIGRATIONS_DIR");
    dir = parent;
  }
}
