import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { runNode } from "./helpers/child-run.js";
import { createTestDatabase, REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { startTestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// `chatrelay log erase` and `chatrelay log stats` as an operator runs them: the built CLI in a
// child process against a PostgreSQL database that a running node (on Redis) serves.
// Needs the build: `npx tsc -p tsconfig.build.json`.
const SERVER_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(SERVER_DIR, "dist", "cli.js");
const EVIL = "zzEVILzz";

const pgDb = await createTestDatabase();
t.teardown(() => pgDb.drop());
const prefix = uniqueRedisPrefix();
const server = await startTestServer({ DATABASE_URL: pgDb.url, REDIS_URL, REDIS_KEY_PREFIX: prefix });
t.teardown(() => server.shutdown());

/** The CLI to its end (bounded), with only the store settings given here (and Redis when asked). */
const cli = (args: string[], extra: Record<string, string> = {}) =>
  runNode([CLI, "log", ...args], { env: { DATABASE_URL: pgDb.url, ...extra }, timeoutMs: 30_000 });

const hasStack = (text: string) => /^\s+at /m.test(text);

async function presenter(room: number): Promise<TestSocket> {
  const socket = new TestSocket(
    `${server.ws}/v1/rooms/${room}/presenter?access_token=${await mintToken({ user_idx: room })}`,
  );
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready");
  return socket;
}

async function post(room: number, user: number, text: string): Promise<number> {
  const res = await request<Record<string, unknown>>(`${server.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${await mintToken({ user_idx: user })}` },
    body: { text },
  });
  if (res.status !== 201) throw new Error(`post answered ${res.status}`);
  return res.body.seq as number;
}

const texts = async (user: number) =>
  (
    await server.db.prisma.$queryRawUnsafe<{ text: string }[]>(
      "SELECT text FROM chat_message WHERE sender_id = $1 ORDER BY room_id, seq",
      user,
    )
  ).map((r) => r.text);

t.test("erase: usage and refusals exit 2 and change nothing", async (t) => {
  const room = 901;
  const socket = await presenter(room);
  t.teardown(() => socket.close());
  await post(room, 7001, "first");
  await post(room, 7001, "second");

  const help = await cli(["erase", "--help"]);
  t.equal(help.code, 0);
  t.match(help.stdout, /--user N/);

  const dry = await cli(["erase", "--user", "7001", "--operator", "1", "--reason", "request 1"]);
  t.equal(dry.code, 2, dry.stderr);
  t.match(dry.stderr, /user 7001: 2 message\(s\) to erase in 1 room\(s\)/);
  t.match(dry.stderr, /room 901: 2/);
  t.match(dry.stderr, /--yes/);
  t.same(await texts(7001), ["first", "second"], "without --yes nothing changes");

  for (const args of [
    ["erase", "--user", EVIL, "--operator", "1", "--reason", "r", "--yes"],
    ["erase", "--user", "7001", "--reason", "r", "--yes"],
    ["erase", "--user", "7001", "--operator", "1", "--yes"],
    ["erase", "--user", "7001", "--operator", "1", "--reason", "x".repeat(501), "--yes"],
    ["erase", `--${EVIL}`, "--user", "7001", "--operator", "1", "--reason", "r", "--yes"],
  ]) {
    const res = await cli(args);
    t.equal(res.code, 2, `${args.join(" ").slice(0, 60)}: ${res.stderr}`);
    t.notMatch(res.stderr, EVIL, "the bad value is not echoed");
    t.notOk(hasStack(res.stderr), "no stack trace");
  }
  t.same(await texts(7001), ["first", "second"]);
  const audited = await server.db.prisma.$queryRawUnsafe<{ n: number }[]>("SELECT count(*)::int AS n FROM log_erasure");
  t.equal(audited[0]?.n, 0, "nothing audited");
});

