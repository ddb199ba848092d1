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
import type { BusEvent } from "../src/core/ports.js";
import { NO_LIMITS } from "../src/core/rate-limit.js";
import { Relay } from "../src/core/relay.js";

// The relay core on the real embedded log, with a bus that loses what it is told to lose.
class LossyBus extends MemoryBus {
  drop = 0;
  override async publish(roomId: number, event: BusEvent): Promise<void> {
    if (event.kind === "message" && this.drop > 0) {
      this.drop--;
      return;
    }
    return super.publish(roomId, event);
  }
}

const db = await openDatabase({ databaseUrl: undefined, pgliteDataDir: "memory://" });
await applyMigrations(db);
const log = new PrismaChatLog(db, 100);
const bus = new LossyBus();
// A 3 s presence TTL (heartbeat every second): long enough that a slow first attach on a loaded
// machine (PGlite's first statements) cannot outlive its own claim, which fails the attach.
const presence = new MemoryPresence(3000, 10_000);
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
    presenceTtlMs: 3000,
    resumeDefault: "live",
  },
  pino({ level: "silent" }),
  { post() {}, delivered() {}, presenters() {}, publishSeconds() {} },
);
relay.start();
t.teardown(async () => {
  await relay.drain();
  await log.close();
});

function sink() {
  const got: ChatMessage[] = [];
  const waiters: (() => void)[] = [];
  return {
    got,
    send(m: ChatMessage) {
      got.push(m);
      for (const w of waiters.splice(0)) w();
      return 0;
    },
    close() {},
    until(n: number, timeoutMs = 5000): Promise<void> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} delivered`)), timeoutMs);
        const check = () => {
          if (got.length >= n) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
      });
    },
  };
}

const send = (roomId: number, text: string) =>
  relay.send({ roomId, senderId: 9, nickname: "v", userType: "viewer", text });

// Gap fill itself (a lost publish, then another message) is proven by gap-fill.test.ts, with the
// heartbeat out of the way: here the heartbeat (every second) would deliver the message on its own.

t.test("a lost publish with nothing after it: the heartbeat's reconcile delivers it", async (t) => {
  const s = sink();
  await relay.attachPresenter(2, s);
  bus.drop = 1;
  await send(2, "the last word");
  await s.until(1);
  t.same(
    s.got.map((m) => m.text),
    ["the last word"],
  );
});

t.test("out-of-order arrival is delivered in seq order", async (t) => {
  const s = sink();
  const session = await relay.attachPresenter(3, s);
  const at = (seq: number): ChatMessage => ({
    id: `id-${seq}`,
    roomId: 3,
    seq,
    senderId: 1,
    nickname: "x",
    userType: "viewer",
    text: `m${seq}`,
    sentAt: new Date(),
  });
  session.offer(at(3));
  session.offer(at(2));
  t.equal(s.got.length, 0, "held while seq 1 is missing");
  session.offer(at(1));
  session.offer(at(2));
  t.same(
    s.got.map((m) => m.seq),
    [1, 2, 3],
    "in order once the hole is filled, the duplicate dropped",
  );
});
