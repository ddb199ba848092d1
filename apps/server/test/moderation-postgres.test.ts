import t from "tap";
import { createTestDatabase, deleteKeys, REDIS_URL, testRedisClient, uniqueRedisPrefix } from "./helpers/databases.js";
import { call, type Json, openPresenter, snapshot } from "./helpers/moderation.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

// Moderation on the cluster configuration: two nodes on one real PostgreSQL database and one
// Redis. Concurrent changes from both nodes are all kept (one version per change, one audit row
// each), a change made on one node holds on the other for the next post, and the state survives
// a restart of every node and the loss of Redis' keys.

const db = await createTestDatabase();
t.teardown(() => db.drop());
const prefix = uniqueRedisPrefix();
const redis = testRedisClient();
t.teardown(async () => {
  await deleteKeys(redis, `${prefix}*`);
  redis.disconnect();
});
const env = { DATABASE_URL: db.url, REDIS_URL, REDIS_KEY_PREFIX: prefix };

const ROOM = 7401;
const MOD = 9401;
const VIEWER = 9402;

let nodes: TestServer[] = [];
const stopAll = async () => {
  await Promise.all(nodes.map((n) => n.shutdown()));
  nodes = [];
};
t.teardown(stopAll);

async function startNodes(n: number): Promise<TestServer[]> {
  nodes = await Promise.all(Array.from({ length: n }, () => startTestServer(env)));
  return nodes;
}

t.test("concurrent changes on two nodes: none lost, one version and one audit row each", async (t) => {
  const [a, b] = await startNodes(2);
  if (a === undefined || b === undefined) throw new Error("two nodes");
  const changes: Promise<{ status: number }>[] = [];
  for (let i = 0; i < 12; i++) {
    const node = i % 2 === 0 ? a : b;
    changes.push(call(node.http, "POST", `/v1/rooms/${ROOM}/blocked-terms`, ROOM, { terms: [`word${i}`] }));
    changes.push(call(node.http, "PUT", `/v1/rooms/${ROOM}/moderators/${1000 + i}`, ROOM));
  }
  const answers = await Promise.all(changes);
  t.same(
    answers.map((r) => r.status),
    answers.map(() => 200),
  );
  const seen = (answers as unknown as { body: Json }[]).map((r) => r.body.version as number).sort((x, y) => x - y);
  t.same(
    seen,
    Array.from({ length: 24 }, (_, i) => i + 1),
    "every change got its own version",
  );
  const state = await snapshot(b.http, ROOM);
  t.equal(((state.terms as Json).terms as string[]).length, 12, "every term kept");
  t.equal(((state.moderators as Json).moderators as number[]).length, 12, "every moderator kept");
  t.equal((state.settings as Json).version, 24);
  t.equal(state.auditLength, 24, "one audit row per change");
  const audit = await call(a.http, "GET", `/v1/rooms/${ROOM}/audit?limit=200`, ROOM);
  const times = (audit.body.items as Json[]).map((e) => Date.parse(e.at as string));
  t.ok(
    times.every((at, i) => i === 0 || at < (times[i - 1] as number)),
    "audit times strictly ordered within the room",
  );
});

t.test("a change on one node holds on the other for the next post", async (t) => {
  const [a, b] = nodes;
  if (a === undefined || b === undefined) throw new Error("two nodes");
  const presenter = await openPresenter(a.ws, ROOM);
  const postOn = (node: TestServer, who: number, text: string) =>
    call(node.http, "POST", `/v1/rooms/${ROOM}/messages`, who, { text });
  t.equal((await postOn(b, VIEWER, "hello")).status, 201);
  t.equal((await call(a.http, "PUT", `/v1/rooms/${ROOM}/bans/${VIEWER}`, ROOM)).status, 200);
  const banned = await postOn(b, VIEWER, "banned on A, posting on B");
  t.equal(banned.status, 403);
  t.equal(banned.body.code, "banned");
  t.equal((await call(b.http, "DELETE", `/v1/rooms/${ROOM}/bans/${VIEWER}`, ROOM)).status, 200);
  t.equal((await postOn(a, VIEWER, "unbanned on B, posting on A")).status, 201);

  t.equal((await call(b.http, "PUT", `/v1/rooms/${ROOM}/settings`, ROOM, { moderatorsOnly: true })).status, 200);
  const locked = await postOn(a, VIEWER, "locked on B, posting on A");
  t.equal(locked.status, 403);
  t.equal(locked.body.code, "room_locked");
  t.equal((await call(a.http, "PUT", `/v1/rooms/${ROOM}/moderators/${MOD}`, ROOM)).status, 200);
  t.equal((await postOn(b, MOD, "a moderator appointed on A posts on B")).status, 201);

  // The moderation events reach the presenter (on A) in order with the chat, from either node.
  await presenter.until(
    () => presenter.json().filter((f) => f.type === "moderation").length >= 4,
    "four moderation frames",
  );
  const seqs = presenter
    .json()
    .filter((f) => typeof f.seq === "number")
    .map((f) => f.seq as number);
  t.same(
    seqs,
    [...seqs].sort((x, y) => x - y),
    "one increasing seq order for messages and events",
  );
  presenter.close(1000);
});

t.test("the state survives a restart of every node and the loss of Redis' keys", async (t) => {
  const before = await snapshot((nodes[0] as TestServer).http, ROOM);
  t.equal((await call((nodes[0] as TestServer).http, "PUT", `/v1/rooms/${ROOM}/bans/${VIEWER}`, ROOM)).status, 200);
  const withBan = await snapshot((nodes[0] as TestServer).http, ROOM);
  t.notSame(withBan, before, "the ban changed the state");
  await stopAll();
  await deleteKeys(redis, `${prefix}*`);

  const [c] = await startNodes(1);
  if (c === undefined) throw new Error("one node");
  t.same(await snapshot(c.http, ROOM), withBan, "settings, moderators, bans, terms, version and audit as before");
  const presenter = await openPresenter(c.ws, ROOM);
  t.equal((await call(c.http, "PUT", `/v1/rooms/${ROOM}/settings`, ROOM, { moderatorsOnly: false })).status, 200);
  const banned = await call(c.http, "POST", `/v1/rooms/${ROOM}/messages`, VIEWER, { text: "still banned?" });
  t.equal(banned.status, 403);
  t.equal(banned.body.code, "banned", "the ban is enforced by a node that reloaded the room from the database");
  presenter.close(1000);
});
