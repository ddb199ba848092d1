import t from "tap";
import { UserErasure } from "../src/chatlog/user-erasure.js";
import { createTestDatabase } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { startTestServer, type TestServer, waitAttached } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// Erasing a user (issue #13 item 3), on both chat log targets: tombstones (seq kept, text and
// nickname gone, marked deleted), an audit row, an `erase` event to live presenters (v1, and seed
// with events opted in) appended only after the room's tombstones are committed; operator only.
const pgDb = await createTestDatabase();
t.teardown(() => pgDb.drop());

type Json = Record<string, unknown>;
const OPERATOR_ID = 1;
const EVIL = "zzEVILzz";

for (const [target, env] of [
  ["PGlite", {}],
  ["PostgreSQL", { DATABASE_URL: pgDb.url }],
] as const) {
  t.test(target, async (t) => {
    const server: TestServer = await startTestServer(env);
    t.teardown(() => server.shutdown());
    const operator = await mintToken({ user_idx: OPERATOR_ID, role: "operator" });
    const auth = (token: string) => ({ authorization: `Bearer ${token}` });

    const post = async (room: number, user: number, text: string, clientMsgId?: string) => {
      const token = await mintToken({ user_idx: user, nickname: `name-${user}` });
      const res = await request<Json>(`${server.http}/v1/rooms/${room}/messages`, {
        headers: auth(token),
        body: clientMsgId === undefined ? { text } : { text, clientMsgId },
      });
      if (res.status !== 201) throw new Error(`post answered ${res.status}: ${res.text}`);
      return res.body.seq as number;
    };
    const erase = (user: number | string, body?: object, token = operator) =>
      request<Json>(`${server.http}/v1/users/${user}/messages`, {
        method: "DELETE",
        headers: auth(token),
        ...(body === undefined ? {} : { body }),
      });
    const history = async (room: number) => {
      const token = await mintToken({ user_idx: room });
      const res = await request<{ items: Json[] }>(
        `${server.http}/v1/rooms/${room}/messages?limit=100&includeDeleted=true`,
        { headers: auth(token) },
      );
      return res.body.items;
    };

    t.test("tombstones, audit row, and the erase event after the tombstones (v1 and seed presenters)", async (t) => {
      const [roomA, roomB, roomC] = [601, 602, 603];
      const victim = 9001;
      const other = 9002;
      const v1 = new TestSocket(
        `${server.ws}/v1/rooms/${roomA}/presenter?access_token=${await mintToken({ user_idx: roomA })}`,
      );
      await v1.open();
      await v1.next((f) => f.type === "ready", "ready");
      const seed = new TestSocket(`${server.ws}/chatting`);
      await seed.open();
      const attached = waitAttached(server.relay, roomB);
      seed.send({ id: "start", token: await mintToken({ user_idx: roomB }), events: true });
      await attached;
      const third = new TestSocket(
        `${server.ws}/v1/rooms/${roomC}/presenter?access_token=${await mintToken({ user_idx: roomC })}`,
      );
      await third.open();
      await third.next((f) => f.type === "ready", "ready");
      t.teardown(() => {
        v1.close();
        seed.close();
        third.close();
      });

      const victimSeqs = [
        await post(roomA, victim, "secret one", "retry-1"),
        await post(roomA, other, "keep me"),
        await post(roomA, victim, "secret two"),
        await post(roomA, victim, "secret three"),
        await post(roomB, victim, "secret four"),
        await post(roomB, victim, "secret five"),
      ];
      await post(roomC, other, "no victim here");
      await v1.next((f) => f.type === "message" && f.seq === 4, "the last chat of room A");

      const res = await erase(victim, { reason: "GDPR request 17" });
      t.equal(res.status, 200, res.text);
      t.match(res.body, { userId: victim, rooms: 2, messages: 5 });
      t.match(res.body.erasureId, /^[0-9a-f-]{36}$/);

      // The event arrives; a history read made after it shows the tombstones.
      const event = await v1.next((f) => f.type === "moderation" && f.action === "erase", "erase event (v1)");
      t.match(event, { roomId: roomA, seq: 5, by: OPERATOR_ID, data: { userId: victim, count: 3 } });
      const itemsA = await history(roomA);
      for (const item of itemsA.filter((i) => i.senderId === victim)) {
        t.match(item, { kind: "message", text: "", nickname: "", deleted: true, deletedBy: OPERATOR_ID });
      }
      t.equal(itemsA.filter((i) => i.senderId === victim).length, 3, "the victim's entries stay, as tombstones");
      t.match(
        itemsA.find((i) => i.senderId === other),
        { text: "keep me", nickname: "name-9002" },
      );
      t.notOk(itemsA.find((i) => i.senderId === other)?.deleted, "another user's message is untouched");
      t.same(
        itemsA.map((i) => i.seq),
        [4, 3, 2, 1],
        "every seq is still there",
      );

      const seedEvent = await seed.next((f) => f.id === "moderation" && f.action === "erase", "erase event (seed)");
      t.match(seedEvent, { roomId: roomB, seq: 3, by: OPERATOR_ID, data: { userId: victim, count: 2 } });
      t.same(
        (await history(roomB)).map((i) => [i.seq, i.text, i.deleted]),
        [
          [2, "", true],
          [1, "", true],
        ],
      );
      t.same(
        (await history(roomC)).map((i) => i.text),
        ["no victim here"],
        "a room the user never posted to gets nothing",
      );

      // The rows in the log: seq, id and client message id kept; nothing of the text anywhere.
      const rows = await server.db.prisma.$queryRawUnsafe<Json[]>(
        `SELECT room_id::int AS room, seq::int AS seq, text, nickname, client_msg_id, deleted_by::int AS by
         FROM chat_message WHERE sender_id = $1 ORDER BY room_id, seq`,
        victim,
      );
      t.same(
        rows.map((r) => [r.room, r.seq, r.text, r.nickname, r.by]),
        [
          [roomA, victimSeqs[0], "", "", OPERATOR_ID],
          [roomA, victimSeqs[2], "", "", OPERATOR_ID],
          [roomA, victimSeqs[3], "", "", OPERATOR_ID],
          [roomB, victimSeqs[4], "", "", OPERATOR_ID],
          [roomB, victimSeqs[5], "", "", OPERATOR_ID],
        ],
      );
      t.equal(rows[0]?.client_msg_id, "retry-1", "the client message id stays for idempotent retries");
      // A late retry of the erased post meets the tombstone (its text differs now): refused, not posted again.
      const retry = await request<Json>(`${server.http}/v1/rooms/${roomA}/messages`, {
        headers: auth(await mintToken({ user_idx: victim })),
        body: { text: "secret one", clientMsgId: "retry-1" },
      });
      t.equal(retry.status, 422);
      t.equal(retry.body.code, "idempotency_conflict");
      const reposted = await server.db.prisma.$queryRawUnsafe<Json[]>(
        "SELECT count(*)::int AS n FROM chat_message WHERE text LIKE 'secret%'",
      );
      t.equal(reposted[0]?.n, 0, "no erased text anywhere in the log");

      // The audit.
      const audit = await request<{ items: Json[]; nextBefore: string | null }>(`${server.http}/v1/erasures`, {
        headers: auth(operator),
      });
      t.equal(audit.status, 200);
      t.match(audit.body.items[0], {
        erasureId: res.body.erasureId,
        operatorId: OPERATOR_ID,
        userId: victim,
        reason: "GDPR request 17",
        rooms: 2,
        messages: 5,
        finishedAt: String,
      });

      // Again: nothing left, still audited, and no event.
      const again = await erase(victim);
      t.equal(again.status, 200, again.text);
      t.match(again.body, { userId: victim, rooms: 0, messages: 0 });
      const page1 = await request<{ items: Json[]; nextBefore: string | null }>(`${server.http}/v1/erasures?limit=1`, {
        headers: auth(operator),
      });
      t.match(page1.body.items, [{ erasureId: again.body.erasureId, messages: 0, reason: null }]);
      t.type(page1.body.nextBefore, "string");
      const page2 = await request<{ items: Json[] }>(
        `${server.http}/v1/erasures?limit=1&before=${page1.body.nextBefore}`,
        { headers: auth(operator) },
      );
      t.match(page2.body.items, [{ erasureId: res.body.erasureId }]);
      const lastSeqA = (await history(roomA)).length;
      t.equal(lastSeqA, 4, "the second erasure logged no event in room A (history without events)");
      const events = await server.db.prisma.$queryRawUnsafe<Json[]>(
        "SELECT count(*)::int AS n FROM chat_message WHERE kind = 'erase'",
      );
      t.equal(events[0]?.n, 2, "one erase event per affected room, from the first erasure only");
    });

    t.test("each room's event is appended only once its tombstones are committed (in batches)", async (t) => {
      const victim = 9101;
      const rooms = [611, 612];
      for (const room of rooms) {
        const socket = new TestSocket(
          `${server.ws}/v1/rooms/${room}/presenter?access_token=${await mintToken({ user_idx: room })}`,
        );
        await socket.open();
        await socket.next((f) => f.type === "ready", "ready");
        t.teardown(() => socket.close());
        for (let i = 0; i < 7; i++) await post(room, victim, `text ${i}`);
      }
      // What the log holds of the room at the moment its event is appended, seen from another connection.
      const seenAtAppend: { room: number; left: number }[] = [];
      const erasure = new UserErasure(
        server.db,
        {
          appendEvent: async (draft) => {
            const left = await server.db.prisma.$queryRawUnsafe<{ n: number }[]>(
              "SELECT count(*)::int AS n FROM chat_message WHERE room_id = $1 AND sender_id = $2 AND text <> ''",
              draft.roomId,
              victim,
            );
            seenAtAppend.push({ room: draft.roomId, left: left[0]?.n ?? -1 });
            return server.chatLog.appendEvent(draft);
          },
        },
        () => {},
        { batchRows: 3 },
      );
      const result = await erasure.erase({ operatorId: OPERATOR_ID, userId: victim, reason: undefined });
      t.match(result, { rooms: 2, messages: 14 });
      t.same(
        seenAtAppend,
        rooms.map((room) => ({ room, left: 0 })),
        "no text of the user was left in the room when its event was appended",
      );
    });

    t.test("operator only: no token 401, viewer and presenter tokens 403", async (t) => {
      const viewer = await mintToken({ user_idx: 5 });
      const presenter = await mintToken({ user_idx: 601 });
      const presenterRole = await mintToken({ user_idx: 601, role: "presenter" });
      for (const [method, path] of [
        ["DELETE", "/v1/users/9001/messages"],
        ["GET", "/v1/erasures"],
      ] as const) {
        t.equal((await request(`${server.http}${path}`, { method })).status, 401, `${method} ${path} without a token`);
        for (const token of [viewer, presenter, presenterRole]) {
          const res = await request<Json>(`${server.http}${path}`, { method, headers: auth(token) });
          t.equal(res.status, 403, `${method} ${path} with a non-operator token`);
          t.equal(res.body.code, "forbidden");
        }
      }
      // And an operator token does not post (the refusal this role was built with).
      const posted = await request(`${server.http}/v1/rooms/601/messages`, {
        headers: auth(operator),
        body: { text: "hi" },
      });
      t.equal(posted.status, 403);
    });

    t.test("bad parameters: a clear 400 that never repeats the value", async (t) => {
      const cases: [string, string, object | string | undefined][] = [
        ["DELETE", `/v1/users/${EVIL}/messages`, undefined],
        ["DELETE", "/v1/users/0/messages", undefined],
        ["DELETE", "/v1/users/99999999999999999999/messages", undefined],
        ["DELETE", "/v1/users/7/messages", { reason: `${EVIL}${"x".repeat(500)}` }],
        ["DELETE", "/v1/users/7/messages", { reason: "" }],
        ["DELETE", "/v1/users/7/messages", { [EVIL]: 1 }],
        ["DELETE", "/v1/users/7/messages", `{"reason": "${EVIL}`],
        ["GET", `/v1/erasures?before=${EVIL}`, undefined],
        ["GET", "/v1/erasures?limit=0", undefined],
        ["GET", "/v1/erasures?limit=201", undefined],
        ["GET", `/v1/erasures?limit=${EVIL}`, undefined],
        ["GET", `/v1/erasures?${EVIL}=1`, undefined],
      ];
      for (const [method, path, body] of cases) {
        const headers: Record<string, string> = auth(operator);
        if (typeof body === "string") headers["content-type"] = "application/json";
        const res = await request<Json>(`${server.http}${path}`, {
          method,
          headers,
          ...(body === undefined ? {} : { body }),
        });
        t.equal(res.status, 400, `${method} ${path.slice(0, 40)}: ${res.text}`);
        t.type(res.body.detail, "string");
        t.notMatch(res.text, EVIL, "the value is not echoed");
      }
      const nothing = await server.db.prisma.$queryRawUnsafe<Json[]>(
        "SELECT count(*)::int AS n FROM log_erasure WHERE user_id = 7",
      );
      t.equal(nothing[0]?.n, 0, "a refused request erases and audits nothing");
    });
  });
}
