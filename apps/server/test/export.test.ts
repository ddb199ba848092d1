import { randomUUID } from "node:crypto";
import http from "node:http";
import pg from "pg";
import t from "tap";
import type { Database } from "../src/chatlog/database.js";
import { EXPORT_APPLICATION_NAME, exportChunks } from "../src/chatlog/export-cursor.js";
import { CSV_COLUMNS, encoderFor } from "../src/transport/export-format.js";
import { MAX_CONCURRENT_EXPORTS } from "../src/transport/export-routes.js";
import { createTestDatabase } from "./helpers/databases.js";
import {
  completeLines,
  type ExportedRow,
  insertRows,
  insertTexts,
  parseCsv,
  parseNdjson,
  sql,
  storeOf,
} from "./helpers/export.js";
import { request } from "./helpers/http.js";
import { call, openPresenter, userToken } from "./helpers/moderation.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { pollUntil, within } from "./helpers/wait.js";

// GET /v1/rooms/:roomId/export on both stores, over real HTTP against a listening node: the rows
// equal the history pages, ranges select exactly their rows, an interrupted export resumes by seq,
// tombstones, CSV quoting and formula-injection protection, the operator-only rule, parameter
// checks, and a client that goes away releasing what its export held.

const pgDb = await createTestDatabase();
t.teardown(() => pgDb.drop());
const admin = new pg.Client({ connectionString: pgDb.url });
await admin.connect();
t.teardown(() => admin.end());

/** Export sessions PostgreSQL shows for the test database. */
async function exportSessions(): Promise<number> {
  const { rows } = await admin.query<{ n: string }>(
    "SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
    [EXPORT_APPLICATION_NAME],
  );
  return Number(rows[0]?.n);
}

const START = new Date("2026-01-01T00:00:00Z");
const minute = (n: number) => new Date(START.getTime() + n * 60_000).toISOString();

