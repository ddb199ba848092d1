import t from "tap";
import { ConfigError, loadConfig } from "../src/config.js";
import { call, type Json, openPresenter, snapshot, userToken } from "./helpers/moderation.js";
import { startTestServer, testEnv } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";

// The moderation routes and frames on one embedded node (PGlite): who may do what, what each
// answers, what is recorded, and that bad input changes nothing.

const server = await startTestServer();
t.teardown(() => server.shutdown());
const base = server.http;

const VIEWER = 9001;
const MOD = 9002;
const OTHER_MOD = 9003;

async function post(roomId: number, userId: number, text: string): Promise<number> {
  const res = await call(base, "POST", `/v1/rooms/${roomId}/messages`, userId, { text });
  if (res.status !== 201) throw new Error(`post failed: ${res.status} ${res.text}`);
  return res.body.seq as number;
}

t.test(
  "presenter changes settings: 200 with the event's seq, visible to any token, a moderation frame in order",
  async (t) => {
    const room = 7101;
    const presenter = await openPresenter(server.ws, room);
    const first = await post(room, VIEWER, "before");
    const res = await call(base, "PUT", `/v1/rooms/${room}/settings`, room, { slowModeS: 5, maxTextLength: 80 });
    t.equal(res.status, 200);
    t.match(res.body, {
      roomId: room,
      action: "settings",
      seq: first + 1,
      version: 1,
      settings: { slowModeS: 5, moderatorsOnly: false, maxTextLength: 80 },
    });
    const frame = await presenter.next((f) => f.type === "moderation", "moderation frame");
    t.match(frame, { seq: first + 1, action: "settings", by: room, data: { slowModeS: 5, maxTextLength: 80 } });
    const seqs = presenter
      .json()
      .filter((f) => f.seq !== undefined)
      .map((f) => f.seq);
    t.same(seqs, [first, first + 1], "the event follows the chat in seq order");

    const read = await call(base, "GET", `/v1/rooms/${room}/settings`, VIEWER);
    t.equal(read.status, 200);
    t.same(read.body, {
      roomId: room,
      version: 1,
      settings: { slowModeS: 5, moderatorsOnly: false, maxTextLength: 80 },
    });
    const partial = await call(base, "PUT", `/v1/rooms/${room}/settings`, room, { moderatorsOnly: true });
    t.match(
      partial.body,
      { version: 2, settings: { slowModeS: 5, moderatorsOnly: true, maxTextLength: 80 } },
      "unnamed fields keep their value",
    );
    const unset = await call(base, "PUT", `/v1/rooms/${room}/settings`, room, { maxTextLength: null });
    t.match(unset.body, { settings: { maxTextLength: null } });
    presenter.close(1000);
  },
);

t.test("a viewer cannot moderate anything; reads of bans, terms and audit are for moderators", async (t) => {
  const room = 7102;
  const before = await snapshot(base, room);
  const attempts: [string, string, object | undefined][] = [
    ["PUT", "settings", { slowModeS: 3 }],
    ["PUT", `moderators/${VIEWER}`, undefined],
    ["DELETE", `moderators/${VIEWER}`, undefined],
    ["PUT", "bans/42", {}],
    ["PUT", "timeouts/42", { durationS: 60 }],
    ["DELETE", "bans/42", undefined],
    ["POST", "blocked-terms", { terms: ["spam"] }],
    ["DELETE", "blocked-terms", { terms: ["spam"] }],
    ["DELETE", "messages/1", undefined],
    ["POST", "clear", undefined],
  ];
  for (const [method, path, body] of attempts) {
    const res = await call(base, method, `/v1/rooms/${room}/${path}`, VIEWER, body);
    t.equal(res.status, 403, `${method} ${path}`);
    t.equal(res.body.code, "forbidden");
    t.equal(res.headers.get("content-type"), "application/problem+json; charset=utf-8");
  }
  for (const path of ["bans", "blocked-terms", "audit"]) {
    t.equal((await call(base, "GET", `/v1/rooms/${room}/${path}`, VIEWER)).status, 403, `GET ${path}`);
  }
  t.equal(
    (await call(base, "GET", `/v1/rooms/${room}/moderators`, VIEWER)).status,
    200,
    "the moderator list is public",
  );
  t.same(await snapshot(base, room), before, "nothing changed, nothing audited");
});

