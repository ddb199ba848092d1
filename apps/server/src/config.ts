import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseClusterSpec, type RedisClusterSpec } from "./adapters/redis-cluster-spec.js";
import { DEV_JWT_SECRET, secretWeakness } from "./auth/secret-strength.js";
import { DEFAULT_CLOCK_TOLERANCE_S, DEFAULT_MAX_TOKEN_AGE_S, DEFAULT_MODERATOR_CLAIM } from "./auth/token-verifier.js";
import { type GateLimits, type Limit, parseLimit } from "./core/rate-limit.js";
import { type FailAction, type FailpointName, parseFailpointSpec } from "./ops/failpoints.js";
import type { LogFormat } from "./ops/log-format.js";

/** The server's whole configuration, read once from the environment at start-up. */
export interface Config {
  port: number;
  host: string;
  nodeId: string;
  logLevel: string;
  /** LOG_FORMAT: "json" or "pretty"; undefined = pretty when stdout is a terminal, JSON otherwise. */
  logFormat: LogFormat | undefined;
  production: boolean;
  /** CHATRELAY_FAILPOINTS: fault injection for tests (ops/failpoints.ts); undefined = off. */
  failpoints: [FailpointName, FailAction | null][] | undefined;
  /** PostgreSQL connection string; unset means the embedded PGlite log. */
  databaseUrl: string | undefined;
  /** PGlite data folder, or "memory://" for a throwaway in-memory log. */
  pgliteDataDir: string;
  /** PGLITE_THREAD: "worker" (default) runs PGlite on a thread of its own; "main" on the event loop. */
  pgliteThread: "worker" | "main";
  /** MIGRATIONS_DIR (absolute, checked to be a folder); unset means the nearest prisma/migrations. */
  migrationsDir: string | undefined;
  /** Redis URL; unset (and no cluster) means the in-process bus and presence (one node). */
  redisUrl: string | undefined;
  /**
   * A Redis Cluster instead (REDIS_CLUSTER_NODES, or REDIS_URL=redis+cluster://...): sharded pub/sub
   * for the bus. REDIS_USERNAME / REDIS_PASSWORD apply here too.
   */
  redisCluster: RedisClusterSpec | undefined;
  redisKeyPrefix: string;
  /** ACL user for both Redis connections; overrides the one in REDIS_URL. */
  redisUsername: string | undefined;
  /** Redis password (AUTH / ACL); overrides the one in REDIS_URL. */
  redisPassword: string | undefined;
  /** After a Redis outage: presenters are re-announced and caught up spread over this window, a few at a time. */
  redisResync: { spreadMs: number; concurrency: number };
  jwt: {
    secret: string | undefined;
    jwksUrl: string | undefined;
    issuer: string | undefined;
    audience: string | undefined;
    /** True when the built-in development secret is in use (the node then listens on loopback only). */
    devSecret: boolean;
    /** Seconds of clock skew allowed on exp, nbf and iat. */
    clockToleranceS: number;
    /** Longest accepted token lifetime (exp - iat) in seconds; 0 = no limit. */
    maxTokenAgeS: number;
    /** Lower-cased roles a token needs to open its own room's presenter socket; undefined = any token of that user. */
    presenterRoles: string[] | undefined;
    /** OPERATOR_ROLE (lower-cased): a token holding it may use the operator routes, and may not post or present. */
    operatorRole: string;
    /** JWT claim listing the rooms a token may moderate (an array of room ids). */
    moderatorClaim: string;
  };
  gateway: {
    secret: string | undefined;
    trustedProxies: string[];
  };
  limits: {
    maxTextLength: number;
    bodyLimitBytes: number;
    wsMaxFrameBytes: number;
    historyMaxLimit: number;
    sendBufferBytes: number;
  };
  presence: {
    ttlMs: number;
    graceMs: number;
  };
  delivery: {
    /** How long a delivering node waits for a missing seq on the bus before reading it from the log. */
    gapFillMs: number;
    /** What a presenter that reconnects without a last seq gets: live messages only, or a replay from its last ack. */
    resumeDefault: "live" | "acked";
  };
  logWriter: {
    maxBatch: number;
    /** Batches written at once to PostgreSQL (PGlite: always 1). */
    batchesInFlight: number;
    /** Rows that may wait for a batch; a post beyond it gets 503 at once. */
    queueMax: number;
    /** A post whose COMMIT is not sent within this gets 503, and its row is never written. */
    commitTimeoutMs: number;
  };
  database: {
    /** PostgreSQL connections for reads (history, catch-up, lookups); appends have their own. */
    readPoolSize: number;
    /** `statement_timeout` of every PostgreSQL session (the client gives up 1 s later). */
    statementTimeoutMs: number;
    /** Opening a PostgreSQL connection, or waiting for a free read connection. */
    connectTimeoutMs: number;
  };
  /** The ops listener (/metrics, /readyz, /healthz): apart from the public port so the load balancer never serves it. */
  ops: { port: number; host: string };
  http: {
    /** Whole request (headers and body) must arrive within this; slow bodies get 408. */
    requestTimeoutMs: number;
    /** Headers must arrive within this from the connection's start (or the previous request). */
    headersTimeoutMs: number;
    /** Idle keep-alive connections are closed after this. */
    keepAliveTimeoutMs: number;
  };
  badFrames: {
    /** More than this many malformed frames within the window closes a presenter socket (1008). */
    limit: number;
    windowMs: number;
  };
  /** Rate limits on posts and socket opens (undefined: off). */
  rateLimits: GateLimits;
  /** Proxies (IPs/CIDRs) whose X-Forwarded-For names the client address for the per-address limits. */
  trustProxy: string[];
  handshakeTimeoutMs: number;
  /** Seed sockets allowed to wait for their start frame at once; more get 503 before the upgrade. */
  maxPendingStarts: number;
  /** Interval of WebSocket ping control frames; a socket that misses one pong is dropped (its room goes into grace). */
  wsPingIntervalMs: number;
  shutdownTimeoutMs: number;
  /** Retention of the chat log (chatlog/retention.ts): the global policy and how passes run. */
  retention: RetentionConfig;
}

