import type { Test } from "tap";
import type { Presence, PresenceRecord } from "../../src/core/ports.js";
import { pollUntil } from "./wait.js";

// What every Presence must do, whatever stores it: one list of cases, run by
// test/presence-conformance.test.ts against each implementation. Each case gets a fresh fixture.

/** The TTLs a case needs: short where the case waits for an expiry, long where it must not expire. */
export interface PresenceTiming {
  ttlMs: number;
  graceMs: number;
}

export interface PresenceFixture {
  presence: Presence;
  /** Another node's view of the same store (its own connection); the same object where there is one node only. */
  peer: Presence;
  /**
   * Loses the room's records as a store restart without persistence does (the presence record and the
   * epoch floor). Absent where the store cannot lose data: the cases let the holder release instead.
   */
  loseRoom?: (roomId: number) => Promise<void>;
  close(): Promise<void>;
}

export type PresenceFactory = (timing: PresenceTiming) => Promise<PresenceFixture>;

const SHORT = 300;
const LONG = 60_000;
/** Bound on waiting for a short TTL to run out: generous for a loaded 2-core machine, far below LONG. */
const EXPIRY_BOUND_MS = 5_000;

const A = { nodeId: "node-a", connId: "conn-a" };
const B = { nodeId: "node-b", connId: "conn-b" };

async function fixture(t: Test, factory: PresenceFactory, timing: PresenceTiming): Promise<PresenceFixture> {
  const f = await factory(timing);
  t.teardown(() => f.close());
  return f;
}

/** Waits until the room reads null, bounded; returns how long that took from `since`. */
async function expiry(presence: Presence, roomId: number, since: number, what: string): Promise<number> {
  await pollUntil(async () => ((await presence.get(roomId)) === null ? true : undefined), what, EXPIRY_BOUND_MS, 20);
  return Date.now() - since;
}

/** Empties the room as a data loss would, or (where the store cannot lose data) by the holder's release. */
async function emptyRoom(f: PresenceFixture, roomId: number, holderConnId: string): Promise<void> {
  if (f.loseRoom) await f.loseRoom(roomId);
  else await f.presence.release(roomId, holderConnId, "stop");
}

