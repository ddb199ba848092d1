import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { runNode } from "./helpers/child-run.js";
import { createTestDatabase } from "./helpers/databases.js";
import { insertRows, insertTexts, storeOf } from "./helpers/export.js";
import { request } from "./helpers/http.js";
import { call } from "./helpers/moderation.js";
import { startTestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";

// `chatrelay log export` as operators run it: the built dist/cli.js in a child process against a
// real PostgreSQL database. Its output is byte for byte the export route's; bad arguments exit 2.

const SERVER_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(SERVER_DIR, "dist", "cli.js");

const pgDb = await createTestDatabase();
t.teardown(() => pgDb.drop());
// A node on the same database: it migrates it, and serves the route the CLI is compared with.
const server = await startTestServer({ DATABASE_URL: pgDb.url });
t.teardown(() => server.shutdown());
const db = storeOf(server);
const operator = await mintToken({ user_idx: 1, role: "operator" });
const work = mkdtempSync(join(tmpdir(), "chatrelay-export-cli-"));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

const ROOM = 611;
await insertRows(db, ROOM, 4500, new Date("2026-01-01T00:00:00Z"));
await insertTexts(db, ROOM, [{ text: "a,b" }, { text: '=1+2 "q"' }, { text: "two\nlines" }]);
t.equal((await call(server.http, "DELETE", `/v1/rooms/${ROOM}/messages/5`, ROOM)).status, 200, "a tombstone");

const cli = (args: string[], timeoutMs = 60_000) =>
  runNode([CLI, "log", "export", ...args], { env: { DATABASE_URL: pgDb.url }, cwd: work, timeoutMs });

async function route(query: string): Promise<string> {
  const res = await request(`${server.http}/v1/rooms/${ROOM}/export${query}`, {
    headers: { authorization: `Bearer ${operator}` },
  });
  if (res.status !== 200) throw new Error(`the route answered ${res.status}`);
  return res.text;
}

t.ok(existsSync(CLI), "built (run `npx tsc -p tsconfig.build.json` in apps/server first)");

t.test("stdout equals the route's body, for each format and range", async (t) => {
  const cases: [string[], string][] = [
    [[], ""],
    [["--format", "csv"], "?format=csv"],
    [["--after-seq", "1000", "--to-seq", "3000"], "?afterSeq=1000&toSeq=3000"],
    [
      ["--from", "2026-01-01T10:00:00+09:00", "--to", "2026-01-01T02:00:00Z", "--format", "csv"],
      "?from=2026-01-01T10:00:00%2B09:00&to=2026-01-01T02:00:00Z&format=csv",
    ],
    [["--after-seq", "4503"], "?afterSeq=4503"],
    [["--after-seq", "4503", "--format", "csv"], "?afterSeq=4503&format=csv"],
  ];
  for (const [args, query] of cases) {
    const out = await cli(["--room", String(ROOM), ...args]);
    t.equal(out.code, 0, `${args.join(" ")}: exit 0 (${out.stderr})`);
    const expected = await route(query);
    t.ok(out.stdout === expected, `${args.join(" ") || "(whole room)"}: ${out.stdout.length} chars, as the route`);
  }
  const whole = await cli(["--room", String(ROOM)]);
  const rows = whole.stdout.trim().split("\n");
  t.equal(rows.length, 4504, "every row (4,503 messages and the delete event)");
  t.match(JSON.parse(rows[4] as string), { seq: 5, deleted: true, text: "", deletedBy: ROOM }, "the tombstone");
  t.match(
    whole.stderr,
    /export room 611: 4,504 rows, [\d,]+ rows\/s, 100\.0% of 4,504 done/,
    "progress with the total",
  );
  const timed = await cli(["--room", String(ROOM), "--from", "2026-01-01", "--to", "2026-01-05"]);
  t.match(timed.stderr, /export room 611: 4,500 rows, [\d,]+ rows\/s done/, "no total (nor ETA) for a time range");
});

t.test("--out: a new file appears complete; with --after-seq an existing one is appended to", async (t) => {
  for (const format of ["ndjson", "csv"]) {
    const file = join(work, `room.${format}`);
    const full = await route(`?format=${format}`);
    t.equal((await cli(["--room", String(ROOM), "--format", format, "--out", file])).code, 0);
    t.ok(readFileSync(file, "utf8") === full, `${format}: the file equals the route's export`);
    t.same(
      readdirSync(work).filter((f) => f.endsWith(".partial")),
      [],
      "no partial file left",
    );

    const resumed = join(work, `resumed.${format}`);
    t.equal((await cli(["--room", String(ROOM), "--format", format, "--to-seq", "2000", "--out", resumed])).code, 0);
    const first = readFileSync(resumed, "utf8");
    t.ok(first.length > 0 && first.length < full.length, "the first part");
    const second = await cli(["--room", String(ROOM), "--format", format, "--after-seq", "2000", "--out", resumed]);
    t.equal(second.code, 0, second.stderr);
    t.ok(readFileSync(resumed, "utf8") === full, `${format}: both parts appended are the whole export (one header)`);
  }
});

t.test("bad arguments exit 2 without repeating the value; --help exits 0", async (t) => {
  const cases: [string[], string][] = [
    [[], "--room"],
    [["--room", "0"], ""],
    [["--room", "abcdefgh"], "abcdefgh"],
    [["--room", "1", "--from", "2026-02-30T00:00:00Z"], "2026-02-30"],
    [["--room", "1", "--from", "2026-01-02", "--to", "2026-01-01"], "2026-01-0"],
    [["--room", "1", "--after-seq", "9007199254740992"], "9007199254740992"],
    [["--room", "1", "--after-seq", "9", "--to-seq", "3"], ""],
    [["--room", "1", "--format", "xmlish"], "xmlish"],
    [["--room", "1", "--bogus-option"], "bogus-option"],
    [["--room", "1", "stray-positional"], "stray-positional"],
    [["--room", "1", "--out", ""], ""],
  ];
  for (const [args, value] of cases) {
    const out = await cli(args);
    t.equal(out.code, 2, `${args.join(" ")}: exit 2`);
    t.equal(out.stdout, "", "nothing on stdout");
    t.match(out.stderr, /^chatrelay log export: .+\nusage: chatrelay log/, "says what is wrong, then the usage");
    if (value !== "" && value !== "--room") t.notOk(out.stderr.includes(value), `${value} is not echoed`);
  }
  const help = await cli(["--help"]);
  t.equal(help.code, 0);
  t.match(help.stdout, /usage: chatrelay log export --room N/);
});
