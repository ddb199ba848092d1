import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { type Database, openDatabase } from "../src/chatlog/database.js";
import { applyMigrations, findMigrationsDir } from "../src/chatlog/migrate.js";
import { PrismaChatLog } from "../src/chatlog/prisma-chat-log.js";
import { uuidv7 } from "../src/core/ids.js";
import type { ChatMessage, EventDraft, MessageDraft } from "../src/core/message.js";
import { createTestDatabase } from "./helpers/databases.js";

// Moderation events in the chat log (issue #9): one seq order with the messages, and `delete` /
// `clear` marking the messages they remove in the same statement. On both chat log targets.
const pgDb = await createTestDatabase();
t.teardown(() => pgDb.drop());

const message = (roomId: number, text: string, extra: Partial<MessageDraft> = {}): MessageDraft => ({
  id: uuidv7(),
  roomId,
  senderId: 500,
  nickname: "viewer",
  userType: "viewer",
  text,
  clientMsgId: undefined,
  ...extra,
});
const event = (
  roomId: number,
  kind: EventDraft["kind"],
  data: EventDraft["event"] = {},
  actorId = 900,
): EventDraft => ({
  id: uuidv7(),
  roomId,
  actorId,
  kind,
  event: data,
});
/** Every entry of a room, oldest first. */
const all = (log: PrismaChatLog, roomId: number) => log.since(roomId, 0, 10_000);
const deletedSeqs = (entries: ChatMessage[]) => entries.filter((m) => m.deletedBy !== undefined).map((m) => m.seq);

