import { once } from "node:events";
import { Redis } from "ioredis";
import pino from "pino";
import t from "tap";
import { PresenceRebuildWindow } from "../src/adapters/presence-rebuild.js";
import { post } from "./helpers/cluster.js";
import { createTestDatabase, uniqueRedisPrefix } from "./helpers/databases.js";
import type { NodeProcess } from "./helpers/processes.js";
import { connectPresenter, readyOf, startFailpointNodes, untilSeq } from "./helpers/races-nodes.js";
import { PrivateRedis } from "./helpers/redis-server.js";
import { mintToken } from "./helpers/tokens.js";

// Redis restarted empty: a live room's presence key is gone until its node re-announces it. A post
// meanwhile must get a 503 to retry, not "not live", a final answer that loses the viewer's message.

const silent = pino({ level: "silent" });

function client(url: string): Redis {
  return new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
}

t.test("the window opens only when Redis lost its data, and every node reads it", async (t) => {
  const redis = await PrivateRedis.start();
  const prefix = uniqueRedisPrefix();
  const a = client(redis.url);
  t.teardown(async () => {
    a.disconnect();
    await redis.stop();
  });
  await a.connect();
  const window = new PresenceRebuildWindow(a, prefix, 30_000, silent);
  await window.check();
  t.notOk(window.active(), "a node's first connect to a fresh Redis opens no window");

  a.disconnect(true);
  await once(a, "ready");
  await window.lastCheck;
  t.notOk(window.active(), "a reconnect to a Redis that kept its data opens no window");

  await redis.stop();
  await redis.restart();
  await once(a, "ready");
  await window.lastCheck;
  t.ok(window.active(), "a reconnect to a Redis that came back empty opens the window");
  t.notOk(window.active(Date.now() + 31_000), "which closes after its length");

  const b = client(redis.url);
  t.teardown(() => b.disconnect());
  await b.connect();
  const other = new PresenceRebuildWindow(b, prefix, 30_000, silent);
  await other.check();
  t.ok(other.active(), "a node connecting during the window honours it");

  const elsewhere = new PresenceRebuildWindow(b, uniqueRedisPrefix(), 30_000, silent);
  await elsewhere.check();
  t.notOk(elsewhere.active(), "the window belongs to one key prefix (one deployment)");
});

t.test("posts to a live room not yet re-announced get 503 with Retry-After, then 201", async (t) => {
  const db = await createTestDatabase();
  const redis = await PrivateRedis.start();
  // A long TTL: the heartbeat (every TTL/3) stays out of the way; only the paused resync re-announces.
  const nodes = await startFailpointNodes("rebuild-", 2, {
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: uniqueRedisPrefix(),
    PRESENCE_TTL_MS: "60000",
  });
  const [p1, p2] = nodes as [NodeProcess, NodeProcess];
  t.teardown(async () => {
    await Promise.all(nodes.map((n) => n.kill("SIGKILL")));
    await redis.stop();
    await db.drop();
  });
  const room = 871;
  const offAir = 872;
  const viewer = await mintToken({ user_idx: 8701 });
  const presenter = await connectPresenter(p1, room);
  t.teardown(() => presenter.close(1000));
  await readyOf(presenter);
  t.equal((await post(p2.http, room, viewer, "before")).status, 201, "live room: 201");
  t.equal((await post(p2.http, offAir, viewer, "before")).status, 409, "a room without a presenter: 409");
  await untilSeq(presenter, 1, "the first message");

  await p1.failpoint("resync.before-reassert", "1*pause");
  await redis.stop();
  await redis.restart();
  await p2.waitFor((l) => /presence is being rebuilt/.test(String(l.msg)), "p2 sees the rebuild window", 20_000);
  await p1.failpointHit("resync.before-reassert", 1, 20_000);

  const during = await post(p2.http, room, viewer, "during");
  t.equal(during.status, 503, "the live room's post during the rebuild: 503, not 409");
  t.equal(during.body.code, "service_unavailable");
  t.equal(during.headers.get("retry-after"), "1", "with Retry-After");
  t.notOk(JSON.stringify(during.body).includes("during"), "the text is not echoed");
  t.equal((await post(p2.http, offAir, viewer, "during")).status, 503, "so is a room nobody presents (not known yet)");

  await p1.failpoint("resync.before-reassert", "off");
  await p1.waitFor((l) => l.msg === "presence re-announced after reconnect", "p1 re-announced its presenter", 20_000);
  const after = await post(p2.http, room, viewer, "after");
  t.equal(after.status, 201, "once re-announced: 201");
  await untilSeq(presenter, 2, "the message after the rebuild");
});
