import fc from "fast-check";
import pino from "pino";
import t from "tap";
import { type BusDecodeResult, decodeBusEvent, encodeBusEvent, maxPayloadChars } from "../src/adapters/bus-codec.js";
import { effectiveRedisUrl, reconnectDelay } from "../src/adapters/redis.js";
import { RateLimitedWarning } from "../src/adapters/redis-bus.js";
import type { ChatMessage } from "../src/core/message.js";
import type { BusEvent } from "../src/core/ports.js";
import { checkText, cleanNickname } from "../src/core/text.js";
import { redactUrl as redact } from "../src/ops/redact-url.js";

// The bus codec is the first thing a forged Redis payload meets: it must never throw, and
// whatever it accepts must be a well-formed event for the channel's room.
const LIMITS = { maxTextLength: 500 };
const ROOM = 42;
const REASONS = ["size", "json", "kind", "field", "room"];

function message(overrides: Partial<Record<keyof ChatMessage, unknown>> = {}): Record<string, unknown> {
  return {
    id: "0190a7c2-7b1e-7c3a-9f00-123456789abc",
    roomId: ROOM,
    seq: 7,
    senderId: 9,
    nickname: "viewer nine",
    userType: "viewer",
    text: "hello there",
    sentAt: "2025-01-02T03:04:05.678Z",
    ...overrides,
  };
}

const decode = (payload: unknown, roomId = ROOM): BusDecodeResult => decodeBusEvent(payload, roomId, LIMITS);
const reasonOf = (r: BusDecodeResult) => (r.ok ? "accepted" : r.reason);

/** What any accepted event must satisfy, whatever it was decoded from. */
function isWellFormed(event: BusEvent, roomId: number): boolean {
  const positive = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n > 0;
  if (Object.getPrototypeOf(event) !== Object.prototype) return false;
  if (event.kind === "takeover") {
    return (
      Object.keys(event).sort().join() === "connId,epoch,kind" &&
      positive(event.epoch) &&
      typeof event.connId === "string" &&
      event.connId.length <= 64
    );
  }
  const m = event.message;
  return (
    Object.keys(m).sort().join() === "id,nickname,roomId,senderId,sentAt,seq,text,userType" &&
    m.roomId === roomId &&
    positive(m.seq) &&
    positive(m.senderId) &&
    m.sentAt instanceof Date &&
    !Number.isNaN(m.sentAt.getTime()) &&
    (m.userType === "viewer" || m.userType === "presenter") &&
    typeof m.text === "string" &&
    typeof m.nickname === "string"
  );
}

t.test("a node's own events round-trip", async (t) => {
  const sent: BusEvent = {
    kind: "message",
    message: { ...(message() as unknown as ChatMessage), sentAt: new Date("2025-01-02T03:04:05.678Z") },
  };
  const back = decode(encodeBusEvent(sent));
  t.same(back, { ok: true, event: sent });
  t.same(decode(encodeBusEvent({ kind: "takeover", connId: "8b1f3c2e-1d2a-4b6c-9e7f-0a1b2c3d4e5f", epoch: 1 })), {
    ok: true,
    event: { kind: "takeover", connId: "8b1f3c2e-1d2a-4b6c-9e7f-0a1b2c3d4e5f", epoch: 1 },
  });
  // The longest text a node accepts (astral code points, quotes escaped) still fits the size bound.
  const longest = `"${"😀".repeat(LIMITS.maxTextLength - 2)}"`;
  t.equal(reasonOf(decode(JSON.stringify({ kind: "message", message: message({ text: longest }) }))), "accepted");
});

t.test("property: generated valid events are accepted unchanged", async () => {
  // Names and texts go through the node's own rules first, as they do before a publish.
  const validMessage = fc
    .record({
      id: fc.uuid(),
      roomId: fc.constant(ROOM),
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      senderId: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      nickname: fc.string({ unit: "grapheme", maxLength: 80 }),
      userType: fc.constantFrom("viewer" as const, "presenter" as const),
      text: fc.string({ unit: "grapheme", minLength: 1, maxLength: 120 }),
      sentAt: fc.date({ min: new Date(0), max: new Date("9999-12-31T23:59:59.999Z"), noInvalidDate: true }),
    })
    .map((m) => {
      const checked = checkText(m.text, LIMITS.maxTextLength);
      return checked.ok ? { ...m, nickname: cleanNickname(m.nickname, m.senderId), text: checked.text } : undefined;
    })
    .filter((m) => m !== undefined);
  fc.assert(
    fc.property(validMessage, (m) => {
      const event: BusEvent = { kind: "message", message: m };
      const out = decode(encodeBusEvent(event));
      return out.ok && JSON.stringify(out.event) === JSON.stringify(event);
    }),
    { numRuns: 300 },
  );
});