/** RETENTION_*: the global policy (null: no limit of that kind, kept forever) and the pruner's pace. */
export interface RetentionConfig {
  /** RETENTION_MAX_AGE_DAYS: entries older than this many days are pruned. */
  maxAgeDays: number | null;
  /** RETENTION_MAX_COUNT: only each room's newest this many entries are kept. */
  maxCount: number | null;
  /** RETENTION_INTERVAL_MS: how often a node tries a pass (one node at a time runs it). */
  intervalMs: number;
  /** RETENTION_BATCH_ROWS: rows per delete, each its own short transaction. */
  batchRows: number;
  /** RETENTION_DUTY_PERCENT: share of a pass's wall time spent deleting; it rests the remainder. */
  dutyPercent: number;
}

export { DEV_JWT_SECRET };

/** What the chat log store needs: all the migrate CLI reads, so it never asks for JWT settings. */
export interface StoreConfig {
  databaseUrl: string | undefined;
  pgliteDataDir: string;
  /** PGLITE_THREAD: "worker" (default) runs PGlite on a thread of its own; "main" on the event loop. */
  pgliteThread: "worker" | "main";
  migrationsDir: string | undefined;
}

/**
 * The default embedded log folder: `.data/pglite` in the server package
 * (apps/server in the repository, /app in the image), whichever the cwd, so
 * `pnpm start`, `node apps/server/dist/main.js` and the migrate CLI share it.
 * This module sits in src/ or dist/, one level below the package root.
 */
export const DEFAULT_PGLITE_DATA_DIR = fileURLToPath(new URL("../.data/pglite", import.meta.url));

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

/** Reads only the store settings (DATABASE_URL, PGLITE_DATA_DIR, MIGRATIONS_DIR); throws a ConfigError. */
export function loadStoreConfig(env: Env = process.env): StoreConfig {
  const problems: string[] = [];
  const store = readStoreConfig(envReader(env, problems));
  if (problems.length > 0) throw new ConfigError(problems);
  return store;
}

