import { Redis, type RedisOptions } from "ioredis";
import t from "tap";
import { MemoryPresence } from "../src/adapters/memory-presence.js";
import { clusterClient } from "../src/adapters/redis-cluster.js";
import { parseClusterSpec } from "../src/adapters/redis-cluster-spec.js";
import { RedisPresence } from "../src/adapters/redis-presence.js";
import { REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";
import { type PresenceFixture, type PresenceTiming, presenceConformance } from "./helpers/presence-conformance.js";
import { RedisClusterProcesses } from "./helpers/redis-cluster.js";
import { PrivateRedis } from "./helpers/redis-server.js";
import { pollUntil } from "./helpers/wait.js";

// One Presence contract, every implementation: the same cases (helpers/presence-conformance.ts) on
// the in-process store, on one Redis (two connections stand for two nodes), on a Redis that really
// restarts empty (the reassert cases' data loss is a restart), and on a Redis Cluster.

/** What connectRedis uses in production: no offline queue, so a command during an outage fails at once. */
const PRODUCTION_OPTIONS: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  commandTimeout: 2000,
  connectTimeout: 2000,
  lazyConnect: true,
  retryStrategy: () => 50,
};

async function connectPair(url: string): Promise<[Redis, Redis]> {
  const pair: [Redis, Redis] = [new Redis(url, PRODUCTION_OPTIONS), new Redis(url, PRODUCTION_OPTIONS)];
  for (const conn of pair) conn.on("error", () => {});
  try {
    await Promise.all(pair.map((conn) => conn.connect()));
  } catch (err) {
    for (const conn of pair) conn.disconnect();
    throw new Error(`these tests need Redis at ${url} (${(err as Error).message}); set TEST_REDIS_URL`);
  }
  return pair;
}

async function dropPrefix(conn: Redis, prefix: string): Promise<void> {
  const keys = await conn.keys(`${prefix}*`);
  if (keys.length > 0) await conn.del(...keys);
}

t.test("memory", async (t) => {
  presenceConformance(t, async ({ ttlMs, graceMs }: PresenceTiming): Promise<PresenceFixture> => {
    // One node: the peer is the same store.
    const presence = new MemoryPresence(ttlMs, graceMs);
    return { presence, peer: presence, close: () => presence.close() };
  });
});

t.test("redis", async (t) => {
  presenceConformance(t, async ({ ttlMs, graceMs }) => {
    const prefix = uniqueRedisPrefix();
    const [a, b] = await connectPair(REDIS_URL);
    return {
      presence: new RedisPresence(a, prefix, ttlMs, graceMs),
      peer: new RedisPresence(b, prefix, ttlMs, graceMs),
      // What a restart without persistence leaves of the room: nothing, the epoch floor included.
      loseRoom: async (roomId) => {
        await a.del(`${prefix}presence:{${roomId}}`, `${prefix}epoch:{${roomId}}`);
      },
      close: async () => {
        await dropPrefix(a, prefix);
        a.disconnect();
        b.disconnect();
      },
    };
  });
});

t.test("redis restarted empty", async (t) => {
  const server = await PrivateRedis.start();
  t.teardown(() => server.stop());
  presenceConformance(t, async ({ ttlMs, graceMs }) => {
    const prefix = uniqueRedisPrefix();
    const pair = await connectPair(server.url);
    const [a, b] = pair;
    return {
      presence: new RedisPresence(a, prefix, ttlMs, graceMs),
      peer: new RedisPresence(b, prefix, ttlMs, graceMs),
      // A real loss: the server dies and comes back empty; both connections reconnect on their own
      // (and the scripts, gone with it, must load again).
      loseRoom: async () => {
        const closed = Promise.all(pair.map((conn) => new Promise((resolve) => conn.once("close", resolve))));
        await server.stop();
        await closed;
        await server.restart();
        await pollUntil(
          async () => (pair.every((conn) => conn.status === "ready") ? true : undefined),
          "both connections to reconnect",
          10_000,
        );
      },
      close: async () => {
        await dropPrefix(a, prefix).catch(() => {});
        a.disconnect();
        b.disconnect();
      },
    };
  });
});

t.test("redis cluster", async (t) => {
  const processes = await RedisClusterProcesses.start();
  t.teardown(() => processes.stop());
  const spec = parseClusterSpec(processes.spec, "cluster");
  if (typeof spec === "string") throw new Error(spec);
  /** A node's cluster client, as connectRedisCluster makes it. */
  const connect = async (name: string) => {
    const client = clusterClient(spec, { username: undefined, password: undefined }, name);
    client.on("error", () => {});
    await client.connect();
    return client;
  };
  presenceConformance(t, async ({ ttlMs, graceMs }) => {
    const prefix = uniqueRedisPrefix();
    const [a, b] = [await connect("presence-a"), await connect("presence-b")];
    return {
      presence: new RedisPresence(a, prefix, ttlMs, graceMs),
      peer: new RedisPresence(b, prefix, ttlMs, graceMs),
      // The room's keys share its slot ({room} tag): one DEL, as on one Redis.
      loseRoom: async (roomId) => {
        await a.del(`${prefix}presence:{${roomId}}`, `${prefix}epoch:{${roomId}}`);
      },
      close: async () => {
        await Promise.allSettled([a.quit(), b.quit()]);
      },
    };
  });
});
