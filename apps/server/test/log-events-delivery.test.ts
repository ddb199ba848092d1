import t from "tap";
import { type BusDecodeResult, decodeBusEvent, encodeBusEvent } from "../src/adapters/bus-codec.js";
import { uuidv7 } from "../src/core/ids.js";
import type { ChatMessage, EventDraft } from "../src/core/message.js";
import { request, seedHeaders } from "./helpers/http.js";
import { startTestServer, waitAttached } from "./helpers/server.js";
import { mintToken, type TokenClaims } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// Moderation events reach presenters in seq order with the chat (issue #9 item 4): v1 always,
// seed only after `"events": true`; replay on resume; history hides deleted text.
const server = await startTestServer();
t.teardown(() => server.shutdown());

type Frame = Record<string, unknown>;

let nextSender = 3000;
/** A chat from a fresh viewer (v1); answers its seq. */
async function chat(room: number, text: string): Promise<number> {
  const token = await mintToken({ user_idx: nextSender++ });
  const res = await request<Frame>(`${server.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${token}` },
    body: { text },
  });
  if (res.status !== 201) throw new Error(`post answered ${res.status}`);
  return res.body.seq as number;
}

/** A moderation event as the moderation service writes it: appended to the log, then published. */
async function moderate(room: number, kind: EventDraft["kind"], data: EventDraft["event"], actorId: number) {
  const event = await server.chatLog.appendEvent({ id: uuidv7(), roomId: room, actorId, kind, event: data });
  server.relay.publish(event);
  return event;
}

async function v1Presenter(room: number, query = ""): Promise<TestSocket> {
  const token = await mintToken({ user_idx: room });
  const socket = new TestSocket(`${server.ws}/v1/rooms/${room}/presenter?access_token=${token}${query}`);
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready");
  return socket;
}

async function seedPresenter(room: number, extra: Frame = {}): Promise<TestSocket> {
  const socket = new TestSocket(`${server.ws}/chatting`);
  await socket.open();
  const attached = waitAttached(server.relay, room);
  socket.send({ id: "start", token: await mintToken({ user_idx: room }), ...extra });
  await attached;
  return socket;
}

/** The seqs of a socket's chat and moderation frames, in arrival order. */
const delivered = (socket: TestSocket) =>
  socket
    .json()
    .filter((f) => f.type === "message" || f.type === "moderation" || f.id === "sendChatting" || f.id === "moderation")
    .map((f) => [f.type ?? f.id, f.seq]);

t.test(
  "v1: a delete reaches the presenter after the chat it deletes, in seq order, and replays on resume",
  async (t) => {
    const room = 301;
    const presenter = await v1Presenter(room);
    const bad = await chat(room, "something rude");
    await chat(room, "hello");
    const target = await presenter.next((f) => f.type === "message" && f.seq === bad, "the chat to delete");
    const event = await moderate(room, "delete", { targetSeq: bad, targetId: target.id as string }, 77);
    const after = await chat(room, "after the delete");
    await presenter.until(() => delivered(presenter).length === 4, "4 frames");
    t.same(delivered(presenter), [
      ["message", 1],
      ["message", 2],
      ["moderation", 3],
      ["message", after],
    ]);
    const frame = await presenter.next((f) => f.type === "moderation", "moderation frame");
    t.same(frame, {
      type: "moderation",
      id: event.id,
      roomId: room,
      seq: 3,
      action: "delete",
      by: 77,
      sentAt: event.sentAt.toISOString(),
      data: { targetSeq: bad, targetId: target.id },
    });
    presenter.close(4000);
    await presenter.waitClose();

    // Resume after the chat: the event is replayed from the log exactly like a message.
    const resumed = await v1Presenter(room, "&lastSeq=2");
    await resumed.until(() => delivered(resumed).length === 2, "replay");
    t.same(delivered(resumed), [
      ["moderation", 3],
      ["message", 4],
    ]);
    t.same(await resumed.next((f) => f.type === "moderation", "replayed event"), frame, "the same frame as live");
    resumed.close(1000);
    await resumed.waitClose();
  },
);

