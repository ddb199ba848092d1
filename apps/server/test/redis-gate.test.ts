import t, { type Test } from "tap";
import { MemoryGate } from "../src/adapters/memory-gate.js";
import { MemoryPresence } from "../src/adapters/memory-presence.js";
import { RedisGate } from "../src/adapters/redis-gate.js";
import { RedisPresence } from "../src/adapters/redis-presence.js";
import { ShardedRedisGate } from "../src/adapters/sharded-redis-gate.js";
import { emptyRoomState, type RoomModerationState } from "../src/core/moderation-state.js";
import type { Gate, Presence } from "../src/core/ports.js";
import { type GateLimits, NO_LIMITS } from "../src/core/rate-limit.js";
import { findKeys, REDIS_URL, testRedisClient, uniqueRedisPrefix } from "./helpers/databases.js";

// The gate's decisions, the same on every adapter: the Redis one against the machine's real Redis
// (two gates on two connections stand for two nodes), the sharded one (the Redis Cluster's: the room's
// script and the cross-room limits apart) on the same Redis, or on a Redis Cluster when the tests run on
// one, and the in-process one for the embedded default.

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

async function redisFixture(t: Test, kind: "redis" | "sharded", limits: GateLimits): Promise<Fixture> {
  const prefix = uniqueRedisPrefix();
  const [a, b] = [testRedisClient(), testRedisClient()];
  try {
    await Promise.all([a.ping(), b.ping()]);
  } catch (err) {
    throw new Error(`these tests need Redis at ${REDIS_URL} (${(err as Error).message}); set TEST_REDIS_URL`);
  }
  t.teardown(async () => {
    const keys = await findKeys(a, `${prefix}*`);
    await Promise.all(keys.map((k) => a.del(k)));
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
    gates:
      kind === "redis"
        ? [new RedisGate(a, prefix, loadRoom, limits), new RedisGate(b, prefix, loadRoom, limits)]
        : [new ShardedRedisGate(a, prefix, loadRoom, limits), new ShardedRedisGate(b, prefix, loadRoom, limits)],
    presence: new RedisPresence(a, prefix, 60_000, 10_000),
    loads,
    store,
  };
}

function memoryFixture(limits: GateLimits): Fixture {
  const presence = new MemoryPresence(60_000, 10_000);
  const store = new Map<number, RoomModerationState>();
  const loads: number[] = [];
  const gate = new MemoryGate(
    presence,
    async (roomId) => {
      loads.push(roomId);
      return store.get(roomId) ?? emptyRoomState(roomId);
    },
    limits,
  );
  return { gates: [gate, gate], presence, loads, store };
}

const request = (roomId: number, senderId: number) => ({
  roomId,
  senderId,
  address: undefined,
  moderatorByClaim: false,
});

// The single-script gate cannot run on a Redis Cluster (its keys span slots): that is what the sharded one is for.
const ON_CLUSTER = testRedisClient.onCluster;
const KINDS = ON_CLUSTER ? (["sharded", "memory"] as const) : (["redis", "sharded", "memory"] as const);
const fixture = (t: Test, kind: (typeof KINDS)[number], limits: GateLimits) =>
  kind === "memory" ? memoryFixture(limits) : redisFixture(t, kind, limits);

for (const kind of KINDS) {
  t.test(`${kind} gate`, async (t) => {
    const f = await fixture(t, kind, LIMITS);
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

    if (kind !== "memory") {
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
        const admin = testRedisClient();
        t.teardown(() => admin.disconnect());
        const keys = await findKeys(admin, `*mod:{${other}}`);
        t.equal(keys.length, 1, "one mirror hash for the room");
        await Promise.all(keys.map((k) => admin.del(k)));
        const again = await b.admit(request(other, 40));
        t.equal(again.restricted?.kind, "ban", "still banned after the mirror was lost");
        t.equal(f.loads.filter((r) => r === other).length, loadsBefore + 1, "reloaded once");
      });
    }
  });
}

// Cross-room limits (per sender, per address) with per-room ones: a post refused by any limit counts
// against none. On the sharded gate the cross-room ones run on other shards and are given back.
const CROSS_ROOM: GateLimits = {
  ...NO_LIMITS,
  room: { count: 2, windowMs: 60_000 },
  sender: { count: 3, windowMs: 60_000 },
  addressPosts: { count: 4, windowMs: 60_000 },
};

for (const kind of KINDS) {
  t.test(`${kind} gate: a refused post counts against no limit`, async (t) => {
    const f = await fixture(t, kind, CROSS_ROOM);
    const [a, b] = f.gates;
    const [r1, r2, r3] = [4300, 4301, 4302];
    for (const r of [r1, r2, r3]) await f.presence.claim(r, { nodeId: "n", connId: `c${r}` });
    const post = (gate: Gate, roomId: number, senderId: number, address: string) =>
      gate.admit({ roomId, senderId, address, moderatorByClaim: false });

    const first = [
      await post(a, r1, 7, "10.0.0.1"),
      await post(b, r1, 7, "10.0.0.1"),
      await post(a, r1, 7, "10.0.0.1"),
    ];
    t.same(
      first.map((v) => v.limited?.scope ?? "ok"),
      ["ok", "ok", "room"],
      "the room limit refuses the third post in the room",
    );
    // Had the refused post counted against the sender (3 per minute), this one would be refused.
    t.equal((await post(b, r2, 7, "10.0.0.1")).limited, undefined, "the refused post did not count for the sender");
    const overSender = await post(a, r3, 7, "10.0.0.1");
    t.equal(overSender.limited?.scope, "sender", "the fourth admitted-or-not post of the sender: the sender limit");
    // Neither refused post counted against the address (4 per minute): another sender from it gets one more.
    t.equal((await post(b, r3, 8, "10.0.0.1")).limited, undefined, "the address counted only admitted posts");
    t.equal((await post(a, r2, 9, "10.0.0.1")).limited?.scope, "address", "then the address limit");
    // A post refused as off the air counts against nothing either.
    const offAir = await post(a, 4399, 10, "10.0.0.2");
    t.equal(offAir.presence, null);
    for (let i = 0; i < 3; i++)
      t.equal((await post(b, r2, 10, "10.0.0.2")).limited?.scope ?? "ok", i < 2 ? "ok" : "room");
    t.equal(
      (await post(a, r3, 10, "10.0.0.2")).limited,
      undefined,
      "sender 10: two admitted, the off-air and the room-refused ones not counted",
    );
  });
}
