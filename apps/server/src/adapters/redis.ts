import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { RoomModerationState } from "../core/moderation-state.js";
import type { Bus, Gate, Presence } from "../core/ports.js";
import type { Metrics } from "../ops/metrics.js";
import { redactUrl, scrubPassword } from "../ops/redact-url.js";
import { PresenceRebuildWindow } from "./presence-rebuild.js";
import { RedisBus } from "./redis-bus.js";
import { RedisGate } from "./redis-gate.js";
import { RedisPresence } from "./redis-presence.js";

const RETRY_BASE_MS = 50;
const RETRY_CAP_MS = 2000;

/**
 * Reconnect delay with full jitter: uniform between the base and an exponential ceiling. After an
 * outage every node (two connections each) would otherwise retry in lockstep and hit Redis together.
 */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(Math.max(attempt, 0), 16));
  return Math.round(RETRY_BASE_MS + random() * (ceiling - RETRY_BASE_MS));
}

/**
 * The URL both connections use: REDIS_USERNAME / REDIS_PASSWORD, when set, replace the URL's
 * credentials (so the password can live in a secret of its own rather than inside the URL).
 */
export function effectiveRedisUrl(config: Pick<Config, "redisUrl" | "redisUsername" | "redisPassword">): string {
  const url = config.redisUrl as string;
  if (config.redisUsername === undefined && config.redisPassword === undefined) return url;
  const u = new URL(url);
  // Encoded in full (the URL setters leave "%" alone); ioredis decodes the URL's credentials again.
  if (config.redisUsername !== undefined) u.username = encodeURIComponent(config.redisUsername);
  if (config.redisPassword !== undefined) u.password = encodeURIComponent(config.redisPassword);
  return u.toString();
}

/**
 * Two connections per node: one for commands (presence, publish) and one in
 * subscriber mode. No offline queue and a command timeout: while Redis is
 * unreachable every call fails at once instead of piling up.
 */
export async function connectRedis(
  config: Config,
  logger: Logger,
  metrics: Metrics,
  loadRoom: (roomId: number) => Promise<RoomModerationState>,
): Promise<{ bus: Bus; presence: Presence; gate: Gate }> {
  const url = effectiveRedisUrl(config);
  const options: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: 2000,
    connectTimeout: 2000,
    lazyConnect: true,
    retryStrategy: (times) => reconnectDelay(times),
  };
  // Auto-pipelining: the GETs and PUBLISHes of concurrent posts share one socket write.
  const commands = new Redis(url, {
    ...options,
    enableAutoPipelining: true,
    connectionName: `chatrelay:${config.nodeId}:cmd`,
  });
  const subscriber = new Redis(url, { ...options, connectionName: `chatrelay:${config.nodeId}:sub` });
  // connect() only says "Connection is closed."; the reason (WRONGPASS, NOAUTH, ECONNREFUSED) comes as an error event.
  let firstError: Error | undefined;
  for (const [name, conn] of [
    ["commands", commands],
    ["subscriber", subscriber],
  ] as const) {
    metrics.redisUp.set({ connection: name }, 0);
    conn.on("ready", () => metrics.redisUp.set({ connection: name }, 1));
    conn.on("close", () => metrics.redisUp.set({ connection: name }, 0));
    conn.on("error", (err: Error) => {
      firstError ??= err;
      logger.warn({ err: { message: scrubPassword(err.message, url) }, connection: name }, "redis connection error");
    });
  }
  try {
    await Promise.all([commands.connect(), subscriber.connect()]);
  } catch (err) {
    commands.disconnect();
    subscriber.disconnect();
    const reason = scrubPassword((firstError ?? (err as Error)).message, url);
    const hint = isAuthFailure(reason)
      ? " (check the user and password: REDIS_URL, REDIS_USERNAME, REDIS_PASSWORD)"
      : "";
    throw new Error(`cannot connect to Redis at REDIS_URL (${redactUrl(url)}): ${reason}${hint}`);
  }
  const bus = new RedisBus(
    commands,
    subscriber,
    config.redisKeyPrefix,
    logger,
    { maxTextLength: config.limits.maxTextLength },
    metrics,
  );
  const presence = new RedisPresence(commands, config.redisKeyPrefix, config.presence.ttlMs, config.presence.graceMs);
  const rebuild = new PresenceRebuildWindow(commands, config.redisKeyPrefix, config.presence.ttlMs, logger);
  await rebuild.check();
  const gate = new RedisGate(commands, config.redisKeyPrefix, loadRoom, config.rateLimits, rebuild);
  return { bus, presence, gate };
}

function isAuthFailure(message: string): boolean {
  return /WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username/i.test(message);
}