for (const [target, databaseUrl] of [
  ["PGlite", undefined],
  ["PostgreSQL", pgDb.url],
] as const) {
  t.test(target, async (t) => {
    const db = await openDatabase({ databaseUrl, pgliteDataDir: "memory://" });
    await applyMigrations(db);
    const log = new PrismaChatLog(db, 100);
    t.teardown(() => log.close());

    t.test("an event takes the next seq in one order with concurrent messages", async (t) => {
      const room = 1;
      // One turn: the group commit writes all of them as one batch, in call order.
      const before = [log.append(message(room, "a")), log.append(message(room, "b"))];
      const ban = log.appendEvent(event(room, "ban", { userId: 42 }));
      const after = [log.append(message(room, "c"))];
      const seqs = (await Promise.all(before)).map((r) => r.message.seq);
      const banned = await ban;
      const later = (await Promise.all(after)).map((r) => r.message.seq);
      t.same(seqs, [1, 2]);
      t.equal(banned.seq, 3, "the event's seq is its place among the messages");
      t.same(later, [4]);
      t.match(banned, {
        kind: "ban",
        event: { userId: 42 },
        senderId: 900,
        text: "",
        nickname: "",
        userType: "viewer",
      });
      const entries = await all(log, room);
      t.same(
        entries.map((m) => [m.seq, m.kind]),
        [
          [1, "message"],
          [2, "message"],
          [3, "ban"],
          [4, "message"],
        ],
        "since() reads events with their kind, in seq order (replay and gap fill)",
      );
      t.same(entries[2]?.event, { userId: 42 }, "and their data");
      t.equal(await log.lastSeq(room), 4);
      const presenterEvent = await log.appendEvent(event(room, "settings", { slowModeS: 5 }, room));
      t.equal(presenterEvent.userType, "presenter", "the room's own user acts as its presenter");
      t.equal(presenterEvent.seq, 5);
    });

    t.test("delete marks its target only; history hides events unless asked", async (t) => {
      const room = 2;
      for (const text of ["one", "two", "three"]) await log.append(message(room, text));
      const del = await log.appendEvent(event(room, "delete", { targetSeq: 2, targetId: "x" }, 77));
      t.equal(del.seq, 4);
      const entries = await all(log, room);
      t.same(deletedSeqs(entries), [2], "only seq 2 is marked");
      t.equal(entries[1]?.deletedBy, 77, "by the event's actor");
      t.equal(entries[1]?.text, "two", "the log keeps the text: hiding it is the reader's decision");
      const history = await log.history(room, undefined, 10);
      t.same(
        history.map((m) => m.seq),
        [3, 2, 1],
        "history: messages only by default",
      );
      const withEvents = await log.history(room, undefined, 10, { events: true });
      t.same(
        withEvents.map((m) => [m.seq, m.kind]),
        [
          [4, "delete"],
          [3, "message"],
          [2, "message"],
          [1, "message"],
        ],
      );
      // Deleting an event, an already deleted message or a seq that does not exist marks nothing new.
      await log.appendEvent(event(room, "delete", { targetSeq: 4 }, 78));
      await log.appendEvent(event(room, "delete", { targetSeq: 2 }, 79));
      await log.appendEvent(event(room, "delete", { targetSeq: 999 }, 80));
      const again = await all(log, room);
      t.same(deletedSeqs(again), [2]);
      t.equal(again[1]?.deletedBy, 77, "the first deletion's actor stays");
    });

    t.test("clear marks every earlier message, committed or in the same batch, and nothing after", async (t) => {
      const room = 3;
      for (let i = 1; i <= 5; i++) await log.append(message(room, `m${i}`));
      await log.appendEvent(event(room, "delete", { targetSeq: 3 }, 61));
      // One batch: two messages, the clear, one more message.
      const inBatch = [log.append(message(room, "m7")), log.append(message(room, "m8"))];
      const clear = log.appendEvent(event(room, "clear", {}, 62));
      const afterClear = log.append(message(room, "m10"));
      await Promise.all(inBatch);
      const cleared = await clear;
      t.equal(cleared.seq, 9);
      t.equal((await afterClear).message.seq, 10);
      const entries = await all(log, room);
      t.same(deletedSeqs(entries), [1, 2, 3, 4, 5, 7, 8], "every message below the clear's seq");
      t.equal(entries[2]?.deletedBy, 61, "a message deleted before keeps its deleter");
      t.ok(
        entries.filter((m) => m.seq !== 3 && m.deletedBy !== undefined).every((m) => m.deletedBy === 62),
        "the others: the clear's actor",
      );
      // A second clear only reaches back to the first one.
      await log.append(message(room, "m11"));
      await log.appendEvent(event(room, "clear", {}, 63));
      const second = await all(log, room);
      t.same(deletedSeqs(second), [1, 2, 3, 4, 5, 7, 8, 10, 11]);
      t.equal(second.find((m) => m.seq === 10)?.deletedBy, 63);
      t.equal(second.find((m) => m.seq === 1)?.deletedBy, 62, "earlier marks are not rewritten");
    });

    t.test("a delete whose target is in its own batch; two events on one message: the earlier marks it", async (t) => {
      const room = 4;
      const batch = [log.append(message(room, "keep")), log.append(message(room, "drop"))];
      const del = log.appendEvent(event(room, "delete", { targetSeq: 2 }, 71));
      await Promise.all(batch);
      t.equal((await del).seq, 3);
      t.same(deletedSeqs(await all(log, room)), [2]);

      await log.append(message(room, "target")); // seq 4
      const first = log.appendEvent(event(room, "delete", { targetSeq: 4 }, 72));
      const second = log.appendEvent(event(room, "clear", {}, 73));
      await Promise.all([first, second]);
      const entries = await all(log, room);
      t.same(deletedSeqs(entries), [1, 2, 4]);
      t.equal(entries.find((m) => m.seq === 4)?.deletedBy, 72, "the delete came first");
      t.equal(entries.find((m) => m.seq === 1)?.deletedBy, 73);

      await log.append(message(room, "target 2")); // seq 7
      const clearFirst = log.appendEvent(event(room, "clear", {}, 74));
      const deleteLater = log.appendEvent(event(room, "delete", { targetSeq: 7 }, 75));
      await Promise.all([clearFirst, deleteLater]);
      t.equal((await all(log, room)).find((m) => m.seq === 7)?.deletedBy, 74, "the clear came first");
    });

    t.test("idempotent retries still work in a batch with events; messages of other rooms are untouched", async (t) => {
      const room = 5;
      const first = await log.append(message(room, "once", { clientMsgId: "k-1" }));
      await log.append(message(6, "other room"));
      const retry = log.append(message(room, "once", { clientMsgId: "k-1" }));
      const clear = log.appendEvent(event(room, "clear"));
      const fresh = log.append(message(room, "new", { clientMsgId: "k-2" }));
      const [r, c, f] = await Promise.all([retry, clear, fresh]);
      t.equal(r.duplicate, true);
      t.equal(r.message.seq, first.message.seq, "the retry gets the first result");
      t.equal(r.message.id, first.message.id);
      t.equal(c.seq, 2, "the duplicate took no seq");
      t.equal(f.message.seq, 3);
      t.same(deletedSeqs(await all(log, room)), [1]);
      t.same(deletedSeqs(await all(log, 6)), [], "a clear is per room");
      const retryAfter = await log.append(message(room, "new", { clientMsgId: "k-2" }));
      t.equal(retryAfter.duplicate, true);
      t.equal(retryAfter.message.seq, 3);
    });

    t.test("one bad row in a batch with events fails alone", async (t) => {
      const room = 7;
      const results = await Promise.allSettled([
        log.append(message(room, "fine")),
        log.append(message(room, "bad", { userType: "x".repeat(40) as "viewer" })),
        log.appendEvent(event(room, "delete", { targetSeq: 1 })),
      ]);
      t.same(
        results.map((r) => r.status),
        ["fulfilled", "rejected", "fulfilled"],
      );
      t.same(
        (await all(log, room)).map((m) => [m.seq, m.kind, m.deletedBy !== undefined]),
        [
          [1, "message", true],
          [2, "delete", false],
        ],
        "gapless, and the delete applied",
      );
    });

    t.test("appendEvent refuses what no node would write, and writes nothing", async (t) => {
      const room = 8;
      const refused: [string, EventDraft][] = [
        ["delete without targetSeq", event(room, "delete", {})],
        ["delete with a fractional targetSeq", event(room, "delete", { targetSeq: 1.5 })],
        ["a nested value", event(room, "ban", { userId: { deep: 1 } } as never)],
        ["too many keys", event(room, "terms", Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, i])))],
        ["a long string", event(room, "ban", { reason: "x".repeat(65) })],
        ["a key that is not a plain name", event(room, "ban", JSON.parse('{"__proto__": 1}'))],
        ["an unknown kind", { ...event(room, "ban"), kind: "message" as never }],
      ];
      for (const [what, draft] of refused) await t.rejects(log.appendEvent(draft), TypeError, what);
      t.equal(await log.lastSeq(room), 0, "nothing was written");
      const quoted = await log.appendEvent(event(room, "timeout", { userId: 3, until: 'a "quoted" \\ {value}' }));
      t.same((await all(log, room))[0]?.event, { userId: 3, until: 'a "quoted" \\ {value}' }, "data round-trips");
      t.equal(quoted.seq, 1);
    });
  });
}

