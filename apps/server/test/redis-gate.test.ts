import { Redis } from "ioredis";
import t, { type Test } from "tap";
import { MemoryGate } from "../src/adapters/memory-gate.js";
import { MemoryPresence } from "../src/adapters/memory-presence.js";
import { RedisGate } from "../src/adapters/redis-gate.js";
import { RedisPresence } from "../src/adapters/redis-presence.js";
import { emptyRoomState, type RoomModerationState } from "../src/core/moderation-state.js";
import type { Gate, Presence } from "../src/core/ports.js";
import { type GateLimits, NO_LIMITS } from "../src/core/rate-limit.js";
import { REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";

// The gate's decisions, the same on both adapters: the Redis one against the machine's real Redis
// (two gates on two connections stand for two nodes), the in-process one for the embedded default.

const LIMITS: GateLimits = {
  ...NO_LIMITS,
  room: { count: 3, windowMs: 60_000 },
  roomPrivileged: { count: 5, windowMs: 60_000 },
};

interface Fixture {
  gates: [Gate, Gate];
  presence: Presence;
  loads: number[];
  store: Map<number, RoomModerationState>;
}

async function redisFixture(t: Test): Promise<Fixture> {
  const prefix = uniqueRedisPrefix();
  const connect = () => new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const [a, b] = [connect(), connect()];
  try {
    await Promise.all([a.connect(), b.connect()]);
  } catch (err) {
    throw new Error(`these tests need Redis at ${REDIS_URL} (${(err as Error).message}); set TEST_REDIS_URL`);
  }
  t.teardown(async () => {
    const keys = await a.keys(`${prefix}*`);
    if (keys.length > 0) await a.del(...keys);
    a.disconnect();
    b.disconnect();
  });
  const store = new Map<number, RoomModerationState>();
  const loads: number[] = [];
  const loadRoom = async (roomId: number) => {
    loads.push(roomId);
    return store.get(roomId) ?? emptyRoomState(roomId);
  };
  return {
    gates: [new RedisGate(a, prefix, loadRoom, LIMITS), new RedisGate(b, prefix, loadRoom, LIMITS)],
    presence: new RedisPresence(a, prefix, 60_000, 10_000),
    loads,
    store,
  };
}

function memoryFixture(): Fixture {
  const presence = new MemoryPresence(60_000, 10_000);
  const store = new Map<number, RoomModerationState>();
  const loads: number[] = [];
  const gate = new MemoryGate(
    presence,
    async (roomId) => {
      loads.push(roomId);
      return store.get(roomId) ?? emptyRoomState(roomId);
    },
    LIMITS,
  );
  return { gates: [gate, gate], presence, loads, store };
}

const request = (roomId: number, senderId: number) => ({
  roomId,
  senderId,
  address: undefined,
  moderatorByClaim: false,
});

for (const kind of ["redis", "memory"] as const) {
  t.test(`${kind} gate`, async (t) => {
    const f = kind === "redis" ? await redisFixture(t) : memoryFixture();
    const [a, b] = f.gates;
    const room = 4100;
    await f.presence.claim(room, { nodeId: "n", connId: "c1" });

    t.test("a room that is not live is neither loaded nor counted", async (t) => {
      const answer = await a.admit(request(4199, 7));
      t.equal(answer.presence, null);
      t.notOk(f.loads.includes(4199), "no store read for a room that is not live");
    });

    t.test("limits hold across gates, all or none, and privileged senders get theirs", async (t) => {
      const verdicts = [];
      for (let i = 0; i < 4; i++) verdicts.push(await (i % 2 === 0 ? a : b).admit(request(room, 7)));
      t.same(
        verdicts.map((v) => v.limited === undefined),
        [true, true, true, false],
        "3 per window for a viewer, wherever the posts land",
      );
      t.equal(verdicts[3]?.limited?.scope, "room");
      t.ok((verdicts[3]?.limited?.retryAfterMs ?? 0) > 0, "with a wait");
      t.equal((await a.admit(request(room, 8))).limited, undefined, "another viewer is unaffected");
      const presenter = [];
      for (let i = 0; i < 6; i++) presenter.push((await b.admit(request(room, room))).limited === undefined);
      t.same(presenter, [true, true, true, true, true, false], "the presenter gets the privileged limit");
    });

    t.test("bans, timeouts, the lock and moderators come from the synced state, newest version wins", async (t) => {
      const now = Date.now();
      const state: RoomModerationState = {
        ...emptyRoomState(room),
        version: 3,
        settings: { slowModeS: 0, moderatorsOnly: true, maxTextLength: 50 },
        moderators: [21],
        restrictions: [
          { userId: 31, kind: "ban", untilMs: null },
          { userId: 32, kind: "timeout", untilMs: now + 60_000 },
          { userId: 33, kind: "timeout", untilMs: now - 1000 },
        ],
        blockedTerms: ["spam"],
      };
      await a.syncRoom(state);
      await b.syncRoom({ ...emptyRoomState(room), version: 2 }); // older: ignored
      const ban = await b.admit(request(room, 31));
      t.same(ban.restricted, { kind: "ban", untilMs: null });
      const timeout = await b.admit(request(room, 32));
      t.equal(timeout.restricted?.kind, "timeout");
      t.equal(timeout.restricted?.untilMs, now + 60_000);
      const expired = await b.admit(request(room, 33));
      t.equal(expired.restricted, undefined, "an expired timeout no longer restricts");
      t.equal(expired.locked, true, "a viewer in a moderators-only room");
      const moderator = await b.admit(request(room, 21));
      t.equal(moderator.locked, false);
      t.equal(moderator.privileged, true, "a moderator from the room's list");
      t.equal(moderator.version, 3);
      t.same(moderator.settings, state.settings);
      t.same(await b.blockedTerms(room), { version: 3, terms: ["spam"] });
      const byClaim = await b.admit({ ...request(room, 22), moderatorByClaim: true });
      t.equal(byClaim.privileged, true, "a moderator by token claim");
    });

    if (kind === "redis") {
      t.test("a mirror lost with Redis is reloaded from the store on the next post", async (t) => {
        const other = 4101;
        await f.presence.claim(other, { nodeId: "n", connId: "c2" });
        f.store.set(other, {
          ...emptyRoomState(other),
          version: 9,
          restrictions: [{ userId: 40, kind: "ban", untilMs: null }],
        });
        const first = await a.admit(request(other, 40));
        t.equal(first.restricted?.kind, "ban", "loaded from the store on first use");
        const loadsBefore = f.loads.filter((r) => r === other).length;
        const admin = new Redis(REDIS_URL);
        t.teardown(() => admin.disconnect());
        const keys = await admin.keys(`*mod:{${other}}`);
        t.equal(keys.length, 1, "one mirror hash for the room");
        await admin.del(...keys);
        const again = await b.admit(request(other, 40));
        t.equal(again.restricted?.kind, "ban", "still banned after the mirror was lost");
        t.equal(f.loads.filter((r) => r === other).length, loadsBefore + 1, "reloaded once");
      });
    }
  });
}
