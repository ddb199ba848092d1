import t from "tap";
import { request, seedHeaders } from "./helpers/http.js";
import { startTestServer, waitAttached } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// The original chatting server's contract, frame by frame and status by status.
const server = await startTestServer();
t.teardown(() => server.shutdown());

const SEED_TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

async function seedPresenter(userIdx: number, extra: Record<string, unknown> = {}): Promise<TestSocket> {
  const socket = new TestSocket(`${server.ws}/chatting`);
  await socket.open();
  const token = await mintToken({ user_idx: userIdx, nickname: `p${userIdx}` });
  // The seed sends nothing on a successful start: wait for the relay's own event.
  const attached = waitLive(userIdx);
  socket.send({ id: "start", token, ...extra });
  await attached;
  return socket;
}

function waitLive(room: number): Promise<void> {
  return waitAttached(server.relay, room);
}

t.test("presenter socket: start, ping/pong, relay as sendChatting", async (t) => {
  const presenter = await seedPresenter(101);
  presenter.send("ping");
  t.equal(await presenter.frame(1), "pong", "text ping answers text pong");

  const res = await request(`${server.http}/send/message`, {
    headers: seedHeaders(7, "시청자 1"),
    body: { presenterIdx: 101, userType: "viewer", textMessage: "안녕하세요" },
  });
  t.equal(res.status, 200, "send answers 200");
  t.equal(res.text, "", "with an empty body");

  const frame = await presenter.next((f) => f.id === "sendChatting", "sendChatting");
  t.equal(frame.nickname, "시청자 1", "nickname is URL-decoded UTF-8");
  t.equal(frame.message, "안녕하세요");
  t.match(frame.time, /^\d{2}:\d{2}$/, "time is HH:mm");
  t.equal(frame.seq, 1, "extension: seq");
  t.equal(frame.senderId, 7, "extension: sender id");
  t.type(frame.messageId, "string", "extension: message id");
  presenter.close(1000);
  await presenter.waitClose();
});

t.test("presenter chats in their own room with presenterIdx null", async (t) => {
  const presenter = await seedPresenter(102);
  const res = await request(`${server.http}/send/message`, {
    headers: seedHeaders(102, "host"),
    body: { presenterIdx: null, userType: "presenter", textMessage: "welcome" },
  });
  t.equal(res.status, 200);
  const frame = await presenter.next((f) => f.id === "sendChatting", "presenter's own chat");
  t.equal(frame.message, "welcome");
  t.equal(frame.userType, "presenter");
  presenter.close(1000);
});

t.test("not broadcasting: 400 in the seed error shape, nothing logged", async (t) => {
  const res = await request<Record<string, unknown>>(`${server.http}/send/message`, {
    headers: seedHeaders(7),
    body: { presenterIdx: 999, userType: "viewer", textMessage: "anyone?" },
  });
  t.equal(res.status, 400);
  t.match(res.body, { status: 400, path: "/send/message" });
  t.match(res.body.message, /not broadcasting/);
  t.match(res.body.timestamp, SEED_TIMESTAMP, "timestamp is yyyy-MM-dd HH:mm:ss");
  t.equal(await server.relay.history(999, undefined, 10).then((m) => m.length), 0, "not logged");
});

t.test("missing headers and a viewer without presenterIdx get 400", async (t) => {
  const presenter = await seedPresenter(103);
  const noHeader = await request<Record<string, unknown>>(`${server.http}/send/message`, {
    headers: { "x-forward-email": "a@b", "x-forward-nickname": "x" },
    body: { presenterIdx: 103, userType: "viewer", textMessage: "hi" },
  });
  t.equal(noHeader.status, 400);
  t.match(noHeader.body.message, /x-forward-userIdx/);

  const noNick = await request<Record<string, unknown>>(`${server.http}/send/message`, {
    headers: { "x-forward-userIdx": "7", "x-forward-email": "a@b" },
    body: { presenterIdx: 103, userType: "viewer", textMessage: "hi" },
  });
  t.equal(noNick.status, 400);

  const badNick = await request<Record<string, unknown>>(`${server.http}/send/message`, {
    headers: { ...seedHeaders(7), "x-forward-nickname": "%E0%A4%A" },
    body: { presenterIdx: 103, userType: "viewer", textMessage: "hi" },
  });
  t.equal(badNick.status, 400);
  t.match(badNick.body.message, /URL-encoded/);

  const viewerNoRoom = await request<Record<string, unknown>>(`${server.http}/send/message`, {
    headers: seedHeaders(7),
    body: { presenterIdx: null, userType: "viewer", textMessage: "hi" },
  });
  t.equal(viewerNoRoom.status, 400);
  t.match(viewerNoRoom.body, { status: 400, path: "/send/message" });
  t.equal((await server.relay.history(103, undefined, 10)).length, 0, "none of them was logged");
  presenter.close(1000);
});

