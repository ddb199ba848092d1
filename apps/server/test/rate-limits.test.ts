import { setTimeout as delay } from "node:timers/promises";
import fc from "fast-check";
import t, { type Test } from "tap";
import { gcra, type Limit } from "../src/core/rate-limit.js";
import { type HttpResult, request, seedHeaders } from "./helpers/http.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// Rate limits on one node (the embedded, in-process gate): v1 and seed answers, what a refusal
// leaves behind (nothing), who gets which limit, the per-address socket limit, "off"; and the
// properties of the GCRA arithmetic itself. The cluster-wide behaviour is rate-limits-cluster.test.ts.

// ---------------------------------------------------------------------------------------------
// GCRA (core/rate-limit.ts): fast-check properties over simulated timelines (integer ms clock).

/** Realistic limits: 1..100 posts per 1 s .. 1 h, on a clock near today's Date.now(). */
const limitArb = fc.record({
  count: fc.integer({ min: 1, max: 100 }),
  windowMs: fc.integer({ min: 1000, max: 3_600_000 }),
});
const clockArb = fc.integer({ min: 1_700_000_000_000, max: 2_000_000_000_000 });
/** Gaps between attempts, many of them 0 (several attempts in one millisecond). */
const gapsArb = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5_000 })), { maxLength: 300 });

/** Every attempt in order; returns the times of the admitted ones. */
function simulate(limit: Limit, start: number, gaps: number[]): number[] {
  let tat: number | undefined;
  let now = start;
  const admitted: number[] = [];
  for (const gap of gaps) {
    now += gap;
    const verdict = gcra(tat, now, limit);
    if ("tat" in verdict) {
      tat = verdict.tat;
      admitted.push(now);
    }
  }
  return admitted;
}

function holds<Ts>(t: Test, property: fc.IProperty<Ts>): void {
  // Throws the shrunk counterexample when the property fails.
  fc.assert(property, { numRuns: 500, endOnFailure: true });
  t.pass("property held");
}

t.test("gcra: within any stretch of L ms it admits at most count + floor(L * count / window)", async (t) => {
  // GCRA is a burst of `count`, then `count` per window: it bounds every stretch by that, so any stretch
  // shorter than one interval (window / count) holds at most `count` posts. It does NOT bound a window of
  // `windowMs` by `count`: posting whenever allowed admits up to 2 * count - 1 in one window.
  holds(
    t,
    fc.property(limitArb, clockArb, gapsArb, (limit, start, gaps) => {
      const admitted = simulate(limit, start, gaps);
      for (let i = 0; i < admitted.length; i++) {
        for (let j = i; j < admitted.length; j++) {
          const stretch = (admitted[j] as number) - (admitted[i] as number);
          const bound = limit.count + Math.floor((stretch * limit.count) / limit.windowMs);
          if (j - i + 1 > bound) throw new Error(`${j - i + 1} admitted within ${stretch} ms, bound ${bound}`);
        }
      }
    }),
  );
});

t.test("gcra: a fresh key admits a burst of exactly count at one instant", async (t) => {
  holds(
    t,
    fc.property(limitArb, clockArb, (limit, now) => {
      const admitted = simulate(
        limit,
        now,
        Array.from({ length: limit.count + 3 }, () => 0),
      );
      if (admitted.length !== limit.count) throw new Error(`burst admitted ${admitted.length}, not ${limit.count}`);
    }),
  );
});

t.test("gcra: after the burst, a steady count per window (one per interval) is always admitted", async (t) => {
  holds(
    t,
    fc.property(limitArb, clockArb, fc.integer({ min: 1, max: 200 }), (limit, start, steps) => {
      let tat: number | undefined;
      for (let i = 0; i < limit.count; i++) {
        const v = gcra(tat, start, limit);
        if ("tat" in v) tat = v.tat;
      }
      for (let k = 1; k <= steps; k++) {
        // The k-th post of the steady rate, on an integer millisecond clock (never early).
        const now = start + Math.ceil((k * limit.windowMs) / limit.count);
        const v = gcra(tat, now, limit);
        if (!("tat" in v)) throw new Error(`steady post ${k} refused (retry after ${v.retryAfterMs} ms)`);
        tat = v.tat;
      }
    }),
  );
});

t.test("gcra: retryAfter is exact: refused 1 ms before it, admitted at it", async (t) => {
  holds(
    t,
    fc.property(limitArb, clockArb, gapsArb, (limit, start, gaps) => {
      let tat: number | undefined;
      let now = start;
      for (const gap of gaps) {
        now += gap;
        const v = gcra(tat, now, limit);
        if ("tat" in v) tat = v.tat;
      }
      // Exhaust the key at `now`, then check the first refusal.
      for (let i = 0; i <= limit.count; i++) {
        const v = gcra(tat, now, limit);
        if ("tat" in v) {
          tat = v.tat;
          continue;
        }
        if (!(v.retryAfterMs >= 1)) throw new Error(`retryAfter ${v.retryAfterMs} < 1 ms`);
        if (!("tat" in gcra(tat, now + v.retryAfterMs, limit))) throw new Error("refused at now + retryAfter");
        if ("tat" in gcra(tat, now + v.retryAfterMs - 1, limit)) throw new Error("admitted before now + retryAfter");
        return;
      }
      throw new Error(`${limit.count + 1} posts at one instant were all admitted`);
    }),
  );
});

