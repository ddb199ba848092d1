import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t, { type Test } from "tap";
import { secretWeakness, smallestPeriod } from "../src/auth/secret-strength.js";
import {
  ConfigError,
  DEFAULT_PGLITE_DATA_DIR,
  DEV_JWT_SECRET,
  isLoopbackHost,
  loadConfig,
  loadStoreConfig,
} from "../src/config.js";
import { TEST_JWT_SECRET } from "./helpers/tokens.js";

const SERVER_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const REAL_SECRET = randomBytes(32).toString("hex");

/** The ConfigError loadConfig throws for env (fails the test when it does not throw). */
function problemsOf(t: Test, env: Record<string, string>): string {
  const err = t.throws(() => loadConfig(env)) as ConfigError;
  t.type(err, ConfigError);
  return err.problems.join("\n");
}

t.test("defaults: a node on the embedded stores with the development secret", async (t) => {
  const c = loadConfig({});
  t.equal(c.port, 8080);
  t.equal(c.databaseUrl, undefined, "PGlite");
  t.equal(c.redisUrl, undefined, "in-process bus");
  t.equal(c.jwt.secret, DEV_JWT_SECRET);
  t.equal(c.jwt.devSecret, true);
  t.equal(c.host, "127.0.0.1", "the development secret listens on loopback only");
  t.equal(c.jwt.clockToleranceS, 5);
  t.equal(c.jwt.maxTokenAgeS, 86_400);
  t.equal(c.jwt.presenterRoles, undefined, "any token of the room's user may present");
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
    JWT_SECRET: REAL_SECRET,
    JWT_ISSUER: "https://id.example",
    JWT_AUDIENCE: "chat",
    JWT_CLOCK_TOLERANCE_S: "0",
    JWT_MAX_TOKEN_AGE_S: "600",
    PRESENTER_ROLES: " Presenter, streamer ",
    LOG_LEVEL: "debug",
    TRUSTED_PROXIES: "10.0.0.0/8, 192.168.1.1, ::1",
  });
  t.match(c, {
    port: 9000,
    host: "127.0.0.1",
    databaseUrl: "postgresql://u@db:5432/chat",
    redisUrl: "redis://cache:6379",
    logLevel: "debug",
    jwt: { issuer: "https://id.example", audience: "chat", devSecret: false, clockToleranceS: 0, maxTokenAgeS: 600 },
    gateway: { trustedProxies: ["10.0.0.0/8", "192.168.1.1", "::1"] },
  });
  t.same(c.jwt.presenterRoles, ["presenter", "streamer"], "lower-cased, trimmed");
  t.equal(loadConfig({ JWT_SECRET: REAL_SECRET }).host, "0.0.0.0", "a real secret listens everywhere by default");
});

t.test("every wrong value is reported, one clear line each", async (t) => {
  const lines = problemsOf(t, {
    PORT: "eighty",
    DATABASE_URL: "mysql://x",
    REDIS_URL: "not a url",
    JWT_SECRET: "short",
    LOG_LEVEL: "loud",
    TRUSTED_PROXIES: "10.0.0.0/99,banana",
    MAX_TEXT_LENGTH: "0",
    RESUME_DEFAULT: "sometimes",
    JWT_CLOCK_TOLERANCE_S: "301",
    JWT_MAX_TOKEN_AGE_S: "-1",
    PRESENTER_ROLES: "presenter,bad role!",
  });
  for (const name of [
    "PORT",
    "DATABASE_URL",
    "REDIS_URL",
    "JWT_SECRET",
    "LOG_LEVEL",
    "MAX_TEXT_LENGTH",
    "RESUME_DEFAULT",
    "JWT_CLOCK_TOLERANCE_S",
    "JWT_MAX_TOKEN_AGE_S",
    "PRESENTER_ROLES",
  ]) {
    t.match(lines, name, `${name} reported`);
  }
  t.equal(lines.split("\n").filter((p) => p.startsWith("TRUSTED_PROXIES")).length, 2, "both bad proxy entries");
  t.match(problemsOf(t, { JWT_SECRET: REAL_SECRET, PRESENTER_ROLES: " , " }), /PRESENTER_ROLES lists no role/);
});

t.test("production refuses the development secret", async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: "production" }), /JWT_SECRET/);
  t.doesNotThrow(() =>
    loadConfig({ NODE_ENV: "production", JWT_JWKS_URL: "https://id.example/.well-known/jwks.json" }),
  );
});

