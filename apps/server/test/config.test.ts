import t from "tap";
import { ConfigError, DEV_JWT_SECRET, loadConfig } from "../src/config.js";

t.test("defaults: a node on the embedded stores with the development secret", async (t) => {
  const c = loadConfig({});
  t.equal(c.port, 8080);
  t.equal(c.databaseUrl, undefined, "PGlite");
  t.equal(c.redisUrl, undefined, "in-process bus");
  t.equal(c.jwt.secret, DEV_JWT_SECRET);
  t.equal(c.jwt.devSecret, true);
  t.equal(c.limits.maxTextLength, 500);
  t.equal(c.presence.graceMs, 10_000);
  t.ok(c.presence.ttlMs <= 15_000, "a dead node's rooms stop being live within 15 s");
});

t.test("conventional names are read", async (t) => {
  const c = loadConfig({
    PORT: "9000",
    HOST: "127.0.0.1",
    DATABASE_URL: "postgresql://u@db:5432/chat",
    REDIS_URL: "redis://cache:6379",
    JWT_SECRET: "x".repeat(32),
    JWT_ISSUER: "https://id.example",
    JWT_AUDIENCE: "chat",
    LOG_LEVEL: "debug",
    TRUSTED_PROXIES: "10.0.0.0/8, 192.168.1.1, ::1",
  });
  t.match(c, {
    port: 9000,
    host: "127.0.0.1",
    databaseUrl: "postgresql://u@db:5432/chat",
    redisUrl: "redis://cache:6379",
    logLevel: "debug",
    jwt: { issuer: "https://id.example", audience: "chat", devSecret: false },
    gateway: { trustedProxies: ["10.0.0.0/8", "192.168.1.1", "::1"] },
  });
});

t.test("every wrong value is reported, one clear line each", async (t) => {
  const err = t.throws(() =>
    loadConfig({
      PORT: "eighty",
      DATABASE_URL: "mysql://x",
      REDIS_URL: "not a url",
      JWT_SECRET: "short",
      LOG_LEVEL: "loud",
      TRUSTED_PROXIES: "10.0.0.0/99,banana",
      MAX_TEXT_LENGTH: "0",
      RESUME_DEFAULT: "sometimes",
    }),
  ) as ConfigError;
  t.type(err, ConfigError);
  const lines = err.problems.join("\n");
  for (const name of [
    "PORT",
    "DATABASE_URL",
    "REDIS_URL",
    "JWT_SECRET",
    "LOG_LEVEL",
    "MAX_TEXT_LENGTH",
    "RESUME_DEFAULT",
  ]) {
    t.match(lines, name, `${name} reported`);
  }
  t.equal(err.problems.filter((p) => p.startsWith("TRUSTED_PROXIES")).length, 2, "both bad proxy entries");
});

t.test("production refuses the development secret", async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: "production" }), /JWT_SECRET/);
  t.doesNotThrow(() =>
    loadConfig({ NODE_ENV: "production", JWT_JWKS_URL: "https://id.example/.well-known/jwks.json" }),
  );
});