export function presenceConformance(t: Test, factory: PresenceFactory): void {
  t.test("ttl: a claim reads live at once and null after the TTL without renew", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: SHORT, graceMs: LONG });
    const before = Date.now();
    // A node id with the value separator of the Redis layout: it must come back as given.
    const epoch = await presence.claim(1, { nodeId: "node|a", connId: "conn-a" });
    t.ok(Number.isSafeInteger(epoch) && epoch > 0, "the epoch is a positive integer");
    t.strictSame(await presence.get(1), { nodeId: "node|a", connId: "conn-a", epoch, state: "live" });
    t.strictSame(await peer.get(1), { nodeId: "node|a", connId: "conn-a", epoch, state: "live" }, "other nodes see it");
    const took = await expiry(peer, 1, before, "the claim to expire");
    t.ok(took >= SHORT - 20, `not before the TTL (${took} ms)`);
    t.equal(await presence.renew(1, "conn-a"), false, "an expired claim cannot be renewed");
    t.equal(await presence.get(1), null, "and renew did not bring it back");
  });

  t.test("ttl: renew keeps a claim past its TTL; it expires once renewals stop", async (t) => {
    // A longer TTL here: a heartbeat delayed by a busy machine must not look like a lapse.
    const ttlMs = 2 * SHORT;
    const { presence, peer } = await fixture(t, factory, { ttlMs, graceMs: LONG });
    const claimedAt = Date.now();
    const epoch = await presence.claim(2, A);
    // Heartbeats (their pace is what is tested, not a synchronisation) for two TTLs: only renewals keep it that long.
    let renewals = 0;
    while (Date.now() - claimedAt < 2 * ttlMs) {
      await new Promise((resolve) => setTimeout(resolve, ttlMs / 6));
      if (await presence.renew(2, A.connId)) renewals++;
      else t.fail(`renewal ${renewals + 1} was refused ${Date.now() - claimedAt} ms after the claim`);
    }
    t.ok(renewals > 0, `${renewals} renewals`);
    t.strictSame(await peer.get(2), { ...A, epoch, state: "live" }, "still live after two TTLs");
    await expiry(peer, 2, Date.now(), "the claim to expire once renewals stop");
  });

  t.test("ttl: grace state expires after the grace window (not the TTL)", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: LONG, graceMs: SHORT });
    const epoch = await presence.claim(3, A);
    const releasedAt = Date.now();
    await presence.release(3, A.connId, "grace");
    t.strictSame(await peer.get(3), { ...A, epoch, state: "grace" }, "grace right after the release");
    const took = await expiry(peer, 3, releasedAt, "the grace state to expire");
    t.ok(took >= SHORT - 20, `not before the grace window (${took} ms)`);
  });

  t.test("epochs: every claim's epoch is above the previous one, across claimers; get() is the newest", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    let previous = 0;
    for (let i = 0; i < 10; i++) {
      const [store, who] = i % 2 === 0 ? [presence, A] : [peer, B];
      const claim = { nodeId: who.nodeId, connId: `${who.connId}-${i}` };
      const epoch = await store.claim(4, claim);
      t.ok(epoch > previous, `claim ${i}: ${epoch} > ${previous}`);
      previous = epoch;
      t.strictSame(await presence.get(4), { ...claim, epoch, state: "live" }, `claim ${i} is what get() returns`);
    }
    // The floor outlives the record: a claim after a release still gets a higher epoch.
    await peer.release(4, "conn-b-9", "stop");
    t.ok((await presence.claim(4, A)) > previous, "a claim after the room was released gets a higher epoch");
  });

  t.test("epochs: concurrent claims get distinct epochs and the highest one holds the room", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    const claims = Array.from({ length: 8 }, (_, i) => ({ nodeId: i % 2 ? "node-b" : "node-a", connId: `conn-${i}` }));
    const epochs = await Promise.all(claims.map((c, i) => (i % 2 ? peer : presence).claim(5, c)));
    t.equal(new Set(epochs).size, epochs.length, `distinct epochs ${epochs.join(",")}`);
    const newest = epochs.indexOf(Math.max(...epochs));
    t.strictSame(await peer.get(5), { ...claims[newest], epoch: epochs[newest], state: "live" });
  });

  t.test("epochs: rooms are independent records", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    const ea = await presence.claim(6, A);
    const eb = await peer.claim(7, B);
    t.strictSame(await presence.get(6), { ...A, epoch: ea, state: "live" });
    t.strictSame(await presence.get(7), { ...B, epoch: eb, state: "live" });
    await presence.release(6, A.connId, "stop");
    t.equal(await presence.get(6), null);
    t.strictSame(await presence.get(7), { ...B, epoch: eb, state: "live" }, "releasing one room leaves the other");
  });

  t.test("release: stop makes the room not live at once", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    await presence.claim(8, A);
    await presence.release(8, A.connId, "stop");
    t.equal(await peer.get(8), null);
    t.equal(await presence.renew(8, A.connId), false, "nothing left to renew");
  });

  t.test("release: grace keeps the same conn and epoch in state grace; renew no longer holds it", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    const epoch = await presence.claim(9, A);
    await presence.release(9, A.connId, "grace");
    t.strictSame(await peer.get(9), { ...A, epoch, state: "grace" });
    t.equal(await presence.renew(9, A.connId), false, "a released holder cannot renew");
    t.strictSame(await peer.get(9), { ...A, epoch, state: "grace" }, "and the failed renew changed nothing");
    await presence.release(9, A.connId, "stop");
    t.equal(await peer.get(9), null, "stop ends the grace at once");
  });

  t.test("release: grace with a zero grace window acts as stop", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: LONG, graceMs: 0 });
    await presence.claim(10, A);
    await presence.release(10, A.connId, "grace");
    t.equal(await peer.get(10), null);
  });

  t.test("release: by a connection that no longer holds the room changes nothing", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    await presence.claim(11, A);
    const epoch = await peer.claim(11, B);
    for (const mode of ["stop", "grace"] as const) {
      await presence.release(11, A.connId, mode);
      t.strictSame(await peer.get(11), { ...B, epoch, state: "live" }, `the old holder's ${mode} release`);
    }
    await presence.release(12, A.connId, "grace");
    t.equal(await presence.get(12), null, "a release of an empty room creates nothing");
  });

  t.test("renew: false for a connection that does not hold the room, and nothing changes", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    t.equal(await presence.renew(13, A.connId), false, "an empty room");
    await presence.claim(13, A);
    const epoch = await peer.claim(13, B);
    t.equal(await presence.renew(13, A.connId), false, "the replaced holder");
    t.equal(await presence.renew(13, "conn-unknown"), false, "a stranger");
    t.strictSame(await presence.get(13), { ...B, epoch, state: "live" });
    t.equal(await peer.renew(13, B.connId), true, "the holder");
  });

  t.test("reassert: puts the record back when the room's record is gone", async (t) => {
    const f = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    const epoch = await f.presence.claim(14, A);
    await emptyRoom(f, 14, A.connId);
    t.equal(await f.peer.get(14), null, "the record is gone");
    const record: PresenceRecord = { ...A, epoch, state: "live" };
    t.equal(await f.presence.reassert(14, record), true);
    t.strictSame(await f.peer.get(14), record);
    t.equal(await f.presence.renew(14, A.connId), true, "and the holder renews it again");
    t.equal(await f.presence.reassert(14, record), true, "re-asserting one's own record again is fine");
  });

  t.test("reassert: a reasserted record expires after the TTL like a claim", async (t) => {
    const f = await fixture(t, factory, { ttlMs: SHORT, graceMs: LONG });
    const epoch = await f.presence.claim(15, A);
    await emptyRoom(f, 15, A.connId);
    const at = Date.now();
    t.equal(await f.presence.reassert(15, { ...A, epoch, state: "live" }), true);
    t.strictSame(await f.peer.get(15), { ...A, epoch, state: "live" });
    const took = await expiry(f.peer, 15, at, "the reasserted record to expire");
    t.ok(took >= SHORT - 20, `not before the TTL (${took} ms)`);
  });

  t.test("reassert: refused when another connection holds the room with a newer or the same epoch", async (t) => {
    const f = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    const older = await f.presence.claim(16, A);
    const newer = await f.peer.claim(16, B);
    t.equal(await f.presence.reassert(16, { ...A, epoch: older, state: "live" }), false, "a newer epoch stands");
    t.strictSame(await f.peer.get(16), { ...B, epoch: newer, state: "live" }, "and is unchanged");

    // The same epoch (both sides re-asserting what they last saw after a loss): the first one stands.
    await emptyRoom(f, 16, B.connId);
    t.equal(await f.peer.reassert(16, { ...B, epoch: newer, state: "live" }), true);
    t.equal(await f.presence.reassert(16, { ...A, epoch: newer, state: "live" }), false, "the same epoch stands");
    t.strictSame(await f.peer.get(16), { ...B, epoch: newer, state: "live" });
  });

  t.test("reassert: refused by a grace record of another connection with a newer epoch", async (t) => {
    const f = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    const older = await f.presence.claim(17, A);
    const newer = await f.peer.claim(17, B);
    await f.peer.release(17, B.connId, "grace");
    t.equal(await f.presence.reassert(17, { ...A, epoch: older, state: "live" }), false);
    t.strictSame(await f.peer.get(17), { ...B, epoch: newer, state: "grace" });
  });

  t.test("reassert: wins over another connection's record with an older epoch", async (t) => {
    const f = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    const older = await f.presence.claim(18, A);
    const newer = await f.peer.claim(18, B);
    // After a loss the stale holder re-asserts first; the newest claim's holder must still win.
    await emptyRoom(f, 18, B.connId);
    t.equal(await f.presence.reassert(18, { ...A, epoch: older, state: "live" }), true, "the room was empty");
    t.equal(await f.peer.reassert(18, { ...B, epoch: newer, state: "live" }), true, "the newer epoch wins");
    t.strictSame(await f.presence.get(18), { ...B, epoch: newer, state: "live" });
    t.equal(await f.presence.renew(18, A.connId), false, "the stale holder no longer holds it");
  });

  t.test("reassert: keeps the epoch floor, so a later claim gets a higher epoch", async (t) => {
    const f = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    const claimed = await f.presence.claim(19, A);
    await emptyRoom(f, 19, A.connId);
    // An epoch far above anything the store issued (another store's, before a failover): only the
    // floor the reassert keeps can put the next claim above it.
    const high = claimed + 1_000_000_000;
    t.equal(await f.presence.reassert(19, { ...A, epoch: high, state: "live" }), true);
    const next = await f.peer.claim(19, B);
    t.ok(next > high, `the next claim's epoch ${next} > the reasserted ${high}`);
    t.strictSame(await f.presence.get(19), { ...B, epoch: next, state: "live" }, "and it holds the room");
  });

  t.test("acks: 0 when none, never lowered, per room", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    t.equal(await presence.ackedSeq(20), 0, "0 when none");
    await presence.recordAck(20, 5);
    t.equal(await peer.ackedSeq(20), 5);
    await peer.recordAck(20, 3);
    t.equal(await presence.ackedSeq(20), 5, "a lower ack does not lower it");
    await presence.recordAck(20, 5);
    t.equal(await presence.ackedSeq(20), 5);
    await peer.recordAck(20, 9);
    t.equal(await presence.ackedSeq(20), 9, "a higher ack raises it");
    t.equal(await presence.ackedSeq(21), 0, "another room's acks are its own");
    await Promise.all([12, 40, 17, 33].map((seq, i) => (i % 2 ? peer : presence).recordAck(20, seq)));
    t.equal(await presence.ackedSeq(20), 40, "concurrent acks keep the highest");
  });

  t.test("get: a record read is a copy; changing it changes nothing stored", async (t) => {
    const { presence } = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    const epoch = await presence.claim(22, A);
    const read = await presence.get(22);
    if (read === null) throw new Error("the claim is missing");
    Object.assign(read, { connId: "conn-x", epoch: epoch + 1, state: "grace" });
    t.strictSame(await presence.get(22), { ...A, epoch, state: "live" });
    t.equal(await presence.renew(22, A.connId), true, "the holder still holds it");
  });

  t.test("ping answers", async (t) => {
    const { presence, peer } = await fixture(t, factory, { ttlMs: LONG, graceMs: LONG });
    await presence.ping();
    await peer.ping();
    t.pass("both answered");
  });
}