t.test("no token: 401 on every route, before anything else is looked at", async (t) => {
  for (const [method, path] of [
    ["PUT", "settings"],
    ["GET", "settings"],
    ["PUT", "moderators/5"],
    ["GET", "bans"],
    ["PUT", "timeouts/x"],
    ["POST", "blocked-terms"],
    ["DELETE", "messages/1"],
    ["POST", "clear"],
    ["GET", "audit"],
  ] as const) {
    const res = await call(
      base,
      method,
      `/v1/rooms/7103/${path}`,
      undefined,
      method === "GET" ? undefined : { bogus: 1 },
    );
    t.equal(res.status, 401, `${method} ${path}`);
  }
});

t.test("presenter appoints and removes moderators; what a moderator may and may not do", async (t) => {
  const room = 7104;
  const add = await call(base, "PUT", `/v1/rooms/${room}/moderators/${MOD}`, room);
  t.equal(add.status, 200);
  t.match(add.body, { action: "moderator_add", moderators: [MOD] });
  t.equal((await call(base, "PUT", `/v1/rooms/${room}/moderators/${OTHER_MOD}`, room)).status, 200);
  t.same((await call(base, "GET", `/v1/rooms/${room}/moderators`, VIEWER)).body.moderators, [MOD, OTHER_MOD]);

  // A moderator: settings, bans, timeouts, terms, clear.
  t.equal((await call(base, "PUT", `/v1/rooms/${room}/settings`, MOD, { slowModeS: 10 })).status, 200);
  const ban = await call(base, "PUT", `/v1/rooms/${room}/bans/${VIEWER}`, MOD, { reason: "spam links" });
  t.equal(ban.status, 200);
  t.match(ban.body, { action: "ban", restrictions: [{ userId: VIEWER, kind: "ban", until: null }] });
  t.equal((await call(base, "POST", `/v1/rooms/${room}/blocked-terms`, MOD, { terms: ["buy now"] })).status, 200);
  t.equal((await call(base, "GET", `/v1/rooms/${room}/bans`, MOD)).status, 200, "a moderator reads the bans");

  // ...but not appoint, remove, or ban the presenter or another moderator.
  const appoint = await call(base, "PUT", `/v1/rooms/${room}/moderators/${VIEWER}`, MOD);
  t.equal(appoint.status, 403, "a moderator cannot appoint");
  t.equal((await call(base, "DELETE", `/v1/rooms/${room}/moderators/${OTHER_MOD}`, MOD)).status, 403, "nor remove");
  t.equal((await call(base, "PUT", `/v1/rooms/${room}/bans/${room}`, MOD)).status, 403, "nor ban the presenter");
  t.equal(
    (await call(base, "PUT", `/v1/rooms/${room}/timeouts/${room}`, MOD, { durationS: 30 })).status,
    403,
    "nor time the presenter out",
  );
  t.equal((await call(base, "PUT", `/v1/rooms/${room}/bans/${OTHER_MOD}`, MOD)).status, 403, "nor ban a moderator");
  t.equal(
    (await call(base, "PUT", `/v1/rooms/${room}/timeouts/${OTHER_MOD}`, MOD, { durationS: 30 })).status,
    403,
    "nor time a moderator out",
  );
  t.equal(
    (await call(base, "PUT", `/v1/rooms/${room}/bans/${room}`, room)).status,
    400,
    "the presenter cannot ban themselves",
  );

  // Removed: back to a viewer.
  const removed = await call(base, "DELETE", `/v1/rooms/${room}/moderators/${MOD}`, room);
  t.equal(removed.status, 200);
  t.same(removed.body.moderators, [OTHER_MOD]);
  t.equal((await call(base, "PUT", `/v1/rooms/${room}/settings`, MOD, { slowModeS: 0 })).status, 403);
  t.equal((await call(base, "GET", `/v1/rooms/${room}/audit`, MOD)).status, 403);
});

t.test("a moderator of room A cannot act on room B (appointed, or by the token claim)", async (t) => {
  const roomA = 7105;
  const roomB = 7106;
  t.equal((await call(base, "PUT", `/v1/rooms/${roomA}/moderators/${MOD}`, roomA)).status, 200);
  t.equal((await call(base, "PUT", `/v1/rooms/${roomA}/bans/${VIEWER}`, MOD)).status, 200);
  const before = await snapshot(base, roomB);
  t.equal((await call(base, "PUT", `/v1/rooms/${roomB}/bans/${VIEWER}`, MOD)).status, 403, "appointed in A only");
  t.equal((await call(base, "PUT", `/v1/rooms/${roomB}/settings`, MOD, { slowModeS: 1 })).status, 403);

  const claimA = await userToken(9010, [roomA]);
  t.equal((await call(base, "PUT", `/v1/rooms/${roomA}/timeouts/${VIEWER}`, claimA, { durationS: 60 })).status, 200);
  t.equal((await call(base, "PUT", `/v1/rooms/${roomB}/timeouts/${VIEWER}`, claimA, { durationS: 60 })).status, 403);
  t.equal(
    (await call(base, "PUT", `/v1/rooms/${roomA}/moderators/9011`, claimA)).status,
    403,
    "a claim moderator cannot appoint",
  );
  t.same(await snapshot(base, roomB), before, "room B untouched");
});