t.test("seed, opted in: moderation frames in order with sendChatting", async (t) => {
  const room = 302;
  const presenter = await seedPresenter(room, { events: true });
  const seq = await chat(room, "to be cleared");
  await presenter.next((f) => f.id === "sendChatting", "the chat");
  const event = await moderate(room, "clear", { upToSeq: seq }, room);
  await chat(room, "after the clear");
  await presenter.until(() => delivered(presenter).length === 3, "3 frames");
  t.same(delivered(presenter), [
    ["sendChatting", 1],
    ["moderation", 2],
    ["sendChatting", 3],
  ]);
  t.same(await presenter.next((f) => f.id === "moderation", "moderation frame"), {
    id: "moderation",
    eventId: event.id,
    roomId: room,
    seq: 2,
    action: "clear",
    by: room,
    sentAt: event.sentAt.toISOString(),
    data: { upToSeq: seq },
  });
  presenter.close(4000);
  await presenter.waitClose();
  const resumed = await seedPresenter(room, { events: true, lastSeq: 1 });
  await resumed.until(() => delivered(resumed).length === 2, "replay");
  t.same(delivered(resumed), [
    ["moderation", 2],
    ["sendChatting", 3],
  ]);
  resumed.close(1000);
  await resumed.waitClose();
});

t.test("seed without the opt-in: never a moderation frame, and the chat after an event keeps coming", async (t) => {
  const room = 303;
  const presenter = await seedPresenter(room);
  await chat(room, "first");
  await moderate(room, "ban", { userId: 5 }, room);
  // Appended but never published: the session learns of it from the log (gap fill) and moves past it.
  await server.chatLog.appendEvent({ id: uuidv7(), roomId: room, actorId: room, kind: "unban", event: { userId: 5 } });
  const last = await chat(room, "second");
  await presenter.until(() => delivered(presenter).length === 2, "both chats");
  t.same(delivered(presenter), [
    ["sendChatting", 1],
    ["sendChatting", last],
  ]);
  t.equal(last, 4, "two events sat between them");
  // A seed HTTP chat goes the same way.
  const res = await request(`${server.http}/send/message`, {
    headers: seedHeaders(3999, "seed viewer"),
    body: { presenterIdx: room, userType: "viewer", textMessage: "third" },
  });
  t.equal(res.status, 200);
  await presenter.until(() => delivered(presenter).length === 3, "third chat");
  presenter.send({ id: "ack", seq: 5 });
  presenter.close(4000);
  await presenter.waitClose();
  // A resume across the events replays the chat only.
  const resumed = await seedPresenter(room, { lastSeq: 1 });
  await resumed.until(() => delivered(resumed).length === 2, "replay");
  t.same(delivered(resumed), [
    ["sendChatting", 4],
    ["sendChatting", 5],
  ]);
  t.notOk(
    [...presenter.json(), ...resumed.json()].some((f) => f.id === "moderation"),
    "no moderation frame ever reached a client that did not ask",
  );
  resumed.close(1000);
  await resumed.waitClose();
});

t.test("seed start frame: a non-boolean events flag is refused like a bad ready flag", async (t) => {
  const socket = new TestSocket(`${server.ws}/chatting`);
  await socket.open();
  socket.send({ id: "start", token: await mintToken({ user_idx: 304 }), events: "yes" });
  const error = await socket.next((f) => f.id === "error", "error frame");
  t.equal(error.message, "events must be true or false");
  socket.close(1000);
});

