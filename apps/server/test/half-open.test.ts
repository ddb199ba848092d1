import t, { type Test } from "tap";
import type WebSocket from "ws";
import { messages, post } from "./helpers/cluster.js";
import { REDIS_URL, testRedisClient, uniqueRedisPrefix } from "./helpers/databases.js";
import { tcpOf } from "./helpers/hostile-flood.js";
import { request } from "./helpers/http.js";
import { NodeProcess } from "./helpers/processes.js";
import { mintToken } from "./helpers/tokens.js";
import { pollUntil } from "./helpers/wait.js";
import { TestSocket } from "./helpers/ws-client.js";

// A presenter whose peer stops answering (a half-open TCP connection: the phone went into a
// tunnel, the NAT forgot the flow) would keep its room "live" forever: the node's WebSocket pings
// find it. A socket that misses one pong is dropped at the next ping round, its room goes into
// grace (posts still accepted for the resume), and the room is released when grace runs out.
// A socket that answers its pings is never dropped.

const PING_INTERVAL_MS = 300;
const GRACE_MS = 3000;
/** Detection takes two ping rounds at most; the rest is for a loaded 2-core machine. */
const DETECT_WITHIN_MS = 2 * PING_INTERVAL_MS + 8000;
const PREFIX = uniqueRedisPrefix();

const node = await NodeProcess.start("half-open", {
  REDIS_URL,
  REDIS_KEY_PREFIX: PREFIX,
  WS_PING_INTERVAL_MS: String(PING_INTERVAL_MS),
  GRACE_WINDOW_MS: String(GRACE_MS),
  // The "missed a ping" line is at debug level.
  LOG_LEVEL: "debug",
});
t.teardown(() => node.kill("SIGKILL"));
const redis = testRedisClient();
t.teardown(() => redis.disconnect());
const viewer = await mintToken({ user_idx: 1301, nickname: "viewer" });

const presence = (room: number) => redis.get(`${PREFIX}presence:{${room}}`);

/** Counts the ping control frames the node sends this client. */
function countPings(ws: WebSocket): { count: number } {
  const seen = { count: 0 };
  ws.on("ping", () => {
    seen.count++;
  });
  return seen;
}

/** Resolves once the client received `n` more ping frames (bounded). */
function morePings(ws: WebSocket, n: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = n;
    const onPing = () => {
      if (--left > 0) return;
      clearTimeout(timer);
      ws.off("ping", onPing);
      resolve();
    };
    const timer = setTimeout(() => {
      ws.off("ping", onPing);
      reject(new Error(`${left} of ${n} pings still missing after ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on("ping", onPing);
  });
}

async function v1Presenter(room: number, options: WebSocket.ClientOptions = {}): Promise<TestSocket> {
  const token = await mintToken({ user_idx: room, nickname: `host${room}` });
  const socket = new TestSocket(`${node.ws}/v1/rooms/${room}/presenter?access_token=${token}`, options);
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready");
  return socket;
}

async function seedPresenter(room: number): Promise<TestSocket> {
  const socket = new TestSocket(`${node.ws}/chatting`);
  await socket.open();
  socket.send({ id: "start", token: await mintToken({ user_idx: room }), ready: true });
  await socket.next((f) => f.id === "ready", "ready");
  return socket;
}

/** The node dropped the room's socket for a missed ping and put the room into grace, then releases it. */
async function expectDroppedIntoGrace(t: Test, room: number): Promise<void> {
  await node.waitFor(
    (l) => l.msg === "presenter missed a ping; dropping" && l.roomId === room,
    `room ${room}: missed ping`,
    DETECT_WITHIN_MS,
  );
  await node.waitFor(
    (l) => l.msg === "presenter detached" && l.roomId === room,
    `room ${room}: detached`,
    DETECT_WITHIN_MS,
  );
  const detached = node.lines.find((l) => l.msg === "presenter detached" && l.roomId === room);
  t.equal(detached?.presence, "grace", "detached into grace, not stopped: the presenter is expected back");
  // The line is logged after the release: the key already says grace (it lives GRACE_MS from then).
  t.match(await presence(room), /^grace\|/, "presence in Redis: grace");
  const during = await request(`${node.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${viewer}` },
    body: { text: "during grace" },
  });
  t.equal(during.status, 201, "a post during grace is accepted (kept for the resume)");
  t.equal(during.headers.get("x-presenter-state"), "reconnecting", "answered as a room whose presenter reconnects");
  await pollUntil(
    async () => ((await presence(room)) === null ? true : undefined),
    `room ${room}: presence released after grace`,
    GRACE_MS + 8000,
  );
  t.equal((await post(node.http, room, viewer, "after grace")).status, 409, "released: the room is not live");
}

t.test("a presenter that stops answering pings is dropped; one that answers stays", async (t) => {
  const healthyRoom = 1310;
  const silentRoom = 1311;
  const healthy = await v1Presenter(healthyRoom);
  const healthyPings = countPings(healthy.ws);
  // The healthy one stays idle: only its answers to the pings can keep it.
  // Reads every frame but never answers a ping: to the node, a peer that stopped answering.
  const silent = await v1Presenter(silentRoom, { autoPong: false });
  const silentPings = countPings(silent.ws);

  const closed = await silent.waitClose(DETECT_WITHIN_MS);
  t.ok(silentPings.count >= 1, `the node pinged it (${silentPings.count} pings) before dropping it`);
  t.equal(closed.code, 1006, "cut without a close handshake (a dead peer would not answer one)");
  await expectDroppedIntoGrace(t, silentRoom);

  // The healthy socket went through the same rounds and more: three further pings, each answered.
  await morePings(healthy.ws, 3, DETECT_WITHIN_MS);
  t.equal(healthy.closed, undefined, `the answering socket is open after ${healthyPings.count} pings`);
  t.equal((await post(node.http, healthyRoom, viewer, "still live")).status, 201, "its room is live");
  await healthy.until(() => messages(healthy).some((m) => m.text === "still live"), "the chat");
  t.notOk(
    node.lines.some((l) => l.msg === "presenter missed a ping; dropping" && l.roomId === healthyRoom),
    "the answering socket never missed a ping",
  );
  healthy.close(1000);
});

t.test("a seed presenter whose TCP peer stops reading is dropped into grace", async (t) => {
  const room = 1312;
  const socket = await seedPresenter(room);
  // Stops reading: the node's pings sit unread in the kernel, so no pong comes back.
  const tcp = tcpOf(socket.ws);
  tcp.pause();
  await expectDroppedIntoGrace(t, room);
  tcp.resume();
  const closed = await socket.waitClose(DETECT_WITHIN_MS);
  t.equal(closed.code, 1006, "cut without a close handshake");
});