t.test("the moderator claim is read leniently: anything malformed grants nothing", async (t) => {
  const room = 7107;
  const as = async (claim: unknown) =>
    call(base, "PUT", `/v1/rooms/${room}/settings`, await userToken(9020, claim), { slowModeS: 2 });
  t.equal((await as([room])).status, 200, "a number");
  t.equal((await as([String(room)])).status, 200, "a decimal string");
  for (const claim of [
    room,
    String(room),
    [room, "x"],
    [room, -1],
    [room, 1.5],
    [{ id: room }],
    [2 ** 53],
    null,
    [room, ...Array.from({ length: 1000 }, (_, i) => i + 1)],
  ]) {
    t.equal((await as(claim)).status, 403, `claim ${JSON.stringify(claim)}`);
  }
});

t.test("MODERATOR_CLAIM names the claim (a namespaced one too); a bad name stops the node", async (t) => {
  t.throws(() => loadConfig(testEnv({ MODERATOR_CLAIM: "two words" })), ConfigError);
  t.equal(loadConfig(testEnv({})).jwt.moderatorClaim, "mod_rooms", "the default");
  const claim = "https://example.com/mod_rooms";
  const other = await startTestServer({ MODERATOR_CLAIM: claim });
  t.teardown(() => other.shutdown());
  const room = 7115;
  const as = async (claims: object) =>
    call(other.http, "PUT", `/v1/rooms/${room}/settings`, await mintToken({ user_idx: 9030, ...claims }), {
      slowModeS: 1,
    });
  t.equal((await as({ [claim]: [room] })).status, 200, "the configured claim grants");
  t.equal((await as({ mod_rooms: [room] })).status, 403, "the default name no longer does");
});

t.test("bans and timeouts: listed with their end, lifted by DELETE bans/:userId", async (t) => {
  const room = 7108;
  const start = Date.now();
  const timeout = await call(base, "PUT", `/v1/rooms/${room}/timeouts/500`, room, {
    durationS: 600,
    reason: "calm down",
  });
  t.equal(timeout.status, 200);
  const restriction = (timeout.body.restrictions as Json[])[0] as Json;
  t.equal(restriction.kind, "timeout");
  const until = Date.parse(restriction.until as string);
  t.ok(until >= start + 600_000 && until <= Date.now() + 600_000, "until = now + durationS");
  t.equal((await call(base, "PUT", `/v1/rooms/${room}/bans/501`, room)).status, 200, "a ban without a body");
  const list = await call(base, "GET", `/v1/rooms/${room}/bans`, room);
  t.same(
    (list.body.restrictions as Json[]).map((r) => [r.userId, r.kind]),
    [
      [500, "timeout"],
      [501, "ban"],
    ],
  );
  const ban = await call(base, "PUT", `/v1/rooms/${room}/bans/500`, room);
  t.match(
    (ban.body.restrictions as Json[])[0],
    { userId: 500, kind: "ban", until: null },
    "a ban replaces the timeout",
  );
  const lifted = await call(base, "DELETE", `/v1/rooms/${room}/bans/500`, room);
  t.equal(lifted.status, 200);
  t.match(lifted.body, { action: "unban" });
  t.same(
    (lifted.body.restrictions as Json[]).map((r) => r.userId),
    [501],
  );
  t.equal((await call(base, "DELETE", `/v1/rooms/${room}/bans/501`, room)).status, 200);
  t.same((await call(base, "GET", `/v1/rooms/${room}/bans`, room)).body.restrictions, []);
});

