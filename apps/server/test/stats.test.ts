import t from "tap";
import { type Database, openDatabase } from "../src/chatlog/database.js";
import { STATS_ROLLUP_LOCK, StatsRollup } from "../src/chatlog/stats-rollup.js";
import { createTestDatabase } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { pollUntil } from "./helpers/wait.js";
import { TestSocket } from "./helpers/ws-client.js";

// Statistics (issue #13 item 4), on both chat log targets: numbers equal what the test wrote
// (rows with chosen times written straight into the log, and posts through the API), before and
// after the rollup, which is idempotent and runs one transaction at a time cluster-wide.
const pgDb = await createTestDatabase();
t.teardown(() => pgDb.drop());

type Json = Record<string, unknown>;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// Three days ago, UTC midnight: inside any default retention and the 31-day window.
const BASE = Math.floor(Date.now() / DAY) * DAY - 3 * DAY;
const at = (hours: number, minutes = 0) => new Date(BASE + hours * HOUR + minutes * 60_000);
const iso = (d: Date) => d.toISOString();
const EVIL = "zzEVILzz";

interface Row {
  room: number;
  sender: number;
  at: Date;
  kind?: string;
}

/** Appends rows to rooms' logs as the writer would (next seqs, counter bumped in the same transaction). */
async function insertRows(db: Database, rows: Row[]): Promise<void> {
  await db.transaction(async (s) => {
    for (const r of rows) {
      const [room] = await s.query<{ last_seq: unknown }>(
        `INSERT INTO chat_room AS c (room_id, last_seq) VALUES ($1, 1)
         ON CONFLICT (room_id) DO UPDATE SET last_seq = c.last_seq + 1 RETURNING c.last_seq`,
        [r.room],
      );
      const kind = r.kind ?? "message";
      await s.query(
        `INSERT INTO chat_message (room_id, seq, id, sender_id, nickname, user_type, text, created_at, kind, event)
         VALUES ($1, $2, gen_random_uuid(), $3, $4, 'viewer', $5, $6, $7, $8::jsonb)`,
        [
          r.room,
          Number(room?.last_seq),
          r.sender,
          kind === "message" ? `user-${r.sender}` : "",
          kind === "message" ? "hello" : "",
          r.at,
          kind,
          kind === "message" ? null : JSON.stringify({ userId: 5 }),
        ],
      );
    }
  });
}

const times = (n: number, row: Row): Row[] => Array.from({ length: n }, () => row);

/** One pass that found no other node's pass holding the lock. */
async function rollUp(rollup: StatsRollup): Promise<{ rooms: number; messages: number }> {
  return pollUntil(
    async () => {
      const pass = await rollup.runOnce();
      return pass.busy ? undefined : pass;
    },
    "a rollup pass not refused by the lock",
    10_000,
  );
}

