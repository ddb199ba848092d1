import type { FastifyInstance } from "fastify";
import pino, { type Logger } from "pino";
import { MemoryBus } from "./adapters/memory-bus.js";
import { MemoryGate } from "./adapters/memory-gate.js";
import { MemoryPresence } from "./adapters/memory-presence.js";
import { buildApp, buildOpsApp } from "./app.js";
import { createGatewayTrust } from "./auth/gateway-trust.js";
import { createTokenVerifier } from "./auth/token-verifier.js";
import { type Database, openDatabase } from "./chatlog/database.js";
import { applyMigrations } from "./chatlog/migrate.js";
import { PrismaChatLog } from "./chatlog/prisma-chat-log.js";
import { PrismaModerationStore } from "./chatlog/prisma-moderation-store.js";
import { Pruner } from "./chatlog/retention.js";
import { StatsRollup } from "./chatlog/stats-rollup.js";
import type { Config } from "./config.js";
import { ModerationService } from "./core/moderation.js";
import type { Bus, ChatLog, Gate, Presence } from "./core/ports.js";
import { Relay } from "./core/relay.js";
import { failpoints } from "./ops/failpoints.js";
import { chooseLogFormat, logDestination } from "./ops/log-format.js";
import { Metrics } from "./ops/metrics.js";
import { logWhereToStart } from "./ops/start-lines.js";
import type { ReadinessCheck } from "./transport/ops-routes.js";
import type { PresenterSockets } from "./transport/presenter-sockets.js";

export interface RunningServer {
  app: FastifyInstance;
  relay: Relay;
  /** The node's chat log. For tests (appending moderation events directly); the server itself goes through the relay. */
  chatLog: ChatLog;
  /** This node's retention pruner (passes every RETENTION_INTERVAL_MS; one node at a time prunes). */
  retention: Pruner;
  config: Config;
  logger: Logger;
  /** The chat log's store (tests read and write it directly). */
  db: Database;
  /** The statistics rollup this node runs in the background (tests run passes themselves). */
  statsRollup: StatsRollup;
  /** The address the server listens on. */
  url: string;
  /** The ops listener's address (/healthz, /readyz, /metrics). */
  opsUrl: string;
  /** Drain and stop: close presenter sockets (1012), stop accepting, flush the log, close stores. */
  shutdown(): Promise<void>;
}

export function createLogger(config: Config, stdoutIsTty = process.stdout.isTTY === true): Logger {
  const format = chooseLogFormat(config.logFormat, stdoutIsTty);
  return pino(
    {
      level: config.logLevel,
      base: { node: config.nodeId },
      redact: {
        paths: ["req.headers.authorization", "headers.authorization", "token", "*.token"],
        censor: "[redacted]",
      },
    },
    logDestination(format, stdoutIsTty),
  );
}