t.test("bad token on start: tokenException frame, then close", async (t) => {
  const socket = new TestSocket(`${server.ws}/chatting`);
  await socket.open();
  socket.send({ id: "start", token: "not-a-jwt" });
  const frame = await socket.next((f) => f.id === "tokenException", "tokenException");
  t.equal(frame.response, "reject");
  t.type(frame.message, "string");
  const closed = await socket.waitClose();
  t.equal(closed.code, 4003, "closed with the documented unauthorized code");

  const expired = new TestSocket(`${server.ws}/chatting`);
  await expired.open();
  expired.send({ id: "start", token: await mintToken({ user_idx: 5, expiresIn: -60 }) });
  const e = await expired.next((f) => f.id === "tokenException", "tokenException for expired token");
  t.match(e.message, /expired/);
  await expired.waitClose();
});

t.test("start without token: error frame, then close", async (t) => {
  const socket = new TestSocket(`${server.ws}/chatting`);
  await socket.open();
  socket.send({ id: "start" });
  const frame = await socket.next((f) => f.id === "error", "error frame");
  t.match(frame.message, /token/);
  t.equal((await socket.waitClose()).code, 4003);
});

t.test("unknown id, non-JSON and binary frames: error frame, socket stays open", async (t) => {
  const presenter = await seedPresenter(104);
  presenter.send({ id: "dance" });
  const unknown = await presenter.next((f) => f.id === "error", "error for unknown id");
  t.equal(unknown.message, "Invalid message: unknown id", "in our words: the client's id is never echoed");
  presenter.send("{not json");
  await presenter.until(() => presenter.json().filter((f) => f.id === "error").length === 2, "error for non-JSON");
  presenter.send(Buffer.from([1, 2, 3]));
  await presenter.until(() => presenter.json().filter((f) => f.id === "error").length === 3, "error for binary");
  presenter.send("ping");
  await presenter.until(() => presenter.frames.includes("pong"), "still answers ping");
  t.equal(presenter.closed, undefined, "socket still open");
  // And still relays.
  const res = await request(`${server.http}/send/message`, {
    headers: seedHeaders(8),
    body: { presenterIdx: 104, userType: "viewer", textMessage: "still here" },
  });
  t.equal(res.status, 200);
  await presenter.next((f) => f.id === "sendChatting" && f.message === "still here", "relay after errors");
  presenter.close(1000);
});

t.test("frames over the size limit close the socket with 1009", async (t) => {
  const presenter = await seedPresenter(105);
  presenter.send("x".repeat(server.config.limits.wsMaxFrameBytes + 1));
  const closed = await presenter.waitClose();
  t.equal(closed.code, 1009);
});

t.test("a new presenter connection replaces the old one, which is told why, with chat in flight", async (t) => {
  const room = 106;
  const seqs = (s: TestSocket) =>
    s
      .json<{ id: string; seq: number }>()
      .filter((f) => f.id === "sendChatting")
      .map((f) => f.seq);
  const first = await seedPresenter(room);
  // Two senders keep posting through the takeover.
  let posting = true;
  const statuses: number[] = [];
  const senders = [9, 10].map(async (sender) => {
    for (let i = 0; posting; i++) {
      const res = await request(`${server.http}/send/message`, {
        headers: seedHeaders(sender),
        body: { presenterIdx: room, userType: "viewer", textMessage: `${sender}-${i}` },
      });
      statuses.push(res.status);
    }
  });
  t.teardown(async () => {
    posting = false;
    await Promise.all(senders);
  });
  await first.until(() => seqs(first).length >= 10, "chat flowing to the first socket");
  const second = new TestSocket(`${server.ws}/chatting`);
  await second.open();
  const token = await mintToken({ user_idx: room });
  const attached = waitLive(room);
  second.send({ id: "start", token });
  const closed = await first.waitClose();
  t.equal(closed.code, 4001, "old socket closed with the replaced code");
  t.match(closed.reason, /replaced/);
  await attached;
  await second.until(() => seqs(second).length >= 10, "chat flowing to the new socket");
  posting = false;
  await Promise.all(senders);
  t.ok(
    statuses.every((s) => s === 200),
    "every post answered 200",
  );
  const old = seqs(first);
  const fresh = seqs(second);
  // The new socket starts live at the log's tail when it attached: the old one must have stopped before.
  t.ok(
    Math.max(...old) < Math.min(...fresh),
    `the old one got nothing the new one got (${Math.max(...old)} < ${Math.min(...fresh)})`,
  );
  t.same(
    fresh,
    Array.from({ length: fresh.length }, (_, i) => (fresh[0] as number) + i),
    "the new socket's chat is in order, without a gap",
  );
  const res = await request(`${server.http}/send/message`, {
    headers: seedHeaders(9),
    body: { presenterIdx: room, userType: "viewer", textMessage: "to the new one" },
  });
  t.equal(res.status, 200);
  await second.next((f) => f.id === "sendChatting" && f.message === "to the new one", "the new socket gets the chat");
  t.same(seqs(first), old, "the old one got nothing more");
  second.close(1000);
});
