import t from "tap";
import { request, seedHeaders } from "./helpers/http.js";
import { startTestServer, waitAttached } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// Resume on the seed socket (optional lastSeq on start) and the acked-resume policy, on one node.
t.test("seed socket: start with lastSeq replays what was missed, then continues live", async (t) => {
  const server = await startTestServer({ GRACE_WINDOW_MS: "30000" });
  t.teardown(() => server.shutdown());
  const room = 951;
  const token = await mintToken({ user_idx: room });
  const send = (text: string) =>
    request(`${server.http}/send/message`, {
      headers: seedHeaders(20),
      body: { presenterIdx: room, userType: "viewer", textMessage: text },
    });

  const first = new TestSocket(`${server.ws}/chatting`);
  await first.open();
  let attached = waitAttached(server.relay, room);
  first.send({ id: "start", token });
  await attached;
  for (const text of ["a", "b", "c"]) t.equal((await send(text)).status, 200);
  await first.until(() => first.json().filter((f) => f.id === "sendChatting").length === 3, "3 chats");
  first.terminate(); // an abnormal drop: the room stays live for the grace window
  await first.waitClose();
  t.equal((await send("d")).status, 200, "a viewer's chat during the grace window is accepted");
  const presenterChat = await request<Record<string, unknown>>(`${server.http}/send/message`, {
    headers: seedHeaders(room, "host"),
    body: { presenterIdx: null, userType: "presenter", textMessage: "am I on?" },
  });
  t.equal(presenterChat.status, 202, "the presenter is told to reconnect (seed 202), and the chat is kept");
  t.match(presenterChat.body, { status: 202, message: "reconnect your session" });

  const second = new TestSocket(`${server.ws}/chatting`);
  await second.open();
  attached = waitAttached(server.relay, room);
  second.send({ id: "start", token, lastSeq: 2 });
  await attached;
  t.equal((await send("e")).status, 200);
  await second.until(() => second.json().filter((f) => f.id === "sendChatting").length === 4, "replay + live");
  t.same(
    second
      .json()
      .filter((f) => f.id === "sendChatting")
      .map((f) => [f.seq, f.message]),
    [
      [3, "c"],
      [4, "d"],
      [5, "am I on?"],
      [6, "e"],
    ],
    "replayed from seq 3 in order, then live, no duplicate at the seam",
  );
  second.close(1000);
});

t.test("seed socket: a reconnect without lastSeq gets live messages only (seed behaviour)", async (t) => {
  const server = await startTestServer({ GRACE_WINDOW_MS: "30000" });
  t.teardown(() => server.shutdown());
  const room = 952;
  const token = await mintToken({ user_idx: room });
  const first = new TestSocket(`${server.ws}/chatting`);
  await first.open();
  let attached = waitAttached(server.relay, room);
  first.send({ id: "start", token });
  await attached;
  first.terminate();
  await first.waitClose();
  const body = { presenterIdx: room, userType: "viewer", textMessage: "missed" };
  t.equal((await request(`${server.http}/send/message`, { headers: seedHeaders(21), body })).status, 200);
  const second = new TestSocket(`${server.ws}/chatting`);
  await second.open();
  attached = waitAttached(server.relay, room);
  second.send({ id: "start", token });
  await attached;
  const live = { ...body, textMessage: "live" };
  t.equal((await request(`${server.http}/send/message`, { headers: seedHeaders(21), body: live })).status, 200);
  const frame = await second.next((f) => f.id === "sendChatting", "live chat");
  t.equal(frame.message, "live", "the first frame is the live one, nothing replayed");
  second.close(1000);
});

t.test("RESUME_DEFAULT=acked: a reconnect without lastSeq resumes after the last acknowledged seq", async (t) => {
  const server = await startTestServer({ GRACE_WINDOW_MS: "30000", RESUME_DEFAULT: "acked" });
  t.teardown(() => server.shutdown());
  const room = 953;
  const token = await mintToken({ user_idx: room });
  const viewer = `Bearer ${await mintToken({ user_idx: 22 })}`;
  const url = `${server.ws}/v1/rooms/${room}/presenter?access_token=${token}`;
  const post = (text: string) =>
    request(`${server.http}/v1/rooms/${room}/messages`, { headers: { authorization: viewer }, body: { text } });
  const first = new TestSocket(url);
  await first.open();
  await first.next((f) => f.type === "ready", "ready");
  for (const text of ["1", "2", "3", "4"]) t.equal((await post(text)).status, 201);
  await first.until(() => first.json().filter((f) => f.type === "message").length === 4, "4 messages");
  first.send({ type: "ack", seq: 2 }); // the client handled 1-2 only
  first.send({ type: "ping" });
  await first.next((f) => f.type === "pong", "ack processed before the drop");
  first.terminate();
  await first.waitClose();
  const second = new TestSocket(url);
  await second.open();
  const ready = await second.next((f) => f.type === "ready", "ready");
  t.equal(ready.resumeFrom, 2, "resumes from the last ack");
  await second.until(() => second.json().filter((f) => f.type === "message").length === 2, "replay");
  t.same(
    second
      .json()
      .filter((f) => f.type === "message")
      .map((f) => f.seq),
    [3, 4],
  );
  second.close(1000);
});