t.test("blocked terms: normalised, deduplicated, removed; at most 500 per room", async (t) => {
  const room = 7109;
  const add = await call(base, "POST", `/v1/rooms/${room}/blocked-terms`, room, {
    terms: ["Spam", "ＳＰＡＭ", " spam ", "*Scam*", "buy  now"],
  });
  t.equal(add.status, 200);
  t.match(add.body, { action: "terms_add" });
  t.same(add.body.terms, ["*scam*", "buy now", "spam"], "folded (NFKC, lower case, spaces) and stored once");
  const removed = await call(base, "DELETE", `/v1/rooms/${room}/blocked-terms`, room, { terms: ["SPAM", "absent"] });
  t.equal(removed.status, 200);
  t.same(removed.body.terms, ["*scam*", "buy now"]);

  const many = Array.from({ length: 498 }, (_, i) => `term${i}`);
  t.equal(
    (await call(base, "POST", `/v1/rooms/${room}/blocked-terms`, room, { terms: many })).status,
    200,
    "500 in all",
  );
  const before = await snapshot(base, room);
  const over = await call(base, "POST", `/v1/rooms/${room}/blocked-terms`, room, { terms: ["one too many"] });
  t.equal(over.status, 400);
  t.equal(over.body.code, "invalid_body");
  t.same(await snapshot(base, room), before, "the 501st term is refused and nothing changed");
  const listed = (await call(base, "GET", `/v1/rooms/${room}/blocked-terms`, room)).body.terms as string[];
  t.equal(listed.length, 500, "GET lists all 500");
});

t.test("delete one message and clear: events with their own seq; unknown targets are 404", async (t) => {
  const room = 7110;
  const other = 7111;
  const presenter = await openPresenter(server.ws, room);
  const otherPresenter = await openPresenter(server.ws, other);
  const a = await post(room, VIEWER, "first");
  const b = await post(room, VIEWER, "second");
  const elsewhere = await post(other, VIEWER, "in another room");

  const del = await call(base, "DELETE", `/v1/rooms/${room}/messages/${a}`, room);
  t.equal(del.status, 200);
  t.same(del.body, { roomId: room, version: 0, seq: b + 1, action: "delete" });
  const frame = await presenter.next((f) => f.type === "moderation" && f.action === "delete", "delete frame");
  t.match(frame, { seq: b + 1, by: room, data: { targetSeq: a } });

  t.equal(
    (await call(base, "DELETE", `/v1/rooms/${room}/messages/${b + 1}`, room)).status,
    404,
    "an event is no message",
  );
  t.equal((await call(base, "DELETE", `/v1/rooms/${room}/messages/9999`, room)).status, 404, "no such seq");
  t.equal(
    (await call(base, "DELETE", `/v1/rooms/${room}/messages/${elsewhere + 5}`, room)).status,
    404,
    "beyond the room's log",
  );
  const notFound = await call(base, "DELETE", `/v1/rooms/${other}/messages/${b}`, room);
  t.equal(notFound.status, 403, "room B's message through room A's presenter token: not theirs to moderate");

  const clear = await call(base, "POST", `/v1/rooms/${room}/clear`, room);
  t.equal(clear.status, 200);
  t.match(clear.body, { seq: b + 2, action: "clear" });
  await presenter.next((f) => f.type === "moderation" && f.action === "clear", "clear frame");
  presenter.close(1000);
  otherPresenter.close(1000);
});

t.test("audit: every action with who, what, target and when, newest first, paged by `before`", async (t) => {
  const room = 7112;
  await call(base, "PUT", `/v1/rooms/${room}/moderators/${MOD}`, room);
  await call(base, "PUT", `/v1/rooms/${room}/timeouts/77`, MOD, { durationS: 30, reason: "flood" });
  await call(base, "POST", `/v1/rooms/${room}/blocked-terms`, MOD, { terms: ["nope"] });
  await call(base, "PUT", `/v1/rooms/${room}/settings`, room, { moderatorsOnly: true });
  await call(base, "DELETE", `/v1/rooms/${room}/bans/77`, MOD);
  const page = await call(base, "GET", `/v1/rooms/${room}/audit`, MOD);
  t.equal(page.status, 200);
  const items = page.body.items as Json[];
  t.same(
    items.map((e) => [e.action, e.actorId]),
    [
      ["unban", MOD],
      ["settings", room],
      ["terms_add", MOD],
      ["timeout", MOD],
      ["moderator_add", room],
    ],
  );
  t.match(items[3], { target: { userId: 77, durationS: 30, reason: "flood", until: String }, at: String });
  t.match(items[1], { target: { settings: { moderatorsOnly: true } } });
  t.match(items[2], { target: { terms: ["nope"] } });
  t.equal(page.body.nextBefore, null);
  const times = items.map((e) => Date.parse(e.at as string));
  t.ok(
    times.every((at, i) => i === 0 || at < (times[i - 1] as number)),
    "strictly newest first",
  );

  const first = await call(base, "GET", `/v1/rooms/${room}/audit?limit=2`, room);
  t.same(
    (first.body.items as Json[]).map((e) => e.action),
    ["unban", "settings"],
  );
  t.equal(first.body.nextBefore, times[1]);
  const second = await call(base, "GET", `/v1/rooms/${room}/audit?limit=2&before=${first.body.nextBefore}`, room);
  t.same(
    (second.body.items as Json[]).map((e) => e.action),
    ["terms_add", "timeout"],
  );
  const third = await call(base, "GET", `/v1/rooms/${room}/audit?limit=2&before=${second.body.nextBefore}`, room);
  t.same(
    (third.body.items as Json[]).map((e) => e.action),
    ["moderator_add"],
  );
  t.equal(third.body.nextBefore, null);
});

