import { setTimeout as delay } from "node:timers/promises";
import t, { type Test } from "tap";
import { MemoryGate } from "../src/adapters/memory-gate.js";
import { MemoryPresence } from "../src/adapters/memory-presence.js";
import { RedisGate } from "../src/adapters/redis-gate.js";
import type { Gate } from "../src/core/ports.js";
import { NO_LIMITS } from "../src/core/rate-limit.js";
import { messages, openPresenter, post, startCluster, stopAll } from "./helpers/cluster.js";
import { createTestDatabase, deleteKeys, REDIS_URL, testRedisClient, uniqueRedisPrefix } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { mintToken } from "./helpers/tokens.js";

// Rate limits are cluster-wide: three real node processes share the counters in Redis (one Lua
// script per post), so posts spread over the nodes get exactly what posts to one node get.
const ROOM_LIMIT = 5;
const db = await createTestDatabase();
t.teardown(() => db.drop());
const nodes = await startCluster(3, {
  REDIS_URL,
  REDIS_KEY_PREFIX: uniqueRedisPrefix(),
  DATABASE_URL: db.url,
  // A window far longer than any burst below: the counts are exact, not a race with the clock.
  RATE_LIMIT_ROOM: `${ROOM_LIMIT}/60s`,
  // The presenter's own limit, short: the test that waits for Retry-After waits about a second.
  RATE_LIMIT_ROOM_PRIVILEGED: "2/2s",
});
t.teardown(() => stopAll(nodes));
const node = (i: number) => nodes[i % nodes.length] as (typeof nodes)[number];

interface Answer {
  text: string;
  status: number;
  code: unknown;
  retryAfter: string | null;
}

/** `count` posts by one sender, all at once, post i to node `pick(i)`. */
async function spam(room: number, userId: number, count: number, pick: (i: number) => number): Promise<Answer[]> {
  const token = await mintToken({ user_idx: userId, nickname: `spammer${userId}` });
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const text = `spam ${userId} #${i}`;
      const res = await request<Record<string, unknown>>(`${node(pick(i)).http}/v1/rooms/${room}/messages`, {
        headers: { authorization: `Bearer ${token}` },
        body: { text },
      });
      return { text, status: res.status, code: res.body?.code, retryAfter: res.headers.get("retry-after") };
    }),
  );
}

function tally(t: Test, answers: Answer[], what: string): string[] {
  const ok = answers.filter((a) => a.status === 201);
  const refused = answers.filter((a) => a.status !== 201);
  t.ok(
    refused.every((a) => a.status === 429 && a.code === "rate_limited" && /^[1-9]\d*$/.test(a.retryAfter ?? "")),
    `${what}: every other answer is 429 rate_limited with Retry-After`,
  );
  return ok.map((a) => a.text);
}

t.test("a spammer spread over three nodes gets exactly what one node gives; others are unaffected", async (t) => {
  // One node: the baseline.
  const soloRoom = 901;
  const soloHost = await openPresenter(node(1).ws, soloRoom);
  const solo = tally(t, await spam(soloRoom, 9101, 30, () => 0), "one node");
  t.equal(solo.length, ROOM_LIMIT, `one node: ${ROOM_LIMIT} of 30 posts pass`);

  // Three nodes, round robin, while a normal sender posts in the same room.
  const room = 902;
  const host = await openPresenter(node(2).ws, room);
  const normalToken = await mintToken({ user_idx: 9103, nickname: "normal" });
  const normalPosts = (async () => {
    const out: { text: string; status: number }[] = [];
    for (let i = 0; i < ROOM_LIMIT - 1; i++) {
      const text = `normal #${i}`;
      out.push({ text, status: (await post(node(i).http, room, normalToken, text)).status });
    }
    return out;
  })();
  const [spread, normal] = await Promise.all([spam(room, 9102, 30, (i) => i), normalPosts]);
  const spreadOk = tally(t, spread, "three nodes");
  t.equal(spreadOk.length, solo.length, `three nodes: the same ${solo.length} posts pass`);
  t.same(
    normal.map((n) => n.status),
    normal.map(() => 201),
    "the normal sender is unaffected",
  );

  // The presenter got exactly the 2xx'd messages: a last post by someone else closes the stream
  // (frames come in seq order, so everything accepted before it has arrived with it).
  const closer = await post(node(0).http, room, await mintToken({ user_idx: 9104 }), "closer");
  t.equal(closer.status, 201);
  await host.until(() => messages(host).some((m) => m.text === "closer"), "the closing frame");
  const frames = messages(host);
  t.same(
    frames.map((f) => f.seq),
    Array.from({ length: frames.length }, (_, i) => i + 1),
    "seqs 1..n: refused posts took none",
  );
  t.same(
    frames.map((f) => f.text).sort(),
    [...spreadOk, ...normal.map((n) => n.text), "closer"].sort(),
    "the presenter received the accepted posts and nothing else",
  );
  soloHost.close(1000);
  host.close(1000);
});

