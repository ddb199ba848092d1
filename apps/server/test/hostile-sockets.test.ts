import fc from "fast-check";
import t, { type Test } from "tap";
import {
  describeFrame,
  type HostileFrame,
  handBuiltFrames,
  hostileFrame,
  type Surface,
} from "./helpers/hostile-frames.js";
import { containsMarker, invalidUtf8Bytes, MARKER } from "./helpers/hostile-json.js";
import { HostileNode, openSeedPresenter, openV1Presenter } from "./helpers/hostile-node.js";
import { assertServing, hostileSeed, runProperty } from "./helpers/hostile-property.js";
import { hostileToken, signRaw } from "./helpers/hostile-tokens.js";
import { echoes, errorFrameProblem, ProbeSockets, probeBadFrame, sendFrame } from "./helpers/hostile-ws.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// Hostile presenter sockets on both surfaces: every bad frame gets one error
// frame in our words and the socket stays open, until more than
// WS_BAD_FRAME_LIMIT bad frames within WS_BAD_FRAME_WINDOW_MS (close 1008);
// a frame over WS_MAX_FRAME_BYTES closes with 1009; no reply echoes the
// client; the node (its own OS process) never dies and keeps relaying.

const SEED = hostileSeed(0x5eed_0001);
const LIMIT = 10;
const WINDOW_MS = 2000;
// Large enough for 5,000-deep nesting (30 KB) to be a bad frame rather than an oversized one.
const MAX_FRAME_BYTES = 65_536;
const started = Date.now();

const node = await HostileNode.start("hostile-sockets", {
  WS_BAD_FRAME_LIMIT: String(LIMIT),
  WS_BAD_FRAME_WINDOW_MS: String(WINDOW_MS),
  WS_MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
});
t.teardown(() => node.stop());
t.comment(`fast-check seed ${SEED} (HOSTILE_SEED overrides); marker ${MARKER}`);

const pools: ProbeSockets[] = [];
let properties = 0;
const pool = (surface: Surface, phase: "started" | "unstarted", firstRoom: number) => {
  const p = new ProbeSockets(node, surface, phase, firstRoom, LIMIT);
  pools.push(p);
  return p;
};

/** Probes a property over generated bad frames, then checks the node still serves. */
async function propertyOn(
  t: Test,
  name: string,
  sockets: ProbeSockets,
  frames: fc.Arbitrary<HostileFrame>,
  runs: number,
) {
  // Each property draws its own sequence: the file seed plus its position in the file.
  properties += 1;
  await runProperty(
    t,
    name,
    SEED + properties,
    runs,
    fc.asyncProperty(frames, async (frame) => {
      const socket = await sockets.take();
      try {
        await probeBadFrame(socket, sockets.surface, frame);
      } catch (err) {
        if (await node.diedSoon()) node.assertRunning(describeFrame(frame));
        throw err;
      }
      node.assertRunning(describeFrame(frame));
    }),
  );
  sockets.close();
  await assertServing(t, node, name);
}

/** Probes each hand-built frame; collects every failure rather than stopping at the first. */
async function handBuiltOn(t: Test, sockets: ProbeSockets, frames: HostileFrame[]) {
  const failures: string[] = [];
  for (const frame of frames) {
    try {
      await probeBadFrame(await sockets.take(), sockets.surface, frame);
    } catch (err) {
      failures.push((err as Error).message.slice(0, 600));
      await node.diedSoon();
    }
    if (node.node.exit !== undefined) {
      failures.push(`node process exited after ${describeFrame(frame)}: ${node.node.stderr().slice(-3000)}`);
      break;
    }
  }
  sockets.close();
  t.same(failures, [], `${frames.length} hand-built bad frames each got one error frame; socket open; no echo`);
  await assertServing(t, node, `hand-built ${sockets.surface} frames`);
}

t.test("v1 presenter socket: generated bad frames", async (t) => {
  await propertyOn(t, "v1 generated frames", pool("v1", "started", 2000), hostileFrame("v1"), 250);
});

t.test("seed presenter socket after start: generated bad frames", async (t) => {
  await propertyOn(t, "seed generated frames", pool("seed", "started", 3000), hostileFrame("seed"), 250);
});

t.test("seed presenter socket before start: generated bad frames", async (t) => {
  // Generated frames never carry a valid id, so none of them is a start frame.
  await propertyOn(t, "unstarted seed generated frames", pool("seed", "unstarted", 0), hostileFrame("seed"), 150);
});