for (const [target, env] of [
  ["PGlite", {}],
  ["PostgreSQL", { DATABASE_URL: pgDb.url }],
] as const) {
  t.test(target, async (t) => {
    const server: TestServer = await startTestServer(env);
    t.teardown(() => server.shutdown());
    const operator = await mintToken({ user_idx: 1, role: "operator" });
    const get = (path: string, token = operator) =>
      request<Json>(`${server.http}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const rollup = new StatsRollup(server.db);

    await insertRows(server.db, [
      { room: 701, sender: 3, at: at(-48) }, // before the window
      ...times(3, { room: 701, sender: 1, at: at(10, 5) }),
      { room: 701, sender: 2, at: at(10, 59) },
      { room: 701, sender: 701, at: at(10, 10), kind: "ban" }, // a moderation event: never counted
      ...times(2, { room: 701, sender: 2, at: at(11, 30) }),
      { room: 701, sender: 3, at: at(33) }, // the next day, 09:00
      ...times(10, { room: 702, sender: 5, at: at(12) }),
      { room: 703, sender: 6, at: at(12) },
    ]);
    const window = `from=${iso(at(0))}&to=${iso(at(48))}`;
    const expected701 = {
      roomId: 701,
      from: iso(at(0)),
      to: iso(at(48)),
      messages: 7,
      distinctSenders: 3,
      firstMessageAt: iso(at(10, 5)),
      lastMessageAt: iso(at(33)),
      hourly: [
        { hour: iso(at(10)), messages: 4 },
        { hour: iso(at(11)), messages: 2 },
        { hour: iso(at(33)), messages: 1 },
      ],
      daily: [
        { day: iso(at(0)), messages: 6 },
        { day: iso(at(24)), messages: 1 },
      ],
      topSenders: [
        { senderId: 1, messages: 3 },
        { senderId: 2, messages: 3 },
        { senderId: 3, messages: 1 },
      ],
    };
    const busiest = [
      { roomId: 702, messages: 10 },
      { roomId: 701, messages: 7 },
      { roomId: 703, messages: 1 },
    ];

    t.test("a room's numbers and the busiest rooms, before the rollup, after it, and after it again", async (t) => {
      for (const phase of ["from the log", "after a rollup", "after a second rollup"]) {
        if (phase === "after a rollup") t.ok((await rollUp(rollup)).messages >= 17, "the pass counted the rows");
        if (phase === "after a second rollup") t.equal((await rollUp(rollup)).messages, 0, "nothing left to count");
        const room = await get(`/v1/rooms/701/stats?${window}`);
        t.equal(room.status, 200, room.text);
        t.same(room.body, expected701, `room 701 ${phase}`);
        const top = await get(`/v1/stats/rooms?${window}`);
        t.same(top.body, { from: iso(at(0)), to: iso(at(48)), items: busiest }, `busiest ${phase}`);
        const two = await get(`/v1/stats/rooms?${window}&limit=2`);
        t.same(two.body.items, busiest.slice(0, 2));
        const topOne = await get(`/v1/rooms/701/stats?${window}&top=1`);
        t.same(topOne.body.topSenders, [{ senderId: 1, messages: 3 }]);
      }
      const counters = await server.db.prisma.$queryRawUnsafe<Json[]>(
        "SELECT room_id::int AS room, sum(messages)::int AS n FROM stats_room_hour GROUP BY room_id ORDER BY room_id",
      );
      t.same(
        counters.map((c) => [c.room, c.n]),
        [
          [701, 8],
          [702, 10],
          [703, 1],
        ],
        "the counters hold every message once (the one before the window too), no event",
      );

      // Rows arriving after a rollup (a later seq in an hour already counted) are added exactly once.
      await insertRows(server.db, times(2, { room: 701, sender: 4, at: at(11, 45) }));
      const before = await get(`/v1/rooms/701/stats?${window}`);
      t.equal(before.body.messages, 9);
      t.equal(before.body.distinctSenders, 4);
      await rollUp(rollup);
      const after = await get(`/v1/rooms/701/stats?${window}`);
      t.same(after.body, before.body, "the same numbers once the rollup has counted them");
    });

    t.test("a window is widened to whole hours; an empty room or window answers zeros", async (t) => {
      const res = await get(`/v1/rooms/701/stats?from=${iso(at(10, 30))}&to=${iso(at(10, 31))}`);
      t.match(res.body, { from: iso(at(10)), to: iso(at(11)), messages: 4 });
      const empty = await get(`/v1/rooms/999/stats?${window}`);
      t.match(empty.body, {
        messages: 0,
        distinctSenders: 0,
        firstMessageAt: null,
        lastMessageAt: null,
        hourly: [],
        daily: [],
        topSenders: [],
      });
      const date = await get(`/v1/rooms/701/stats?from=${iso(at(0)).slice(0, 10)}&to=${iso(at(48)).slice(0, 10)}`);
      t.equal(date.body.messages, 9, "dates alone are UTC midnights");
    });

    t.test("posts through the API are counted (default window: the last 24 hours)", async (t) => {
      const room = 704;
      const presenter = new TestSocket(
        `${server.ws}/v1/rooms/${room}/presenter?access_token=${await mintToken({ user_idx: room })}`,
      );
      await presenter.open();
      await presenter.next((f) => f.type === "ready", "ready");
      t.teardown(() => presenter.close());
      for (const sender of [41, 41, 42]) {
        const res = await request(`${server.http}/v1/rooms/${room}/messages`, {
          headers: { authorization: `Bearer ${await mintToken({ user_idx: sender })}` },
          body: { text: "counted" },
        });
        t.equal(res.status, 201);
      }
      // A moderation action in the room: an event in the log, not a message.
      const ban = await request(`${server.http}/v1/rooms/${room}/bans/43`, {
        method: "PUT",
        headers: { authorization: `Bearer ${await mintToken({ user_idx: room })}` },
        body: {},
      });
      t.equal(ban.status, 200, ban.text);
      for (const phase of ["before", "after"]) {
        if (phase === "after") await rollUp(rollup);
        const res = await get(`/v1/rooms/${room}/stats`);
        t.match(res.body, {
          messages: 3,
          distinctSenders: 2,
          topSenders: [{ senderId: 41, messages: 2 }, { senderId: 42 }],
        });
        const rooms = await get("/v1/stats/rooms");
        t.same(
          rooms.body.items,
          [{ roomId: room, messages: 3 }],
          `only the API's posts are in the last 24 hours (${phase})`,
        );
      }
    });

    t.test("operator only: no token 401, viewer and presenter tokens 403", async (t) => {
      const viewer = await mintToken({ user_idx: 5 });
      const presenter = await mintToken({ user_idx: 701 });
      for (const path of ["/v1/rooms/701/stats", "/v1/stats/rooms"]) {
        t.equal((await request(`${server.http}${path}`)).status, 401);
        for (const token of [viewer, presenter]) {
          const res = await get(path, token);
          t.equal(res.status, 403, `${path}: ${res.text}`);
        }
      }
    });

    t.test("bad parameters: a clear 400 that never repeats the value", async (t) => {
      const paths = [
        `/v1/rooms/${EVIL}/stats`,
        "/v1/rooms/0/stats",
        `/v1/rooms/701/stats?from=${EVIL}`,
        `/v1/rooms/701/stats?to=${EVIL}`,
        "/v1/rooms/701/stats?from=2026-10-01T10:00", // a time without a zone
        `/v1/rooms/701/stats?from=${iso(at(5))}&to=${iso(at(5))}`,
        `/v1/rooms/701/stats?from=${iso(at(10))}&to=${iso(at(1))}`,
        `/v1/rooms/701/stats?from=${iso(at(0))}&to=${iso(at(32 * 24))}`,
        "/v1/rooms/701/stats?top=0",
        "/v1/rooms/701/stats?top=101",
        `/v1/rooms/701/stats?top=${EVIL}`,
        `/v1/rooms/701/stats?${EVIL}=1`,
        `/v1/stats/rooms?from=${EVIL}`,
        "/v1/stats/rooms?limit=0",
        `/v1/stats/rooms?limit=${EVIL}`,
        `/v1/stats/rooms?from=${iso(at(0))}&to=${iso(at(800))}`,
        `/v1/stats/rooms?${EVIL}=1`,
      ];
      for (const path of paths) {
        const res = await get(path);
        t.equal(res.status, 400, `${path.slice(0, 60)}: ${res.text}`);
        t.type(res.body.detail, "string");
        t.notMatch(res.text, EVIL, "the value is not echoed");
      }
      const long = await get(`/v1/rooms/701/stats?from=${iso(at(0))}&to=${iso(at(31 * 24))}`);
      t.equal(long.status, 200, "31 days is allowed");
    });

    if (target === "PostgreSQL") {
      t.test(
        "one rollup transaction at a time: a pass finding the lock taken stops, and nodes never double count",
        async (t) => {
          const holder = await openDatabase({ databaseUrl: pgDb.url, pgliteDataDir: "memory://" });
          t.teardown(() => holder.close());
          await insertRows(server.db, times(5, { room: 705, sender: 7, at: at(20) }));
          let release: () => void = () => {};
          const released = new Promise<void>((resolve) => {
            release = resolve;
          });
          let locked: () => void = () => {};
          const isLocked = new Promise<void>((resolve) => {
            locked = resolve;
          });
          const holding = holder.transaction(async (s) => {
            await s.query("SELECT pg_advisory_xact_lock($1::bigint)", [STATS_ROLLUP_LOCK]);
            locked();
            await released;
          });
          await isLocked;
          const refused = await rollup.runOnce();
          t.match(refused, { busy: true, messages: 0 }, "the pass stops: another node holds the lock");
          const room = await server.db.prisma.$queryRawUnsafe<Json[]>(
            "SELECT count(*)::int AS n FROM stats_rollup_room WHERE room_id = 705",
          );
          t.equal(room[0]?.n, 0, "and counted nothing");
          release();
          await holding;

          // Three "nodes" (own store handles) at once over many rooms: every message counted exactly once.
          const rows: Row[] = [];
          for (let r = 0; r < 60; r++) rows.push(...times(1 + (r % 4), { room: 800 + r, sender: 9, at: at(22) }));
          await insertRows(server.db, rows);
          const nodes = await Promise.all(
            [1, 2, 3].map(() => openDatabase({ databaseUrl: pgDb.url, pgliteDataDir: "memory://" })),
          );
          t.teardown(() => Promise.all(nodes.map((n) => n.close())));
          const small = { maxRowsPerTransaction: 7, maxRoomsPerTransaction: 3 };
          for (let round = 0; round < 3; round++) {
            await Promise.all(nodes.map((db) => new StatsRollup(db, undefined, small).runOnce()));
          }
          await rollUp(new StatsRollup(nodes[0] as Database, undefined, small));
          const counted = await server.db.prisma.$queryRawUnsafe<Json[]>(
            "SELECT coalesce(sum(messages), 0)::int AS n FROM stats_room_hour WHERE room_id BETWEEN 800 AND 859",
          );
          t.equal(counted[0]?.n, rows.length, "each message counted once");
          const senders = await server.db.prisma.$queryRawUnsafe<Json[]>(
            "SELECT coalesce(sum(messages), 0)::int AS n FROM stats_sender_hour WHERE room_id BETWEEN 800 AND 859",
          );
          t.equal(senders[0]?.n, rows.length);
          const res = await get(`/v1/stats/rooms?${window}&limit=100`);
          const mine = (res.body.items as { roomId: number; messages: number }[]).filter((i) => i.roomId >= 800);
          t.equal(
            mine.reduce((sum, i) => sum + i.messages, 0),
            rows.length,
          );
        },
      );
    }
  });
}
