import { Cluster, type ClusterOptions, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { RoomModerationState } from "../core/moderation-state.js";
import type { Bus, Gate, Presence } from "../core/ports.js";
import type { Metrics } from "../ops/metrics.js";
import { PresenceRebuildWindow } from "./presence-rebuild.js";
import { reconnectDelay } from "./redis.js";
import type { RedisClusterSpec } from "./redis-cluster-spec.js";
import { RedisPresence } from "./redis-presence.js";
import { ShardedRedisBus } from "./sharded-redis-bus.js";
import { ShardedRedisGate } from "./sharded-redis-gate.js";

/**
 * The cluster client: one connection per master for commands (presence, gate, SPUBLISH), routed by
 * slot; the bus adds its subscriber connections. As with one Redis: no offline queue and a command
 * timeout, so while a shard is failing over the posts to its rooms fail fast (503) instead of queueing.
 */
export function clusterClient(
  spec: RedisClusterSpec,
  credentials: { username: string | undefined; password: string | undefined },
  connectionName: string,
): Cluster {
  const redisOptions: RedisOptions = {
    username: credentials.username ?? spec.username,
    password: credentials.password ?? spec.password,
    ...(spec.tls ? { tls: {} } : {}),
    connectTimeout: 2000,
    commandTimeout: 2000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectionName,
  };
  const options: ClusterOptions = {
    redisOptions,
    lazyConnect: true,
    enableOfflineQueue: false,
    // Auto-pipelining: concurrent posts' scripts and SPUBLISHes to one shard share a socket write. It
    // groups commands by the slot of their first argument, so every script declares its key count and
    // is called keys first (a leading count would put every script in one group, and a pipeline across
    // shards fails with "All keys in the pipeline should belong to the same slots allocation group").
    enableAutoPipelining: true,
    clusterRetryStrategy: (times) => reconnectDelay(times),
    // A failover or migration shows in the slot map within this time even on a node that sends no command to it.
    slotsRefreshInterval: 2000,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    maxRedirections: 8,
  };
  return new Cluster(spec.nodes, options);
}

export async function connectRedisCluster(
  config: Config,
  logger: Logger,
  metrics: Metrics,
  loadRoom: (roomId: number) => Promise<RoomModerationState>,
): Promise<{ bus: Bus; presence: Presence; gate: Gate }> {
  const spec = config.redisCluster as RedisClusterSpec;
  const cluster = clusterClient(
    spec,
    { username: config.redisUsername, password: config.redisPassword },
    `chatrelay:${config.nodeId}:cmd`,
  );
  const seeds = spec.nodes.map((n) => `${n.host}:${n.port}`).join(",");
  let firstError: Error | undefined;
  // The same labels as on one Redis: "commands" is the cluster client, "subscriber" is 1 while
  // every room's sharded subscription is in place.
  metrics.redisUp.set({ connection: "commands" }, 0);
  metrics.redisUp.set({ connection: "subscriber" }, 1);
  cluster.on("ready", () => metrics.redisUp.set({ connection: "commands" }, 1));
  cluster.on("close", () => metrics.redisUp.set({ connection: "commands" }, 0));
  cluster.on("error", (err: Error) => {
    firstError ??= err;
    logger.warn({ err: { message: err.message } }, "redis cluster error");
  });
  cluster.on("node error", (err: Error, node: string) => {
    firstError ??= err;
    logger.debug({ err: { message: err.message }, node }, "redis cluster node error");
  });
  try {
    await cluster.connect();
  } catch (err) {
    cluster.disconnect();
    const reason = (firstError ?? (err as Error)).message;
    throw new Error(`cannot connect to the Redis Cluster at ${seeds}: ${reason}`);
  }
  const bus = new ShardedRedisBus(
    cluster,
    config.redisKeyPrefix,
    logger,
    { maxTextLength: config.limits.maxTextLength },
    metrics,
    { onPlaced: (placed) => metrics.redisUp.set({ connection: "subscriber" }, placed ? 1 : 0) },
  );
  const presence = new RedisPresence(cluster, config.redisKeyPrefix, config.presence.ttlMs, config.presence.graceMs);
  const rebuild = new PresenceRebuildWindow(cluster, config.redisKeyPrefix, config.presence.ttlMs, logger);
  await rebuild.check();
  const gate = new ShardedRedisGate(cluster, config.redisKeyPrefix, loadRoom, config.rateLimits, rebuild);
  return { bus, presence, gate };
}