t.test("placeholder and weak secrets are refused without printing them", async (t) => {
  const weakJwt = [
    "change-me-to-at-least-32-random-characters",
    DEV_JWT_SECRET,
    DEV_JWT_SECRET.toUpperCase(),
    "my-jwt-secret-CHANGEME-0123456789abcdef",
    "placeholder-0123456789abcdefghijklmnop",
    "this-is-an-example-secret-0123456789abc",
    "your-secret-key-goes-here-0123456789ab",
    "a".repeat(40),
    "abcd".repeat(10),
    "0123456789abcdef".repeat(2),
    `${"a".repeat(30)}b1c2d3e4f5g6`,
  ];
  for (const secret of weakJwt) {
    const err = t.throws(() => loadConfig({ JWT_SECRET: secret })) as ConfigError;
    t.match(err.problems.join("\n"), /^JWT_SECRET /m, "reported under its name");
    t.notOk(err.message.includes(secret), "the message does not carry the secret");
  }
  t.match(problemsOf(t, { JWT_SECRET: DEV_JWT_SECRET }), /built-in development secret/);
  const weakGateway = ["change-me-gateway-secret", "change-me", "x".repeat(20), "short"];
  for (const secret of weakGateway) {
    const err = t.throws(() => loadConfig({ JWT_SECRET: REAL_SECRET, GATEWAY_SECRET: secret })) as ConfigError;
    t.match(err.problems.join("\n"), /^GATEWAY_SECRET /m);
    t.notOk(err.message.includes(secret), "the message does not carry the secret");
  }
});

t.test("random secrets of the minimum length pass the strength checks", async (t) => {
  for (let i = 0; i < 300; i++) {
    t.equal(secretWeakness(randomBytes(16).toString("hex"), 32), undefined);
    t.equal(secretWeakness(randomBytes(8).toString("hex"), 16), undefined);
    t.equal(secretWeakness(randomBytes(24).toString("base64"), 32), undefined);
  }
  for (const fixture of [TEST_JWT_SECRET, "gateway-shared-secret-0123456789"]) {
    t.equal(secretWeakness(fixture, 16), undefined, "the test fixtures' secrets are accepted");
  }
  t.equal(smallestPeriod("abcabca"), 3);
  t.equal(smallestPeriod("abcd"), 4);
});

t.test("JWT_SECRET and JWT_JWKS_URL together are ambiguous", async (t) => {
  const lines = problemsOf(t, { JWT_SECRET: REAL_SECRET, JWT_JWKS_URL: "https://id.example/jwks.json" });
  t.match(lines, /both set: drop JWT_SECRET .* or drop JWT_JWKS_URL/);
});

t.test("a JWKS URL must be https, or http on loopback", async (t) => {
  for (const url of ["http://id.example/jwks.json", "http://10.0.0.5/jwks", "http://127.0.0.1.evil.test/jwks"]) {
    t.match(problemsOf(t, { JWT_JWKS_URL: url }), /JWT_JWKS_URL must use https:/, url);
  }
  for (const url of [
    "https://id.example/jwks.json",
    "http://127.0.0.1:8081/jwks.json",
    "http://127.9.8.7/jwks",
    "http://localhost:9000/jwks",
    "http://[::1]:9000/jwks",
  ]) {
    t.equal(loadConfig({ JWT_JWKS_URL: url }).jwt.jwksUrl, url, url);
  }
});

t.test("the development secret keeps the node on loopback", async (t) => {
  for (const host of ["0.0.0.0", "::", "10.1.2.3", "chat.internal"]) {
    const lines = problemsOf(t, { HOST: host });
    t.match(lines, /^HOST=.* not a loopback address.*set a real JWT_SECRET/m, host);
  }
  for (const host of ["127.0.0.1", "::1", "localhost", "127.0.0.2"]) {
    t.equal(loadConfig({ HOST: host }).host, host, `${host} is loopback`);
  }
  t.equal(
    loadConfig({ HOST: "0.0.0.0", JWT_SECRET: REAL_SECRET }).host,
    "0.0.0.0",
    "a real secret may listen anywhere",
  );
  t.throws(
    () => loadConfig({ HOST: "0.0.0.0", JWT_SECRET: "  " }),
    /HOST=0\.0\.0\.0/,
    "a blank secret counts as unset",
  );
});

t.test("loopback hosts", async (t) => {
  for (const h of ["127.0.0.1", "127.255.255.254", "localhost", "LOCALHOST", "::1", "[::1]", "::ffff:127.0.0.1"]) {
    t.ok(isLoopbackHost(h), h);
  }
  for (const h of ["0.0.0.0", "::", "128.0.0.1", "127.0.0.256", "127.0.0.1.evil.test", "localhost.evil.test", ""]) {
    t.notOk(isLoopbackHost(h), h);
  }
});

