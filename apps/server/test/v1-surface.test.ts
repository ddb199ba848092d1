import t from "tap";
import { request } from "./helpers/http.js";
import { startTestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

const server = await startTestServer({ HISTORY_MAX_LIMIT: "20" });
t.teardown(() => server.shutdown());

async function presenter(room: number, query = ""): Promise<TestSocket> {
  const token = await mintToken({ user_idx: room, nickname: `host${room}` });
  const socket = new TestSocket(`${server.ws}/v1/rooms/${room}/presenter?access_token=${token}${query}`);
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready frame");
  return socket;
}

async function post(room: number, body: object, token?: string) {
  return request<Record<string, unknown>>(`${server.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${token ?? (await mintToken({ user_idx: 50, nickname: "fan" }))}` },
    body,
  });
}

t.test("post -> 201 with id, roomId, seq, sentAt; the presenter gets seq and message id", async (t) => {
  const socket = await presenter(201);
  const ready = socket.json()[0] as Record<string, unknown>;
  t.match(ready, { type: "ready", roomId: 201, lastSeq: 0, resumeFrom: null });
  const res = await post(201, { text: "hello" });
  t.equal(res.status, 201);
  t.match(res.body, { roomId: 201, seq: 1, id: /^[0-9a-f-]{36}$/, sentAt: /^\d{4}-\d{2}-\d{2}T/ });
  const frame = await socket.next((f) => f.type === "message", "message frame");
  t.match(frame, {
    roomId: 201,
    seq: 1,
    id: res.body.id,
    senderId: 50,
    nickname: "fan",
    userType: "viewer",
    text: "hello",
  });
  socket.close(1000);
});

t.test("the presenter's own post is marked presenter; sub claim works", async (t) => {
  const socket = await presenter(202);
  const res = await post(202, { text: "hi all" }, await mintToken({ sub: "202", nickname: "host" }));
  t.equal(res.status, 201);
  const frame = await socket.next((f) => f.type === "message", "message frame");
  t.equal(frame.userType, "presenter");
  socket.close(1000);
});

t.test("room not live: 409 problem+json, nothing logged", async (t) => {
  const res = await post(299, { text: "anyone?" });
  t.equal(res.status, 409);
  t.equal(res.headers.get("content-type"), "application/problem+json; charset=utf-8");
  t.match(res.body, {
    type: "https://chatrelay.dev/problems/room_not_live",
    code: "room_not_live",
    status: 409,
    instance: "/v1/rooms/:roomId/messages",
  });
  t.equal((await server.relay.history(299, undefined, 10)).length, 0);
});

t.test("history: newest first, cursor by seq, limit capped", async (t) => {
  const socket = await presenter(203);
  for (let i = 1; i <= 25; i++) t.equal((await post(203, { text: `m${i}` })).status, 201);
  const token = await mintToken({ user_idx: 77 });
  const headers = { authorization: `Bearer ${token}` };
  const first = await request<{ items: { seq: number; text: string }[]; nextBefore: number | null }>(
    `${server.http}/v1/rooms/203/messages?limit=10`,
    { headers },
  );
  t.equal(first.status, 200);
  t.same(
    first.body.items.map((m) => m.seq),
    [25, 24, 23, 22, 21, 20, 19, 18, 17, 16],
  );
  t.equal(first.body.items[0]?.text, "m25");
  t.equal(first.body.nextBefore, 16);
  const second = await request<{ items: { seq: number }[]; nextBefore: number | null }>(
    `${server.http}/v1/rooms/203/messages?limit=1000&before=16`,
    { headers },
  );
  t.equal(second.status, 200);
  t.equal(second.body.items.length, 15, "limit capped at HISTORY_MAX_LIMIT (20) but only 15 older remain");
  t.equal(second.body.items[0]?.seq, 15);
  t.equal(second.body.nextBefore, null, "no more pages");
  const capped = await request<{ items: unknown[] }>(`${server.http}/v1/rooms/203/messages?limit=999`, { headers });
  t.equal(capped.body.items.length, 20, "limit capped");
  const bad = await request<Record<string, unknown>>(`${server.http}/v1/rooms/203/messages?before=abc`, { headers });
  t.equal(bad.status, 400);
  t.equal(bad.body.code, "invalid_cursor");
  const anon = await request(`${server.http}/v1/rooms/203/messages`);
  t.equal(anon.status, 401, "history needs a token");
  socket.close(1000);
});