t.test(
  "erase --yes with REDIS_URL: done (exit 0), audited, and the live presenter gets the event at once",
  async (t) => {
    const room = 902;
    const socket = await presenter(room);
    t.teardown(() => socket.close());
    await post(room, 7002, "one");
    await post(room, 7002, "two");
    const kept = await post(room, 7003, "not theirs");
    await socket.next((f) => f.type === "message" && f.seq === kept, "the last chat");

    const res = await cli(["erase", "--user", "7002", "--operator", "1", "--reason", "request 2", "--yes"], {
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
    });
    t.equal(res.code, 0, res.stderr);
    const result = JSON.parse(res.stdout) as Record<string, unknown>;
    t.match(result, { userId: 7002, rooms: 1, messages: 2, erasureId: String });
    t.match(res.stderr, /room 902: 2 erased, erase event seq 4/);
    t.match(res.stderr, /erased: 2 rows/);
    // Published on the cluster's bus: no later chat is needed for the presenter to get it.
    const event = await socket.next((f) => f.type === "moderation", "the erase event");
    t.match(event, { action: "erase", seq: 4, by: 1, data: { userId: 7002, count: 2 } });
    t.same(await texts(7002), ["", ""]);
    t.same(await texts(7003), ["not theirs"]);
    const audit = await request<{ items: Record<string, unknown>[] }>(`${server.http}/v1/erasures`, {
      headers: { authorization: `Bearer ${await mintToken({ user_idx: 1, role: "operator" })}` },
    });
    t.match(audit.body.items[0], { erasureId: result.erasureId, reason: "request 2", operatorId: 1, messages: 2 });

    const again = await cli(["erase", "--user", "7002", "--operator", "1", "--reason", "request 2", "--yes"]);
    t.equal(again.code, 0, again.stderr);
    t.match(JSON.parse(again.stdout), { rooms: 0, messages: 0 }, "a second run finds nothing and still succeeds");
  },
);

t.test("erase --yes without REDIS_URL: the presenter reads the event from the log at the next chat", async (t) => {
  const room = 903;
  const socket = await presenter(room);
  t.teardown(() => socket.close());
  await post(room, 7004, "bye");
  await socket.next((f) => f.type === "message" && f.seq === 1, "the chat");
  const res = await cli(["erase", "--user", "7004", "--operator", "1", "--reason", "request 3", "--yes"]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stderr, /REDIS_URL is not set/);
  const next = await post(room, 7005, "later");
  t.equal(next, 3, "the event took seq 2");
  await socket.next((f) => f.type === "message" && f.seq === 3, "the later chat");
  const frames = socket.json().filter((f) => f.type === "message" || f.type === "moderation");
  t.same(
    frames.map((f) => [f.type, f.seq]),
    [
      ["message", 1],
      ["moderation", 2],
      ["message", 3],
    ],
    "gap fill delivered the erase event in order",
  );
});

t.test("stats: a room and the busiest rooms, as a table and as JSON; bad arguments exit 2", async (t) => {
  const room = 904;
  const socket = await presenter(room);
  t.teardown(() => socket.close());
  // Four: more than any other room of this file.
  for (const user of [7010, 7010, 7011, 7012]) await post(room, user, "count me");

  const json = await cli(["stats", "--room", String(room), "--json", "--rollup"]);
  t.equal(json.code, 0, json.stderr);
  t.match(json.stderr, /rollup: /);
  t.match(JSON.parse(json.stdout), {
    roomId: room,
    messages: 4,
    distinctSenders: 3,
    topSenders: [
      { senderId: 7010, messages: 2 },
      { senderId: 7011, messages: 1 },
      { senderId: 7012, messages: 1 },
    ],
  });
  const table = await cli(["stats", "--room", String(room)]);
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, /messages\s+4/);
  t.match(table.stdout, /distinct senders\s+3/);
  t.match(table.stdout, /7010\s+2/);

  const busiest = await cli(["stats", "--busiest", "--limit", "1", "--json"]);
  t.equal(busiest.code, 0, busiest.stderr);
  t.same(JSON.parse(busiest.stdout).items, [{ roomId: room, messages: 4 }]);
  const busiestTable = await cli(["stats", "--busiest"]);
  t.match(busiestTable.stdout, /busiest rooms/);
  t.match(busiestTable.stdout, new RegExp(`${room}\\s+4`));

  for (const args of [
    ["stats"],
    ["stats", "--room", "1", "--busiest"],
    ["stats", "--room", EVIL],
    ["stats", "--room", "1", "--from", EVIL],
    ["stats", "--busiest", "--from", "2026-01-01", "--to", "2026-03-01"],
    ["stats", "--busiest", "--limit", "0"],
    ["stats", "--busiest", `--${EVIL}`],
  ]) {
    const res = await cli(args);
    t.equal(res.code, 2, `${args.join(" ")}: ${res.stderr}`);
    t.notMatch(res.stderr, EVIL, "the bad value is not echoed");
    t.notOk(hasStack(res.stderr), "no stack trace");
  }
});
