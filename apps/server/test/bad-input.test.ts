import t from "tap";
import { request, seedHeaders } from "./helpers/http.js";
import { startTestServer, waitAttached } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// Every kind of bad input gets a clear 4xx, changes nothing, and the server keeps serving.
const server = await startTestServer({ MAX_TEXT_LENGTH: "20", BODY_LIMIT_BYTES: "1024" });
t.teardown(() => server.shutdown());

const ROOM = 301;
const token = await mintToken({ user_idx: ROOM });
const presenter = new TestSocket(`${server.ws}/v1/rooms/${ROOM}/presenter?access_token=${token}`);
await presenter.open();
await presenter.next((f) => f.type === "ready", "ready");
t.teardown(() => presenter.close(1000));
const viewer = `Bearer ${await mintToken({ user_idx: 60 })}`;

const v1Cases: [string, { body: string | Buffer; contentType?: string }, number, string][] = [
  ["malformed JSON", { body: '{"text": "hi"' }, 400, "invalid_json"],
  ["empty JSON body", { body: "" }, 400, "invalid_json"],
  ["JSON array", { body: "[]" }, 400, "invalid_body"],
  ["wrong type", { body: '{"text": 42}' }, 400, "invalid_body"],
  ["missing text", { body: '{"clientMsgId": "a"}' }, 400, "invalid_body"],
  ["unknown field", { body: '{"text": "hi", "admin": true}' }, 400, "invalid_body"],
  ["bad clientMsgId", { body: '{"text": "hi", "clientMsgId": "has spaces"}' }, 400, "invalid_body"],
  ["empty text", { body: '{"text": ""}' }, 400, "text_empty"],
  ["blank text", { body: '{"text": "   "}' }, 400, "text_empty"],
  ["over-long text", { body: JSON.stringify({ text: "x".repeat(21) }) }, 400, "text_too_long"],
  ["control character", { body: JSON.stringify({ text: "bell\u0007" }) }, 400, "text_control_characters"],
  ["newline (C0)", { body: JSON.stringify({ text: "two\nlines" }) }, 400, "text_control_characters"],
  ["C1 control", { body: JSON.stringify({ text: "x\u0085y" }) }, 400, "text_control_characters"],
  ["lone surrogate", { body: '{"text": "x\\ud800y"}' }, 400, "text_control_characters"],
  ["body over the limit", { body: JSON.stringify({ text: "x".repeat(2000) }) }, 413, "body_too_large"],
  [
    "not JSON content type",
    { body: "text=hi", contentType: "application/x-www-form-urlencoded" },
    415,
    "unsupported_media_type",
  ],
  [
    "binary body",
    { body: Buffer.from([0xff, 0xfe, 0x00]), contentType: "application/octet-stream" },
    415,
    "unsupported_media_type",
  ],
];

for (const [what, input, status, code] of v1Cases) {
  t.test(`v1: ${what} -> ${status} ${code}`, async (t) => {
    const res = await request<Record<string, unknown>>(`${server.http}/v1/rooms/${ROOM}/messages`, {
      headers: { authorization: viewer, "content-type": input.contentType ?? "application/json" },
      body: input.body,
    });
    t.equal(res.status, status);
    t.equal(res.body.code, code);
    t.equal(res.body.status, status);
    t.match(res.headers.get("content-type"), /^application\/problem\+json/);
    t.type(res.body.detail, "string");
  });
}

t.test("v1: unknown or malformed room ids", async (t) => {
  for (const room of ["abc", "0", "-1", "1.5", "99999999999999999999"]) {
    const res = await request<Record<string, unknown>>(`${server.http}/v1/rooms/${room}/messages`, {
      headers: { authorization: viewer },
      body: { text: "hi" },
    });
    t.equal(res.status, 400, room);
    t.equal(res.body.code, "invalid_room", room);
  }
  const unknown = await request<Record<string, unknown>>(`${server.http}/v1/rooms/123456/messages`, {
    headers: { authorization: viewer },
    body: { text: "hi" },
  });
  t.equal(unknown.status, 409, "a room nobody broadcasts in is not live");
});