/** Wires the adapters the configuration names, migrates the chat log, and listens. */
export async function startServer(config: Config, logger: Logger = createLogger(config)): Promise<RunningServer> {
  if (config.jwt.devSecret) {
    logger.warn(
      { host: config.host },
      "JWT_SECRET is not set: on the built-in development secret, listening on loopback only (set JWT_SECRET or JWT_JWKS_URL to listen beyond it; refused when NODE_ENV=production)",
    );
  }
  if (config.failpoints !== undefined) {
    logger.warn("CHATRELAY_FAILPOINTS is set: fault injection is on (tests only)");
    failpoints.enable(config.failpoints, (failpoint, task) => logger.warn({ failpoint, task }, "failpoint hit"));
  }
  const metrics = new Metrics();
  const db = await openDatabase({
    databaseUrl: config.databaseUrl,
    pgliteDataDir: config.pgliteDataDir,
    pgliteThread: config.pgliteThread,
    poolSize: config.database.readPoolSize,
    statementTimeoutMs: config.database.statementTimeoutMs,
    connectTimeoutMs: config.database.connectTimeoutMs,
  });
  const applied = await applyMigrations(db);
  if (applied.length > 0) logger.info({ applied }, "chat log migrated");
  const log = new PrismaChatLog(
    db,
    config.logWriter.maxBatch,
    (s) => metrics.logBatch(s.batchSize, s.seconds),
    config.logWriter.batchesInFlight,
    { maxQueued: config.logWriter.queueMax, deadlineMs: config.logWriter.commitTimeoutMs },
  );

  // The gate mirrors each room's moderation state from the store the first time the room is posted to.
  const moderationStore = new PrismaModerationStore(db, { globalMaxTextLength: config.limits.maxTextLength });
  const loadRoom = (roomId: number) => moderationStore.loadRoom(roomId);
  let bus: Bus;
  let presence: Presence;
  let gate: Gate;
  if (config.redisCluster !== undefined) {
    const cluster = await import("./adapters/redis-cluster.js");
    ({ bus, presence, gate } = await cluster.connectRedisCluster(config, logger, metrics, loadRoom));
  } else if (config.redisUrl !== undefined) {
    const redis = await import("./adapters/redis.js");
    ({ bus, presence, gate } = await redis.connectRedis(config, logger, metrics, loadRoom));
  } else {
    bus = new MemoryBus();
    presence = new MemoryPresence(config.presence.ttlMs, config.presence.graceMs);
    gate = new MemoryGate(presence, loadRoom, config.rateLimits);
  }
  const busKind = config.redisCluster ? "redis-cluster" : config.redisUrl ? "redis" : "memory";

  const relay = new Relay(
    log,
    bus,
    presence,
    gate,
    {
      nodeId: config.nodeId,
      maxTextLength: config.limits.maxTextLength,
      gapFillMs: config.delivery.gapFillMs,
      sendBufferBytes: config.limits.sendBufferBytes,
      presenceTtlMs: config.presence.ttlMs,
      resumeDefault: config.delivery.resumeDefault,
      resyncSpreadMs: config.redisResync.spreadMs,
      resyncConcurrency: config.redisResync.concurrency,
    },
    logger,
    metrics,
  );
  // Moderation actions: the store (with audit), then the gate's mirror, then the event in the log and on the bus.
  const moderation = new ModerationService(moderationStore, gate, log, (event) => relay.publish(event), logger, {
    globalMaxTextLength: config.limits.maxTextLength,
  });
  const readiness: ReadinessCheck[] = [{ name: "chatlog", check: () => log.ping() }];
  if (busKind !== "memory") {
    readiness.push({ name: "redis", check: async () => Promise.all([bus.ping(), presence.ping()]).then(() => {}) });
  }
  const deps = {
    config,
    logger,
    relay,
    moderation,
    verifyToken: createTokenVerifier(config.jwt),
    gatewayTrust: createGatewayTrust(config.gateway),
    metrics,
    readiness,
    db,
    chatLog: log,
  };
  const { app, sockets } = await buildApp(deps);
  const ops = await buildOpsApp(deps, () => sockets.draining);
  relay.start();
  // Statistics counters: every node tries a pass each interval; an advisory lock keeps them apart.
  const statsRollup = new StatsRollup(db, logger);
  statsRollup.start();
  const retention = new Pruner(
    db,
    { ...config.retention, policy: config.retention, databaseUrl: config.databaseUrl, ...config.database },
    logger,
  );
  retention.start();
  const opsUrl = await ops.listen({ port: config.ops.port, host: config.ops.host });
  const url = await app.listen({ port: config.port, host: config.host });
  logger.info({ url, opsUrl, chatlog: db.kind, bus: busKind }, "chatrelay listening");
  logWhereToStart(logger, url);

  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= Promise.all([statsRollup.stop(), retention.stop()])
      .then(() => stop(app, sockets, log, bus, presence, logger))
      .finally(() => ops.close());
    return stopping;
  };
  return { app, relay, chatLog: log, db, statsRollup, retention, config, logger, url, opsUrl, shutdown };
}

async function stop(
  app: FastifyInstance,
  sockets: PresenterSockets,
  log: PrismaChatLog,
  bus: Bus,
  presence: Presence,
  logger: Logger,
): Promise<void> {
  logger.info("draining: closing presenter sockets and finishing in-flight requests");
  await sockets.drain();
  // Keep-alive connections whose request finishes during the close would stay open until their
  // idle timeout: close each one as soon as it goes idle, so the drain ends with the last request.
  const reaper = setInterval(() => app.server.closeIdleConnections(), 50);
  try {
    await app.close();
  } finally {
    clearInterval(reaper);
  }
  await log.close();
  await Promise.allSettled([bus.close(), presence.close()]);
  logger.info("stopped");
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
}
