import t, { type Test } from "tap";
import { post } from "./helpers/cluster.js";
import { tcpOf } from "./helpers/hostile-flood.js";
import { NodeProcess } from "./helpers/processes.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// The seed presenter socket (/chatting) must send its start frame within HANDSHAKE_TIMEOUT_MS,
// else the node closes it with 4004 (docs/protocol.md): an unauthenticated socket may not hold a
// node's memory longer than that. Traffic that is not a whole start frame (a frame trickled byte by
// byte, a fragmented message never finished, pings) does not extend the deadline.

const HANDSHAKE_TIMEOUT_MS = 1000;
/** How late after its deadline the node may act, on a loaded 2-core machine (timers, event loop). */
const SLACK_MS = 5000;
/** A trickled start frame completes only this long after the socket opened: far past timeout + slack. */
const TRICKLE_SPAN_MS = 9000;

const node = await NodeProcess.start("handshake-timeout", { HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_TIMEOUT_MS) });
t.teardown(() => node.kill("SIGKILL"));
const viewer = await mintToken({ user_idx: 1201, nickname: "viewer" });

/** A client-to-server WebSocket frame, masked with a zero key (RFC 6455 wants the bit, not a random key). */
function clientFrame(opcode: number, payload: Buffer, fin: boolean): Buffer {
  const first = (fin ? 0x80 : 0) | opcode;
  const length =
    payload.length < 126
      ? Buffer.from([first, 0x80 | payload.length])
      : Buffer.from([first, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([length, Buffer.alloc(4), payload]);
}

interface Opened {
  socket: TestSocket;
  openedAt: number;
}

async function openSeed(): Promise<Opened> {
  const socket = new TestSocket(`${node.ws}/chatting`);
  await socket.open();
  return { socket, openedAt: Date.now() };
}

/** Waits for the close and checks it is the handshake timeout, neither early nor late. */
async function expectHandshakeTimeout(t: Test, what: string, { socket, openedAt }: Opened): Promise<void> {
  const closed = await socket.waitClose(HANDSHAKE_TIMEOUT_MS + SLACK_MS);
  const after = Date.now() - openedAt;
  t.equal(closed.code, 4004, `${what}: closed with 4004 (${after} ms after open)`);
  t.equal(closed.reason, "no start frame received in time", `${what}: the documented reason`);
  // The node's timer starts as it sends the 101; the client sees the open a round trip later at most.
  t.ok(after >= HANDSHAKE_TIMEOUT_MS - 200, `${what}: not before the timeout (${after} ms)`);
}

t.test("a seed socket that never sends its start frame is closed with 4004 after the timeout", async (t) => {
  await expectHandshakeTimeout(t, "silent socket", await openSeed());
  t.same(await serving(1202), true, "the node still serves presenters");
});

t.test("a start frame sent in time keeps the socket past the timeout", async (t) => {
  const room = 1203;
  const started = await openSeed();
  started.socket.send({ id: "start", token: await mintToken({ user_idx: room }), ready: true });
  await started.socket.next((f) => f.id === "ready", "ready");
  // A silent socket opened after it: once the node closed that one for its timeout, the started
  // socket's own deadline (armed earlier) has passed too. A node that fired the timer regardless
  // of the start frame would have closed the started socket first.
  const later = await openSeed();
  await expectHandshakeTimeout(t, "silent socket opened after the started one", later);
  t.equal(started.socket.closed, undefined, "the started socket is still open");
  t.equal((await post(node.http, room, viewer, "after the deadline")).status, 201);
  await started.socket.next((f) => f.id === "sendChatting" && f.message === "after the deadline", "the chat");
  started.socket.close(1000);
});

t.test("slow loris: partial frames and traffic that is not a start frame do not extend the timeout", async (t) => {
  const room = 1204;
  const startFrame = Buffer.from(JSON.stringify({ id: "start", token: await mintToken({ user_idx: room }) }));

  // 1. The start frame, one byte at a time, completing only after TRICKLE_SPAN_MS: a node that
  //    re-armed its timer on every byte received (or waited for the frame) would attach it.
  const trickled = await openSeed();
  const wire = clientFrame(0x1, startFrame, true);
  const trickle = drip(
    trickled,
    [...wire].map((byte) => Buffer.from([byte])),
    Math.ceil(TRICKLE_SPAN_MS / wire.length),
  );

  // 2. A fragmented text message (FIN clear) continued every 100 ms and never finished.
  const fragmented = await openSeed();
  const head = startFrame.subarray(0, 20);
  const tail = startFrame.subarray(20);
  tcpOf(fragmented.socket.ws).write(clientFrame(0x1, head, false));
  const fragments = drip(
    fragmented,
    [...tail].map((byte) => clientFrame(0x0, Buffer.from([byte]), false)),
    100,
  );

  // 3. Whole frames that are not a start frame: the seed's text ping (answered "pong") and
  //    WebSocket ping control frames, every 100 ms.
  const chatty = await openSeed();
  const pings = setInterval(() => {
    if (chatty.socket.closed !== undefined) return;
    chatty.socket.send("ping");
    chatty.socket.ws.ping();
  }, 100);

  try {
    await Promise.all([
      expectHandshakeTimeout(t, "start frame trickled byte by byte", trickled),
      expectHandshakeTimeout(t, "fragmented message never finished", fragmented),
      expectHandshakeTimeout(t, "text pings and ping frames", chatty),
    ]);
  } finally {
    clearInterval(trickle);
    clearInterval(fragments);
    clearInterval(pings);
  }
  t.ok(
    chatty.socket.frames.includes("pong"),
    "the node read the chatty socket's pings (answered pong) and still closed it",
  );
  t.notOk(
    node.lines.some((l) => l.msg === "presenter attached" && l.roomId === room),
    "the trickled start frame never attached a presenter",
  );
  t.same(await serving(1205), true, "the node still serves presenters");
});

/** Writes the chunks to the socket's TCP connection, one every `everyMs`, until it closes. */
function drip({ socket }: Opened, chunks: Buffer[], everyMs: number): NodeJS.Timeout {
  const tcp = tcpOf(socket.ws);
  let next = 0;
  return setInterval(() => {
    if (socket.closed !== undefined || tcp.destroyed || next >= chunks.length) return;
    tcp.write(chunks[next++] as Buffer);
  }, everyMs);
}

/** A fresh seed presenter attaches and receives a chat: the node is healthy. */
async function serving(room: number): Promise<boolean> {
  const { socket } = await openSeed();
  socket.send({ id: "start", token: await mintToken({ user_idx: room }), ready: true });
  await socket.next((f) => f.id === "ready", "ready");
  const res = await post(node.http, room, viewer, "still serving");
  await socket.next((f) => f.id === "sendChatting", "the chat");
  socket.close(1000);
  return res.status === 201;
}