t.test("bad input on every route: 400, nothing changed, nothing audited", async (t) => {
  const room = 7113;
  const presenter = await openPresenter(server.ws, room);
  await post(room, VIEWER, "keep me");
  // Some state to compare against.
  t.equal((await call(base, "PUT", `/v1/rooms/${room}/settings`, room, { slowModeS: 7 })).status, 200);
  t.equal((await call(base, "PUT", `/v1/rooms/${room}/moderators/${MOD}`, room)).status, 200);
  t.equal((await call(base, "PUT", `/v1/rooms/${room}/bans/55`, room)).status, 200);
  t.equal((await call(base, "POST", `/v1/rooms/${room}/blocked-terms`, room, { terms: ["x1"] })).status, 200);
  const before = await snapshot(base, room);

  const long = "a".repeat(101);
  const cases: [string, string, object | string | undefined][] = [
    ["PUT", "settings", {}],
    ["PUT", "settings", { slowModeS: 121 }],
    ["PUT", "settings", { slowModeS: -1 }],
    ["PUT", "settings", { slowModeS: 1.5 }],
    ["PUT", "settings", { slowModeS: "5" }],
    ["PUT", "settings", { moderatorsOnly: "yes" }],
    ["PUT", "settings", { maxTextLength: 0 }],
    ["PUT", "settings", { maxTextLength: 100_000 }],
    ["PUT", "settings", { maxTextLength: 10, extra: 1 }],
    ["PUT", "settings", "{not json"],
    ["PUT", "settings", "[]"],
    ["PUT", "moderators/0", undefined],
    ["PUT", "moderators/abc", undefined],
    ["PUT", "moderators/9007199254740993", undefined],
    ["PUT", `moderators/${room}`, undefined],
    ["DELETE", "moderators/-4", undefined],
    ["PUT", "bans/0", {}],
    ["PUT", "bans/12", { reason: 5 }],
    ["PUT", "bans/12", { reason: "r".repeat(401) }],
    ["PUT", "bans/12", { reason: "bad\u0000reason" }],
    ["PUT", "bans/12", { why: "no" }],
    ["PUT", "timeouts/12", {}],
    ["PUT", "timeouts/12", { durationS: 0 }],
    ["PUT", "timeouts/12", { durationS: 1_209_601 }],
    ["PUT", "timeouts/12", { durationS: 2.5 }],
    ["PUT", "timeouts/x", { durationS: 60 }],
    ["DELETE", "bans/1e3", undefined],
    ["POST", "blocked-terms", {}],
    ["POST", "blocked-terms", { terms: [] }],
    ["POST", "blocked-terms", { terms: [""] }],
    ["POST", "blocked-terms", { terms: ["   "] }],
    ["POST", "blocked-terms", { terms: [long] }],
    ["POST", "blocked-terms", { terms: ["ok", 5] }],
    ["POST", "blocked-terms", { terms: ["tab\there"] }],
    ["POST", "blocked-terms", { terms: ["*half"] }],
    ["POST", "blocked-terms", { terms: Array.from({ length: 501 }, (_, i) => `t${i}`) }],
    ["DELETE", "blocked-terms", { terms: [] }],
    ["DELETE", "blocked-terms", undefined],
    ["DELETE", "messages/0", undefined],
    ["DELETE", "messages/abc", undefined],
    ["DELETE", "messages/99999999999999999999", undefined],
  ];
  for (const [method, path, body] of cases) {
    const res = await call(base, method, `/v1/rooms/${room}/${path}`, room, body);
    t.equal(res.status, 400, `${method} ${path} ${typeof body === "string" ? body : JSON.stringify(body)}`);
    t.equal(res.headers.get("content-type"), "application/problem+json; charset=utf-8");
  }
  for (const query of ["before=0", "before=x", "limit=0", "limit=1000", "limit=-1", "bogus=1"]) {
    t.equal((await call(base, "GET", `/v1/rooms/${room}/audit?${query}`, room)).status, 400, `audit ?${query}`);
  }
  t.equal((await call(base, "PUT", "/v1/rooms/0/settings", room, { slowModeS: 1 })).status, 400, "room 0");
  t.equal((await call(base, "PUT", "/v1/rooms/abc/settings", room, { slowModeS: 1 })).status, 400, "room abc");
  t.same(await snapshot(base, room), before, "state, version and audit are as before");
  t.notOk(
    presenter.json().some((f) => f.type === "moderation" && (f.seq as number) > 5),
    "no moderation event was logged for a refused request",
  );
  presenter.close(1000);
});

