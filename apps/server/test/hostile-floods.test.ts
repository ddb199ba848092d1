import t from "tap";
import WebSocket from "ws";
import { CountingSocket, drained, maskedTextFrames, RawConnection, tcpOf } from "./helpers/hostile-flood.js";
import { containsMarker, MARKER } from "./helpers/hostile-json.js";
import { HostileNode } from "./helpers/hostile-node.js";
import { assertServing } from "./helpers/hostile-property.js";
import { validToken } from "./helpers/hostile-requests.js";
import { pingFrame } from "./helpers/hostile-ws.js";

// Floods, measured rather than timed: what a hostile client can make the node
// hold (memory, sockets, connections) stays bounded, and a normal presenter on
// the same node keeps getting its chats throughout.

const BAD_FRAME_LIMIT = 10;
const SEND_BUFFER_BYTES = 65_536;
/** Growth of the node's resident memory a non-reading client may cause, at most. */
const RSS_BOUND = 64 * 1024 * 1024;
/**
 * Pings per flood. Their replies, never read, are ~40 MB of frames on the
 * wire and several hundred MB of queued writes in a server that does not
 * bound them: far past RSS_BOUND, so the bound means something.
 */
const FLOOD_PINGS = 2_000_000;
const PINGS_PER_WRITE = 4096;
const PING_INTERVAL_MS = 300;
const HANDSHAKE_TIMEOUT_MS = 500;
const HTTP_TIMEOUT_MS = 1000;
/** How long after its timeout the server may take to act on it (its timers' granularity, a busy machine). */
const TIMEOUT_SLACK_MS = 4000;

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

t.test("a non-reading presenter that floods pings: cut at the send buffer limit, memory bounded", async (t) => {
  const node = await HostileNode.start("hostile-floods-buffer", {
    SEND_BUFFER_BYTES: String(SEND_BUFFER_BYTES),
    WS_BAD_FRAME_LIMIT: String(BAD_FRAME_LIMIT),
  });
  t.teardown(() => node.stop());
  for (const surface of ["v1", "seed"] as const) {
    await t.test(`${surface} presenter socket`, async (t) => {
      const room = surface === "v1" ? 8100 : 8200;
      const token = validToken(room);
      const client = await CountingSocket.open(
        surface === "v1" ? `${node.ws}/v1/rooms/${room}/presenter?access_token=${token}` : `${node.ws}/chatting`,
      );
      if (surface === "seed") {
        client.ws.send(JSON.stringify({ id: "start", token }));
        client.ws.send("ping");
      }
      await client.first;
      const tcp = tcpOf(client.ws);
      const before = node.rssBytes();
      let peak = before;
      const sampler = setInterval(() => {
        if (node.node.exit === undefined) peak = Math.max(peak, node.rssBytes());
      }, 20);

      tcp.pause();
      // Exactly the bad-frame limit: answered with (unread) error frames, not a reason to close.
      const badFrame = surface === "v1" ? `{"type":"${MARKER}"}` : `{"id":"${MARKER}"}`;
      tcp.write(maskedTextFrames(badFrame, BAD_FRAME_LIMIT));
      const pings = maskedTextFrames(pingFrame(surface), PINGS_PER_WRITE);
      let sent = 0;
      while (sent < FLOOD_PINGS && !tcp.destroyed && client.closed === undefined) {
        sent += PINGS_PER_WRITE;
        if (!tcp.write(pings)) await drained(tcp, 30_000);
        // Let close, error and the memory sampler run between writes.
        await new Promise((r) => setImmediate(r));
      }
      const cutWhileFlooding = tcp.destroyed || client.closed !== undefined;
      tcp.resume();
      const closed = await client.waitClose(15_000);
      clearInterval(sampler);
      if (node.node.exit === undefined) peak = Math.max(peak, node.rssBytes());
      t.comment(
        `${surface}: ${sent} pings written (${mb(sent * Buffer.byteLength(pingFrame(surface)))} of payload), cut while flooding: ${cutWhileFlooding}, ` +
          `${client.received} frames read after resuming, close ${JSON.stringify(client.closed)}, RSS ${mb(before)} -> peak ${mb(peak)}`,
      );
      t.ok(closed, "the server closed the non-reading socket");
      t.ok(
        client.closed !== undefined && [4002, 1006].includes(client.closed.code),
        `closed as too slow (4002) or terminated (1006), not for bad frames: ${JSON.stringify(client.closed)}`,
      );
      t.ok(peak - before < RSS_BOUND, `node memory grew ${mb(peak - before)} (bound ${mb(RSS_BOUND)})`);
      client.ws.terminate();
      await assertServing(t, node, `the ${surface} ping flood`);
    });
  }
});

