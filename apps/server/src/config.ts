import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

/** The server's whole configuration, read once from the environment at start-up. */
export interface Config {
  port: number;
  host: string;
  nodeId: string;
  logLevel: string;
  production: boolean;
  /** PostgreSQL connection string; unset means the embedded PGlite log. */
  databaseUrl: string | undefined;
  /** PGlite data folder, or "memory://" for a throwaway in-memory log. */
  pgliteDataDir: string;
  /** Redis URL; unset means the in-process bus and presence (one node). */
  redisUrl: string | undefined;
  redisKeyPrefix: string;
  jwt: {
    secret: string | undefined;
    jwksUrl: string | undefined;
    issuer: string | undefined;
    audience: string | undefined;
    /** True when the built-in development secret is in use. */
    devSecret: boolean;
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
  };
  handshakeTimeoutMs: number;
  /** Interval of WebSocket ping control frames; a socket that misses one pong is dropped (its room goes into grace). */
  wsPingIntervalMs: number;
  shutdownTimeoutMs: number;
}

export const DEV_JWT_SECRET = "chatrelay-dev-secret-change-me";

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

/** Parses and validates the environment; throws one ConfigError listing every wrong value. */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
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

  const production = read("NODE_ENV") === "production";
  const logLevel = read("LOG_LEVEL") ?? "info";
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    problems.push(`LOG_LEVEL=${logLevel} is not one of fatal, error, warn, info, debug, trace, silent`);
  }

  let secret = read("JWT_SECRET");
  const jwksUrl = url("JWT_JWKS_URL", ["http:", "https:"]);
  let devSecret = false;
  if (secret !== undefined && secret.length < 32) {
    problems.push("JWT_SECRET must be at least 32 characters (HS256 needs 256 bits)");
  }
  if (secret === undefined && jwksUrl === undefined) {
    if (production) {
      problems.push("set JWT_SECRET (HS256) or JWT_JWKS_URL: NODE_ENV=production refuses the development secret");
    } else {
      secret = DEV_JWT_SECRET;
      devSecret = true;
    }
  }

  const trustedProxies = (read("TRUSTED_PROXIES") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const entry of trustedProxies) {
    if (!isIpOrCidr(entry))
      problems.push(`TRUSTED_PROXIES entry ${JSON.stringify(entry)} is not an IP address or CIDR`);
  }
  const gatewaySecret = read("GATEWAY_SECRET");
  if (gatewaySecret !== undefined && gatewaySecret.length < 16) {
    problems.push("GATEWAY_SECRET must be at least 16 characters");
  }

  const resumeDefault = read("RESUME_DEFAULT") ?? "live";
  if (resumeDefault !== "live" && resumeDefault !== "acked") {
    problems.push(`RESUME_DEFAULT=${resumeDefault} must be "live" or "acked"`);
  }

  const config: Config = {
    port: int("PORT", 8080, 0, 65535),
    host: read("HOST") ?? "0.0.0.0",
    nodeId: read("NODE_ID") ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`,
    logLevel,
    production,
    databaseUrl: url("DATABASE_URL", ["postgres:", "postgresql:"]),
    pgliteDataDir: read("PGLITE_DATA_DIR") ?? ".data/pglite",
    redisUrl: url("REDIS_URL", ["redis:", "rediss:"]),
    redisKeyPrefix: read("REDIS_KEY_PREFIX") ?? "chatrelay:",
    jwt: {
      secret,
      jwksUrl,
      issuer: read("JWT_ISSUER"),
      audience: read("JWT_AUDIENCE"),
      devSecret,
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
    },
    handshakeTimeoutMs: int("HANDSHAKE_TIMEOUT_MS", 10_000, 100, 600_000),
    wsPingIntervalMs: int("WS_PING_INTERVAL_MS", 30_000, 100, 600_000),
    shutdownTimeoutMs: int("SHUTDOWN_TIMEOUT_MS", 10_000, 100, 600_000),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
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
