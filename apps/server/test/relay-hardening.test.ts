import { EventEmitter, once } from "node:events";
import { CloseCode } from "@chatrelay/protocol";
import pino from "pino";
import t from "tap";
import { MemoryBus } from "../src/adapters/memory-bus.js";
import { MemoryGate } from "../src/adapters/memory-gate.js";
import { MemoryPresence } from "../src/adapters/memory-presence.js";
import { openDatabase } from "../src/chatlog/database.js";
import { applyMigrations } from "../src/chatlog/migrate.js";
import { PrismaChatLog } from "../src/chatlog/prisma-chat-log.js";
import type { ChatMessage } from "../src/core/message.js";
import { emptyRoomState } from "../src/core/moderation-state.js";
import type { PresenceRecord } from "../src/core/ports.js";
import { NO_LIMITS } from "../src/core/rate-limit.js";
import { Relay } from "../src/core/relay.js";
import { runSpread } from "../src/core/spread.js";

// Takeover notices confirmed against presence, and the resync after a bus outage spread out with
// bounded concurrency. The relay core on the real embedded log; no heartbeat runs (relay.start()
// is never called), so every outcome here comes from the path under test.

/** A bus whose reconnect the test triggers. */
class ResyncableBus extends MemoryBus {
  private readonly listeners: ((roomIds?: readonly number[]) => void)[] = [];
  override onResync(listener?: (roomIds?: readonly number[]) => void): void {
    if (listener) this.listeners.push(listener);
  }
  /** The whole connection came back, or (a Redis Cluster shard failed over) only these rooms' subscriptions. */
  reconnected(roomIds?: readonly number[]): void {
    for (const l of this.listeners) l(roomIds);
  }
}

/** Presence that reports each finished lookup, can fail them, and measures concurrent re-asserts. */
class ProbePresence extends MemoryPresence {
  readonly probe = new EventEmitter();
  failGet = false;
  /** When set, the next lookup reads its answer, then waits for this before returning it. */
  hold: Promise<void> | undefined;
  refuse = new Set<number>();
  reasserts = 0;
  running = 0;
  maxRunning = 0;

  override async get(roomId: number): Promise<PresenceRecord | null> {
    try {
      if (this.failGet) throw new Error("redis down");
      const gate = this.hold;
      this.hold = undefined;
      const record = await super.get(roomId);
      if (gate) {
        await gate;
        setImmediate(() => this.probe.emit("held-lookup-done", roomId));
      }
      return record;
    } finally {
      // After every microtask, so after the relay acted on the answer.
      setImmediate(() => this.probe.emit("got", roomId));
    }
  }

  override async reassert(roomId: number, record: PresenceRecord): Promise<boolean> {
    this.reasserts++;
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      await new Promise((resolve) => setImmediate(resolve));
      return this.refuse.has(roomId) ? false : super.reassert(roomId, record);
    } finally {
      this.running--;
    }
  }
}

const db = await openDatabase({ databaseUrl: undefined, pgliteDataDir: "memory://" });
await applyMigrations(db);
const log = new PrismaChatLog(db, 100);
t.teardown(() => log.close());

function makeRelay(options: { resyncSpreadMs?: number; resyncConcurrency?: number; presenceTtlMs?: number } = {}) {
  const bus = new ResyncableBus();
  const presence = new ProbePresence(600_000, 10_000);
  const relay = new Relay(
    log,
    bus,
    presence,
    new MemoryGate(presence, async (roomId) => emptyRoomState(roomId), NO_LIMITS),
    {
      nodeId: "n1",
      maxTextLength: 500,
      gapFillMs: 50,
      sendBufferBytes: 1 << 20,
      presenceTtlMs: 600_000,
      resumeDefault: "live",
      ...options,
    },
    pino({ level: "silent" }),
    { post() {}, delivered() {}, presenters() {}, publishSeconds() {} },
  );
  return { bus, presence, relay };
}

function sink() {
  const got: ChatMessage[] = [];
  const state = { closed: undefined as number | undefined };
  /** "sent" for every message delivered (to wait for one that is checked and held first). */
  const events = new EventEmitter();
  return {
    got,
    state,
    events,
    send(m: ChatMessage) {
      got.push(m);
      events.emit("sent", m);
      return 0;
    },
    close(code: number) {
      state.closed = code;
    },
  };
}

const HUGE = Number.MAX_SAFE_INTEGER;

/** The next such event, or a failure after a bound (never a hang). */
function within(emitter: EventEmitter, event: string, ms = 5000): Promise<unknown[]> {
  return once(emitter, event, { signal: AbortSignal.timeout(ms) });
}