// ---------------------------------------------------------------------------------------------
// One node, embedded gate.

const RETRY_AFTER = /^[1-9]\d*$/;

async function presenter(server: TestServer, room: number): Promise<TestSocket> {
  const token = await mintToken({ user_idx: room, nickname: `host${room}` });
  const socket = new TestSocket(`${server.ws}/v1/rooms/${room}/presenter?access_token=${token}`);
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready");
  return socket;
}

async function post(
  server: TestServer,
  room: number,
  userId: number,
  text: string,
  headers: Record<string, string> = {},
): Promise<HttpResult<Record<string, unknown>>> {
  const token = await mintToken({ user_idx: userId, nickname: `u${userId}` });
  return request<Record<string, unknown>>(`${server.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${token}`, ...headers },
    body: { text },
  });
}

function seedPost(server: TestServer, room: number, userId: number, text: string) {
  return request<Record<string, unknown>>(`${server.http}/send/message`, {
    headers: seedHeaders(userId, `u${userId}`),
    body: { presenterIdx: room, userType: "viewer", textMessage: text },
  });
}

/** Posts in order; the HTTP statuses. */
async function statuses(posts: (() => Promise<HttpResult>)[]): Promise<number[]> {
  const out: number[] = [];
  for (const p of posts) out.push((await p()).status);
  return out;
}

const texts = (socket: TestSocket) =>
  socket
    .json<{ type: string; text: string; seq: number }>()
    .filter((f) => f.type === "message")
    .map((f) => `${f.seq}:${f.text}`);

function expectRateLimited(t: Test, res: HttpResult<Record<string, unknown>>, what: string): void {
  t.equal(res.status, 429, `${what}: 429`);
  t.equal(res.headers.get("content-type"), "application/problem+json; charset=utf-8", `${what}: problem+json`);
  t.match(res.body, { code: "rate_limited", status: 429, type: /\/rate_limited$/ }, `${what}: rate_limited`);
  t.match(res.headers.get("retry-after"), RETRY_AFTER, `${what}: Retry-After >= 1`);
}

// Every server starts here, before the root has a teardown: tap ends an idle root that has one,
// and a top-level await between subtests would leave it idle.
const limited = await startTestServer({
  RATE_LIMIT_ROOM: "3/60s",
  RATE_LIMIT_ROOM_PRIVILEGED: "6/60s",
  RATE_LIMIT_SENDER: "8/60s",
});
const addresses = await startTestServer({
  TRUST_PROXY: "127.0.0.1",
  RATE_LIMIT_ADDRESS_POSTS: "4/60s",
  RATE_LIMIT_ADDRESS_SOCKETS: "3/60s",
  RATE_LIMIT_ROOM: "2/2s",
});
const defaults = await startTestServer({
  // Unset: the default 20/30s. The others explicitly "off".
  RATE_LIMIT_ROOM: undefined,
  RATE_LIMIT_ROOM_PRIVILEGED: "off",
  RATE_LIMIT_SENDER: "off",
  RATE_LIMIT_ADDRESS_POSTS: "off",
  RATE_LIMIT_ADDRESS_SOCKETS: "off",
});
t.teardown(() => Promise.all([limited.shutdown(), addresses.shutdown(), defaults.shutdown()]));

t.test("a viewer's 4th post within the window: 429 rate_limited; nothing logged or delivered", async (t) => {
  const room = 301;
  const host = await presenter(limited, room);
  t.same(
    await statuses([1, 2, 3].map((i) => () => post(limited, room, 3101, `v${i}`))),
    [201, 201, 201],
    "three posts pass",
  );
  const refused = await post(limited, room, 3101, "v4 refused");
  expectRateLimited(t, refused, "4th post");
  const retryAfter = Number(refused.headers.get("retry-after"));
  t.ok(retryAfter >= 1 && retryAfter <= 20, `Retry-After ${retryAfter} s: the next slot of 3/60s is 20 s away at most`);
  t.notMatch(refused.text, /v4 refused/, "the text is not echoed");

  // Another viewer is unaffected, and its post takes the next seq: the refused one took none.
  const other = await post(limited, room, 3102, "other viewer");
  t.equal(other.status, 201, "another viewer posts");
  t.equal(other.body.seq, 4, "seq continues without a gap");
  await host.until(() => texts(host).length >= 4, "4 frames");
  t.same(texts(host), ["1:v1", "2:v2", "3:v3", "4:other viewer"], "the presenter got exactly the accepted posts");
  const history = await limited.relay.history(room, undefined, 50);
  t.same(
    history.map((m) => m.text),
    ["other viewer", "v3", "v2", "v1"],
    "history holds no refused post",
  );
  host.close(1000);
});