for (const [target, env] of [
  ["PGlite", {}],
  ["PostgreSQL", { DATABASE_URL: pgDb.url }],
] as const) {
  t.test(target, async (t) => {
    const postgres = target === "PostgreSQL";
    const server: TestServer = await startTestServer(env);
    t.teardown(() => server.shutdown());
    const db = storeOf(server);
    const operator = await mintToken({ user_idx: 1, role: "operator" });
    const url = (room: number | string, query = "") => `${server.http}/v1/rooms/${room}/export${query}`;
    /** `token` null: no credential. */
    const get = (room: number | string, query = "", token: string | null = operator) =>
      request(url(room, query), { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
    const exported = async (room: number, query = ""): Promise<ExportedRow[]> => {
      const res = await get(room, query);
      if (res.status !== 200) throw new Error(`export answered ${res.status}: ${res.text}`);
      return parseNdjson(res.text);
    };
    const seqsOf = (rows: { seq: number }[]) => rows.map((r) => r.seq);
    const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

    const LIVE = 301; // posted over HTTP, with deletions and events, then 4,500 appends
    const TIMED = 302; // 300 rows one minute apart from START
    const BIG = 303; // 5,000 rows: several chunks
    const HOSTILE = 304;
    const HUGE = 305; // 60,000 rows: more than any socket buffer holds

    await insertRows(db, TIMED, 300, START);
    await insertRows(db, BIG, 5000, START);
    await insertRows(db, HUGE, 60_000, START);

    t.test("an export equals the history pages of the same range (messages, events, tombstones)", async (t) => {
      const presenter = await openPresenter(server.ws, LIVE);
      t.teardown(() => presenter.close());
      for (let i = 1; i <= 30; i++) {
        const res = await call(server.http, "POST", `/v1/rooms/${LIVE}/messages`, 2000 + (i % 5), {
          text: `hello ${i}`,
        });
        t.equal(res.status, 201);
      }
      for (const seq of [3, 10]) {
        t.equal((await call(server.http, "DELETE", `/v1/rooms/${LIVE}/messages/${seq}`, LIVE)).status, 200);
      }
      t.equal((await call(server.http, "PUT", `/v1/rooms/${LIVE}/bans/2003`, LIVE)).status, 200);
      // Bulk, through the node's own append path (group commit): enough rows for several chunks.
      await Promise.all(
        Array.from({ length: 4500 }, (_, i) =>
          server.chatLog.append({
            id: randomUUID(),
            roomId: LIVE,
            senderId: 3000 + (i % 11),
            nickname: `bulk${i % 11}`,
            userType: "viewer",
            text: `bulk ${i}`,
            clientMsgId: undefined,
          }),
        ),
      );

      const pages: Record<string, unknown>[] = [];
      let before: number | null | undefined;
      do {
        const q = `kinds=all&limit=100${before ? `&before=${before}` : ""}`;
        const res = await call(server.http, "GET", `/v1/rooms/${LIVE}/messages?${q}`, LIVE);
        t.equal(res.status, 200);
        pages.push(...(res.body.items as Record<string, unknown>[]));
        before = res.body.nextBefore as number | null;
      } while (before !== null);
      const history = pages.reverse().map((m) => ({
        seq: m.seq,
        id: m.id,
        text: m.text,
        kind: m.kind,
        deleted: m.deleted === true,
      }));
      const view = (rows: ExportedRow[]) =>
        rows.map((r) => ({ seq: r.seq, id: r.id, text: r.text, kind: r.kind, deleted: r.deleted }));

      const all = await exported(LIVE);
      t.equal(all.length, 30 + 2 + 1 + 4500, "every message and event");
      t.same(seqsOf(all), range(1, all.length), "in seq order, gapless");
      t.same(view(all), history, "the whole log equals every history page");
      t.same(view(await exported(LIVE, "?afterSeq=1000&toSeq=3000")), history.slice(1000, 3000), "a seq range");

      const deletes = all.filter((r) => r.kind === "delete");
      t.same(
        deletes.map((r) => r.data?.targetSeq),
        [3, 10],
        "delete events carry their data",
      );
      t.equal(all.find((r) => r.kind === "ban")?.data?.userId, 2003);
      const first = all[0] as ExportedRow;
      t.match(first, { senderId: 2001, nickname: "user2001", userType: "viewer", deleted: false, deletedBy: null });
      t.equal(new Date(first.sentAt).toISOString(), first.sentAt, "sentAt is ISO 8601 UTC with milliseconds");
    });

    t.test("tombstones: moderation deletes and erased messages", async (t) => {
      const all = await exported(LIVE, "?toSeq=12");
      for (const seq of [3, 10]) {
        t.match(all[seq - 1], { seq, kind: "message", deleted: true, text: "", deletedBy: LIVE }, `seq ${seq}`);
      }
      t.match(all[3], { seq: 4, deleted: false, text: "hello 4", deletedBy: null });
      // An erasure sets deleted_at/deleted_by (and empties the text); the export hides the text itself anyway.
      await sql(
        db,
        "UPDATE chat_message SET deleted_at = now(), deleted_by = 1 WHERE room_id = $1::bigint AND seq = 7",
        [String(TIMED)],
      );
      const [erased] = await exported(TIMED, "?afterSeq=6&toSeq=7");
      t.match(erased, { seq: 7, deleted: true, text: "", deletedBy: 1 });
      const csv = parseCsv((await get(TIMED, "?afterSeq=6&toSeq=7&format=csv")).text);
      t.same(csv[1]?.slice(7, 10), ["", "true", "1"], "CSV: text, deleted, deletedBy");
    });

    t.test("time ranges and seq ranges select exactly their rows", async (t) => {
      const cases: [string, number[]][] = [
        ["?from=2026-01-01T01:00:00Z&to=2026-01-01T02:00:00Z", range(60, 119)],
        ["?from=2026-01-01T10:00:00%2B09:00&to=2026-01-01T11:00:00.000%2B09:00", range(60, 119)],
        ["?from=2025-12-31T19:00:00-05:00&to=2026-01-01T00:01:00.001Z", [1]],
        ["?from=2026-01-01&to=2026-01-02", range(1, 300)],
        ["?from=2026-01-01T04:59:00Z", range(299, 300)],
        ["?to=2026-01-01T00:03:00Z", range(1, 2)],
        ["?afterSeq=290", range(291, 300)],
        ["?toSeq=5", range(1, 5)],
        ["?afterSeq=0&toSeq=1", [1]],
        ["?afterSeq=100&toSeq=100", []],
        ["?afterSeq=300", []],
        ["?afterSeq=9007199254740991", []],
        ["?from=2026-01-01T01:00:00Z&afterSeq=70&toSeq=80", range(71, 80)],
        ["?from=2026-01-01T01:00:00Z&to=2026-01-01T01:00:00Z", []],
        ["?to=2025-01-01", []],
        ["?from=2027-01-01", []],
      ];
      for (const [query, seqs] of cases) {
        const rows = await exported(TIMED, query);
        t.same(seqsOf(rows), seqs, query);
        for (const r of rows) if (r.seq !== 7) t.equal(r.sentAt, minute(r.seq), `seq ${r.seq}'s time`);
      }
      const empty = await get(TIMED, "?afterSeq=300");
      t.equal(empty.status, 200, "an empty range is 200");
      t.equal(empty.text, "", "with an empty body");
      const emptyCsv = await get(TIMED, "?afterSeq=300&format=csv");
      t.equal(emptyCsv.text, `${CSV_COLUMNS.join(",")}\r\n`, "CSV: the header only");
      t.same(seqsOf(await exported(999_999)), [], "a room without a log: empty");
    });

    t.test("headers: content type and an attachment file name built from the parsed range", async (t) => {
      const cases: [string, string, string][] = [
        ["", "application/x-ndjson", "room-302-start-end.ndjson"],
        ["?format=csv&afterSeq=70&toSeq=80", "text/csv", "room-302-seq71-seq80.csv"],
        [
          "?from=2026-01-01T10:00:00%2B09:00&to=2026-01-01T02:00:00Z&format=ndjson",
          "application/x-ndjson",
          "room-302-20260101T010000Z-20260101T020000Z.ndjson",
        ],
      ];
      for (const [query, type, name] of cases) {
        const res = await get(TIMED, query);
        t.equal(res.status, 200);
        t.match(res.headers.get("content-type"), type, query);
        t.equal(res.headers.get("content-disposition"), `attachment; filename="${name}"`, query);
        t.equal(res.headers.get("cache-control"), "no-store");
        t.ok(res.headers.get("x-request-id"), "the request id is kept");
      }
    });

    t.test("an interrupted export resumes with afterSeq = the last seq received", async (t) => {
      const full = await exported(BIG);
      t.same(seqsOf(full), range(1, 5000));
      for (const format of ["ndjson", "csv"] as const) {
        const aborter = new AbortController();
        const res = await fetch(url(BIG, `?format=${format}`), {
          headers: { authorization: `Bearer ${operator}` },
          signal: aborter.signal,
        });
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        const decoder = new TextDecoder();
        let got = "";
        while (!got.includes(format === "csv" ? "\r\n3," : "\n")) {
          const { value, done } = await reader.read();
          if (done) break;
          got += decoder.decode(value, { stream: true });
        }
        aborter.abort();
        await reader.cancel().catch(() => {});
        let head: number[];
        if (format === "ndjson") {
          head = seqsOf(completeLines(got));
        } else {
          const lines = got.slice(0, got.lastIndexOf("\r\n") + 2);
          head = parseCsv(lines)
            .slice(1)
            .map((r) => Number(r[0]));
        }
        const last = head.at(-1) as number;
        t.ok(last >= 1 && last < 5000, `${format}: the client stopped part-way (at ${last})`);
        const rest = await exported(BIG, `?afterSeq=${last}`);
        t.same([...head, ...seqsOf(rest)], range(1, 5000), `${format}: the two parts are the whole export`);
        t.same([...full.slice(0, last), ...rest], full, `${format}: row for row`);
      }
    });

    t.test("CSV: RFC 4180 quoting and formula-injection protection; NDJSON keeps every text", async (t) => {
      const texts = [
        "a,b",
        'say "hi"',
        "line1\nline2",
        "cr\r\nlf",
        "=SUM(A1:A9)",
        "+1+1",
        "-2",
        "@cmd",
        "\tlead tab",
        "\rlead cr",
        "plain",
        "한국어 ☃ 😀",
        "",
        "trailing space ",
        "inner = + - @ fine",
      ];
      const hostileNick = '=HYPERLINK("http://x","y")';
      const seqs = await insertTexts(db, HOSTILE, [
        ...texts.map((text) => ({ text })),
        { text: "nick", nickname: hostileNick },
      ]);
      const res = await get(HOSTILE, "?format=csv");
      t.equal(res.status, 200);
      t.match(res.headers.get("content-type"), /^text\/csv; charset=utf-8/);
      const records = parseCsv(res.text);
      t.same(records[0], [...CSV_COLUMNS], "the header row");
      const rows = records.slice(1);
      t.same(
        rows.map((r) => Number(r[0])),
        seqs,
      );
      const formula = /^[=+\-@\t\r]/;
      texts.forEach((text, i) => {
        const expected = formula.test(text) ? `'${text}` : text;
        t.equal(rows[i]?.[7], expected, `text ${JSON.stringify(text)}`);
      });
      t.equal(rows.at(-1)?.[5], `'${hostileNick}`, "a hostile nickname is neutralised too");
      t.ok(res.text.includes('"a,b"'), "a comma is quoted");
      t.ok(res.text.includes('"say ""hi"""'), "quotes are doubled");
      t.ok(res.text.includes(`"'=SUM(A1:A9)"`), "a formula is prefixed and quoted");
      t.notOk(/(^|,)[=+\-@]/m.test(res.text), "no cell starts with a formula character");

      const ndjson = await exported(HOSTILE);
      t.same(
        ndjson.slice(0, texts.length).map((r) => r.text),
        texts,
        "NDJSON keeps the texts as they are",
      );
      t.equal(ndjson.at(-1)?.nickname, hostileNick);
    });

    t.test("operator tokens only: no token 401, viewer and presenter 403", async (t) => {
      t.equal((await get(TIMED, "", null)).status, 401);
      t.equal((await get(TIMED, "", "not-a-jwt")).status, 401);
      for (const who of [2001, TIMED]) {
        const res = await get(TIMED, "", await userToken(who));
        t.equal(res.status, 403, `user ${who}`);
        t.equal(res.body.code, "forbidden");
      }
      const claimModerator = await userToken(2001, [TIMED]);
      t.equal((await get(TIMED, "", claimModerator)).status, 403, "a moderator of the room");
      const token = await mintToken({ user_idx: 1, role: "operator" });
      t.equal((await get(TIMED, `?access_token=${token}`, null)).status, 200, "the token in the query");
    });

    t.test("every bad parameter is a 400 problem that does not repeat the value", async (t) => {
      const cases: [string, string][] = [
        ["?from=2026-02-30T00:00:00Z", "2026-02-30"],
        ["?from=yesterdayish", "yesterdayish"],
        ["?from=2026-01-01T00:00:00", "2026-01-01T00:00:00"],
        ["?to=2026-01-01T25:00:00Z", "25:00"],
        ["?to=1969-12-31T23:00:00Z", "1969"],
        ["?from=2026-01-01T00:00:00.1234Z", "1234"],
        ["?from=2026-01-01T00:00:00%2B24:00", "24:00"],
        ["?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "2026-01-0"],
        ["?afterSeq=9007199254740992", "9007199254740992"],
        ["?toSeq=99999999999999999999", "99999999999999999999"],
        ["?afterSeq=-1", "-1"],
        ["?afterSeq=1e3", "1e3"],
        ["?afterSeq=0007", "0007"],
        ["?afterSeq=10&toSeq=5", "toSeq=5"],
        ["?format=xmlish", "xmlish"],
        ["?format=", "format="],
        ["?offsetish=5", "offsetish"],
        ["?from=a&from=b", "from=a"],
        [`?from=${"9".repeat(200)}`, "9999999999"],
        ["?from=%3Cscript%3E", "<script>"],
      ];
      for (const [query, value] of cases) {
        const res = await get(TIMED, query);
        t.equal(res.status, 400, query);
        t.match(res.headers.get("content-type"), /^application\/problem\+json/, query);
        t.ok(typeof res.body.detail === "string" && res.body.detail.length > 0, `${query}: says what is wrong`);
        t.notOk(res.text.includes(value), `${query}: the value is not echoed (${res.body.detail})`);
      }
      for (const room of ["0", "99999999999999999", "abc"]) {
        const res = await get(room);
        t.equal(res.status, 400, `room ${room}`);
        t.notOk(res.text.includes(room === "0" ? '"0"' : room), "the room is not echoed");
      }
    });

    t.test("a client that goes away ends its export and releases what it held", async (t) => {
      // Clients that stop reading: each export fills its socket and waits for 'drain'.
      const stalled = await Promise.all(Array.from({ length: MAX_CONCURRENT_EXPORTS }, () => openStalled(url(HUGE))));
      if (postgres) {
        const held = await pollUntil(
          async () => ((await exportSessions()) === MAX_CONCURRENT_EXPORTS ? true : undefined),
          "an export session per stalled client",
          10_000,
        );
        t.ok(held, `${MAX_CONCURRENT_EXPORTS} export sessions while the clients stall`);
      }
      const refused = await get(TIMED);
      t.equal(refused.status, 503, "a node runs a bounded number of exports");
      t.equal(refused.headers.get("retry-after"), "10");
      for (const s of stalled) t.ok(s.received > 0, "each client got the start of its export");

      for (const s of stalled) s.destroy();
      if (postgres) {
        await pollUntil(
          async () => ((await exportSessions()) === 0 ? true : undefined),
          "no export session left after the clients went away",
          10_000,
        );
        t.pass("pg_stat_activity shows no export session after the disconnect");
      }
      // The slots are free again, and the log still takes posts and serves exports.
      const after = await pollUntil(
        async () => {
          const res = await get(TIMED, "?toSeq=3");
          return res.status === 200 ? res : undefined;
        },
        "an export slot",
        10_000,
      );
      t.same(seqsOf(parseNdjson(after.text)), [1, 2, 3]);
    });

    t.test("a consumer never has more than two chunks read ahead (by construction)", async (t) => {
      let fetches = 0;
      const counting: Database = {
        ...db,
        kind: db.kind,
        prisma: db.prisma,
        appender: db.appender,
        close: () => db.close(),
        transaction: (fn) =>
          db.transaction((s) =>
            fn({
              query: (text, params) => {
                if (/^(FETCH |SELECT agg\.)/.test(text)) fetches++;
                return s.query(text, params);
              },
              exec: (script) => s.exec(script),
            }),
          ),
      };
      const chunks = exportChunks(
        counting,
        BIG,
        { fromMs: undefined, toMs: undefined, afterSeq: 0, toSeq: undefined },
        encoderFor("ndjson").lineSql,
        100,
      );
      let taken = 0;
      for (let i = 0; i < 10; i++) {
        const next = await chunks.next();
        t.notOk(next.done);
        taken++;
        t.equal(next.value?.rows, 100, "a chunk is at most chunkRows");
        t.equal(next.value?.lastSeq, taken * 100, "in seq order");
        t.ok(fetches <= taken + 1, `after ${taken} chunks taken, ${fetches} read`);
      }
      await within(chunks.return(undefined), 10_000, "the export to end");
      t.ok(fetches <= 11, `stopped early: ${fetches} chunks read of 50`);
      if (postgres) t.equal(await exportSessions(), 0, "its connection is closed when the generator ends");
    });
  });
}

interface Stalled {
  received: number;
  destroy(): void;
}

/** An export whose client reads the first bytes, then stops reading (the socket fills up). */
function openStalled(target: string): Promise<Stalled> {
  return new Promise((resolve, reject) => {
    const token = mintToken({ user_idx: 1, role: "operator" });
    void token.then((jwt) => {
      const req = http.get(target, { headers: { authorization: `Bearer ${jwt}` } }, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`export answered ${res.statusCode}`));
          return;
        }
        const state: Stalled = { received: 0, destroy: () => req.destroy() };
        res.once("data", (chunk: Buffer) => {
          state.received += chunk.length;
          res.pause();
          resolve(state);
        });
      });
      req.on("error", () => {});
    }, reject);
  });
}