t.test("property: arbitrary JSON never throws and is either rejected or well-formed", async (t) => {
  let accepted = 0;
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
      const out = decode(JSON.stringify(value));
      if (!out.ok) return REASONS.includes(out.reason);
      accepted++;
      return true;
    }),
    { numRuns: 2000 },
  );
  t.equal(accepted, 0, "random JSON is never a valid event");
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 300 }), (s) => {
      const out = decode(s);
      return out.ok === false && REASONS.includes(out.reason);
    }),
    { numRuns: 2000 },
  );
});

t.test("property: one field replaced by anything is accepted only when still valid", async () => {
  const fields = ["id", "roomId", "seq", "senderId", "nickname", "userType", "text", "sentAt"] as const;
  fc.assert(
    fc.property(fc.constantFrom(...fields), fc.jsonValue({ maxDepth: 3 }), (field, value) => {
      const out = decode(JSON.stringify({ kind: "message", message: message({ [field]: value }) }));
      return out.ok ? isWellFormed(out.event, ROOM) : REASONS.includes(out.reason);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 3 }), (connId, epoch) => {
      const out = decode(JSON.stringify({ kind: "takeover", connId, epoch }));
      return out.ok ? isWellFormed(out.event, ROOM) : REASONS.includes(out.reason);
    }),
    { numRuns: 2000 },
  );
});

t.test("wrong types, ranges and rooms are rejected with a reason", async (t) => {
  const msg = (o: Partial<Record<keyof ChatMessage, unknown>>) =>
    JSON.stringify({ kind: "message", message: message(o) });
  const cases: [string, unknown, string][] = [
    ["string seq", msg({ seq: "8" }), "field"],
    ["zero seq", msg({ seq: 0 }), "field"],
    ["negative seq", msg({ seq: -1 }), "field"],
    ["fractional seq", msg({ seq: 1.5 }), "field"],
    ["seq past 2^53", msg({ seq: 2 ** 53 }), "field"],
    ["seq 1e400 (Infinity)", msg({ seq: 7 }).replace('"seq":7', '"seq":1e400'), "field"],
    ["huge integer literal", msg({ seq: 7 }).replace('"seq":7', `"seq":${"9".repeat(400)}`), "field"],
    ["string roomId", msg({ roomId: String(ROOM) }), "field"],
    ["wrong room", msg({ roomId: ROOM + 1 }), "room"],
    ["senderId 0", msg({ senderId: 0 }), "field"],
    ["userType admin", msg({ userType: "admin" }), "field"],
    ["id with a slash", msg({ id: "../../etc" }), "field"],
    ["id too long", msg({ id: "a".repeat(65) }), "field"],
    ["nickname with a newline", msg({ nickname: "a\nb" }), "field"],
    ["nickname too long", msg({ nickname: "n".repeat(65) }), "field"],
    ["text empty", msg({ text: "" }), "field"],
    ["text too long", msg({ text: "x".repeat(501) }), "field"],
    ["text with a control character", msg({ text: "ding\u0007" }), "field"],
    ["text with a lone surrogate", msg({ text: "a\ud800b" }), "field"],
    ["text untrimmed", msg({ text: " hi" }), "field"],
    ["sentAt not a date", msg({ sentAt: "yesterday" }), "field"],
    ["sentAt impossible day", msg({ sentAt: "2025-02-30T00:00:00.000Z" }), "field"],
    ["sentAt as a number", msg({ sentAt: 1735787045678 }), "field"],
    ["sentAt without milliseconds", msg({ sentAt: "2025-01-02T03:04:05Z" }), "field"],
    ["message is an array", JSON.stringify({ kind: "message", message: [1, 2] }), "field"],
    ["message missing", JSON.stringify({ kind: "message" }), "field"],
    ["takeover epoch as a string", JSON.stringify({ kind: "takeover", connId: "c", epoch: "99" }), "field"],
    ["takeover epoch 0", JSON.stringify({ kind: "takeover", connId: "c", epoch: 0 }), "field"],
    ["takeover epoch past 2^53", JSON.stringify({ kind: "takeover", connId: "c", epoch: 2 ** 60 }), "field"],
    ["takeover without connId", JSON.stringify({ kind: "takeover", epoch: 5 }), "field"],
    ["unknown kind", JSON.stringify({ kind: "shutdown" }), "kind"],
    ["kind missing", JSON.stringify({ message: message() }), "kind"],
    ["an array", "[1,2,3]", "kind"],
    ["null", "null", "kind"],
    ["a number", "12", "kind"],
    ["garbage", "\u0000\u00ff not json {", "json"],
    ["truncated", msg({}).slice(0, -3), "json"],
    ["empty", "", "json"],
    ["a Buffer, not a string", Buffer.from("{}"), "size"],
    ["undefined", undefined, "size"],
    ["over the size bound", JSON.stringify({ kind: "takeover", connId: "c", epoch: 1, pad: "x".repeat(4000) }), "size"],
    ["5000-deep nesting", `${"[".repeat(5000)}${"]".repeat(5000)}`, "size"],
  ];
  for (const [name, payload, reason] of cases) t.equal(reasonOf(decode(payload)), reason, name);
});

