import t from "tap";
import { WebSocket } from "ws";
import { loadConfig } from "../src/config.js";
import { request } from "./helpers/http.js";
import { startTestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";

// The operator credential (OPERATOR_ROLE, default "operator"): a token for the log's operator
// routes, refused for posting and presenting whoever's user id it carries.
const server = await startTestServer();
t.teardown(() => server.shutdown());

/** The HTTP status of a refused upgrade (or 101 when the socket opened). */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("open", () => {
      resolve(101);
      ws.close();
    });
    ws.once("error", (err) => reject(err));
  });
}

t.test("an operator token may not post, in any room, its own included", async (t) => {
  const room = 4701;
  const presenter = new WebSocket(
    `${server.ws}/v1/rooms/${room}/presenter?access_token=${await mintToken({ user_idx: room })}`,
  );
  await new Promise((resolve) => presenter.once("message", resolve));
  for (const [who, token] of [
    ["another user", await mintToken({ user_idx: 9, role: "operator" })],
    ["the presenter's own user", await mintToken({ user_idx: room, role: ["streamer", "Operator"] })],
  ] as const) {
    const res = await request<Record<string, unknown>>(`${server.http}/v1/rooms/${room}/messages`, {
      headers: { authorization: `Bearer ${token}` },
      body: { text: "from an operator" },
    });
    t.equal(res.status, 403, who);
    t.equal(res.body.code, "forbidden", who);
  }
  const viewer = await request(`${server.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${await mintToken({ user_idx: 9 })}` },
    body: { text: "from a viewer" },
  });
  t.equal(viewer.status, 201, "the same user without the role posts");
  presenter.close();
});

t.test("an operator token may not open a presenter socket, even of its own user's room", async (t) => {
  const room = 4702;
  const operator = await mintToken({ user_idx: room, role: "operator" });
  t.equal(await upgradeStatus(`${server.ws}/v1/rooms/${room}/presenter?access_token=${operator}`), 403);
  const plain = await mintToken({ user_idx: room });
  t.equal(await upgradeStatus(`${server.ws}/v1/rooms/${room}/presenter?access_token=${plain}`), 101);
});

t.test("OPERATOR_ROLE: a role name, lower-cased, never also a presenter role", async (t) => {
  const base = { JWT_SECRET: "a-real-secret-0123456789-0123456789-xyz" };
  t.equal(loadConfig({ ...base }).jwt.operatorRole, "operator");
  t.equal(loadConfig({ ...base, OPERATOR_ROLE: "Log-Admin" }).jwt.operatorRole, "log-admin");
  t.throws(() => loadConfig({ ...base, OPERATOR_ROLE: "two words" }), /OPERATOR_ROLE/);
  t.throws(() => loadConfig({ ...base, OPERATOR_ROLE: "ops", PRESENTER_ROLES: "streamer,ops" }), /OPERATOR_ROLE/);
});
