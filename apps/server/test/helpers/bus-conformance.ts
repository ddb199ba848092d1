import type { Test } from "tap";
import type { ChatMessage } from "../../src/core/message.js";
import type { Bus, BusEvent } from "../../src/core/ports.js";
import { pollUntil, within } from "./wait.js";

// What every Bus must do, whatever carries it: one list of cases, run by test/bus-conformance.test.ts
// against each implementation. Each case gets a fresh fixture. Negative checks ("nothing else
// arrived") wait for a later event on the same room instead of sleeping: a room's events arrive in
// publish order, so anything wrongly delivered would have come first.

export interface BusFixture {
  /** The node under test: it subscribes. */
  bus: Bus;
  /** Another node's bus (its own connections) that publishes; the same object where there is one node only. */
  publisher: Bus;
  close(): Promise<void>;
}

export interface BusFaultFixture extends BusFixture {
  /**
   * Breaks the connection that carries `roomId`'s subscription and lets it come back: a restart of
   * the one Redis, or the death of the master owning the room's slot on a cluster.
   */
  loseConnection(roomId: number): Promise<void>;
}

export type BusFactory<F extends BusFixture = BusFixture> = () => Promise<F>;

/** The codec limits the fixtures' buses use. */
export const BUS_LIMITS = { maxTextLength: 500 };

const DELIVERY_MS = 5_000;

export function chatMessage(roomId: number, seq: number, overrides: Partial<ChatMessage> = {}): ChatMessage {
  return {
    id: `0190a7c2-7b1e-7c3a-9f00-${String(seq).padStart(12, "0")}`,
    roomId,
    seq,
    senderId: 9,
    nickname: "viewer nine",
    userType: "viewer",
    text: `hello ${seq}`,
    sentAt: new Date(Date.UTC(2025, 0, 2, 3, 4, 5, seq % 1000)),
    ...overrides,
  };
}

export const messageEvent = (roomId: number, seq: number): BusEvent => ({
  kind: "message",
  message: chatMessage(roomId, seq),
});

/** What a room's subscriber received, with a bounded wait for a count or a condition. */
export class Inbox {
  readonly events: BusEvent[] = [];
  private waiters: (() => void)[] = [];

  readonly handler = (event: BusEvent): void => {
    this.events.push(event);
    for (const wake of this.waiters.splice(0)) wake();
  };

  /** Resolves once `check` holds on what arrived, or rejects after `timeoutMs`. */
  async until(check: (events: BusEvent[]) => boolean, what: string, timeoutMs = DELIVERY_MS): Promise<void> {
    const arrived = new Promise<void>((resolve) => {
      const test = () => (check(this.events) ? resolve() : this.waiters.push(test));
      test();
    });
    await within(arrived, timeoutMs, what);
  }

  async count(n: number, what = `${n} events`): Promise<void> {
    await this.until((events) => events.length >= n, what);
  }

  /** Resolves once an event equal to `event` (by its seq or takeover conn) arrived. */
  async has(event: BusEvent, what: string): Promise<void> {
    await this.until((events) => events.some((e) => sameKey(e, event)), what);
  }
}

function sameKey(a: BusEvent, b: BusEvent): boolean {
  if (a.kind === "message" && b.kind === "message") return a.message.seq === b.message.seq;
  return a.kind === "takeover" && b.kind === "takeover" && a.connId === b.connId;
}

const takeover = (connId: string, epoch: number): BusEvent => ({ kind: "takeover", connId, epoch });

async function fixture<F extends BusFixture>(t: Test, factory: BusFactory<F>): Promise<F> {
  const f = await factory();
  t.teardown(() => f.close());
  return f;
}

