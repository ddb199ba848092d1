import t from "tap";
import { request, seedHeaders } from "./helpers/http.js";
import { startTestServer, waitAttached } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// The one frame loop both presenter surfaces share: frames that used to stop a node, the bad-frame
// budget, token lifetime on an open socket, the presenter rule, and safe ids.
const server = await startTestServer({ WS_BAD_FRAME_LIMIT: "5", WS_BAD_FRAME_WINDOW_MS: "60000" });
t.teardown(() => server.shutdown());

const deep = (open: string, close: string, n: number) => open.repeat(n) + close.repeat(n);

async function seedPresenter(room: number, extra: Record<string, unknown> = {}): Promise<TestSocket> {
  const socket = new TestSocket(`${server.ws}/chatting`);
  await socket.open();
  const attached = waitAttached(server.relay, room);
  socket.send({ id: "start", token: await mintToken({ user_idx: room }), ...extra });
  await attached;
  return socket;
}

async function v1Presenter(room: number, token?: string): Promise<TestSocket> {
  const socket = new TestSocket(
    `${server.ws}/v1/rooms/${room}/presenter?access_token=${token ?? (await mintToken({ user_idx: room }))}`,
  );
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready");
  return socket;
}

async function postV1(room: number, text: string): Promise<number> {
  const res = await request(`${server.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${await mintToken({ user_idx: 9 })}` },
    body: { text },
  });
  return res.status;
}