t.test("store config: only the store settings, no JWT demanded", async (t) => {
  const store = loadStoreConfig({ NODE_ENV: "production", DATABASE_URL: "postgresql://u@db:5432/chat" });
  t.same(store, {
    databaseUrl: "postgresql://u@db:5432/chat",
    pgliteDataDir: DEFAULT_PGLITE_DATA_DIR,
    pgliteThread: "worker",
    migrationsDir: undefined,
  });
  t.throws(() => loadStoreConfig({ DATABASE_URL: "mysql://x" }), /DATABASE_URL/);
  t.equal(loadStoreConfig({ PGLITE_THREAD: "main" }).pgliteThread, "main");
  const bad = t.throws(() => loadStoreConfig({ PGLITE_THREAD: "ZQXJ-elsewhere" })) as ConfigError;
  t.match(bad.message, /PGLITE_THREAD must be "worker" or "main"/);
  t.notMatch(bad.message, /ZQXJ/, "the value is not echoed");

  const missing = join(tmpdir(), `chatrelay-no-such-dir-${process.pid}`);
  const err = t.throws(() => loadStoreConfig({ MIGRATIONS_DIR: missing })) as ConfigError;
  t.type(err, ConfigError);
  t.match(err.message, /MIGRATIONS_DIR=.* is not a folder/);
  t.throws(() => loadConfig({ MIGRATIONS_DIR: missing }), /MIGRATIONS_DIR/, "the server refuses it too");

  const dir = mkdtempSync(join(tmpdir(), "chatrelay-migrations-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.equal(loadStoreConfig({ MIGRATIONS_DIR: dir }).migrationsDir, dir);
});

t.test("the default PGlite folder is the server package's, whatever the cwd", async (t) => {
  t.equal(DEFAULT_PGLITE_DATA_DIR, join(SERVER_DIR, ".data", "pglite"));
  const cwd = process.cwd();
  t.teardown(() => process.chdir(cwd));
  for (const dir of [join(SERVER_DIR, "..", ".."), SERVER_DIR, tmpdir()]) {
    process.chdir(dir);
    t.equal(loadStoreConfig({}).pgliteDataDir, join(SERVER_DIR, ".data", "pglite"), `from ${dir}`);
    t.equal(loadConfig({}).pgliteDataDir, join(SERVER_DIR, ".data", "pglite"), `server from ${dir}`);
  }
});

t.test("a Redis Cluster: REDIS_CLUSTER_NODES or a redis+cluster:// REDIS_URL", async (t) => {
  const base = { JWT_SECRET: REAL_SECRET };
  const nodes = loadConfig({ ...base, REDIS_CLUSTER_NODES: "10.0.0.1:7000, redis-2:7001,[::1]:7002" });
  t.equal(nodes.redisUrl, undefined, "not the single-Redis adapters");
  t.same(nodes.redisCluster, {
    nodes: [
      { host: "10.0.0.1", port: 7000 },
      { host: "redis-2", port: 7001 },
      { host: "::1", port: 7002 },
    ],
    tls: false,
    username: undefined,
    password: undefined,
  });
  const url = loadConfig({ ...base, REDIS_URL: "rediss+cluster://app:p%40ss@r1:6379,r2:6379/" });
  t.same(url.redisCluster, {
    nodes: [
      { host: "r1", port: 6379 },
      { host: "r2", port: 6379 },
    ],
    tls: true,
    username: "app",
    password: "p@ss",
  });
  t.equal(
    loadConfig({ ...base, REDIS_URL: "redis://cache:6379" }).redisCluster,
    undefined,
    "one Redis stays one Redis",
  );

  const both = problemsOf(t, { ...base, REDIS_URL: "redis://a:1", REDIS_CLUSTER_NODES: "b:2" });
  t.match(both, /set REDIS_URL or REDIS_CLUSTER_NODES, not both/);
  for (const [value, says] of [
    ["r1:6379,", /REDIS_CLUSTER_NODES entry 2 is not host:port/],
    ["r1", /entry 1 is not host:port/],
    ["r1:0", /entry 1 is not host:port/],
    ["r1:70000", /entry 1 is not host:port/],
    ["r1:6379 ; rm -rf", /entry 1 is not host:port/],
    [Array.from({ length: 65 }, (_, i) => `h${i}:1`).join(","), /more than 64 nodes/],
  ] as const) {
    const problems = problemsOf(t, { ...base, REDIS_CLUSTER_NODES: value });
    t.match(problems, says, JSON.stringify(value).slice(0, 40));
    t.notMatch(problems, "rm -rf", "the value is not echoed");
  }
  const secretUrl = problemsOf(t, { ...base, REDIS_URL: "redis+cluster://u:hunter2@r1:6379/db?x=1" });
  t.match(secretUrl, /REDIS_URL must not carry a path or options/);
  t.notMatch(secretUrl, "hunter2", "a password in a wrong URL is not printed");
  t.match(problemsOf(t, { ...base, REDIS_URL: "redis+cluster://u:%zz@r1:6379" }), /badly encoded credentials/);
  t.match(
    problemsOf(t, { ...base, REDIS_CLUSTER_NODES: "r1:6379", REDIS_KEY_PREFIX: "app{x}:" }),
    /REDIS_KEY_PREFIX must not contain \{ or \} on a Redis Cluster/,
  );
  t.equal(loadConfig({ ...base, REDIS_URL: "redis://a:1", REDIS_KEY_PREFIX: "app{x}:" }).redisKeyPrefix, "app{x}:");
});