function readStoreConfig({ read, url, problems }: EnvReader): StoreConfig {
  const migrationsDir = read("MIGRATIONS_DIR");
  const resolved = migrationsDir === undefined ? undefined : resolve(migrationsDir);
  if (resolved !== undefined && statSync(resolved, { throwIfNoEntry: false })?.isDirectory() !== true) {
    problems.push(`MIGRATIONS_DIR=${JSON.stringify(migrationsDir)} is not a folder`);
  }
  const pgliteThread = read("PGLITE_THREAD") ?? "worker";
  if (pgliteThread !== "worker" && pgliteThread !== "main") {
    problems.push(`PGLITE_THREAD must be "worker" or "main"`);
  }
  return {
    databaseUrl: url("DATABASE_URL", ["postgres:", "postgresql:"]),
    pgliteDataDir: read("PGLITE_DATA_DIR") ?? DEFAULT_PGLITE_DATA_DIR,
    pgliteThread: pgliteThread === "main" ? "main" : "worker",
    migrationsDir: resolved,
  };
}

interface EnvReader {
  problems: string[];
  /** The trimmed value; empty counts as unset. */
  read(name: string): string | undefined;
  int(name: string, def: number, min: number, max: number): number;
  url(name: string, protocols: string[]): string | undefined;
}

function envReader(env: Env, problems: string[]): EnvReader {
  const read = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = read(name);
    if (raw === undefined) return def;
    if (!/^-?\d+$/.test(raw)) {
      problems.push(`${name}=${JSON.stringify(raw)} is not an integer`);
      return def;
    }
    const n = Number(raw);
    if (n < min || n > max) {
      problems.push(`${name}=${raw} is out of range (${min}..${max})`);
      return def;
    }
    return n;
  };
  const url = (name: string, protocols: string[]): string | undefined => {
    const raw = read(name);
    if (raw === undefined) return undefined;
    try {
      const u = new URL(raw);
      if (!protocols.includes(u.protocol)) {
        problems.push(`${name} must use ${protocols.join(" or ")} (got ${u.protocol})`);
      }
    } catch {
      problems.push(`${name} is not a valid URL`);
    }
    return raw;
  };
  return { problems, read, int, url };
}

/** One Redis (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES, or a redis+cluster:// REDIS_URL), never both. */
function redisTarget(reader: EnvReader): Pick<Config, "redisUrl" | "redisCluster"> {
  const { read, url, problems } = reader;
  const rawUrl = read("REDIS_URL");
  const rawNodes = read("REDIS_CLUSTER_NODES");
  const clusterUrl = rawUrl !== undefined && /^rediss?\+cluster:/i.test(rawUrl);
  if (rawNodes !== undefined && rawUrl !== undefined) {
    problems.push("set REDIS_URL or REDIS_CLUSTER_NODES, not both");
    return { redisUrl: undefined, redisCluster: undefined };
  }
  if (rawNodes === undefined && !clusterUrl)
    return { redisUrl: url("REDIS_URL", ["redis:", "rediss:"]), redisCluster: undefined };
  const name = rawNodes === undefined ? "REDIS_URL" : "REDIS_CLUSTER_NODES";
  const spec = parseClusterSpec((rawNodes ?? rawUrl) as string, name);
  if (typeof spec === "string") {
    problems.push(spec);
    return { redisUrl: undefined, redisCluster: undefined };
  }
  const prefix = read("REDIS_KEY_PREFIX");
  if (prefix !== undefined && /[{}]/.test(prefix)) {
    // A {tag} in the prefix would put every room in one slot (one shard), and "{}" confuses slot grouping.
    problems.push("REDIS_KEY_PREFIX must not contain { or } on a Redis Cluster (the room is the hash tag)");
  }
  return { redisUrl: undefined, redisCluster: spec };
}

