import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import t from "tap";
import { RETENTION_LOCK_KEY } from "../src/chatlog/retention.js";
import { runNode } from "./helpers/child-run.js";
import { createTestDatabase } from "./helpers/databases.js";
import { freePort } from "./helpers/processes.js";

// `chatrelay log prune` (the built dist/cli.js, a child process) against a PostgreSQL test database:
// what it prunes, --room, --dry-run, progress, and its exit codes. Build first:
// `npx tsc -p tsconfig.build.json` in apps/server.

const SERVER_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(SERVER_DIR, "dist", "cli.js");

const prune = (args: string[], env: Record<string, string>, timeoutMs = 60_000) =>
  runNode([CLI, "log", "prune", ...args], { env, timeoutMs });

const hasStack = (text: string) => /^\s+at /m.test(text);

t.test("chatrelay log prune", async (t) => {
  t.ok(existsSync(CLI), `${CLI} exists (run \`npx tsc -p tsconfig.build.json\` in apps/server first)`);
  const db = await createTestDatabase();
  t.teardown(db.drop);
  const sql = new pg.Client({ connectionString: db.url });
  const env = { DATABASE_URL: db.url };

  // The first run migrates the empty database; nothing to prune.
  const first = await prune([], { ...env, RETENTION_MAX_COUNT: "10" });
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /^pruned 0 entries in 0 of 0 rooms/);

  await sql.connect();
  t.teardown(() => sql.end());
  const fill = async (room: number, n: number, daysOld: number) => {
    await sql.query("INSERT INTO chat_room (room_id, last_seq) VALUES ($1, $2)", [room, n]);
    await sql.query(
      `INSERT INTO chat_message (room_id, seq, id, sender_id, nickname, user_type, text, created_at)
       SELECT $1, s, gen_random_uuid(), 5, 'n', 'viewer', 't' || s, now() - make_interval(days => $3::int)
       FROM generate_series(1, $2::int) AS s`,
      [room, n, daysOld],
    );
  };
  const count = async (room: number) =>
    (
      await sql.query<{ n: number; min: string | null }>(
        "SELECT count(*)::int AS n, min(seq)::text AS min FROM chat_message WHERE room_id = $1",
        [room],
      )
    ).rows[0];
  await fill(1, 3000, 0);
  await fill(2, 500, 0);
  await fill(3, 200, 40);

  const help = await prune(["--help"], env);
  t.equal(help.code, 0);
  t.match(help.stdout, /usage: chatrelay log prune \[--room N\] \[--dry-run\]/);

  for (const bad of [["--bogus"], ["--room"], ["--room", "abc"], ["--room", "0"], ["extra"]]) {
    const out = await prune(bad, { ...env, RETENTION_MAX_COUNT: "10" });
    t.equal(out.code, 2, `${bad.join(" ")}: exit 2`);
    t.notOk(hasStack(out.stderr), "no stack trace");
    t.notOk(out.stderr.includes("bogus") || out.stderr.includes("abc"), "the bad argument is not echoed");
  }
  const badEnv = await prune([], { ...env, RETENTION_MAX_AGE_DAYS: "seven-ish" });
  t.equal(badEnv.code, 78, "a bad RETENTION_* setting: exit 78");
  t.match(badEnv.stderr, /RETENTION_MAX_AGE_DAYS must be a whole number/);
  t.notOk(badEnv.stderr.includes("seven-ish"), "the value is not echoed");

  const dry = await prune(["--dry-run"], { ...env, RETENTION_MAX_COUNT: "100", RETENTION_BATCH_ROWS: "400" });
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, /^would prune 3400 entries in 3 of 3 rooms/, "2900 + 400 + 100");
  t.equal((await count(1))?.n, 3000, "a dry run deletes nothing");

  const one = await prune(["--room", "2"], { ...env, RETENTION_MAX_COUNT: "100" });
  t.equal(one.code, 0, one.stderr);
  t.match(one.stdout, /^pruned 400 entries in 1 of 1 rooms/);
  t.same(await count(2), { n: 100, min: "401" }, "--room 2: its newest 100 kept");
  t.equal((await count(1))?.n, 3000, "room 1 untouched");

  const all = await prune([], {
    ...env,
    RETENTION_MAX_AGE_DAYS: "30",
    RETENTION_MAX_COUNT: "1000",
    RETENTION_BATCH_ROWS: "250",
  });
  t.equal(all.code, 0, all.stderr);
  t.match(all.stdout, /^pruned 2200 entries in 2 of 3 rooms with a limit, [\d.]+ s \(\d+ rows\/s\)/, "summary");
  t.match(all.stderr, /global policy: max age 30 days, max count 1000 per room; batches of 250 rows/);
  t.match(all.stderr, /pruned: 2,200 rows, [\d,]+ rows\/s done/, "progress: rows and rate");
  t.same(await count(1), { n: 1000, min: "2001" }, "room 1: the count rule");
  t.same(await count(2), { n: 100, min: "401" }, "room 2: within both limits");
  t.same(await count(3), { n: 0, min: null }, "room 3: every entry older than 30 days");

  // A node (here: the test) holds the retention lock: exit 75, nothing done.
  await fill(4, 50, 0);
  await sql.query(`SELECT pg_advisory_lock(${RETENTION_LOCK_KEY})`);
  const locked = await prune([], { ...env, RETENTION_MAX_COUNT: "10" });
  t.equal(locked.code, 75, "another pass running: exit 75");
  t.match(locked.stderr, /another retention pass is running/);
  t.equal((await count(4))?.n, 50);
  await sql.query(`SELECT pg_advisory_unlock(${RETENTION_LOCK_KEY})`);
  t.equal((await prune([], { ...env, RETENTION_MAX_COUNT: "10" })).code, 0);
  t.equal((await count(4))?.n, 10);

  // Nothing listens there: the chat log is unreachable (exit 69), without a stack or the password.
  const port = await freePort();
  const down = await prune([], {
    DATABASE_URL: `postgresql://u:hunter2@127.0.0.1:${port}/x`,
    RETENTION_MAX_COUNT: "1",
  });
  t.equal(down.code, 69, down.stderr);
  t.notOk(down.stderr.includes("hunter2"), "no password");
  t.notOk(hasStack(down.stderr), "no stack trace");
});
