import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { PrismaClient } from "../generated/prisma/client.js";
import { redactUrl, scrubPassword } from "../ops/redact-url.js";
import { APPEND_PLAIN, type AppendRow } from "./append-statement.js";
import { type BatchAppender, PgAppendWriter } from "./pg-append-writer.js";
import { PGliteThread } from "./pglite-thread.js";

/** Raw SQL access for what Prisma's prepared statements cannot do (multi-statement migration scripts). */
export interface SqlSession {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  exec(script: string): Promise<void>;
}

/** The chat log's store: a Prisma client for reads, an appender for writes, raw access for migrations. */
export interface Database {
  readonly kind: "pglite" | "postgres";
  /** Reads. On PostgreSQL: the read pool, which appends never use, so a read storm cannot starve them. */
  readonly prisma: PrismaClient;
  /** Appends (group-commit batches). On PostgreSQL: dedicated writer connections. */
  readonly appender: BatchAppender;
  /** On its own connection without statement timeout (migrations may wait for another node's lock). */
  transaction<T>(fn: (session: SqlSession) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl: string | undefined;
  pgliteDataDir: string;
  /** Where PGlite runs: a worker thread (SQL never holds the event loop) or the event loop itself. @default "worker" */
  pgliteThread?: "worker" | "main";
  /** Connections in the PostgreSQL read pool (history, catch-up, lookups, readiness). */
  poolSize?: number;
  /** Server-side limit of every statement (`statement_timeout`); the client gives up a little later. */
  statementTimeoutMs?: number;
  /** Opening a connection, and waiting for a free one in the read pool. */
  connectTimeoutMs?: number;
}

export const DATABASE_DEFAULTS = { poolSize: 4, statementTimeoutMs: 5_000, connectTimeoutMs: 5_000 } as const;

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.databaseUrl === undefined
    ? openPglite(options.pgliteDataDir, options.pgliteThread ?? "worker")
    : openPostgres(options.databaseUrl, {
        poolSize: options.poolSize ?? DATABASE_DEFAULTS.poolSize,
        statementTimeoutMs: options.statementTimeoutMs ?? DATABASE_DEFAULTS.statementTimeoutMs,
        connectTimeoutMs: options.connectTimeoutMs ?? DATABASE_DEFAULTS.connectTimeoutMs,
      });
}

async function openPostgres(
  url: string,
  limits: { poolSize: number; statementTimeoutMs: number; connectTimeoutMs: number },
): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: limits.poolSize,
    // Both connecting and waiting for a free pooled connection.
    connectionTimeoutMillis: limits.connectTimeoutMs,
    statement_timeout: limits.statementTimeoutMs,
    // Client side, for a server that answers nothing at all; the pool then drops that connection.
    query_timeout: limits.statementTimeoutMs + 1000,
    keepAlive: true,
    application_name: "chatrelay-reader",
  });
  // An idle client's error (server restart) must not crash the process; the pool replaces it.
  pool.on("error", () => {});
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  const appender = new PgAppendWriter({
    connectionString: url,
    connectTimeoutMs: limits.connectTimeoutMs,
    statementTimeoutMs: limits.statementTimeoutMs,
  });
  return {
    kind: "postgres",
    prisma,
    appender,
    async transaction(fn) {
      const client = new pg.Client({
        connectionString: url,
        connectionTimeoutMillis: limits.connectTimeoutMs,
        application_name: "chatrelay-migrate",
      });
      client.on("error", () => {});
      try {
        await client.connect();
      } catch (err) {
        // The driver says only "connect ECONNREFUSED <address>": name the store, never the password.
        throw new Error(
          `cannot connect to PostgreSQL at DATABASE_URL (${redactUrl(url)}): ${scrubPassword(err instanceof Error ? err.message : String(err), url)}`,
        );
      }
      try {
        await client.query("BEGIN");
        const session: SqlSession = {
          query: async (sql, params) => (await client.query(sql, params)).rows,
          exec: async (script) => {
            await client.query(script);
          },
        };
        const result = await fn(session);
        await client.query("COMMIT");
        return result;
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw err;
      } finally {
        await client.end().catch(() => {});
      }
    },
    async close() {
      await appender.close();
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

async function openPglite(dataDir: string, thread: "worker" | "main"): Promise<Database> {
  if (!dataDir.startsWith("memory://")) mkdirSync(dataDir, { recursive: true });
  // On a thread of its own, SQL in WebAssembly does not take the event loop from HTTP and sockets.
  // PGliteThread offers the part of PGlite's interface used here, so either serves below.
  const db: Pick<PGliteThread, "query" | "transaction" | "close"> =
    thread === "worker" ? await PGliteThread.start(dataDir) : await PGlite.create(dataDir);
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(db as unknown as PGlite) });
  return {
    kind: "pglite",
    prisma,
    // No deadline inside a batch: it cannot stall the way a server can (the queue's deadline still applies).
    appender: {
      // One connection, statements in turn: nothing commits between a statement's snapshot and its room locks.
      append: async (params, _deadline, statement = APPEND_PLAIN) =>
        (await db.query<AppendRow>(statement.text, params)).rows,
      close: async () => {},
    },
    transaction(fn) {
      return db.transaction((tx) =>
        fn({
          query: async (sql, params) => (await tx.query(sql, params)).rows as never[],
          exec: async (script) => {
            await tx.exec(script);
          },
        }),
      );
    },
    async close() {
      await prisma.$disconnect();
      await db.close();
    },
  };
}