export function busConformance(t: Test, factory: BusFactory): void {
  t.test("subscribe, then publish from another node: delivered and decoded as published", async (t) => {
    const { bus, publisher } = await fixture(t, factory);
    const inbox = new Inbox();
    await bus.subscribe(1, inbox.handler);
    const published: BusEvent[] = [
      messageEvent(1, 1),
      takeover("conn-b", 1_700_000_000_123),
      {
        kind: "message",
        message: {
          ...chatMessage(1, 3),
          nickname: "",
          text: "",
          kind: "delete",
          event: { targetSeq: 1, reason: "spam", silent: false, note: null },
        },
      },
      { kind: "message", message: chatMessage(1, 4, { userType: "presenter", text: 'a "quoted" ünïcødé 🎉 text' }) },
    ];
    for (const event of published) await publisher.publish(1, event);
    await inbox.count(published.length);
    t.strictSame(inbox.events, published);
    t.ok(
      inbox.events.every((e) => e.kind !== "message" || e.message.sentAt instanceof Date),
      "dates come back as Dates",
    );
  });

  t.test("a publish from the subscribing node itself is delivered too", async (t) => {
    const { bus } = await fixture(t, factory);
    const inbox = new Inbox();
    await bus.subscribe(2, inbox.handler);
    await bus.publish(2, messageEvent(2, 1));
    await inbox.count(1);
    t.strictSame(inbox.events, [messageEvent(2, 1)]);
  });

  t.test("a room's events arrive in publish order", async (t) => {
    const { bus, publisher } = await fixture(t, factory);
    const inbox = new Inbox();
    await bus.subscribe(3, inbox.handler);
    const published: BusEvent[] = [];
    for (let seq = 1; seq <= 200; seq++) {
      // A takeover now and then: both kinds share the room's one order.
      const event = seq % 50 === 0 ? takeover(`conn-${seq}`, seq) : messageEvent(3, seq);
      published.push(event);
      await publisher.publish(3, event);
    }
    await inbox.count(published.length);
    t.strictSame(inbox.events, published);
  });

  t.test("a subscriber of one room never sees another room's events", async (t) => {
    const { bus, publisher } = await fixture(t, factory);
    const [a, b] = [new Inbox(), new Inbox()];
    await bus.subscribe(4, a.handler);
    await bus.subscribe(5, b.handler);
    for (let i = 1; i <= 10; i++) {
      // Takeovers name no room: only the channel can tell where they belong.
      await publisher.publish(4, takeover(`room-4-${i}`, i));
      await publisher.publish(5, takeover(`room-5-${i}`, i));
      await publisher.publish(6, takeover(`room-6-${i}`, i));
    }
    // The fences close each room's stream: anything misrouted on it came before.
    await publisher.publish(4, messageEvent(4, 1));
    await publisher.publish(5, messageEvent(5, 1));
    await a.has(messageEvent(4, 1), "room 4's fence");
    await b.has(messageEvent(5, 1), "room 5's fence");
    const conns = (inbox: Inbox) =>
      inbox.events.map((e) => (e.kind === "takeover" ? e.connId : `seq-${e.message.seq}`));
    t.strictSame(conns(a), [...Array.from({ length: 10 }, (_, i) => `room-4-${i + 1}`), "seq-1"]);
    t.strictSame(conns(b), [...Array.from({ length: 10 }, (_, i) => `room-5-${i + 1}`), "seq-1"]);
  });

  t.test("after unsubscribe() resolves nothing more is delivered; subscribing again works", async (t) => {
    const { bus, publisher } = await fixture(t, factory);
    const first = new Inbox();
    await bus.subscribe(7, first.handler);
    await publisher.publish(7, messageEvent(7, 1));
    await first.count(1);
    await bus.unsubscribe(7);
    await publisher.publish(7, messageEvent(7, 2));
    const second = new Inbox();
    await bus.subscribe(7, second.handler);
    await publisher.publish(7, messageEvent(7, 3));
    await second.has(messageEvent(7, 3), "the event after re-subscribing");
    // Seq 2 went out while unsubscribed: had it been delivered, it would have come before seq 3.
    t.strictSame(first.events, [messageEvent(7, 1)], "the old handler got nothing after unsubscribe");
    t.strictSame(second.events, [messageEvent(7, 3)], "the new handler only what came after subscribe");
  });

  t.test("unsubscribing one room leaves the others delivering", async (t) => {
    const { bus, publisher } = await fixture(t, factory);
    const [a, b] = [new Inbox(), new Inbox()];
    await bus.subscribe(8, a.handler);
    await bus.subscribe(9, b.handler);
    await bus.unsubscribe(8);
    await publisher.publish(8, messageEvent(8, 1));
    await publisher.publish(9, messageEvent(9, 1));
    await b.count(1);
    t.strictSame(b.events, [messageEvent(9, 1)]);
    await bus.unsubscribe(10);
    t.pass("unsubscribing a room never subscribed is harmless");
  });

  t.test("many rooms (different slots) subscribed and unsubscribed at once", async (t) => {
    const { bus, publisher } = await fixture(t, factory);
    // Hash tags {100}..{123}: their slots spread over every shard of a cluster.
    const rooms = Array.from({ length: 24 }, (_, i) => 100 + i);
    const inboxes = new Map(rooms.map((room) => [room, new Inbox()]));
    const inbox = (room: number) => inboxes.get(room) as Inbox;
    await Promise.all(rooms.map((room) => bus.subscribe(room, inbox(room).handler)));
    await Promise.all(rooms.map((room) => publisher.publish(room, messageEvent(room, 1))));
    await Promise.all(rooms.map((room) => inbox(room).count(1, `room ${room}'s event`)));
    for (const room of rooms) t.strictSame(inbox(room).events, [messageEvent(room, 1)], `room ${room}`);

    // Half of them go at once; the other half must keep delivering.
    const [gone, kept] = [rooms.filter((r) => r % 2 === 0), rooms.filter((r) => r % 2 === 1)];
    await Promise.all(gone.map((room) => bus.unsubscribe(room)));
    await Promise.all(rooms.map((room) => publisher.publish(room, messageEvent(room, 2))));
    await Promise.all(kept.map((room) => inbox(room).count(2, `room ${room}'s second event`)));
    // And back at once: the first event after re-subscribing is seq 3, never the 2 sent while away.
    await Promise.all(gone.map((room) => bus.subscribe(room, inbox(room).handler)));
    await Promise.all(gone.map((room) => publisher.publish(room, messageEvent(room, 3))));
    await Promise.all(gone.map((room) => inbox(room).has(messageEvent(room, 3), `room ${room}'s third event`)));
    for (const room of gone) {
      t.strictSame(
        inbox(room).events,
        [messageEvent(room, 1), messageEvent(room, 3)],
        `room ${room} after re-subscribe`,
      );
    }
    for (const room of kept) t.strictSame(inbox(room).events, [messageEvent(room, 1), messageEvent(room, 2)]);
  });

  t.test("publishing to a room nobody subscribes resolves", async (t) => {
    const { publisher } = await fixture(t, factory);
    await publisher.publish(11, messageEvent(11, 1));
    t.pass("published");
  });

  t.test("ping answers", async (t) => {
    const { bus, publisher } = await fixture(t, factory);
    await bus.ping();
    await publisher.ping();
    t.pass("both answered");
  });
}

