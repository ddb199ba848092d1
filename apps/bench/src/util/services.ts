import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { SignJWT } from "jose";
import pg from "pg";
import { onCleanup } from "./procs.js";

export const POSTGRES_ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
export const JWT_SECRET = process.env.BENCH_JWT_SECRET ?? "bench-secret-0123456789-0123456789-abcdef";

const RUN_TAG = `${process.pid}_${randomBytes(3).toString("hex")}`;

/** Throws a message that says what is missing and how to point the bench elsewhere. */
export async function checkPostgres(): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
  } catch (err) {
    throw new Error(
      `PostgreSQL is unreachable at ${redact(POSTGRES_ADMIN_URL)} (${(err as Error).message}); start it or set BENCH_POSTGRES_URL`,
    );
  } finally {
    await client.end().catch(() => {});
  }
}

export async function checkRedis(): Promise<void> {
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  let lastError: string | undefined;
  redis.on("error", (err: Error) => {
    lastError = err.message;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(
      `Redis is unreachable at ${redact(REDIS_URL)} (${lastError ?? (err as Error).message}); start it or set BENCH_REDIS_URL`,
    );
  } finally {
    redis.disconnect();
  }
}

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
  query<T extends pg.QueryResultRow>(sql: string): Promise<T[]>;
}

/** A fresh database for one scenario; dropped by `drop()` or by the SIGINT clean-up. */
export async function createDatabase(label: string): Promise<BenchDatabase> {
  const name = `chatrelay_bench_${RUN_TAG}_${label}_${randomBytes(2).toString("hex")}`.toLowerCase();
  await adminQuery(`CREATE DATABASE "${name}"`);
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    unregister();
    await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  };
  const unregister = onCleanup(drop);
  return {
    name,
    url: url.toString(),
    drop,
    async query<T extends pg.QueryResultRow>(sql: string) {
      const c = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 3000 });
      await c.connect();
      try {
        return (await c.query<T>(sql)).rows;
      } finally {
        await c.end();
      }
    },
  };
}

async function adminQuery(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 3000 });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** A Redis key prefix no other run shares; its keys are deleted by the returned `clean()`. */
export function redisPrefix(label: string): { prefix: string; clean: () => Promise<void> } {
  const prefix = `chatrelay-bench:${RUN_TAG}:${label}:`;
  let cleaned = false;
  const clean = async () => {
    if (cleaned) return;
    cleaned = true;
    unregister();
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000 });
    redis.on("error", () => {});
    try {
      await redis.connect();
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== "0");
    } finally {
      redis.disconnect();
    }
  };
  const unregister = onCleanup(clean);
  return { prefix, clean };
}

/** An HS256 token as the gateway would mint it: `user_idx` and `nickname`. */
export function mintToken(userIdx: number, nickname: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ user_idx: userIdx, nickname })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt(now)
    .setExpirationTime(now + 24 * 3600)
    .sign(new TextEncoder().encode(JWT_SECRET));
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}
