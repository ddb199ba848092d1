import t from "tap";
import { openPresenter, post, startCluster, stopAll } from "./helpers/cluster.js";
import { createTestDatabase, REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { mintToken } from "./helpers/tokens.js";

// Moderation across three real nodes on the real Redis and PostgreSQL: a ban issued on one node
// holds on the others for the next post, and a deletion travels in order with the chat, survives
// a SIGKILL of the presenter's node (replayed on resume) and hides the text in history.
const db = await createTestDatabase();
t.teardown(() => db.drop());
const env = { REDIS_URL, REDIS_KEY_PREFIX: uniqueRedisPrefix(), DATABASE_URL: db.url, GRACE_WINDOW_MS: "20000" };
const nodes = await startCluster(3, env);
t.teardown(() => stopAll(nodes));
const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];

interface Frame {
  type: string;
  seq: number;
  text?: string;
  action?: string;
  data?: Record<string, unknown>;
}

const act = (base: string, token: string, method: string, path: string, body?: object) =>
  request<Record<string, unknown>>(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? {} : { "content-length": "0" }) },
    ...(body ? { body } : {}),
  });

t.test("a ban issued on node A holds on B and C for the next post; unban on C lifts it everywhere", async (t) => {
  const room = 9101;
  const host = await mintToken({ user_idx: room });
  const viewer = await mintToken({ user_idx: 71 });
  const presenter = await openPresenter(a.ws, room);
  t.teardown(() => presenter.close(1000));
  t.equal((await post(b.http, room, viewer, "before")).status, 201);

  const ban = await act(a.http, host, "PUT", `/v1/rooms/${room}/bans/71`, {});
  t.ok(ban.status === 200 || ban.status === 201, `ban answered ${ban.status}`);
  for (const node of [b, c, a]) {
    const refused = await post(node.http, room, viewer, "while banned");
    t.equal(refused.status, 403, `refused on ${node.name}`);
    t.equal(refused.body.code, "banned");
  }
  t.equal((await post(c.http, room, await mintToken({ user_idx: 72 }), "others")).status, 201, "others may post");

  const unban = await act(c.http, host, "DELETE", `/v1/rooms/${room}/bans/71`);
  t.equal(unban.status, 200, `unban answered ${unban.status}`);
  t.equal((await post(a.http, room, viewer, "after")).status, 201, "posting again after the unban");
});

t.test(
  "a deletion reaches the presenter in order, is replayed after a SIGKILL of its node, and hides the text",
  async (t) => {
    const room = 9102;
    const host = await mintToken({ user_idx: room });
    const viewer = await mintToken({ user_idx: 73 });
    const presenter = await openPresenter(c.ws, room);
    const first = await post(a.http, room, viewer, "keep me");
    const doomed = await post(b.http, room, viewer, "delete me");
    t.equal(first.status, 201);
    t.equal(doomed.status, 201);
    const doomedSeq = doomed.body.seq as number;

    const deleted = await act(a.http, host, "DELETE", `/v1/rooms/${room}/messages/${doomedSeq}`);
    t.equal(deleted.status, 200, `delete answered ${deleted.status}: ${JSON.stringify(deleted.body)}`);
    const frames = () => presenter.json<Frame>().filter((f) => f.type === "message" || f.type === "moderation");
    await presenter.until(() => frames().length === 3, "two messages and the delete event");
    t.same(
      frames().map((f) => [f.seq, f.type, f.text ?? f.action]),
      [
        [1, "message", "keep me"],
        [2, "message", "delete me"],
        [3, "moderation", "delete"],
      ],
      "the delete comes in seq order after the message it deletes",
    );
    t.equal(frames()[2]?.data?.targetSeq, doomedSeq);

    await c.kill("SIGKILL");
    const resumed = await openPresenter(b.ws, room, 1);
    t.teardown(() => resumed.close(1000));
    await resumed.until(
      () => resumed.json<Frame>().filter((f) => f.type === "message" || f.type === "moderation").length === 2,
      "replay of the message and its deletion",
    );
    t.same(
      resumed
        .json<Frame>()
        .filter((f) => f.type === "message" || f.type === "moderation")
        .map((f) => [f.seq, f.type]),
      [
        [2, "message"],
        [3, "moderation"],
      ],
      "replayed exactly as delivered live",
    );

    const history = await request<{ items: { seq: number; text: string; deleted?: boolean }[] }>(
      `${a.http}/v1/rooms/${room}/messages`,
      { headers: { authorization: `Bearer ${viewer}` } },
    );
    t.equal(history.status, 200);
    const entry = history.body.items.find((i) => i.seq === doomedSeq);
    t.equal(entry?.deleted, true, "marked deleted");
    t.equal(entry?.text, "", "its text hidden");
    t.equal(history.body.items.find((i) => i.seq === 1)?.text, "keep me");
  },
);
