import t from "tap";
import { ChatStream, lastSeqOf } from "./helpers/chat-load.js";
import { messages, openPresenter, post, startCluster, stopAll } from "./helpers/cluster.js";
import { createTestDatabase, REDIS_URL, testRedisClient, uniqueRedisPrefix } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { mintToken } from "./helpers/tokens.js";

// Three real node processes against the real Redis and PostgreSQL.
const db = await createTestDatabase();
t.teardown(() => db.drop());
const prefix = uniqueRedisPrefix();
const nodes = await startCluster(3, { REDIS_URL, REDIS_KEY_PREFIX: prefix, DATABASE_URL: db.url });
t.teardown(() => stopAll(nodes));
const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
const viewers = await Promise.all([71, 72, 73].map((id) => mintToken({ user_idx: id })));

t.test("posts to every node reach the presenter on one node, in seq order", async (t) => {
  const room = 701;
  const presenter = await openPresenter(b.ws, room);
  const results = await Promise.all(
    Array.from({ length: 60 }, (_, i) => post(nodes[i % 3]?.http as string, room, viewers[i % 3] as string, `m${i}`)),
  );
  t.ok(
    results.every((r) => r.status === 201),
    "every node accepted",
  );
  await presenter.until(() => messages(presenter).length >= 60, "60 frames");
  t.same(
    messages(presenter).map((m) => m.seq),
    Array.from({ length: 60 }, (_, i) => i + 1),
    "in seq order, no gap, no duplicate",
  );
  presenter.close(1000);
});

t.test("no duplicate seq across nodes under concurrent posts", async (t) => {
  const room = 702;
  const presenter = await openPresenter(a.ws, room);
  const per = 40;
  const all = (
    await Promise.all(
      nodes.map(async (n, i) => {
        const seqs: number[] = [];
        await Promise.all(
          Array.from({ length: per }, async (_, k) => {
            const r = await post(n.http, room, viewers[i] as string, `n${i}-${k}`);
            t.equal(r.status, 201);
            seqs.push(r.body.seq as number);
          }),
        );
        return seqs;
      }),
    )
  ).flat();
  t.equal(new Set(all).size, all.length, "no seq handed out twice");
  t.same(
    [...all].sort((x, y) => x - y),
    Array.from({ length: per * 3 }, (_, i) => i + 1),
    "gapless",
  );
  await presenter.until(() => messages(presenter).length >= per * 3, "all frames");
  t.same(
    messages(presenter).map((m) => m.seq),
    Array.from({ length: per * 3 }, (_, i) => i + 1),
  );
  presenter.close(1000);
});

t.test("idempotent sends across nodes: the same clientMsgId posted to every node at once is one message", async (t) => {
  const room = 705;
  const presenter = await openPresenter(a.ws, room);
  const token = viewers[0] as string;
  for (let round = 0; round < 5; round++) {
    const answers = await Promise.all(
      nodes.flatMap((n) =>
        [0, 1].map(() =>
          request<Record<string, unknown>>(`${n.http}/v1/rooms/${room}/messages`, {
            headers: { authorization: `Bearer ${token}` },
            body: { text: `retry ${round}`, clientMsgId: `once-${round}` },
          }),
        ),
      ),
    );
    t.ok(
      answers.every((r) => r.status === 201),
      `round ${round}: every attempt answered 201`,
    );
    t.equal(new Set(answers.map((r) => r.body.id)).size, 1, `round ${round}: one message id for all six attempts`);
  }
  await presenter.until(() => messages(presenter).length >= 5, "5 frames");
  t.same(
    messages(presenter).map((m) => m.seq),
    [1, 2, 3, 4, 5],
    "five messages, no duplicates",
  );
  presenter.close(1000);
});

t.test(
  "takeover across nodes with posts in flight: the old socket gets nothing committed after the new ready",
  async (t) => {
    const room = 703;
    const old = await openPresenter(a.ws, room);
    const stream = await ChatStream.start(room, () => nodes.map((n) => n.http), 3);
    t.teardown(() => stream.stop());
    await stream.answered(20);
    // The new connection resumes where the old one is: between them they must see every 2xx'd message.
    const resumeFrom = lastSeqOf(old);
    const fresh = await openPresenter(b.ws, room, resumeFrom);
    const ready = await fresh.next<{ type: string; lastSeq: number }>((f) => f.type === "ready", "ready");
    await stream.answered(20); // posts keep coming after the new ready
    await stream.stop();
    const accepted = stream.accepted.map((m) => m.seq).sort((x, y) => x - y);
    const last = accepted.at(-1) as number;
    t.same(stream.refused, [], "every post answered 201 through the takeover");
    await fresh.until(() => lastSeqOf(fresh) >= last, `seq ${last} on the new socket`);
    t.same(
      messages(old).filter((m) => m.seq > ready.lastSeq),
      [],
      `the old socket got nothing committed after the new ready (lastSeq ${ready.lastSeq})`,
    );
    const closed = await old.waitClose();
    t.equal(closed.code, 4001);
    t.match(closed.reason, /replaced/);
    t.same(
      messages(fresh).map((m) => m.seq),
      Array.from({ length: last - resumeFrom }, (_, i) => resumeFrom + 1 + i),
      "the new socket got everything after its resume point, in order",
    );
    const delivered = new Set([...messages(old), ...messages(fresh)].map((m) => m.seq));
    t.same(
      accepted.filter((s) => !delivered.has(s)),
      [],
      "every 2xx'd message reached one of them",
    );
    fresh.close(1000);
  },
);

t.test("presence is a Redis key naming the holding node, with a TTL", async (t) => {
  const room = 704;
  const presenter = await openPresenter(c.ws, room);
  const redis = testRedisClient();
  t.teardown(() => redis.quit());
  const key = `${prefix}presence:{${room}}`;
  const value = await redis.get(key);
  t.match(value, /^live\|\d+\|[0-9a-f-]+\|node-c$/);
  const ttl = await redis.pttl(key);
  t.ok(ttl > 0 && ttl <= 15_000, `TTL ${ttl} ms is set and at most 15 s`);
  presenter.close(1000);
  await c.waitFor((l) => l.msg === "presenter detached" && l.roomId === room, "detach on node c");
  // A normal close ends the broadcast: the key goes and posts get the honest error.
  const res = await post(a.http, room, viewers[0] as string, "bye?");
  t.equal(res.status, 409);
  t.equal(await redis.exists(key), 0);
});

t.test("metrics and readiness include Redis", async (t) => {
  const ready = await request<Record<string, unknown>>(`${a.ops}/readyz`);
  t.equal(ready.status, 200);
  t.match(ready.body, { checks: { chatlog: "ok", redis: "ok" } });
  const metrics = await request(`${b.ops}/metrics`);
  t.match(metrics.text, /chatrelay_redis_connected\{connection="commands"\} 1/);
  t.match(metrics.text, /chatrelay_redis_connected\{connection="subscriber"\} 1/);
  t.match(metrics.text, /chatrelay_publish_seconds_count \d+/);
  t.match(metrics.text, /chatrelay_presenter_sockets \d+/);
});
