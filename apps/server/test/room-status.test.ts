import t from "tap";
import { request } from "./helpers/http.js";
import { startTestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { pollUntil } from "./helpers/wait.js";
import { TestSocket } from "./helpers/ws-client.js";

// GET /v1/rooms/:roomId/status: on air or not, the presenter's node, the room's last seq.
const server = await startTestServer({ NODE_ID: "status-node" });
t.teardown(() => server.shutdown());
const viewer = await mintToken({ user_idx: 3 });
const status = (room: string, token: string | null = viewer) =>
  request<Record<string, unknown>>(`${server.http}/v1/rooms/${room}/status`, {
    method: "GET",
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });

t.test("offline, then live on this node with its last seq, then grace after the socket closes", async (t) => {
  const room = 4401;
  t.same((await status(String(room))).body, { roomId: room, state: "offline", presenterNode: null, lastSeq: 0 });

  const presenter = new TestSocket(
    `${server.ws}/v1/rooms/${room}/presenter?access_token=${await mintToken({ user_idx: room })}`,
  );
  await presenter.open();
  await presenter.next((f) => f.type === "ready", "ready");
  const posted = await request(`${server.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${viewer}` },
    body: { text: "one" },
  });
  t.equal(posted.status, 201);
  t.same((await status(String(room))).body, { roomId: room, state: "live", presenterNode: "status-node", lastSeq: 1 });

  presenter.close(1001);
  await presenter.waitClose();
  // The node releases the room to its grace window once it has seen the close: polled, bounded.
  const after = await pollUntil(
    async () => {
      const res = await status(String(room));
      return res.body.state === "live" ? undefined : res.body;
    },
    "the room to leave the live state",
    10_000,
  );
  t.same(after, { roomId: room, state: "grace", presenterNode: "status-node", lastSeq: 1 }, "grace, still on its node");
});

t.test("a token first, then a valid room id; nothing echoed", async (t) => {
  const missing = await status("7", null);
  t.equal(missing.status, 401, JSON.stringify(missing.body));
  for (const bad of ["0", "abc", "99999999999999999"]) {
    const res = await status(bad);
    t.equal(res.status, 400, bad);
    t.notMatch(JSON.stringify(res.body), bad === "0" ? /"0"/ : new RegExp(bad), "the id is not echoed");
  }
});
