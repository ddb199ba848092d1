import t from "tap";
import { call, type Json, openPresenter, userToken } from "./helpers/moderation.js";
import { startTestServer } from "./helpers/server.js";
import { pollUntil } from "./helpers/wait.js";

// Moderation as the post path enforces it, on one embedded node: each change made through the
// API holds for the very next post (the gate's mirror is written before the API answers).

const server = await startTestServer();
t.teardown(() => server.shutdown());
const base = server.http;

const MOD = 9301;

async function post(roomId: number, who: number | string, text: string) {
  return call(base, "POST", `/v1/rooms/${roomId}/messages`, who, { text });
}

async function change(roomId: number, method: string, path: string, body?: object): Promise<Json> {
  const res = await call(base, method, `/v1/rooms/${roomId}/${path}`, roomId, body);
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${res.text}`);
  return res.body;
}

t.test("ban: the next post is 403 banned and reaches nobody; unban lets the user post again", async (t) => {
  const room = 7301;
  const presenter = await openPresenter(server.ws, room);
  t.equal((await post(room, 501, "before the ban")).status, 201);
  await change(room, "PUT", "bans/501", { reason: "spam" });
  const refused = await post(room, 501, "after the ban");
  t.equal(refused.status, 403);
  t.match(refused.body, { code: "banned", status: 403 });
  t.equal((await post(room, 502, "someone else")).status, 201, "other senders are unaffected");
  await change(room, "DELETE", "bans/501");
  t.equal((await post(room, 501, "back")).status, 201);
  await presenter.until(() => presenter.json().some((f) => f.text === "back"), "the post after the unban");
  t.notOk(
    presenter.json().some((f) => f.text === "after the ban"),
    "the refused post was never delivered",
  );
  presenter.close(1000);
});

t.test("timeout: 403 timed_out with Retry-After until it ends, then the user posts again", async (t) => {
  const room = 7302;
  const presenter = await openPresenter(server.ws, room);
  const body = await change(room, "PUT", "timeouts/503", { durationS: 2 });
  const until = Date.parse((body.restrictions as Json[])[0]?.until as string);
  const refused = await post(room, 503, "too soon");
  t.equal(refused.status, 403);
  t.equal(refused.body.code, "timed_out");
  const retryAfter = Number(refused.headers.get("retry-after"));
  t.ok(retryAfter >= 1 && retryAfter <= 2, `Retry-After ${retryAfter} s covers the rest of the timeout`);
  t.ok(Date.now() < until, "refused while the timeout ran");
  // The timeout ends on the clock: post again until accepted, and check every answer against the
  // clock (the node decides between sending and answering): refused only if sent before `until`,
  // accepted only if answered after it. Catches both an early and a never-ending timeout.
  const attempts: { sentAt: number; answeredAt: number; status: number; code: unknown }[] = [];
  await pollUntil(
    async () => {
      const sentAt = Date.now();
      const res = await post(room, 503, "on time");
      attempts.push({ sentAt, answeredAt: Date.now(), status: res.status, code: res.body.code });
      return res.status === 201 ? true : undefined;
    },
    "a post after the timeout ended to be accepted",
    until - Date.now() + 10_000,
    100,
  );
  const accepted = attempts.at(-1);
  t.ok(accepted !== undefined && accepted.answeredAt >= until, "accepted only once the timeout ended");
  const refusals = attempts.slice(0, -1);
  t.ok(
    refusals.every((a) => a.status === 403 && a.code === "timed_out" && a.sentAt < until),
    `${refusals.length} refusals, each 403 timed_out and sent before the timeout's end`,
  );
  t.same((await call(base, "GET", `/v1/rooms/${room}/bans`, room)).body.restrictions, [], "no longer listed");
  presenter.close(1000);
});

t.test(
  "slow mode: one post per interval for viewers, 429 slow_mode with Retry-After; presenter and moderators exempt",
  async (t) => {
    const room = 7303;
    const presenter = await openPresenter(server.ws, room);
    await change(room, "PUT", `moderators/${MOD}`);
    await change(room, "PUT", "settings", { slowModeS: 60 });
    t.equal((await post(room, 504, "one")).status, 201);
    const second = await post(room, 504, "two");
    t.equal(second.status, 429);
    t.equal(second.body.code, "slow_mode");
    const retryAfter = Number(second.headers.get("retry-after"));
    t.ok(retryAfter > 50 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    t.equal((await post(room, 505, "another viewer")).status, 201, "per viewer");
    for (let i = 0; i < 3; i++) {
      t.equal((await post(room, room, `presenter ${i}`)).status, 201, "the presenter is exempt");
      t.equal((await post(room, MOD, `moderator ${i}`)).status, 201, "a moderator is exempt");
    }
    await change(room, "PUT", "settings", { slowModeS: 0 });
    t.equal((await post(room, 504, "three")).status, 201, "off again");
    presenter.close(1000);
  },
);

t.test(
  "moderators-only lock: viewers get 403 room_locked; presenter, moderators and claim moderators post",
  async (t) => {
    const room = 7304;
    const presenter = await openPresenter(server.ws, room);
    await change(room, "PUT", `moderators/${MOD}`);
    await change(room, "PUT", "settings", { moderatorsOnly: true });
    const refused = await post(room, 506, "let me in");
    t.equal(refused.status, 403);
    t.equal(refused.body.code, "room_locked");
    t.equal((await post(room, room, "presenter")).status, 201);
    t.equal((await post(room, MOD, "moderator")).status, 201);
    t.equal((await post(room, await userToken(9302, [room]), "claim moderator")).status, 201);
    t.equal((await post(room, await userToken(9303, [room + 1]), "other room's claim")).status, 403);
    await change(room, "PUT", "settings", { moderatorsOnly: false });
    t.equal((await post(room, 506, "open again")).status, 201);
    presenter.close(1000);
  },
);

t.test("blocked terms and the room's own length limit", async (t) => {
  const room = 7305;
  const presenter = await openPresenter(server.ws, room);
  await change(room, "POST", "blocked-terms", { terms: ["spam", "*scam*"] });
  const blocked = await post(room, 507, "no SPAM here");
  t.equal(blocked.status, 400);
  t.equal(blocked.body.code, "text_blocked");
  t.equal((await post(room, 508, "what a scammer")).status, 400, "a *substring* term matches inside words");
  t.equal((await post(room, 509, "spammer is a word of its own")).status, 201, "a word term needs word boundaries");
  await change(room, "DELETE", "blocked-terms", { terms: ["spam"] });
  t.equal((await post(room, 510, "spam is fine now")).status, 201);

  await change(room, "PUT", "settings", { maxTextLength: 10 });
  const long = await post(room, 511, "eleven char");
  t.equal(long.status, 400);
  t.equal(long.body.code, "text_too_long");
  t.equal((await post(room, 512, "ten chars!")).status, 201);
  presenter.close(1000);
});