t.test("seed route: the 4th post is a 429 in the seed error shape, with Retry-After", async (t) => {
  const room = 302;
  const host = await presenter(limited, room);
  t.same(await statuses([1, 2, 3].map((i) => () => seedPost(limited, room, 3201, `s${i}`))), [200, 200, 200]);
  const refused = await seedPost(limited, room, 3201, "s4 refused");
  t.equal(refused.status, 429);
  t.match(refused.body, {
    status: 429,
    path: "/send/message",
    message: String,
    timestamp: /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/,
  });
  t.same(Object.keys(refused.body).sort(), ["message", "path", "status", "timestamp"], "only the seed's fields");
  t.match(refused.headers.get("retry-after"), RETRY_AFTER, "Retry-After >= 1");
  t.notMatch(refused.text, /s4 refused/, "the text is not echoed");
  // The seed and v1 share one counter per sender: v1 is refused too.
  expectRateLimited(t, await post(limited, room, 3201, "via v1"), "the same sender on v1");
  t.equal((await seedPost(limited, room, 3202, "another")).status, 200, "another viewer is unaffected");
  await host.until(() => texts(host).length >= 4, "4 frames");
  t.same(texts(host), ["1:s1", "2:s2", "3:s3", "4:another"]);
  host.close(1000);
});

t.test("the room's presenter gets the privileged limit (6), not the viewers' (3)", async (t) => {
  const room = 303;
  const host = await presenter(limited, room);
  t.same(
    await statuses([1, 2, 3, 4, 5, 6].map((i) => () => post(limited, room, room, `p${i}`))),
    [201, 201, 201, 201, 201, 201],
    "six posts by the presenter pass",
  );
  expectRateLimited(t, await post(limited, room, room, "p7"), "the presenter's 7th");
  // The same user is a viewer in a room that is not theirs.
  const guestRoom = 304;
  const guestHost = await presenter(limited, guestRoom);
  t.same(
    await statuses([1, 2, 3, 4].map((i) => () => post(limited, guestRoom, 3301, `g${i}`))),
    [201, 201, 201, 429],
    "a viewer of room 304 gets 3",
  );
  host.close(1000);
  guestHost.close(1000);
});

t.test("RATE_LIMIT_SENDER counts one sender across rooms", async (t) => {
  const rooms = [305, 306, 307];
  const hosts = await Promise.all(rooms.map((r) => presenter(limited, r)));
  const sender = 3401;
  // 3 + 3 + 2 = 8 posts, each room within its own limit of 3: all pass.
  const plan = [305, 305, 305, 306, 306, 306, 307, 307];
  t.same(
    await statuses(plan.map((r, i) => () => post(limited, r, sender, `x${i}`))),
    plan.map(() => 201),
    "eight posts over three rooms pass",
  );
  // The ninth is only the 3rd in room 307 (room limit 3), but the 9th of the sender (limit 8).
  expectRateLimited(t, await post(limited, 307, sender, "x8"), "9th post across rooms");
  t.equal((await post(limited, 307, 3402, "someone else")).status, 201, "the room itself is open");
  for (const h of hosts) h.close(1000);
});

t.test(
  "RATE_LIMIT_ADDRESS_SOCKETS: the (N+1)th open from an address is refused with 429 before the token is read",
  async (t) => {
    // From a trusted proxy (TRUST_PROXY), X-Forwarded-For names the client.
    const from = (address: string) => ({ headers: { "x-forwarded-for": address } });
    const v1Url = (token: string) => `${addresses.ws}/v1/rooms/311/presenter?access_token=${token}`;
    const refusal = async (socket: TestSocket) => {
      await socket.open().catch(() => {});
      await socket.until(() => socket.rejection !== undefined, "the upgrade's answer");
      return socket.rejection as { status: number; body: string };
    };
    // Opens 1 and 2: a bad token, refused by the token check (401), yet counted.
    for (const n of [1, 2]) {
      t.equal(
        (await refusal(new TestSocket(v1Url("not-a-token"), from("198.51.100.9")))).status,
        401,
        `open ${n}: 401`,
      );
    }
    // Open 3: the seed socket (no token before its start frame) shares the counter.
    const seed = new TestSocket(`${addresses.ws}/chatting`, from("198.51.100.9"));
    await seed.open();
    t.pass("open 3 (seed /chatting) upgraded");
    // Open 4: a bad token gets 429, not 401: the limit is checked before the token.
    const fourth = await refusal(new TestSocket(v1Url("not-a-token"), from("198.51.100.9")));
    t.equal(fourth.status, 429, "open 4 (bad token): 429");
    t.match(JSON.parse(fourth.body), { code: "rate_limited", status: 429 });
    // Open 5 with a valid token: still 429.
    const token = await mintToken({ user_idx: 311 });
    const socket = new TestSocket(v1Url(token), from("198.51.100.9"));
    const retry = new Promise<string | undefined>((resolve) =>
      socket.ws.once("unexpected-response", (_req, res) => resolve(res.headers["retry-after"])),
    );
    t.equal((await refusal(socket)).status, 429, "open 5 (valid token): 429");
    t.match(await retry, RETRY_AFTER, "with Retry-After");
    t.equal((await refusal(new TestSocket(`${addresses.ws}/chatting`, from("198.51.100.9")))).status, 429, "seed: 429");
    // Another address is not affected.
    const elsewhere = new TestSocket(v1Url(token), from("198.51.100.10"));
    await elsewhere.open();
    await elsewhere.next((f) => f.type === "ready", "ready from another address");
    elsewhere.close(1000);
    seed.close(1000);
  },
);