t.test("unicode text is counted in characters, not bytes", async (t) => {
  const res = await request<Record<string, unknown>>(`${server.http}/v1/rooms/${ROOM}/messages`, {
    headers: { authorization: viewer },
    body: { text: "😀".repeat(20) },
  });
  t.equal(res.status, 201, "20 emoji fit a 20-character limit");
});

const seedCases: [string, { body: string; contentType?: string }, number][] = [
  ["malformed JSON", { body: '{"presenterIdx": 301,' }, 400],
  ["wrong type for presenterIdx", { body: '{"presenterIdx": "301", "userType": "viewer", "textMessage": "hi"}' }, 400],
  ["bad userType", { body: '{"presenterIdx": 301, "userType": "admin", "textMessage": "hi"}' }, 400],
  ["missing textMessage", { body: '{"presenterIdx": 301, "userType": "viewer"}' }, 400],
  ["empty text", { body: '{"presenterIdx": 301, "userType": "viewer", "textMessage": ""}' }, 400],
  [
    "over-long text",
    { body: JSON.stringify({ presenterIdx: 301, userType: "viewer", textMessage: "y".repeat(21) }) },
    400,
  ],
  [
    "control characters",
    { body: JSON.stringify({ presenterIdx: 301, userType: "viewer", textMessage: "a\u0000b" }) },
    400,
  ],
  [
    "body over the limit",
    { body: JSON.stringify({ presenterIdx: 301, userType: "viewer", textMessage: "z".repeat(3000) }) },
    413,
  ],
  ["not JSON content type", { body: "hi", contentType: "text/plain" }, 415],
];

for (const [what, input, status] of seedCases) {
  t.test(`seed: ${what} -> ${status} in the seed error shape`, async (t) => {
    const res = await request<Record<string, unknown>>(`${server.http}/send/message`, {
      headers: { ...seedHeaders(61), "content-type": input.contentType ?? "application/json" },
      body: input.body,
    });
    t.equal(res.status, status);
    t.match(res.body, { status, path: "/send/message", timestamp: /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/ });
    t.type(res.body.message, "string");
  });
}

t.test("display names are cleaned, not trusted: control characters dropped, length capped", async (t) => {
  const res = await request(`${server.http}/send/message`, {
    headers: { ...seedHeaders(62), "x-forward-nickname": "%00e%07vil%0A" },
    body: { presenterIdx: ROOM, userType: "viewer", textMessage: "named" },
  });
  t.equal(res.status, 200);
  const frame = await presenter.next((f) => f.text === "named", "relayed");
  t.equal(frame.nickname, "evil");
  const long = `Bearer ${await mintToken({ user_idx: 63, nickname: "n".repeat(300) })}`;
  const r2 = await request(`${server.http}/v1/rooms/${ROOM}/messages`, {
    headers: { authorization: long },
    body: { text: "long name" },
  });
  t.equal(r2.status, 201);
  const f2 = await presenter.next((f) => f.text === "long name", "relayed");
  t.equal((f2.nickname as string).length, 64);
});

t.test("nothing of the above reached the log or the presenter; the server still serves", async (t) => {
  const history = await server.relay.history(ROOM, undefined, 100);
  t.same(
    history.map((m) => m.text),
    ["long name", "named", "😀".repeat(20)],
    "only the valid messages are logged",
  );
  const ok = await request(`${server.http}/v1/rooms/${ROOM}/messages`, {
    headers: { authorization: viewer },
    body: { text: "fine" },
  });
  t.equal(ok.status, 201);
  await presenter.next((f) => f.text === "fine", "the valid message is relayed");
  t.same(
    presenter
      .json()
      .filter((f) => f.type === "message")
      .map((f) => f.seq),
    [1, 2, 3, 4],
    "no gap in seq: refused input consumed none",
  );
});

t.test("seed socket: a frame over the limit closes with 1009, the server keeps serving", async (t) => {
  const s = new TestSocket(`${server.ws}/chatting`);
  await s.open();
  s.send("x".repeat(server.config.limits.wsMaxFrameBytes + 10));
  t.equal((await s.waitClose()).code, 1009);
  const again = new TestSocket(`${server.ws}/chatting`);
  await again.open();
  const attached = waitAttached(server.relay, 302);
  again.send({ id: "start", token: await mintToken({ user_idx: 302 }) });
  await attached;
  again.close(1000);
});