t.test("v1 presenter socket: hand-built bad frames (prototype keys, 5,000-deep nesting, odd numbers)", async (t) => {
  await handBuiltOn(t, pool("v1", "started", 4000), handBuiltFrames("v1"));
});

t.test("seed presenter socket: hand-built bad frames", async (t) => {
  await handBuiltOn(t, pool("seed", "started", 5000), handBuiltFrames("seed"));
});

t.test(
  "text frames that are not UTF-8 close that socket with 1007 (RFC 6455 8.1); the node keeps serving",
  async (t) => {
    const samples = fc.sample(invalidUtf8Bytes, { seed: SEED + 100, numRuns: 6 });
    let room = 6000;
    for (const surface of ["v1", "seed"] as const) {
      for (const data of samples) {
        room += 1;
        const socket = surface === "v1" ? await openV1Presenter(node, room) : await openSeedPresenter(node, room);
        sendFrame(socket, { what: "invalid UTF-8 text", data, binary: false });
        const closed = await socket.waitClose();
        t.equal(closed.code, 1007, `${surface}: closed as invalid payload`);
        t.notOk(containsMarker(closed.reason), "the close reason echoes nothing");
      }
    }
    await assertServing(t, node, "invalid UTF-8 frames");
  },
);

t.test("hostile start frames on a fresh seed socket: refused in our words, never echoed", async (t) => {
  const valid = await mintToken({ user_idx: 7000 });
  const starts: [string, string][] = [
    ["no token", '{"id":"start"}'],
    ["token object with toString", '{"id":"start","token":{"toString":1}}'],
    ["token array", `{"id":"start","token":["${MARKER}"]}`],
    ["token 1e400", '{"id":"start","token":1e400}'],
    ["empty token", '{"id":"start","token":""}'],
    ["token over 8 KB", `{"id":"start","token":"${MARKER.repeat(900)}"}`],
    ["lastSeq string", `{"id":"start","token":"${valid}","lastSeq":"${MARKER}"}`],
    ["lastSeq 1e400", `{"id":"start","token":"${valid}","lastSeq":1e400}`],
    ["lastSeq -1", `{"id":"start","token":"${valid}","lastSeq":-1}`],
    ["lastSeq 1.5", `{"id":"start","token":"${valid}","lastSeq":1.5}`],
    ["lastSeq 2^53+1", `{"id":"start","token":"${valid}","lastSeq":9007199254740993}`],
    ["lastSeq valueOf", `{"id":"start","token":"${valid}","lastSeq":{"valueOf":1}}`],
    ["ready not a boolean", `{"id":"start","token":"${valid}","ready":"${MARKER}"}`],
    [
      "token not valid yet",
      `{"id":"start","token":"${signRaw(`{"user_idx":7001,"nickname":"${MARKER}","nbf":${Math.floor(Date.now() / 1000) + 600},"exp":${Math.floor(Date.now() / 1000) + 900}}`)}"}`,
    ],
    ...fc
      .sample(hostileToken, { seed: SEED, numRuns: 40 })
      .map((token, i): [string, string] => [`hostile token #${i}`, JSON.stringify({ id: "start", token })]),
    ...fc
      .sample(hostileToken, { seed: SEED + 1, numRuns: 10 })
      .map((token, i): [string, string] => [
        `hostile "Bearer" token #${i}`,
        JSON.stringify({ id: "start", token: `Bearer ${token}` }),
      ]),
  ];
  const failures: string[] = [];
  for (const [what, frame] of starts) {
    const socket = new TestSocket(`${node.ws}/chatting`);
    await socket.open();
    socket.send(frame);
    socket.send("ping");
    // Either the socket stays open (an error frame, then the pong) or it is refused and closed. The
    // token check is asynchronous: the pong may come first, the refusal after it.
    await socket
      .until(
        () =>
          socket.closed !== undefined || (socket.frames.includes("pong") && socket.frames.some((f) => f !== "pong")),
        `answer to start: ${what}`,
        5000,
      )
      .catch((err: Error) => failures.push(err.message));
    const replies = socket.frames.filter((f) => f !== "pong");
    for (const reply of replies) {
      const problem = tokenExceptionOrError(reply);
      if (problem) failures.push(`${what}: ${problem}`);
    }
    if (replies.length === 0) failures.push(`${what}: no error or tokenException frame`);
    if (socket.closed && ![4003, 1008].includes(socket.closed.code)) {
      failures.push(`${what}: closed with ${JSON.stringify(socket.closed)} (expected open, 4003 or 1008)`);
    }
    if (containsMarker(socket.closed?.reason)) failures.push(`${what}: close reason echoes input`);
    socket.close(1000);
    if (node.node.exit !== undefined) {
      failures.push(`node process exited after start frame "${what}": ${node.node.stderr().slice(-3000)}`);
      break;
    }
  }
  t.same(failures, [], `${starts.length} hostile start frames refused without echo`);
  await assertServing(t, node, "hostile start frames");
});

