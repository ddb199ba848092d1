import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Bus, Presence } from "../core/ports.js";
import type { Metrics } from "../ops/metrics.js";
import { RedisBus } from "./redis-bus.js";
import { RedisPresence } from "./redis-presence.js";

/**
 * Two connections per node: one for commands (presence, publish) and one in
 * subscriber mode. No offline queue and a command timeout: while Redis is
 * unreachable every call fails at once instead of piling up.
 */
export async function connectRedis(
  config: Config,
  logger: Logger,
  metrics: Metrics,
): Promise<{ bus: Bus; presence: Presence }> {
  const url = config.redisUrl as string;
  const options: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: 2000,
    connectTimeout: 2000,
    lazyConnect: true,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
  };
  // Auto-pipelining: the GETs and PUBLISHes of concurrent posts share one socket write.
  const commands = new Redis(url, {
    ...options,
    enableAutoPipelining: true,
    connectionName: `chatrelay:${config.nodeId}:cmd`,
  });
  const subscriber = new Redis(url, { ...options, connectionName: `chatrelay:${config.nodeId}:sub` });
  for (const [name, conn] of [
    ["commands", commands],
    ["subscriber", subscriber],
  ] as const) {
    metrics.redisUp.set({ connection: name }, 0);
    conn.on("ready", () => metrics.redisUp.set({ connection: name }, 1));
    conn.on("close", () => metrics.redisUp.set({ connection: name }, 0));
    conn.on("error", (err) =>
      logger.warn({ err: { message: err.message }, connection: name }, "redis connection error"),
    );
  }
  try {
    await Promise.all([commands.connect(), subscriber.connect()]);
  } catch (err) {
    commands.disconnect();
    subscriber.disconnect();
    throw new Error(`cannot reach Redis at REDIS_URL (${redact(url)}): ${(err as Error).message}`);
  }
  const bus = new RedisBus(commands, subscriber, config.redisKeyPrefix, logger);
  const presence = new RedisPresence(commands, config.redisKeyPrefix, config.presence.ttlMs, config.presence.graceMs);
  return { bus, presence };
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable)";
  }
}