t.test("v1 socket: ping, ack, bad frames keep the socket open, stop ends the broadcast", async (t) => {
  const socket = await presenter(204);
  socket.send({ type: "ping" });
  await socket.next((f) => f.type === "pong", "pong");
  socket.send("nope");
  await socket.next((f) => f.type === "error" && f.code === "invalid_frame", "error for non-JSON");
  socket.send(Buffer.from([0, 1]));
  await socket.until(() => socket.json().filter((f) => f.type === "error").length === 2, "error for binary");
  socket.send({ type: "ack", seq: "x" });
  await socket.until(() => socket.json().filter((f) => f.type === "error").length === 3, "error for bad ack");
  socket.send({ type: "warp" });
  await socket.until(() => socket.json().filter((f) => f.type === "error").length === 4, "error for unknown type");
  t.equal(socket.closed, undefined);
  t.equal((await post(204, { text: "one" })).status, 201);
  await socket.next((f) => f.type === "message", "message");
  socket.send({ type: "ack", seq: 1 });
  socket.send({ type: "stop" });
  const closed = await socket.waitClose();
  t.equal(closed.code, 1000);
  const after = await post(204, { text: "after stop" });
  t.equal(after.status, 409, "after stop the room is not live");
});

t.test("presenter socket authorization is checked before the upgrade", async (t) => {
  const viewerToken = await mintToken({ user_idx: 51 });
  const hijack = new TestSocket(`${server.ws}/v1/rooms/205/presenter?access_token=${viewerToken}`);
  await t.rejects(hijack.open(), /upgrade refused: 403/);
  t.match(JSON.parse(hijack.rejection?.body ?? "{}"), { code: "forbidden" });

  const none = new TestSocket(`${server.ws}/v1/rooms/205/presenter`);
  await t.rejects(none.open(), /upgrade refused: 401/);

  const expired = new TestSocket(
    `${server.ws}/v1/rooms/205/presenter?access_token=${await mintToken({ user_idx: 205, expiresIn: -5 })}`,
  );
  await t.rejects(expired.open(), /upgrade refused: 401/);

  const badRoom = new TestSocket(`${server.ws}/v1/rooms/abc/presenter?access_token=${viewerToken}`);
  await t.rejects(badRoom.open(), /upgrade refused: 400/);

  const header = new TestSocket(`${server.ws}/v1/rooms/205/presenter`, {
    headers: { authorization: `Bearer ${await mintToken({ user_idx: 205 })}` },
  });
  await header.open();
  await header.next((f) => f.type === "ready", "ready with a header token");
  header.close(1000);
});

t.test("bad and expired tokens on posts get 401 problem+json", async (t) => {
  const socket = await presenter(206);
  for (const [what, headers] of [
    ["no token", {}],
    ["not a bearer", { authorization: "Basic abc" }],
    ["garbage", { authorization: "Bearer abc.def.ghi" }],
    ["expired", { authorization: `Bearer ${await mintToken({ user_idx: 5, expiresIn: -10 })}` }],
    ["not yet valid", { authorization: `Bearer ${await mintToken({ user_idx: 5, notBefore: 600 })}` }],
    [
      "wrong secret",
      { authorization: `Bearer ${await mintToken({ user_idx: 5 }, "another-secret-0123456789-0123456789")}` },
    ],
    ["no user id", { authorization: `Bearer ${await mintToken({ nickname: "ghost" })}` }],
  ] as const) {
    const res = await request<Record<string, unknown>>(`${server.http}/v1/rooms/206/messages`, {
      headers,
      body: { text: "hi" },
    });
    t.equal(res.status, 401, what);
    t.equal(res.body.code, "unauthorized", what);
  }
  t.equal((await server.relay.history(206, undefined, 10)).length, 0, "nothing logged");
  socket.close(1000);
});

t.test("unknown route answers 404 problem+json", async (t) => {
  const res = await request<Record<string, unknown>>(`${server.http}/v1/nowhere`);
  t.equal(res.status, 404);
  t.equal(res.body.code, "not_found");
});

t.test("healthz, readyz and metrics", async (t) => {
  t.equal((await request(`${server.http}/healthz`)).status, 200);
  const ready = await request<Record<string, unknown>>(`${server.ops}/readyz`);
  t.equal(ready.status, 200);
  t.match(ready.body, { status: "ready", checks: { chatlog: "ok" } });
  const metrics = await request(`${server.ops}/metrics`);
  t.equal(metrics.status, 200);
  t.match(metrics.text, /chatrelay_posts_total\{outcome="accepted"\} \d+/);
  t.match(metrics.text, /chatrelay_relayed_frames_total \d+/);
  t.match(metrics.text, /chatrelay_log_commit_seconds_bucket/);
});