t.test("presenter socket: moderate frames answered `moderated` in order, refusals as error frames", async (t) => {
  const room = 7114;
  const presenter = await openPresenter(server.ws, room);
  const seq = await post(room, VIEWER, "hello");
  presenter.send({ type: "moderate", action: "settings", settings: { slowModeS: 3 } });
  presenter.send({ type: "moderate", action: "moderator_add", userId: MOD });
  presenter.send({ type: "moderate", action: "timeout", userId: VIEWER, durationS: 60, reason: "cool off" });
  presenter.send({ type: "moderate", action: "terms_add", terms: ["Bad Word"] });
  presenter.send({ type: "moderate", action: "delete", targetSeq: seq });
  presenter.send({ type: "moderate", action: "unban", userId: VIEWER });
  presenter.send({ type: "moderate", action: "ban", userId: VIEWER });
  presenter.send({ type: "moderate", action: "clear" });
  await presenter.until(() => presenter.json().filter((f) => f.type === "moderated").length === 8, "8 answers");
  const answers = presenter.json().filter((f) => f.type === "moderated");
  t.same(
    answers.map((f) => f.action),
    ["settings", "moderator_add", "timeout", "terms_add", "delete", "unban", "ban", "clear"],
    "answered in frame order",
  );
  t.same(
    answers.map((f) => f.seq),
    answers.map((_, i) => seq + 1 + i),
    "each with its event's seq",
  );
  await presenter.until(() => presenter.json().filter((f) => f.type === "moderation").length === 8, "8 events");
  const state = await call(base, "GET", `/v1/rooms/${room}/bans`, room);
  t.match(state.body.restrictions, [{ userId: VIEWER, kind: "ban" }]);

  const errors = () => presenter.json().filter((f) => f.type === "error");
  const expectError = async (frame: object | string, code: string, n: number) => {
    presenter.send(frame);
    await presenter.until(() => errors().length === n, `error #${n}`);
    t.equal(errors()[n - 1]?.code, code, JSON.stringify(frame));
  };
  await expectError({ type: "moderate", action: "ban", userId: room }, "invalid_body", 1);
  await expectError({ type: "moderate", action: "timeout", userId: 5, durationS: 1_209_601 }, "invalid_body", 2);
  await expectError({ type: "moderate", action: "delete", targetSeq: 99_999 }, "not_found", 3);
  await expectError({ type: "moderate", action: "settings", settings: { slowModeS: 500 } }, "invalid_body", 4);
  await expectError({ type: "moderate", action: "nuke" }, "invalid_frame", 5);
  await expectError({ type: "moderate", action: "ban", userId: "7" }, "invalid_frame", 6);
  await expectError({ type: "moderate", action: "ban", userId: 7, extra: true }, "invalid_frame", 7);
  await expectError(
    '{"type":"moderate","action":"settings","settings":{"__proto__":{"slowModeS":1}}}',
    "invalid_frame",
    8,
  );
  await expectError('{"type":"moderate","action":"clear","__proto__":{"x":1}}', "invalid_frame", 9);
  await expectError({ type: "moderate", action: "terms_add", terms: "spam" }, "invalid_frame", 10);
  t.notOk(
    errors().some((f) => JSON.stringify(f).includes("nuke") || JSON.stringify(f).includes("extra")),
    "the frame is never echoed",
  );
  t.equal(presenter.closed, undefined, "refusals keep the socket open");
  presenter.close(1000);
});
