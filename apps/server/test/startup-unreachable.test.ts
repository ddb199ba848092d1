import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import t, { type Test } from "tap";
import { createTestDatabase, REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";
import { freePort, NodeProcess } from "./helpers/processes.js";

// Start-up with a store that cannot be reached: the node must stop on its own (no hang waiting for a
// store that is not there), exit non-zero, and say on stderr which store it could not reach, where
// (the address, without the password), and nothing else: no stack, no secret.
// Both stores are configured in each case, on the same host, so "connect ECONNREFUSED 127.0.0.1:<port>"
// alone would not tell an operator which of the two is down.

// A generous bound for a loaded 2-core machine: start-up (PGlite-free here) takes a second or two,
// and a refused connection is refused at once. A node that retries forever fails it.
const EXIT_WITHIN_MS = 30_000;

const db = await createTestDatabase();
t.teardown(() => db.drop());

/** A loopback port nothing listens on: what a store that is down looks like. */
async function closedPort(): Promise<number> {
  return freePort();
}

/** A URL with a password of its own, so the test can look for it in everything the node printed. */
function withPassword(raw: string, password: string): string {
  const u = new URL(raw);
  if (u.username === "") u.username = "chatrelay";
  u.password = password;
  return u.toString();
}

interface FailedStart {
  exit: { code: number | null; signal: NodeJS.Signals | null };
  stderr: string;
  /** Every line the node wrote, stdout and stderr, as one text. */
  everything: string;
  elapsedMs: number;
  listened: boolean;
}

async function startExpectingFailure(t: Test, env: Record<string, string>): Promise<FailedStart> {
  const started = performance.now();
  const node = NodeProcess.spawn("unreachable", env, await freePort());
  t.teardown(() => node.kill("SIGKILL"));
  // Rejects if the node is still running at the bound: a hang fails here.
  const exit = await node.exited(EXIT_WITHIN_MS);
  return {
    exit,
    stderr: node.stderr(),
    everything: JSON.stringify(node.lines),
    elapsedMs: performance.now() - started,
    listened: node.lines.some((l) => l.msg === "chatrelay listening"),
  };
}

function assertCleanFailure(t: Test, run: FailedStart, secrets: string[]): void {
  t.equal(run.exit.signal, null, "exited on its own (not killed by the test)");
  t.not(run.exit.code, 0, `exit code non-zero (${run.exit.code})`);
  t.notOk(run.listened, "never said it listens");
  t.ok(run.elapsedMs < EXIT_WITHIN_MS, `stopped within ${EXIT_WITHIN_MS} ms (${Math.round(run.elapsedMs)} ms)`);
  t.match(run.stderr, /^chatrelay: cannot start: /m, "one start-up error line on stderr");
  // A stack trace instead of a sentence is not an operator's message.
  t.notMatch(run.stderr, /\n\s+at /, "no stack trace on stderr");
  for (const secret of secrets) t.notOk(run.everything.includes(secret), "no password anywhere in the output");
}

t.test("Redis unreachable (PostgreSQL fine): exits non-zero, names Redis and its address", async (t) => {
  const redisPassword = `redis-pw-${randomBytes(6).toString("hex")}`;
  const pgPassword = `pg-pw-${randomBytes(6).toString("hex")}`;
  const port = await closedPort();
  const run = await startExpectingFailure(t, {
    // Trust auth on the test server: the password is configured, never needed, and must never be printed.
    DATABASE_URL: withPassword(db.url, pgPassword),
    REDIS_URL: `redis://:${redisPassword}@127.0.0.1:${port}`,
    REDIS_KEY_PREFIX: uniqueRedisPrefix(),
  });
  assertCleanFailure(t, run, [redisPassword, pgPassword]);
  t.match(run.stderr, /Redis/, "names Redis");
  t.match(run.stderr, /REDIS_URL/, "names the setting to fix");
  t.match(run.stderr, `127.0.0.1:${port}`, "names the address it tried");
  t.match(run.stderr, /ECONNREFUSED/, "says why");
  t.notMatch(run.stderr, /PostgreSQL|DATABASE_URL/, "does not blame the database, which is fine");
});

t.test("PostgreSQL unreachable (Redis fine): exits non-zero, names PostgreSQL and its address", async (t) => {
  const pgPassword = `pg-pw-${randomBytes(6).toString("hex")}`;
  const port = await closedPort();
  const run = await startExpectingFailure(t, {
    DATABASE_URL: `postgresql://chatrelay:${pgPassword}@127.0.0.1:${port}/chatrelay`,
    REDIS_URL,
    REDIS_KEY_PREFIX: uniqueRedisPrefix(),
    DB_CONNECT_TIMEOUT_MS: "2000",
  });
  assertCleanFailure(t, run, [pgPassword]);
  // Before the fix this said only "cannot start: connect ECONNREFUSED 127.0.0.1:<port>".
  t.match(run.stderr, /PostgreSQL/, "names PostgreSQL");
  t.match(run.stderr, /DATABASE_URL/, "names the setting to fix");
  t.match(run.stderr, `127.0.0.1:${port}`, "names the address it tried");
  t.match(run.stderr, /ECONNREFUSED/, "says why");
  t.notMatch(run.stderr, /Redis|REDIS_URL/, "does not blame Redis, which is fine");
});