/** Parses and validates the environment; throws one ConfigError listing every wrong value. */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const reader = envReader(env, problems);
  const { read, int, url } = reader;
  const store = readStoreConfig(reader);

  const production = read("NODE_ENV") === "production";
  const failpoints = readFailpoints(read("CHATRELAY_FAILPOINTS"), production, problems);
  const logLevel = read("LOG_LEVEL") ?? "info";
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    problems.push(`LOG_LEVEL=${logLevel} is not one of fatal, error, warn, info, debug, trace, silent`);
  }
  const logFormat = read("LOG_FORMAT");
  if (logFormat !== undefined && logFormat !== "json" && logFormat !== "pretty") {
    problems.push(`LOG_FORMAT must be "json" or "pretty" (unset: pretty on a terminal, JSON otherwise)`);
  }

  let secret = read("JWT_SECRET");
  const jwksUrl = url("JWT_JWKS_URL", ["http:", "https:"]);
  let devSecret = false;
  const secretProblem = secret === undefined ? undefined : secretWeakness(secret, 32);
  // Never the value itself: this line goes to logs.
  if (secretProblem !== undefined) problems.push(`JWT_SECRET ${secretProblem}`);
  if (jwksUrl !== undefined && !isHttpsOrLoopback(jwksUrl)) {
    problems.push("JWT_JWKS_URL must use https: (plain http: only for a loopback host such as 127.0.0.1)");
  }
  if (secret !== undefined && jwksUrl !== undefined) {
    problems.push(
      "JWT_SECRET and JWT_JWKS_URL are both set: drop JWT_SECRET to verify tokens with the JWKS keys, or drop JWT_JWKS_URL to verify HS256 tokens with the secret",
    );
  }
  if (secret === undefined && jwksUrl === undefined) {
    if (production) {
      problems.push("set JWT_SECRET (HS256) or JWT_JWKS_URL: NODE_ENV=production refuses the development secret");
    } else {
      secret = DEV_JWT_SECRET;
      devSecret = true;
    }
  }
  // Anyone can mint tokens with the published development secret: such a node only listens on loopback.
  let host = read("HOST");
  if (devSecret) {
    if (host === undefined) host = "127.0.0.1";
    else if (!isLoopbackHost(host)) {
      problems.push(
        `HOST=${host} is not a loopback address, and JWT_SECRET is unset (built-in development secret, which anyone can mint tokens with): set a real JWT_SECRET or JWT_JWKS_URL to listen beyond loopback`,
      );
    }
  }
  const presenterRoles = roleList(read("PRESENTER_ROLES"), problems);
  const operatorRole = (read("OPERATOR_ROLE") ?? "operator").toLowerCase();
  if (!/^[a-z0-9][a-z0-9_.:-]{0,63}$/.test(operatorRole)) {
    problems.push("OPERATOR_ROLE is not a role name (letters, digits, _ . : -; at most 64)");
  }
  if (presenterRoles?.includes(operatorRole)) {
    problems.push("OPERATOR_ROLE is also in PRESENTER_ROLES: an operator token never presents");
  }

  const addressList = (name: string): string[] => {
    const entries = (read(name) ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    for (const entry of entries) {
      if (!isIpOrCidr(entry)) problems.push(`${name} entry ${JSON.stringify(entry)} is not an IP address or CIDR`);
    }
    return entries;
  };
  const trustedProxies = addressList("TRUSTED_PROXIES");
  const limit = (name: string, def: string): Limit | undefined => {
    const parsed = parseLimit(read(name) ?? def);
    if (parsed !== "invalid") return parsed;
    problems.push(`${name} must be "<count>/<window>" such as 20/30s (ms, s, m, h; at most 1 day) or "off"`);
    return parseLimit(def) as Limit | undefined;
  };
  const gatewaySecret = read("GATEWAY_SECRET");
  const gatewayProblem = gatewaySecret === undefined ? undefined : secretWeakness(gatewaySecret, 16);
  if (gatewayProblem !== undefined) problems.push(`GATEWAY_SECRET ${gatewayProblem}`);

  const resumeDefault = read("RESUME_DEFAULT") ?? "live";
  if (resumeDefault !== "live" && resumeDefault !== "acked") {
    problems.push(`RESUME_DEFAULT=${resumeDefault} must be "live" or "acked"`);
  }

  const config: Config = {
    port: int("PORT", 8080, 0, 65535),
    host: host ?? "0.0.0.0",
    nodeId: read("NODE_ID") ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`,
    logLevel,
    logFormat: logFormat === "json" || logFormat === "pretty" ? logFormat : undefined,
    production,
    failpoints,
    ...store,
    ...redisTarget(reader),
    redisKeyPrefix: read("REDIS_KEY_PREFIX") ?? "chatrelay:",
    redisUsername: read("REDIS_USERNAME"),
    redisPassword: read("REDIS_PASSWORD"),
    redisResync: {
      spreadMs: int("REDIS_RESYNC_SPREAD_MS", 1000, 0, 60_000),
      concurrency: int("REDIS_RESYNC_CONCURRENCY", 8, 1, 1000),
    },
    jwt: {
      secret,
      jwksUrl,
      issuer: read("JWT_ISSUER"),
      audience: read("JWT_AUDIENCE"),
      devSecret,
      clockToleranceS: int("JWT_CLOCK_TOLERANCE_S", DEFAULT_CLOCK_TOLERANCE_S, 0, 300),
      maxTokenAgeS: int("JWT_MAX_TOKEN_AGE_S", DEFAULT_MAX_TOKEN_AGE_S, 0, 31_536_000),
      presenterRoles,
      operatorRole,
      moderatorClaim: claimName(read("MODERATOR_CLAIM"), problems),
    },
    gateway: { secret: gatewaySecret, trustedProxies },
    limits: {
      maxTextLength: int("MAX_TEXT_LENGTH", 500, 1, 100_000),
      bodyLimitBytes: int("BODY_LIMIT_BYTES", 16_384, 256, 10_485_760),
      wsMaxFrameBytes: int("WS_MAX_FRAME_BYTES", 16_384, 256, 1_048_576),
      historyMaxLimit: int("HISTORY_MAX_LIMIT", 100, 1, 1000),
      sendBufferBytes: int("SEND_BUFFER_BYTES", 1_048_576, 1024, 268_435_456),
    },
    presence: {
      ttlMs: int("PRESENCE_TTL_MS", 15_000, 1000, 600_000),
      graceMs: int("GRACE_WINDOW_MS", 10_000, 0, 600_000),
    },
    delivery: {
      gapFillMs: int("GAP_FILL_MS", 250, 1, 60_000),
      resumeDefault: resumeDefault === "acked" ? "acked" : "live",
    },
    logWriter: {
      maxBatch: int("LOG_BATCH_MAX", 2000, 1, 50_000),
      batchesInFlight: int("LOG_BATCHES_IN_FLIGHT", 2, 1, 16),
      queueMax: int("LOG_QUEUE_MAX", 10_000, 1, 1_000_000),
      commitTimeoutMs: int("LOG_COMMIT_TIMEOUT_MS", 5000, 100, 600_000),
    },
    database: {
      readPoolSize: int("DB_READ_POOL_SIZE", 4, 1, 100),
      statementTimeoutMs: int("DB_STATEMENT_TIMEOUT_MS", 5000, 100, 600_000),
      connectTimeoutMs: int("DB_CONNECT_TIMEOUT_MS", 5000, 100, 600_000),
    },
    ops: {
      port: int("OPS_PORT", 9090, 0, 65535),
      host: read("OPS_HOST") ?? "127.0.0.1",
    },
    http: {
      requestTimeoutMs: int("HTTP_REQUEST_TIMEOUT_MS", 10_000, 100, 600_000),
      headersTimeoutMs: int("HTTP_HEADERS_TIMEOUT_MS", 10_000, 100, 600_000),
      keepAliveTimeoutMs: int("HTTP_KEEPALIVE_TIMEOUT_MS", 72_000, 100, 600_000),
    },
    badFrames: {
      limit: int("WS_BAD_FRAME_LIMIT", 10, 0, 10_000),
      windowMs: int("WS_BAD_FRAME_WINDOW_MS", 10_000, 100, 3_600_000),
    },
    rateLimits: {
      room: limit("RATE_LIMIT_ROOM", "20/30s"),
      roomPrivileged: limit("RATE_LIMIT_ROOM_PRIVILEGED", "100/30s"),
      sender: limit("RATE_LIMIT_SENDER", "60/30s"),
      addressPosts: limit("RATE_LIMIT_ADDRESS_POSTS", "300/30s"),
      addressSockets: limit("RATE_LIMIT_ADDRESS_SOCKETS", "30/60s"),
    },
    trustProxy: addressList("TRUST_PROXY"),
    handshakeTimeoutMs: int("HANDSHAKE_TIMEOUT_MS", 10_000, 100, 600_000),
    maxPendingStarts: int("WS_MAX_PENDING_STARTS", 1000, 1, 1_000_000),
    wsPingIntervalMs: int("WS_PING_INTERVAL_MS", 30_000, 100, 600_000),
    shutdownTimeoutMs: int("SHUTDOWN_TIMEOUT_MS", 10_000, 100, 600_000),
    retention: readRetention(reader),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** PRESENTER_ROLES: comma-separated role names, lower-cased; unset means no role is required. */
function roleList(raw: string | undefined, problems: string[]): string[] | undefined {
  if (raw === undefined) return undefined;
  const roles = raw
    .split(",")
    .map((r) => r.trim().toLowerCase())
    .filter(Boolean);
  if (roles.length === 0) problems.push("PRESENTER_ROLES lists no role (leave it unset to require none)");
  for (const role of roles) {
    if (!/^[a-z0-9][a-z0-9_.:-]{0,63}$/.test(role)) {
      problems.push(`PRESENTER_ROLES entry ${JSON.stringify(role)} is not a role name (letters, digits, _ . : -)`);
    }
  }
  return roles;
}

/** MODERATOR_CLAIM: a JWT claim name (default mod_rooms); namespaced names such as URLs are fine. */
function claimName(raw: string | undefined, problems: string[]): string {
  if (raw === undefined) return DEFAULT_MODERATOR_CLAIM;
  if (!/^[!-~]{1,128}$/.test(raw)) {
    problems.push(`MODERATOR_CLAIM=${JSON.stringify(raw)} is not a claim name (1 to 128 visible ASCII characters)`);
    return DEFAULT_MODERATOR_CLAIM;
  }
  return raw;
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped loopback) or localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = /^(?:::ffff:)?127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return v4?.slice(1).every((o) => Number(o) <= 255) === true;
}

function isHttpsOrLoopback(raw: string): boolean {
  try {
    const u = new URL(raw);
    return u.protocol === "https:" || (u.protocol === "http:" && isLoopbackHost(u.hostname));
  } catch {
    return true; // reported as not a URL already
  }
}

function isIpOrCidr(entry: string): boolean {
  const [addr, bits, ...rest] = entry.split("/");
  if (rest.length > 0 || addr === undefined) return false;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  const isV4 = v4?.slice(1).every((o) => Number(o) <= 255) === true;
  const isV6 = !isV4 && addr.includes(":") && /^[0-9a-fA-F:.]+$/.test(addr);
  if (!isV4 && !isV6) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (isV4 ? 32 : 128);
}

function readFailpoints(
  spec: string | undefined,
  production: boolean,
  problems: string[],
): [FailpointName, FailAction | null][] | undefined {
  if (spec === undefined) return undefined;
  if (production) {
    problems.push("CHATRELAY_FAILPOINTS injects faults for tests: NODE_ENV=production refuses it");
    return undefined;
  }
  const parsed = parseFailpointSpec(spec);
  if ("problem" in parsed) {
    problems.push(parsed.problem);
    return undefined;
  }
  return parsed.presets;
}

/** Reads only the retention settings (the CLI's `log prune`); throws a ConfigError. */
export function loadRetentionConfig(env: Env = process.env): RetentionConfig {
  const problems: string[] = [];
  const retention = readRetention(envReader(env, problems));
  if (problems.length > 0) throw new ConfigError(problems);
  return retention;
}

/** RETENTION_*: each problem named without its value (a line that goes to logs). */
function readRetention({ read, problems }: EnvReader): RetentionConfig {
  const whole = (name: string, min: number, max: number, what: string): number | undefined => {
    const raw = read(name);
    if (raw === undefined) return undefined;
    const n = /^\d{1,16}$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(n >= min && n <= max)) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (${what})`);
      return undefined;
    }
    return n;
  };
  return {
    maxAgeDays: whole("RETENTION_MAX_AGE_DAYS", 1, 36_500, "days; unset: no age limit") ?? null,
    maxCount:
      whole("RETENTION_MAX_COUNT", 1, Number.MAX_SAFE_INTEGER, "entries per room; unset: no count limit") ?? null,
    intervalMs: whole("RETENTION_INTERVAL_MS", 100, 86_400_000, "milliseconds between passes; default 60000") ?? 60_000,
    batchRows: whole("RETENTION_BATCH_ROWS", 1, 100_000, "rows per delete; default 1000") ?? 1000,
    dutyPercent: whole("RETENTION_DUTY_PERCENT", 1, 100, "percent of a pass spent deleting; default 25") ?? 25,
  };
}