/** The resync contract, for the buses that can lose a connection. */
export function busResyncConformance(t: Test, factory: BusFactory<BusFaultFixture>): void {
  t.test("after a connection loss onResync fires and the subscriptions deliver again", async (t) => {
    const f = await fixture(t, factory);
    const [lost, other] = [new Inbox(), new Inbox()];
    await f.bus.subscribe(21, lost.handler);
    await f.bus.subscribe(22, other.handler);
    await f.publisher.publish(21, messageEvent(21, 1));
    await lost.count(1);
    const resyncs: (readonly number[] | undefined)[] = [];
    const resynced = new Promise<void>((resolve) => {
      f.bus.onResync((roomIds?: readonly number[]) => {
        resyncs.push(roomIds);
        // Every room (undefined) or a list naming the room whose connection was lost.
        if (roomIds === undefined || roomIds.includes(21)) resolve();
      });
    });
    await f.loseConnection(21);
    await within(resynced, 30_000, "onResync naming room 21 (or every room)");
    t.ok(resyncs.length > 0, `onResync fired with ${JSON.stringify(resyncs)}`);

    for (const [room, inbox] of [
      [21, lost],
      [22, other],
    ] as const) {
      const event = messageEvent(room, 2);
      // The publishing node may still be reconnecting itself: it retries until its publish is taken.
      await pollUntil(
        () =>
          f.publisher.publish(room, event).then(
            () => true,
            () => undefined,
          ),
        `room ${room}'s publisher to be back`,
        30_000,
      );
      await inbox.has(event, `room ${room}'s event after the resync`);
      t.pass(`room ${room} delivers again`);
    }
  });
}
