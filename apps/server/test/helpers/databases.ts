import { randomBytes } from "node:crypto";
import { Cluster, Redis } from "ioredis";
import pg from "pg";
import { parseClusterSpec } from "../../src/adapters/redis-cluster-spec.js";

export const POSTGRES_ADMIN_URL = process.env.TEST_POSTGRES_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
/** The shared Redis the tests use; a redis+cluster:// URL runs them on a Redis Cluster (`pnpm test:redis-cluster`). */
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** A client of the tests' Redis for looking at keys directly: a Cluster client when REDIS_URL names one. */
export function testRedisClient(): Redis | Cluster {
  if (!testRedisClient.onCluster) return new Redis(REDIS_URL);
  const spec = parseClusterSpec(REDIS_URL, "TEST_REDIS_URL");
  if (typeof spec === "string") throw new Error(spec);
  return new Cluster(spec.nodes);
}

const HOW_TO = "start one with `docker compose -f docker-compose.test.yml up -d` (or set TEST_POSTGRES_URL)";

/** Creates a fresh PostgreSQL database for one test file; drop it when done. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `chatrelay_test_${process.pid}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(
      `these tests need PostgreSQL at ${POSTGRES_ADMIN_URL} and could not reach it (${(err as Error).message}); ${HOW_TO}`,
    );
  }
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
    },
  };
}

/** A Redis key prefix no other test run shares. */
export function uniqueRedisPrefix(): string {
  return `chatrelay-test:${process.pid}:${randomBytes(4).toString("hex")}:`;
}

/** Keys matching a pattern, on every master when the client is a cluster's. */
export async function findKeys(client: Redis | Cluster, pattern: string): Promise<string[]> {
  if (client instanceof Cluster && client.status !== "ready") await client.ping(); // connected: the masters are known
  const nodes = client instanceof Cluster ? client.nodes("master") : [client];
  return (await Promise.all(nodes.map((n) => n.keys(pattern)))).flat();
}

/** Deletes the keys matching a pattern (one key per command: on a cluster they live in different slots). */
export async function deleteKeys(client: Redis | Cluster, pattern: string): Promise<void> {
  const keys = await findKeys(client, pattern);
  await Promise.all(keys.map((k) => client.del(k)));
}

/** True when the tests run on a Redis Cluster (TEST_REDIS_URL=redis+cluster://...). */
testRedisClient.onCluster = /^rediss?\+cluster:/i.test(REDIS_URL);
