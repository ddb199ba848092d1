import t from "tap";
import { request, seedHeaders } from "./helpers/http.js";
import { startTestServer, waitAttached } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

const GATEWAY_SECRET = "gateway-shared-secret-0123456789";
const body = { presenterIdx: 401, userType: "viewer", textMessage: "hi" };

async function withPresenter(server: Awaited<ReturnType<typeof startTestServer>>): Promise<TestSocket> {
  const socket = new TestSocket(`${server.ws}/chatting`);
  await socket.open();
  const attached = waitAttached(server.relay, 401);
  socket.send({ id: "start", token: await mintToken({ user_idx: 401 }) });
  await attached;
  return socket;
}

t.test("no trust configured: gateway headers are refused with 401", async (t) => {
  const server = await startTestServer({ TRUSTED_PROXIES: undefined, GATEWAY_SECRET: undefined });
  t.teardown(() => server.shutdown());
  const presenter = await withPresenter(server);
  const res = await request<Record<string, unknown>>(`${server.http}/send/message`, { headers: seedHeaders(5), body });
  t.equal(res.status, 401);
  t.match(res.body, { status: 401, path: "/send/message", message: /not trusted/ });
  const malformed = await request<Record<string, unknown>>(`${server.http}/send/message`, {
    headers: { ...seedHeaders(5), "content-type": "application/json" },
    body: "{broken",
  });
  t.equal(malformed.status, 401, "an untrusted caller is refused before its body is even looked at");
  t.equal((await server.relay.history(401, undefined, 5)).length, 0, "nothing logged");
  t.equal(presenter.json().length, 0, "nothing relayed");
  presenter.close(1000);
});

t.test("shared secret: only requests carrying it are trusted", async (t) => {
  const server = await startTestServer({ TRUSTED_PROXIES: undefined, GATEWAY_SECRET });
  t.teardown(() => server.shutdown());
  const presenter = await withPresenter(server);
  const without = await request(`${server.http}/send/message`, { headers: seedHeaders(5), body });
  t.equal(without.status, 401);
  const wrong = await request(`${server.http}/send/message`, {
    headers: { ...seedHeaders(5), "x-gateway-secret": "guess" },
    body,
  });
  t.equal(wrong.status, 401);
  const right = await request(`${server.http}/send/message`, {
    headers: { ...seedHeaders(5), "x-gateway-secret": GATEWAY_SECRET },
    body,
  });
  t.equal(right.status, 200);
  await presenter.next((f) => f.id === "sendChatting", "relayed");
  presenter.close(1000);
});

t.test("trusted proxies: an address outside the list is refused", async (t) => {
  const server = await startTestServer({ TRUSTED_PROXIES: "10.0.0.0/8", GATEWAY_SECRET: undefined });
  t.teardown(() => server.shutdown());
  const res = await request(`${server.http}/send/message`, { headers: seedHeaders(5), body });
  t.equal(res.status, 401, "loopback is not in 10.0.0.0/8");
  const trusted = await startTestServer({ TRUSTED_PROXIES: "127.0.0.0/8,::1", GATEWAY_SECRET: undefined });
  t.teardown(() => trusted.shutdown());
  const presenter = await withPresenter(trusted);
  const ok = await request(`${trusted.http}/send/message`, { headers: seedHeaders(5), body });
  t.equal(ok.status, 200, "loopback is in 127.0.0.0/8");
  presenter.close(1000);
});
