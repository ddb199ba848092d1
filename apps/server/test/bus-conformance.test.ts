import { Redis, type RedisOptions } from "ioredis";
import pino from "pino";
import t from "tap";
import { MemoryBus } from "../src/adapters/memory-bus.js";
import { RedisBus } from "../src/adapters/redis-bus.js";
import { clusterClient } from "../src/adapters/redis-cluster.js";
import { parseClusterSpec } from "../src/adapters/redis-cluster-spec.js";
import { ShardedRedisBus } from "../src/adapters/sharded-redis-bus.js";
import { BUS_LIMITS, type BusFixture, busConformance, busResyncConformance } from "./helpers/bus-conformance.js";
import { REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";
import { RedisClusterProcesses } from "./helpers/redis-cluster.js";
import { PrivateRedis } from "./helpers/redis-server.js";
import { pollUntil } from "./helpers/wait.js";

// One Bus contract, every implementation: the same cases (helpers/bus-conformance.ts) on the
// in-process bus, on one Redis (two RedisBus on their own connections stand for two nodes), on a
// Redis that dies and comes back (resync), and on a Redis Cluster (sharded pub/sub).

const logger = pino({ level: "silent" });
const counters = { busRejected: () => {}, busReceived: () => {} };

/** What connectRedis uses in production: no offline queue, so a command during an outage fails at once. */
const PRODUCTION_OPTIONS: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  commandTimeout: 2000,
  connectTimeout: 2000,
  lazyConnect: true,
  retryStrategy: () => 50,
};

/** A node's bus as connectRedis builds it: a command connection and a subscriber connection. */
async function redisBus(url: string, prefix: string): Promise<{ bus: RedisBus; conns: Redis[] }> {
  const conns = [new Redis(url, PRODUCTION_OPTIONS), new Redis(url, PRODUCTION_OPTIONS)];
  for (const conn of conns) conn.on("error", () => {});
  try {
    await Promise.all(conns.map((conn) => conn.connect()));
  } catch (err) {
    for (const conn of conns) conn.disconnect();
    throw new Error(`these tests need Redis at ${url} (${(err as Error).message}); set TEST_REDIS_URL`);
  }
  const [commands, subscriber] = conns as [Redis, Redis];
  return { bus: new RedisBus(commands, subscriber, prefix, logger, BUS_LIMITS, counters), conns };
}

async function redisFixture(url: string): Promise<BusFixture & { conns: Redis[] }> {
  const prefix = uniqueRedisPrefix();
  const node = await redisBus(url, prefix);
  const peer = await redisBus(url, prefix);
  return {
    bus: node.bus,
    publisher: peer.bus,
    conns: [...node.conns, ...peer.conns],
    close: async () => {
      await Promise.all([node.bus.close(), peer.bus.close()]);
    },
  };
}

t.test("memory", async (t) => {
  busConformance(t, async () => {
    // One node: it publishes to itself.
    const bus = new MemoryBus();
    return { bus, publisher: bus, close: () => bus.close() };
  });
});

t.test("redis", async (t) => {
  busConformance(t, () => redisFixture(REDIS_URL));
});

t.test("redis restarted", async (t) => {
  const server = await PrivateRedis.start();
  t.teardown(() => server.stop());
  busResyncConformance(t, async () => {
    const f = await redisFixture(server.url);
    return {
      ...f,
      loseConnection: async () => {
        const closed = Promise.all(f.conns.map((conn) => new Promise((resolve) => conn.once("close", resolve))));
        await server.stop();
        await closed;
        await server.restart();
        await pollUntil(
          async () => (f.conns.every((conn) => conn.status === "ready") ? true : undefined),
          "every connection to reconnect",
          10_000,
        );
      },
    };
  });
});

t.test("redis cluster", async (t) => {
  const processes = await RedisClusterProcesses.start();
  t.teardown(() => processes.stop());
  const spec = parseClusterSpec(processes.spec, "cluster");
  if (typeof spec === "string") throw new Error(spec);
  /** A node's bus as connectRedisCluster makes it: the production cluster client, sharded pub/sub. */
  const shardedBus = async (name: string, prefix: string) => {
    const client = clusterClient(spec, { username: undefined, password: undefined }, name);
    client.on("error", () => {});
    await client.connect();
    return new ShardedRedisBus(client, prefix, logger, BUS_LIMITS, counters);
  };
  const clusterFixture = async () => {
    const prefix = uniqueRedisPrefix();
    const [bus, publisher] = [await shardedBus("bus-node", prefix), await shardedBus("bus-peer", prefix)];
    return {
      bus,
      publisher,
      close: async () => {
        await Promise.all([bus.close(), publisher.close()]);
      },
    };
  };

  t.test("the many-rooms case spans every master", async (t) => {
    const owners = new Set<string>();
    for (let room = 100; room < 124; room++) owners.add((await processes.masterOf(`{${room}}`)).id);
    t.equal(owners.size, (await processes.masters()).length, "its rooms' slots are on every shard");
  });
  busConformance(t, clusterFixture);
  // Last: it kills a master (its replica takes over).
  busResyncConformance(t, async () => ({
    ...(await clusterFixture()),
    loseConnection: async (roomId) => {
      await processes.killMasterOf(`{${roomId}}`);
    },
  }));
});