t.test("deep nesting within a large size bound never throws", async (t) => {
  const limits = { maxTextLength: 100_000 };
  const depth = Math.floor(maxPayloadChars(limits) / 2) - 1;
  for (const payload of [
    `${"[".repeat(depth)}${"]".repeat(depth)}`,
    `${'{"a":'.repeat(Math.floor(depth / 3))}1${"}".repeat(Math.floor(depth / 3))}`,
    `{"kind":"message","message":${"[".repeat(depth - 20)}${"]".repeat(depth - 20)}}`,
  ]) {
    const out = decodeBusEvent(payload, ROOM, limits);
    t.equal(out.ok, false);
  }
});

t.test("__proto__ keys neither pollute nor smuggle fields", async (t) => {
  const viaProto = `{"__proto__":{"kind":"takeover","connId":"c","epoch":9},"x":1}`;
  t.equal(reasonOf(decode(viaProto)), "kind", "fields behind __proto__ are not read");
  const nested = `{"kind":"message","message":{"__proto__":${JSON.stringify(message())}}}`;
  t.equal(reasonOf(decode(nested)), "field");
  const extra = `{"kind":"takeover","connId":"c1","epoch":5,"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}`;
  const out = decode(extra);
  t.same(out, { ok: true, event: { kind: "takeover", connId: "c1", epoch: 5 } }, "only the known fields are copied");
  t.equal(({} as Record<string, unknown>).polluted, undefined, "Object.prototype untouched");
  if (out.ok) t.notOk(Object.hasOwn(out.event, "__proto__"));
  const withExtraMessageKeys = JSON.stringify({ kind: "message", message: { ...message(), admin: true, toString: 1 } });
  const m = decode(withExtraMessageKeys);
  t.ok(m.ok, "unknown keys are ignored (a newer node may add fields)");
  if (m.ok && m.event.kind === "message") t.notOk("admin" in m.event.message);
});

t.test("rejection warnings are rate limited and count what they suppressed", async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "warn" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  let now = 1000;
  const warning = new RateLimitedWarning(logger, "dropping invalid bus payload", 10_000, () => now);
  for (let i = 0; i < 50; i++) warning.warn({ reason: "json" });
  now += 10_000;
  warning.warn({ reason: "size" });
  t.equal(lines.length, 2, "one line per interval");
  t.match(lines[0], { reason: "json", suppressedSinceLast: 0, msg: "dropping invalid bus payload" });
  t.match(lines[1], { reason: "size", suppressedSinceLast: 49 });
});

t.test("reconnect delays: full jitter between the base and an exponential ceiling", async (t) => {
  t.equal(
    reconnectDelay(1, () => 0),
    50,
    "random 0: the base",
  );
  t.equal(
    reconnectDelay(1, () => 1),
    100,
    "first retry: up to 2x the base",
  );
  t.equal(
    reconnectDelay(3, () => 1),
    400,
  );
  t.equal(
    reconnectDelay(50, () => 1),
    2000,
    "capped",
  );
  t.equal(
    reconnectDelay(1e9, () => 0.5),
    1025,
    "no overflow on a long outage",
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 1000 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (n, r) => {
        const d = reconnectDelay(n, () => r);
        return Number.isInteger(d) && d >= 50 && d <= 2000;
      },
    ),
  );
});

t.test("REDIS_USERNAME / REDIS_PASSWORD replace the URL's credentials; redact hides the password", async (t) => {
  t.equal(
    effectiveRedisUrl({ redisUrl: "redis://u:p@h:6379/2", redisUsername: undefined, redisPassword: undefined }),
    "redis://u:p@h:6379/2",
  );
  const both = effectiveRedisUrl({ redisUrl: "rediss://h:6380", redisUsername: "app", redisPassword: "p@ss:w%rd/" });
  const u = new URL(both);
  t.equal(u.protocol, "rediss:");
  t.equal(decodeURIComponent(u.username), "app");
  t.equal(decodeURIComponent(u.password), "p@ss:w%rd/", "special characters survive the round trip");
  t.equal(
    new URL(effectiveRedisUrl({ redisUrl: "redis://old:old@h", redisUsername: undefined, redisPassword: "new" }))
      .password,
    "new",
  );
  t.equal(redact(both), "rediss://app:***@h:6380");
  t.notMatch(redact("redis://:hunter2@h:1"), /hunter2/);
});