t.test("a takeover notice that presence does not back leaves the presenter connected", async (t) => {
  const { bus, presence, relay } = makeRelay();
  t.teardown(() => relay.drain());
  const s = sink();
  const session = await relay.attachPresenter(501, s);

  // Presence still names this connection: a forged notice with a huge epoch.
  let got = within(presence.probe, "got");
  await bus.publish(501, { kind: "takeover", connId: "forged", epoch: HUGE });
  await got;
  t.equal(s.state.closed, undefined, "not closed while presence names us");

  // The lookup fails: keep the session, the heartbeat decides.
  presence.failGet = true;
  got = within(presence.probe, "got");
  await bus.publish(501, { kind: "takeover", connId: "forged", epoch: HUGE });
  await got;
  presence.failGet = false;
  t.equal(s.state.closed, undefined, "not closed when presence cannot be read");

  // The second notice's failed lookup may still be settling: a message meanwhile is held, then delivered.
  const delivered = within(s.events, "sent");
  await relay.send({ roomId: 501, senderId: 9, nickname: "v", userType: "viewer", text: "still here" });
  await delivered;
  t.same(
    s.got.map((m) => m.text),
    ["still here"],
    "and it still delivers",
  );

  // No record at all: a newer connection may have claimed and left already, and what it was sent
  // must not reach this one. Closed as replaced, as the heartbeat's failed renewal would.
  await presence.release(501, session.connId, "stop");
  got = within(presence.probe, "got");
  await bus.publish(501, { kind: "takeover", connId: "forged", epoch: HUGE });
  await got;
  // The lookup's answer is handled in the next turns of the loop: a bounded number of them.
  for (let i = 0; i < 100 && s.state.closed === undefined; i++) await new Promise(setImmediate);
  t.equal(s.state.closed, 4001, "closed as replaced when presence is empty");
});

t.test("messages arriving while a forged notice is checked are held, then delivered in order", async (t) => {
  const { bus, presence, relay } = makeRelay();
  t.teardown(() => relay.drain());
  const s = sink();
  await relay.attachPresenter(504, s);
  let release = () => {};
  presence.hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  const lookup = within(presence.probe, "held-lookup-done");
  await bus.publish(504, { kind: "takeover", connId: "forged", epoch: HUGE });
  for (const text of ["one", "two", "three"]) {
    await relay.send({ roomId: 504, senderId: 9, nickname: "v", userType: "viewer", text });
  }
  t.same(s.got, [], "held while the notice is checked");
  release();
  await lookup;
  t.same(
    s.got.map((m) => [m.seq, m.text]),
    [
      [1, "one"],
      [2, "two"],
      [3, "three"],
    ],
    "delivered once presence confirmed the presenter",
  );
  t.equal(s.state.closed, undefined);
});

t.test("a real takeover (presence names another connection) replaces the presenter", async (t) => {
  const { bus, presence, relay } = makeRelay();
  t.teardown(() => relay.drain());
  const s = sink();
  const session = await relay.attachPresenter(502, s);
  const detached = within(relay.events, "detached");
  // What another node does: claim first, then publish the notice.
  const epoch = await presence.claim(502, { nodeId: "n2", connId: "other-conn" });
  await bus.publish(502, { kind: "takeover", connId: "other-conn", epoch });
  t.same(await detached, [502, session.connId]);
  t.equal(s.state.closed, CloseCode.Replaced);
});

t.test("notices arriving during a lookup are checked again, so a real one is not lost", async (t) => {
  const { bus, presence, relay } = makeRelay();
  t.teardown(() => relay.drain());
  const s = sink();
  const session = await relay.attachPresenter(503, s);
  const detached = within(relay.events, "detached");
  // A forged notice starts a lookup that reads "ours"; the real claim and notice land before it returns.
  let release = () => {};
  presence.hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  const firstLookup = within(presence.probe, "held-lookup-done");
  await bus.publish(503, { kind: "takeover", connId: "forged", epoch: HUGE });
  const epoch = await presence.claim(503, { nodeId: "n2", connId: "other-conn" });
  await bus.publish(503, { kind: "takeover", connId: "other-conn", epoch });
  // Committed after the takeover: for the new holder only, even though this session is still here.
  await relay.send({ roomId: 503, senderId: 9, nickname: "v", userType: "viewer", text: "for the new holder" });
  release();
  await firstLookup;
  t.same(await detached, [503, session.connId], "the second notice is confirmed by a second lookup");
  t.equal(s.state.closed, CloseCode.Replaced);
  t.same(s.got, [], "nothing that arrived after the notice reached the replaced presenter");
});