t.test("timeouts: liveness pings, handshakes, idle and slow HTTP connections", async (t) => {
  const node = await HostileNode.start("hostile-floods-timeouts", {
    WS_PING_INTERVAL_MS: String(PING_INTERVAL_MS),
    HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_TIMEOUT_MS),
    HTTP_REQUEST_TIMEOUT_MS: String(HTTP_TIMEOUT_MS),
    HTTP_HEADERS_TIMEOUT_MS: String(HTTP_TIMEOUT_MS),
    HTTP_KEEPALIVE_TIMEOUT_MS: String(HTTP_TIMEOUT_MS),
  });
  t.teardown(() => node.stop());

  await t.test("unsolicited pongs do not keep a non-reading presenter alive", async (t) => {
    // The control presenters read (and so answer the server's pings): they must outlive this.
    const bound = 10 * PING_INTERVAL_MS + TIMEOUT_SLACK_MS;
    for (const surface of ["v1", "seed"] as const) {
      const room = surface === "v1" ? 8300 : 8400;
      const token = validToken(room);
      const client = await CountingSocket.open(
        surface === "v1" ? `${node.ws}/v1/rooms/${room}/presenter?access_token=${token}` : `${node.ws}/chatting`,
      );
      if (surface === "seed") {
        client.ws.send(JSON.stringify({ id: "start", token }));
        client.ws.send("ping");
      }
      await client.first;
      tcpOf(client.ws).pause();
      const from = Date.now();
      // Once the server drops the socket, the next pong write fails and the client sees the close.
      const pongs = setInterval(() => {
        if (client.ws.readyState === WebSocket.OPEN) client.ws.pong(Buffer.from(MARKER));
      }, 20);
      const dropped = await client.waitClose(bound);
      clearInterval(pongs);
      t.ok(
        dropped,
        `${surface}: dropped ${dropped ? `after ${Date.now() - from} ms` : `not within ${bound} ms`} despite a pong every 20 ms`,
      );
      client.ws.terminate();
    }
    await assertServing(t, node, "unsolicited pongs");
  });

  await t.test("300 seed sockets that never send a start frame are closed with 4004", async (t) => {
    const sockets: CountingSocket[] = [];
    for (let batch = 0; batch < 6; batch++) {
      sockets.push(
        ...(await Promise.all(Array.from({ length: 50 }, () => CountingSocket.open(`${node.ws}/chatting`)))),
      );
    }
    t.same(await node.serving("opening 300 idle seed sockets"), [], "a chat is relayed while they hang");
    const bound = HANDSHAKE_TIMEOUT_MS + TIMEOUT_SLACK_MS;
    await Promise.all(sockets.map((s) => s.waitClose(bound)));
    const codes = new Map<string, number>();
    for (const s of sockets) {
      const key = s.closed ? String(s.closed.code) : "open";
      codes.set(key, (codes.get(key) ?? 0) + 1);
    }
    t.same(Object.fromEntries(codes), { 4004: 300 }, `all closed with 4004 within ${bound} ms`);
    for (const s of sockets) s.ws.terminate();
    await assertServing(t, node, "300 idle seed sockets");
  });

  await t.test("300 raw connections that send nothing or half a request line are closed by the server", async (t) => {
    const connections = await Promise.all(Array.from({ length: 300 }, () => RawConnection.open(node.port)));
    connections.forEach((c, i) => {
      if (i % 2 === 1) c.socket.write(`GET /${MARKER} HT`);
    });
    t.same(await node.serving("opening 300 idle connections"), [], "a chat is relayed while they hang");
    const bound = HTTP_TIMEOUT_MS + TIMEOUT_SLACK_MS;
    await Promise.all(connections.map((c) => c.waitClose(bound)));
    const open = connections.filter((c) => c.closedAt === undefined);
    t.equal(
      open.length,
      0,
      `every idle connection closed by the server within ${bound} ms (${open.length} still open)`,
    );
    t.same(answerProblems(connections), [], "whatever they were told is a 4xx with a JSON body and no echo");
    for (const c of connections) c.destroy();
    await assertServing(t, node, "300 idle connections");
  });

  await t.test("keep-alive connections left idle are closed after the keep-alive timeout", async (t) => {
    const connections = await Promise.all(Array.from({ length: 50 }, () => RawConnection.open(node.port)));
    for (const c of connections) c.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    const bound = HTTP_TIMEOUT_MS + TIMEOUT_SLACK_MS;
    await Promise.all(connections.map((c) => c.waitClose(bound)));
    const answered = connections.filter((c) => c.response()?.status === 200).length;
    t.equal(answered, 50, "each got its answer");
    const open = connections.filter((c) => c.closedAt === undefined).length;
    t.equal(open, 0, `all closed by the server within ${bound} ms (${open} still open)`);
    for (const c of connections) c.destroy();
  });

  await t.test("a request body that stalls is answered 408 or closed after the request timeout", async (t) => {
    const heads = {
      v1: `POST /v1/rooms/8500/messages HTTP/1.1\r\nHost: x\r\nauthorization: Bearer ${validToken(77)}\r\n`,
      seed: `POST /send/message HTTP/1.1\r\nHost: x\r\nx-gateway-secret: ${node.gatewaySecret}\r\nx-forward-userIdx: 77\r\nx-forward-email: a@b\r\nx-forward-nickname: n\r\n`,
    };
    const connections: RawConnection[] = [];
    for (const head of Object.values(heads)) {
      const c = await RawConnection.open(node.port);
      c.socket.write(`${head}content-type: application/json\r\nContent-Length: 200\r\n\r\n{"text":"${MARKER}`);
      connections.push(c);
    }
    // Headers that never end, one byte at a time: an idle timer alone would never fire.
    const trickle = await RawConnection.open(node.port);
    trickle.socket.write(`${heads.v1}x-slow: `);
    const drip = setInterval(() => {
      if (trickle.closedAt === undefined) trickle.socket.write("a");
    }, 100);
    connections.push(trickle);
    t.same(await node.serving("stalled requests"), [], "a chat is relayed while they stall");
    const bound = HTTP_TIMEOUT_MS + TIMEOUT_SLACK_MS;
    await Promise.all(connections.map((c) => c.waitClose(bound)));
    clearInterval(drip);
    const names = ["v1 body", "seed body", "trickled headers"];
    connections.forEach((c, i) => {
      t.ok(
        c.closedAt !== undefined,
        `${names[i]}: ${c.closedAt === undefined ? `still open after ${bound} ms` : `closed after ${c.closedAt - c.openedAt} ms`}`,
      );
    });
    t.same(answerProblems(connections), [], "whatever they were told is a 4xx with a JSON body and no echo");
    for (const c of connections) c.destroy();
    await assertServing(t, node, "stalled requests");
  });
});

/** Answers the server gave on raw connections that are not a JSON 4xx, or that echo. */
function answerProblems(connections: RawConnection[]): string[] {
  const problems: string[] = [];
  for (const c of connections) {
    const res = c.response();
    if (res === undefined) continue;
    const text = res.body.toString("utf8");
    if (containsMarker(res.wire)) problems.push(`echoes client input: ${text.slice(0, 200)}`);
    if (res.status < 400 || res.status >= 500) problems.push(`status ${res.status}: ${text.slice(0, 200)}`);
    try {
      JSON.parse(text);
    } catch {
      problems.push(`status ${res.status} without a JSON body: ${JSON.stringify(text.slice(0, 200))}`);
    }
  }
  return problems;
}
