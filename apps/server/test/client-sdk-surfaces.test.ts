import {
  type ChatMessageView,
  ChatSender,
  type ModerationEventView,
  PresenterClient,
  tokenExpiry,
} from "@chatrelay/client";
import t from "tap";
import { WebSocket } from "ws";
import { request } from "./helpers/http.js";
import { startTestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { within } from "./helpers/wait.js";

// @chatrelay/client against one real node: the seed surface (the original /chatting socket, with
// moderation events opted in), cumulative acks, and a v1 token refreshed before it expires.
const server = await startTestServer({ JWT_CLOCK_TOLERANCE_S: "0", RESUME_DEFAULT: "acked" });
// One post per sender per 2 s: the second one within that gets 429 with Retry-After.
const limited = await startTestServer({ RATE_LIMIT_SENDER: "1/2s" });
t.teardown(async () => {
  await server.shutdown();
  await limited.shutdown();
});
const viewer = await mintToken({ user_idx: 8 });

function post(room: number, text: string) {
  return request<{ seq: number }>(`${server.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${viewer}` },
    body: { text },
  });
}

/** Resolves when `check` holds after one of the client's events. */
function until(client: PresenterClient, check: () => boolean, what: string): Promise<void> {
  if (check()) return Promise.resolve();
  return within(
    new Promise<void>((resolve) => {
      const offs = (["message", "moderation", "ready", "state", "close"] as const).map((e) =>
        client.on(e, () => {
          if (!check()) return;
          for (const off of offs) off();
          resolve();
        }),
      );
    }),
    15_000,
    what,
  );
}

t.test("seed surface: messages and moderation events in seq order, acked, resumed after a reconnect", async (t) => {
  const room = 4501;
  const presenterToken = await mintToken({ user_idx: room });
  const client = new PresenterClient({
    url: server.http,
    roomId: room,
    token: presenterToken,
    surface: "seed",
    WebSocket,
    ackDelayMs: 10,
    backoff: { initialMs: 20, maxMs: 100 },
  });
  const seen: (ChatMessageView | ModerationEventView)[] = [];
  client.on("message", (m) => seen.push(m));
  client.on("moderation", (e) => seen.push(e));
  let readies = 0;
  client.on("ready", () => readies++);
  client.connect();
  await until(client, () => readies === 1, "ready on the seed socket");

  t.equal((await post(room, "first")).status, 201);
  const deleted = await request(`${server.http}/v1/rooms/${room}/messages/1`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${presenterToken}` },
  });
  t.equal(deleted.status, 200, "the presenter deletes the first message");
  t.equal((await post(room, "second")).status, 201);
  await until(client, () => seen.length === 3, "three entries");
  t.same(
    seen.map((e) => [e.seq, "text" in e ? e.text : e.action]),
    [
      [1, "first"],
      [2, "delete"],
      [3, "second"],
    ],
  );
  t.equal((seen[0] as ChatMessageView).senderId, 8, "the seed frame's fields, as the v1 view");

  // Closing flushes the cumulative ack: a connection without lastSeq resumes after it (RESUME_DEFAULT=acked).
  client.close();
  t.equal(client.state, "closed");
  t.equal(client.lastSeq, 3);
  const next = new PresenterClient({ url: server.http, roomId: room, token: presenterToken, WebSocket });
  const resumed = new Promise<number | null>((resolve) => next.on("ready", (info) => resolve(info.resumeFrom)));
  next.connect();
  t.equal(await within(resumed, 15_000, "the next ready"), 3, "the server resumed after the acked seq");
  next.stop();
});

t.test("v1: the token is refreshed before it expires, and the socket outlives the first token", async (t) => {
  const room = 4502;
  let minted = 0;
  const client = new PresenterClient({
    url: server.http,
    roomId: room,
    // Each token lives 3 s; the client refreshes 2 s before expiry, so after about 1 s.
    token: () => {
      minted++;
      return mintToken({ user_idx: room, expiresIn: 3 });
    },
    WebSocket,
    refreshBeforeExpiryMs: 2000,
  });
  let readies = 0;
  client.on("ready", () => readies++);
  const errors: string[] = [];
  client.on("error", (err) => errors.push(err.message));
  const got: string[] = [];
  client.on("message", (m) => got.push(m.text));
  client.connect();
  await until(client, () => readies === 1, "ready");
  const firstToken = await mintToken({ user_idx: room, expiresIn: 3 });
  const firstExpiry = tokenExpiry(firstToken) as number;

  // Past the first token's expiry (the server would have closed the socket with 4003 then).
  await new Promise<void>((resolve) => {
    const check = () => (Date.now() > firstExpiry + 1500 ? resolve() : setTimeout(check, 200));
    check();
  });
  t.equal((await post(room, "after the first token expired")).status, 201);
  await until(client, () => got.includes("after the first token expired"), "the post after expiry");
  t.equal(readies, 1, "still the first connection: no reconnect");
  t.equal(client.reconnects, 0);
  t.ok(minted >= 2, `the token source was asked again (${minted} tokens)`);
  t.same(errors, [], "no error");
  client.close();
});

t.test(
  "a sender waits out a 429's Retry-After and retries with the same id; past its patience it reports it",
  async (t) => {
    const room = 4503;
    const presenter = new PresenterClient({
      url: limited.http,
      roomId: room,
      token: await mintToken({ user_idx: room }),
      WebSocket,
    });
    const ready = new Promise<void>((resolve) => presenter.on("ready", () => resolve()));
    presenter.connect();
    await within(ready, 15_000, "ready");
    const token = await mintToken({ user_idx: 4600 });

    const patient = new ChatSender({ url: limited.http, token });
    t.ok((await patient.send(room, "first")).ok);
    const started = Date.now();
    const second = await patient.send(room, "second");
    t.ok(second.ok, "accepted after the wait");
    t.equal(second.attempts, 2, "on its second attempt");
    t.ok(Date.now() - started >= 900, `after the server's Retry-After (${Date.now() - started} ms)`);

    const impatient = new ChatSender({ url: limited.http, token, maxRetryAfterMs: 100 });
    const refused = await impatient.send(room, "third");
    t.equal(refused.ok, false);
    if (!refused.ok) {
      t.equal(refused.status, 429);
      t.equal(refused.code, "rate_limited");
      t.ok((refused.retryAfterMs ?? 0) >= 1000, "the outcome says how long to wait");
      t.equal(refused.attempts, 1, "no retry it would not wait for");
    }
    const other = new ChatSender({ url: limited.http, token: await mintToken({ user_idx: 4601 }) });
    const notLive = await other.send(room + 1, "nobody listens");
    t.same(
      notLive.ok ? "ok" : [notLive.code, notLive.attempts],
      ["room_not_live", 1],
      "a final refusal is not retried",
    );
    presenter.close();
  },
);