t.test("history: deleted messages keep their entry without text; events with kinds=all", async (t) => {
  const room = 305;
  const presenter = await v1Presenter(room);
  await chat(room, "kept");
  const gone = await chat(room, "deleted text");
  await moderate(room, "delete", { targetSeq: gone }, 88);
  const page = async (query: string, claims: TokenClaims = { user_idx: 4000 }) =>
    request<{ items: Frame[]; nextBefore: number | null }>(`${server.http}/v1/rooms/${room}/messages${query}`, {
      headers: { authorization: `Bearer ${await mintToken(claims)}` },
    });

  const plain = await page("");
  t.equal(plain.status, 200);
  t.same(
    plain.body.items.map((i) => [i.seq, i.kind, i.text, i.deleted, i.deletedBy]),
    [
      [2, "message", "", true, 88],
      [1, "message", "kept", undefined, undefined],
    ],
    "the deleted message stays, marked, its text hidden; no event entries by default",
  );
  t.notOk(plain.text.includes("deleted text"), "the text is nowhere in the answer");

  const withEvents = await page("?kinds=all");
  t.same(
    withEvents.body.items.map((i) => [i.seq, i.kind, i.data]),
    [
      [3, "delete", { targetSeq: gone }],
      [2, "message", undefined],
      [1, "message", undefined],
    ],
  );
  t.equal(withEvents.body.items[0]?.senderId, 88, "an event entry's sender is its actor");
  t.equal(withEvents.body.items[0]?.text, "", "an event entry has no text");

  const viewer = await page("?includeDeleted=true");
  t.equal(viewer.status, 403, "a viewer may not read deleted text");
  t.equal((viewer.body as unknown as Frame).code, "forbidden");
  const owner = await page("?includeDeleted=true", { user_idx: room });
  t.equal(owner.status, 200);
  t.same(owner.body.items[0], { ...plain.body.items[0], text: "deleted text" }, "the presenter sees the text");
  const claimModerator = await page("?includeDeleted=true", { user_idx: 4001, mod_rooms: [room] } as TokenClaims);
  t.equal(claimModerator.status, 200, "so does a moderator by token claim");
  t.equal(claimModerator.body.items[0]?.text, "deleted text");
  const otherRoomModerator = await page("?includeDeleted=true", {
    user_idx: 4002,
    mod_rooms: [room + 1],
  } as TokenClaims);
  t.equal(otherRoomModerator.status, 403, "a moderator of another room may not");
  t.equal((await page("?kinds=some")).status, 400, "kinds is message or all");
  t.equal((await page("?includeDeleted=yes")).status, 400);
  presenter.close(1000);
  await presenter.waitClose();
});

t.test("bus codec: events cross the Redis bus as they are; forged ones are dropped", async (t) => {
  const limits = { maxTextLength: 500 };
  const event: ChatMessage = {
    id: uuidv7(),
    roomId: 9,
    seq: 4,
    senderId: 9,
    nickname: "",
    userType: "presenter",
    text: "",
    sentAt: new Date("2026-01-02T03:04:05.678Z"),
    kind: "timeout",
    event: { userId: 12, until: "2026-01-02T04:04:05.678Z" },
  };
  const back = decodeBusEvent(encodeBusEvent({ kind: "message", message: event }), 9, limits);
  t.same(back, { ok: true, event: { kind: "message", message: event } });
  const forged = (overrides: Partial<Record<keyof ChatMessage, unknown>>): BusDecodeResult =>
    decodeBusEvent(JSON.stringify({ kind: "message", message: { ...event, ...overrides } }), 9, limits);
  for (const [what, overrides] of [
    ["an unknown kind", { kind: "purge" }],
    ["text on an event", { text: "hidden" }],
    ["a name on an event", { nickname: "x" }],
    ["nested data", { event: { userId: { a: 1 } } }],
    ["no data", { event: undefined }],
    ["a delete without its target", { kind: "delete", event: {} }],
  ] as const) {
    t.same(forged(overrides), { ok: false, reason: "field" }, what);
  }
  const proto = decodeBusEvent(
    `{"kind":"message","message":${JSON.stringify(event).replace('"event":{', '"event":{"__proto__":{"x":1},')}}`,
    9,
    limits,
  );
  t.same(proto, { ok: false, reason: "field" }, "a __proto__ key in the data");
});