function tokenExceptionOrError(reply: string): string | undefined {
  if (containsMarker(reply)) return `reply echoes client input: ${reply.slice(0, 300)}`;
  try {
    const f = JSON.parse(reply) as Record<string, unknown>;
    if (f.id === "tokenException" && f.response === "reject" && typeof f.message === "string") return undefined;
  } catch {
    // reported below
  }
  return errorFrameProblem("seed", reply);
}

for (const surface of ["v1", "seed"] as const) {
  t.test(`${surface}: ${LIMIT} bad frames are answered; one more within the window closes with 1008`, async (t) => {
    const sockets = pool(surface, "started", surface === "v1" ? 7100 : 7200);
    const socket = await sockets.take();
    const bad = (i: number): HostileFrame => ({ what: `bad #${i}`, data: `{"x":"${MARKER}${i}"`, binary: false });
    for (let i = 1; i <= LIMIT; i++) await probeBadFrame(socket, surface, bad(i));
    t.equal(socket.closed, undefined, `open after ${LIMIT} bad frames (pings in between do not count)`);
    sendFrame(socket, bad(LIMIT + 1));
    const closed = await socket.waitClose(5000).catch(() => undefined);
    t.equal(closed?.code, 1008, `bad frame #${LIMIT + 1} closes the socket with 1008`);
    t.notOk(containsMarker(closed?.reason), "the close reason is ours");
    t.same(echoes([socket]), [], "nothing echoed");
    await assertServing(t, node, `${surface} bad-frame limit`);
  });
}

t.test("the bad-frame count forgets frames older than the window", async (t) => {
  const socket = await openV1Presenter(node, 7300);
  const bad = (i: number): HostileFrame => ({ what: `bad #${i}`, data: Buffer.from([i]), binary: true });
  for (let i = 1; i <= LIMIT; i++) await probeBadFrame(socket, "v1", bad(i));
  // The window has to pass in wall-clock time: that is the behaviour under test.
  await new Promise((r) => setTimeout(r, WINDOW_MS + 500));
  let refused: string | undefined;
  for (let i = 1; i <= LIMIT && refused === undefined; i++) {
    await probeBadFrame(socket, "v1", bad(LIMIT + i)).catch((err: Error) => {
      refused = err.message;
    });
  }
  t.equal(refused, undefined, `another ${LIMIT} bad frames after the window are answered, socket open`);
  sendFrame(socket, bad(2 * LIMIT + 1));
  t.equal((await socket.waitClose(5000).catch(() => undefined))?.code, 1008, "one more within this window: 1008");
});

for (const surface of ["v1", "seed"] as const) {
  t.test(`${surface}: a frame over WS_MAX_FRAME_BYTES closes with 1009`, async (t) => {
    const sockets = pool(surface, "started", surface === "v1" ? 7400 : 7500);
    const socket = await sockets.take();
    socket.ws.send(`{"x":"${MARKER.repeat(Math.ceil(MAX_FRAME_BYTES / MARKER.length))}"}`);
    const closed = await socket.waitClose(5000).catch(() => undefined);
    t.equal(closed?.code, 1009);
    t.notOk(containsMarker(closed?.reason), "the close reason is ours");
    await assertServing(t, node, `${surface} oversized frame`);
  });
}

t.test("no frame or close reason on any socket echoed client input; the node still serves", async (t) => {
  const sockets = [node.controlV1, node.controlSeed, ...pools.flatMap((p) => p.all)];
  t.same(echoes(sockets), [], `${sockets.length} sockets checked`);

  await assertServing(t, node, "the whole file");
  t.comment(`hostile-sockets: ${Date.now() - started} ms`);
});