t.test("seed: frames that used to crash the node get an error in our words; the node keeps relaying", async (t) => {
  const presenter = await seedPresenter(801);
  const hostile = [
    '{"id":{"toString":1}}',
    '{"id":{"valueOf":1,"toString":1}}',
    `{"id":${deep("[", "]", 4000)}}`,
    `{"id":"start","token":${deep("[", "]", 5000)}}`,
    '{"__proto__":{"id":"stop"}}',
  ];
  for (const frame of hostile) presenter.send(frame);
  await presenter.until(() => presenter.json().filter((f) => f.id === "error").length === hostile.length, "errors");
  for (const f of presenter.json().filter((f) => f.id === "error")) {
    t.notMatch(String(f.message), /toString|valueOf|\[\[|__proto__/, "nothing the client sent is echoed");
  }
  t.equal(presenter.closed, undefined, "socket still open");
  t.equal((await request(`${server.ops}/healthz`)).status, 200, "node up");
  const res = await request(`${server.http}/send/message`, {
    headers: seedHeaders(8),
    body: { presenterIdx: 801, userType: "viewer", textMessage: "after the storm" },
  });
  t.equal(res.status, 200);
  await presenter.next((f) => f.message === "after the storm", "relayed");
  presenter.close(1000);
});

t.test("v1: a deep or coercible type answers invalid_frame; the node keeps relaying", async (t) => {
  const presenter = await v1Presenter(802);
  const hostile = [`{"type":${deep("[", "]", 5000)}}`, '{"type":{"toString":1}}', '{"type":"ack","seq":{"valueOf":1}}'];
  for (const frame of hostile) presenter.send(frame);
  await presenter.until(() => presenter.json().filter((f) => f.type === "error").length === 3, "three errors");
  t.ok(presenter.json().every((f) => f.type !== "error" || f.code === "invalid_frame"));
  t.equal(await postV1(802, "still relaying"), 201);
  await presenter.next((f) => f.text === "still relaying", "relayed");
  presenter.close(1000);
});

for (const surface of ["seed", "v1"] as const) {
  t.test(`${surface}: more bad frames than the budget close the socket with 1008`, async (t) => {
    const presenter = surface === "seed" ? await seedPresenter(803) : await v1Presenter(804);
    for (let i = 0; i < 6; i++) presenter.send("{broken");
    const closed = await presenter.waitClose();
    t.equal(closed.code, 1008);
    const errors = presenter.json().filter((f) => f.id === "error" || f.type === "error");
    t.equal(errors.length, 5, "each bad frame within the budget was answered");
  });
}

t.test("seed: a token that expires while the socket is open ends it with tokenException, then 4003", async (t) => {
  const socket = new TestSocket(`${server.ws}/chatting`);
  await socket.open();
  socket.send({ id: "start", token: await mintToken({ user_idx: 805, expiresIn: 2 }), ready: true });
  await socket.next((f) => f.id === "ready", "ready (opted in)");
  const frame = await socket.next((f) => f.id === "tokenException", "tokenException at expiry", 10_000);
  t.equal(frame.message, "token expired");
  t.equal((await socket.waitClose()).code, 4003);
});

t.test(
  "v1: an auth frame renews the socket's lifetime; without one it closes at expiry (token_expired, 4003)",
  async (t) => {
    // Two presenters whose tokens expire at the same second: only the one that refreshed survives it.
    const [renewed, lapsed] = [806, 807];
    const renewedToken = await mintToken({ user_idx: renewed, expiresIn: 2 });
    const lapsedToken = await mintToken({ user_idx: lapsed, expiresIn: 2 });
    const keeper = await v1Presenter(renewed, renewedToken);
    const leaver = await v1Presenter(lapsed, lapsedToken);

    keeper.send({ type: "auth", token: await mintToken({ user_idx: 77 }) });
    const refused = await keeper.next((f) => f.code === "token_refused", "another user's token is refused");
    t.type(refused.message, "string");
    keeper.send({ type: "auth", token: await mintToken({ user_idx: renewed, expiresIn: 600 }) });
    const ok = await keeper.next((f) => f.type === "authenticated", "authenticated");
    t.ok(Date.parse(String(ok.expiresAt)) > Date.now() + 500_000, "the socket now lives until the new expiry");

    const expired = await leaver.next((f) => f.code === "token_expired", "token_expired", 10_000);
    t.equal(expired.type, "error");
    t.equal((await leaver.waitClose()).code, 4003);

    t.equal(keeper.closed, undefined, "the refreshed socket outlived its first token");
    t.equal(await postV1(renewed, "after refresh"), 201);
    await keeper.next((f) => f.text === "after refresh", "relayed after refresh");
    keeper.close(1000);
  },
);

t.test("ids beyond 2^53 are refused, never rounded", async (t) => {
  const big = "9007199254740993";
  const viewer = `Bearer ${await mintToken({ user_idx: 9 })}`;
  const post = await request(`${server.http}/v1/rooms/${big}/messages`, {
    headers: { authorization: viewer },
    body: { text: "hi" },
  });
  t.equal(post.status, 400);
  t.equal(post.body.code, "invalid_room");
  const history = await request(`${server.http}/v1/rooms/808/messages?before=${big}`, {
    headers: { authorization: viewer },
  });
  t.equal(history.status, 400);
  t.equal(history.body.code, "invalid_cursor");
  const seed = await request(`${server.http}/send/message`, {
    headers: seedHeaders(big),
    body: { presenterIdx: 808, userType: "viewer", textMessage: "hi" },
  });
  t.equal(seed.status, 400);
  t.notMatch(seed.text, new RegExp(big), "the id is not echoed");
  const socket = new TestSocket(
    `${server.ws}/v1/rooms/808/presenter?lastSeq=${big}&access_token=${await mintToken({ user_idx: 808 })}`,
  );
  await t.rejects(socket.open(), /upgrade refused: 400/);
});

t.test("a plain GET on a socket path answers 426 with an error body", async (t) => {
  const v1 = await request(`${server.http}/v1/rooms/809/presenter`, {
    headers: { authorization: `Bearer ${await mintToken({ user_idx: 809 })}` },
  });
  t.equal(v1.status, 426);
  t.equal(v1.body.code, "upgrade_required");
  const seed = await request(`${server.http}/chatting`);
  t.equal(seed.status, 426);
  t.equal(seed.body.status, 426, "seed error shape");
});

t.test("v1: the token is checked before the body or the room id", async (t) => {
  for (const [what, url, body] of [
    ["bad body", `${server.http}/v1/rooms/810/messages`, "{not json"],
    ["bad room", `${server.http}/v1/rooms/abc/messages`, '{"text":"hi"}'],
  ] as const) {
    const res = await request(url, { headers: { "content-type": "application/json" }, body });
    t.equal(res.status, 401, what);
    t.equal(res.body.code, "unauthorized", what);
  }
});

t.test("post outcomes are counted by their error code, on both surfaces", async (t) => {
  const viewer = `Bearer ${await mintToken({ user_idx: 9 })}`;
  await request(`${server.http}/v1/rooms/811/messages`, {
    headers: { authorization: viewer, "content-type": "application/json" },
    body: "{oops",
  });
  await request(`${server.http}/v1/rooms/811/messages`, {
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  await request(`${server.http}/send/message`, {
    headers: { ...seedHeaders("x"), "content-type": "application/json" },
    body: JSON.stringify({ presenterIdx: 811, userType: "viewer", textMessage: "hi" }),
  });
  const metrics = (await request(`${server.ops}/metrics`)).text;
  for (const outcome of ["invalid_json", "unauthorized", "invalid_headers"]) {
    t.match(metrics, new RegExp(`chatrelay_posts_total\\{outcome="${outcome}"\\} [1-9]`), outcome);
  }
  t.notMatch(metrics, /outcome="seed_/, "no surface-specific labels");
  t.equal((await request(`${server.http}/metrics`)).status, 404, "metrics are not on the public port");
});

t.test("seed: ready frame only for clients that opt in; stop before start is refused", async (t) => {
  const plain = await seedPresenter(812);
  plain.send("ping");
  await plain.until(() => plain.frames.includes("pong"), "pong");
  t.notOk(
    plain.json().some((f) => f.id === "ready"),
    "no ready frame without opt-in",
  );
  plain.close(1000);

  const early = new TestSocket(`${server.ws}/chatting`);
  await early.open();
  early.send({ id: "stop" });
  const refused = await early.next((f) => f.id === "error", "stop before start");
  t.match(refused.message, /not started/);
  early.close(1000);
});

t.test("off air, a retry with the same clientMsgId and another text is a conflict", async (t) => {
  const room = 813;
  const presenter = await v1Presenter(room);
  const viewer = `Bearer ${await mintToken({ user_idx: 9 })}`;
  const send = (text: string) =>
    request(`${server.http}/v1/rooms/${room}/messages`, {
      headers: { authorization: viewer },
      body: { text, clientMsgId: "retry-1" },
    });
  t.equal((await send("first")).status, 201);
  presenter.send({ type: "stop" });
  await presenter.waitClose();
  const same = await send("first");
  t.equal(same.status, 201, "the same retry still gets its first result");
  const other = await send("second");
  t.equal(other.status, 422);
  t.equal(other.body.code, "idempotency_conflict");
});

t.test("RESUME_DEFAULT=acked: a presenter that never acknowledged resumes live, not from seq 0", async (t) => {
  const acked = await startTestServer({ RESUME_DEFAULT: "acked", GRACE_WINDOW_MS: "30000" });
  t.teardown(() => acked.shutdown());
  const room = 814;
  const token = await mintToken({ user_idx: room });
  const first = new TestSocket(`${acked.ws}/v1/rooms/${room}/presenter?access_token=${token}`);
  await first.open();
  await first.next((f) => f.type === "ready", "ready");
  const viewer = `Bearer ${await mintToken({ user_idx: 9 })}`;
  for (const text of ["one", "two"]) {
    const res = await request(`${acked.http}/v1/rooms/${room}/messages`, {
      headers: { authorization: viewer },
      body: { text },
    });
    t.equal(res.status, 201);
  }
  await first.next((f) => f.text === "two", "live delivery");
  first.close(1000);
  await first.waitClose();

  const seed = new TestSocket(`${acked.ws}/chatting`);
  await seed.open();
  seed.send({ id: "start", token, ready: true });
  const ready = await seed.next((f) => f.id === "ready", "ready");
  t.equal(ready.resumeFrom, null, "no ack stored: live only");
  t.equal(ready.lastSeq, 2);
  seed.send("ping");
  await seed.until(() => seed.frames.includes("pong"), "pong");
  t.notOk(
    seed.json().some((f) => f.id === "sendChatting"),
    "nothing replayed",
  );
  seed.close(1000);
});

t.test("unauthenticated seed sockets are bounded: past WS_MAX_PENDING_STARTS the upgrade gets 503", async (t) => {
  const capped = await startTestServer({ WS_MAX_PENDING_STARTS: "3" });
  t.teardown(() => capped.shutdown());
  const idle = [0, 1, 2].map(() => new TestSocket(`${capped.ws}/chatting`));
  await Promise.all(idle.map((s) => s.open()));
  const fourth = new TestSocket(`${capped.ws}/chatting`);
  await t.rejects(fourth.open(), /upgrade refused: 503/);
  // One of them authenticates: its slot is free again.
  const room = 815;
  const attached = waitAttached(capped.relay, room);
  idle[0]?.send({ id: "start", token: await mintToken({ user_idx: room }) });
  await attached;
  const fifth = new TestSocket(`${capped.ws}/chatting`);
  await fifth.open();
  // A handshake timeout frees slots too (the same path as any close before start).
  const timedOut = await startTestServer({ WS_MAX_PENDING_STARTS: "1", HANDSHAKE_TIMEOUT_MS: "300" });
  t.teardown(() => timedOut.shutdown());
  const first = new TestSocket(`${timedOut.ws}/chatting`);
  await first.open();
  t.equal((await first.waitClose()).code, 4004);
  const next = new TestSocket(`${timedOut.ws}/chatting`);
  await t.resolves(next.open(), "the slot was freed by the timeout");
  for (const s of [...idle, fifth, next]) s.close(1000);
});

t.test("history accepts the token as ?access_token= like the other v1 routes", async (t) => {
  const token = await mintToken({ user_idx: 9 });
  const res = await request(`${server.http}/v1/rooms/816/messages?limit=5&access_token=${token}`);
  t.equal(res.status, 200, res.text);
  t.same(res.body.items, []);
  const capped = await request(`${server.http}/v1/rooms/816/messages?limit=9999&access_token=${token}`);
  t.equal(capped.status, 200, "a limit above the cap is capped");
  const tooBig = await request(`${server.http}/v1/rooms/816/messages?limit=10000&access_token=${token}`);
  t.equal(tooBig.status, 400);
  t.equal(tooBig.body.code, "invalid_cursor");
});