t.test("a refused post consumes nothing, on any node: waiting Retry-After is enough", async (t) => {
  // The room's presenter posting in their room: the privileged limit, 2/2s.
  const room = 903;
  const host = await openPresenter(node(0).ws, room);
  const token = await mintToken({ user_idx: room, nickname: "host" });
  t.equal((await post(node(0).http, room, token, "one")).status, 201);
  t.equal((await post(node(1).http, room, token, "two")).status, 201);
  const refused = await request<Record<string, unknown>>(`${node(2).http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${token}` },
    body: { text: "three" },
  });
  t.equal(refused.status, 429);
  t.match(refused.body, { code: "rate_limited" });
  const retryAfter = Number(refused.headers.get("retry-after"));
  t.ok(retryAfter >= 1, `Retry-After ${retryAfter}`);
  // Refused posts on every node: had they been counted, the next slot would be seconds further away.
  const more = await Promise.all([0, 1, 2, 0, 1, 2].map((i) => post(node(i).http, room, token, `more ${i}`)));
  t.same(
    more.map((r) => r.status),
    more.map(() => 429),
  );
  // The passage of time is the behaviour under test: wait exactly what the first refusal said.
  await delay(retryAfter * 1000);
  const after = await post(node(1).http, room, token, "after the wait");
  t.equal(after.status, 201, "admitted after Retry-After seconds");
  t.equal(after.body.seq, 3, "the refused posts took no seq");
  await host.until(() => messages(host).length >= 3, "3 frames");
  t.same(
    messages(host).map((m) => m.text),
    ["one", "two", "after the wait"],
  );
  host.close(1000);
});

t.test("both gates admit a burst of exactly count, also when window / count is not a whole number of ms", async (t) => {
  // The same limits through the Redis gate's Lua and the embedded gate, on the real clocks (Redis TIME,
  // Date.now()): a key's theoretical arrival time must not lose a post to rounding.
  const redis = testRedisClient();
  t.teardown(() => redis.quit());
  const prefix = uniqueRedisPrefix();
  t.teardown(async () => {
    await deleteKeys(redis, `${prefix}*`);
  });
  const noRoom = async () => {
    throw new Error("no room is loaded by this test");
  };
  const wrong: string[] = [];
  for (const windowS of [7, 10, 30, 60]) {
    for (let count = 1; count <= 30; count++) {
      const limits = { ...NO_LIMITS, addressSockets: { count, windowMs: windowS * 1000 } };
      const gates: [string, Gate][] = [
        ["redis", new RedisGate(redis, prefix, noRoom, limits)],
        ["memory", new MemoryGate(new MemoryPresence(15_000, 10_000), noRoom, limits)],
      ];
      for (const [name, gate] of gates) {
        // All at once (one interval is at least 233 ms here): nothing but the arithmetic decides.
        const verdicts = await Promise.all(
          Array.from({ length: count + 2 }, () => gate.admitSocket(`burst-${count}-${windowS}`)),
        );
        const admitted = verdicts.filter((v) => v.ok).length;
        if (admitted !== count) wrong.push(`${name} ${count}/${windowS}s: ${admitted}`);
      }
    }
  }
  t.same(wrong, [], "every burst admitted exactly count");
});