t.test("resync: every presenter re-announced, never more than the bound at once, 'resynced' at the end", async (t) => {
  const { bus, presence, relay } = makeRelay({ resyncSpreadMs: 40, resyncConcurrency: 3 });
  t.teardown(() => relay.drain());
  const sinks = new Map<number, ReturnType<typeof sink>>();
  for (let room = 600; room < 640; room++) {
    const s = sink();
    sinks.set(room, s);
    await relay.attachPresenter(room, s);
  }
  presence.refuse.add(613); // someone else took this room while the bus was away
  const resynced = within(relay.events, "resynced");
  const detached = within(relay.events, "detached");
  bus.reconnected();
  await resynced;
  t.equal(presence.reasserts, 40, "each presenter once");
  t.ok(presence.maxRunning <= 3, `at most 3 at once (saw ${presence.maxRunning})`);
  t.same((await detached)[0], 613, "the one taken meanwhile is dropped");
  t.equal(sinks.get(613)?.state.closed, CloseCode.Replaced);
  t.equal([...sinks.values()].filter((s) => s.state.closed !== undefined).length, 1, "the others stay");
});

t.test("a reconnect during a resync asks for one more pass, with one 'resynced' at its end", async (t) => {
  const { bus, presence, relay } = makeRelay({ resyncSpreadMs: 0, resyncConcurrency: 2 });
  t.teardown(() => relay.drain());
  for (let room = 700; room < 705; room++) await relay.attachPresenter(room, sink());
  let events = 0;
  relay.events.on("resynced", () => events++);
  const resynced = within(relay.events, "resynced");
  bus.reconnected();
  bus.reconnected();
  bus.reconnected();
  await resynced;
  t.equal(presence.reasserts, 10, "two passes over five presenters");
  t.equal(events, 1);
});

/** Deterministic numbers in [0, 1) for the spread (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

t.test("runSpread: bounded concurrency, each item once, starts sorted over the window", async (t) => {
  const items = Array.from({ length: 200 }, (_, i) => i);
  const ran: number[] = [];
  const waits: number[] = [];
  let running = 0;
  let maxRunning = 0;
  await runSpread(
    items,
    {
      spreadMs: 1000,
      concurrency: 5,
      random: seeded(7),
      now: () => 0, // the clock stands still: every start waits for its whole offset
      wait: async (ms) => {
        waits.push(ms);
      },
    },
    async (item) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((resolve) => setImmediate(resolve));
      ran.push(item);
      running--;
    },
  );
  t.same(
    [...ran].sort((a, b) => a - b),
    items,
    "every item exactly once",
  );
  t.equal(maxRunning, 5, "the bound is reached and never exceeded");
  t.ok(
    waits.every((w, i) => w > 0 && w < 1000 && (i === 0 || (waits[i - 1] as number) <= w)),
    "start offsets within the window, taken in order",
  );
  t.ok(Math.min(...waits) < 250 && Math.max(...waits) > 750, "spread over the window, not bunched");
});

t.test("runSpread: no window means no waiting; nothing to do resolves at once", async (t) => {
  let waited = 0;
  let ran = 0;
  await runSpread(
    [1, 2, 3],
    {
      spreadMs: 0,
      concurrency: 10,
      wait: async () => {
        waited++;
      },
    },
    async () => {
      ran++;
    },
  );
  t.equal(waited, 0);
  t.equal(ran, 3);
  await runSpread([], { spreadMs: 1000, concurrency: 1 }, async () => {
    t.fail("no items");
  });
});

t.test("a shard's restored subscriptions resync only their rooms", async (t) => {
  const { bus, presence, relay } = makeRelay({ resyncSpreadMs: 0 });
  t.teardown(() => relay.drain());
  for (let room = 720; room < 726; room++) await relay.attachPresenter(room, sink());
  const resynced = within(relay.events, "resynced");
  bus.reconnected([721, 724, 799]); // 799: no presenter here
  t.same(await resynced, [[721, 724, 799]]);
  t.equal(presence.reasserts, 2, "the two rooms held here, no other");
});

t.test(
  "the heartbeat re-asserts a presence key that ran out while held; a newer claim in the log still wins",
  async (t) => {
    // Heartbeat every 200 ms. The key is removed behind the relay's back, as a TTL running out while
    // Redis (a shard failing over) could not be reached would.
    const { presence, relay } = makeRelay({ presenceTtlMs: 600, resyncSpreadMs: 0 });
    relay.start();
    t.teardown(() => relay.drain());
    const s = sink();
    const session = await relay.attachPresenter(730, s);
    const resynced = within(relay.events, "resynced");
    await presence.release(730, session.connId, "stop");
    t.same(await resynced, [[730]], "re-asserted by a resync of that room");
    t.equal((await presence.get(730))?.connId, session.connId, "presence names the presenter again");
    t.equal(s.state.closed, undefined, "not taken for a takeover");

    // A newer connection claimed (its epoch is in the log) and left at once: the lost key is not ours to put back.
    const other = sink();
    const otherSession = await relay.attachPresenter(731, other);
    const newer = await presence.claim(731, { nodeId: "n2", connId: "newer" });
    await log.claimRoom(731, newer);
    await presence.release(731, "newer", "stop");
    const detached = within(relay.events, "detached");
    t.same(await detached, [731, otherSession.connId]);
    t.equal(other.state.closed, CloseCode.Replaced, "replaced, as the log says");
  },
);