t.test(
  "PostgreSQL, two nodes: a clear racing with another node's batches marks exactly the earlier messages",
  async (t) => {
    const a = await openDatabase({ databaseUrl: pgDb.url, pgliteDataDir: "memory://" });
    const b = await openDatabase({ databaseUrl: pgDb.url, pgliteDataDir: "memory://" });
    const nodeA = new PrismaChatLog(a, 200, undefined, 2);
    const nodeB = new PrismaChatLog(b, 200, undefined, 2);
    t.teardown(async () => {
      await nodeA.close();
      await nodeB.close();
    });
    const room = 100;
    let stop = false;
    // Node A: a steady stream of batches into the room.
    const writers = Array.from({ length: 64 }, async (_, w) => {
      let n = 0;
      while (!stop) await nodeA.append(message(room, `w${w}-${n++}`));
    });
    // Node B: clears while A's batches commit around them.
    const clears: number[] = [];
    for (let i = 0; i < 20; i++) {
      await nodeA.append(message(room, "between"));
      clears.push((await nodeB.appendEvent(event(room, "clear", {}, 1000 + i))).seq);
    }
    stop = true;
    await Promise.all(writers);
    const entries = await all(nodeA, room);
    t.ok(entries.length > 100, `a busy room (${entries.length} entries)`);
    t.same(
      entries.map((m) => m.seq),
      Array.from({ length: entries.length }, (_, i) => i + 1),
      "gapless",
    );
    const lastClear = clears.at(-1) as number;
    const wrong = entries.filter(
      (m) => m.kind === "message" && (m.seq < lastClear ? m.deletedBy === undefined : m.deletedBy !== undefined),
    );
    t.same(
      wrong.map((m) => m.seq),
      [],
      "every message below the last clear is marked, none after it",
    );
    // Each message was marked by the first clear after it.
    const mismatched = entries.filter((m) => {
      if (m.kind !== "message" || m.seq > lastClear) return false;
      const index = clears.findIndex((c) => c > m.seq);
      return m.deletedBy !== 1000 + index;
    });
    t.equal(mismatched.length, 0, "by the first clear after it");
  },
);

for (const [target, databaseUrl] of [
  ["PGlite", undefined],
  ["PostgreSQL", undefined as string | undefined],
] as const) {
  t.test(`${target}: the migration adds the columns to a table that already holds messages`, async (t) => {
    let url = databaseUrl;
    let drop = async () => {};
    if (target === "PostgreSQL") {
      const fresh = await createTestDatabase();
      url = fresh.url;
      drop = fresh.drop;
    }
    t.teardown(drop);
    const db: Database = await openDatabase({ databaseUrl: url, pgliteDataDir: "memory://" });
    const log = new PrismaChatLog(db, 10);
    t.teardown(() => log.close());
    const onlyInit = mkdtempSync(join(tmpdir(), "chatrelay-migrations-"));
    t.teardown(() => rmSync(onlyInit, { recursive: true, force: true }));
    cpSync(join(findMigrationsDir(), "20261124000000_init"), join(onlyInit, "20261124000000_init"), {
      recursive: true,
    });
    t.same(await applyMigrations(db, onlyInit), ["20261124000000_init"]);
    await db.transaction(async (s) => {
      await s.query("INSERT INTO chat_room (room_id, last_seq) VALUES (9, 2)");
      await s.query(
        `INSERT INTO chat_message (room_id, seq, id, sender_id, nickname, user_type, text)
         VALUES (9, 1, '00000000-0000-7000-8000-000000000001', 5, 'n', 'viewer', 'old one'),
                (9, 2, '00000000-0000-7000-8000-000000000002', 5, 'n', 'viewer', 'old two')`,
      );
    });
    const applied = await applyMigrations(db);
    t.ok(applied.includes("20261126000001_log_events"), "the events migration ran on the populated table");
    const old = await log.since(9, 0, 10);
    t.same(
      old.map((m) => [m.seq, m.kind, m.text, m.deletedBy]),
      [
        [1, "message", "old one", undefined],
        [2, "message", "old two", undefined],
      ],
      "existing rows read as undeleted messages",
    );
    const del = await log.appendEvent(event(9, "delete", { targetSeq: 1 }, 4));
    t.equal(del.seq, 3, "and the log carries on after them");
    t.same(deletedSeqs(await log.since(9, 0, 10)), [1]);
  });
}