t.test(
  "RATE_LIMIT_ADDRESS_POSTS counts every sender from one address (X-Forwarded-For from TRUST_PROXY)",
  async (t) => {
    const room = 312;
    const host = await presenter(addresses, room);
    const from = (address: string) => ({ "x-forwarded-for": address });
    // Four different viewers, one address: 4 pass, the 5th (a fifth viewer) is refused.
    t.same(
      await statuses([1, 2, 3, 4].map((i) => () => post(addresses, room, 3500 + i, `a${i}`, from("203.0.113.7")))),
      [201, 201, 201, 201],
    );
    expectRateLimited(t, await post(addresses, room, 3505, "a5", from("203.0.113.7")), "5th post from the address");
    t.equal((await post(addresses, room, 3505, "b1", from("203.0.113.8"))).status, 201, "the same viewer elsewhere");
    host.close(1000);
  },
);

t.test("a refused post consumes nothing: waiting Retry-After is enough", async (t) => {
  const room = 313;
  const host = await presenter(addresses, room);
  const from = { "x-forwarded-for": "192.0.2.50" };
  const sender = 3601;
  t.same(await statuses([1, 2].map((i) => () => post(addresses, room, sender, `r${i}`, from))), [201, 201]);
  const refused = await post(addresses, room, sender, "r3", from);
  expectRateLimited(t, refused, "3rd post of 2/2s");
  // More refused posts at once: had they been counted, the slot would move seconds away.
  const more = await Promise.all([4, 5, 6, 7, 8].map((i) => post(addresses, room, sender, `r${i}`, from)));
  t.same(
    more.map((r) => r.status),
    [429, 429, 429, 429, 429],
  );
  // The passage of time is the behaviour under test: wait exactly what the first refusal said.
  await delay(Number(refused.headers.get("retry-after")) * 1000);
  const after = await post(addresses, room, sender, "after the wait", from);
  t.equal(after.status, 201, "admitted after Retry-After seconds");
  t.equal(after.body.seq, 3, "the refused posts took no seq");
  host.close(1000);
});

t.test('unset means the default (20/30s per room); "off" switches a limit off', async (t) => {
  const rooms = [321, 322, 323, 324];
  const hosts = await Promise.all(rooms.map((r) => presenter(defaults, r)));
  const sender = 3701;
  const first = await statuses(Array.from({ length: 21 }, (_, i) => () => post(defaults, 321, sender, `d${i}`)));
  t.same(first, [...Array.from({ length: 20 }, () => 201), 429], "the default room limit: 20, then 429");
  // RATE_LIMIT_SENDER off: 20 more in each other room, 81 attempts in all (the default would stop at 60);
  // RATE_LIMIT_ADDRESS_POSTS off: all from one address.
  for (const room of [322, 323, 324]) {
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => post(defaults, room, sender, `e${i}`)));
    t.ok(
      answers.every((r) => r.status === 201),
      `room ${room}: 20 more posts pass`,
    );
  }
  // RATE_LIMIT_ADDRESS_SOCKETS off: 35 opens from one address (the default would refuse the 31st).
  const opens = await Promise.all(
    Array.from({ length: 35 }, async () => {
      const socket = new TestSocket(`${defaults.ws}/v1/rooms/325/presenter?access_token=bad`);
      await socket.open().catch(() => {});
      await socket.until(() => socket.rejection !== undefined, "the upgrade's answer");
      return socket.rejection?.status;
    }),
  );
  t.same(
    opens,
    opens.map(() => 401),
    "35 opens: every one reaches the token check",
  );
  for (const h of hosts) h.close(1000);
});
