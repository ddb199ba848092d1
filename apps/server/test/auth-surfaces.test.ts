import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import t from "tap";
import { request } from "./helpers/http.js";
import { startTestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// How the HTTP and socket surfaces answer what the token verifier decides: an unreachable key
// source is a 503 / close 1013 ("try again"), never "unauthorized"; PRESENTER_ROLES is enforced.

t.test("a JWKS outage answers 503 with Retry-After and closes a seed start with 1013", async (t) => {
  const known = await generateKeyPair("RS256");
  const jwks: { keys: JWK[] } = { keys: [{ ...(await exportJWK(known.publicKey)), kid: "k1", alg: "RS256" }] };
  const keyServer: Server = createServer((_req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => keyServer.listen(0, "127.0.0.1", resolve));
  const { port } = keyServer.address() as AddressInfo;
  const server = await startTestServer({ JWT_SECRET: undefined, JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks` });
  t.teardown(() => server.shutdown());

  const sign = (key: typeof known.privateKey, kid: string, userIdx: number) =>
    new SignJWT({ user_idx: userIdx })
      .setProtectedHeader({ alg: "RS256", kid })
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(key);

  // The key source is down before the node ever fetched it: nothing to verify with.
  keyServer.closeAllConnections();
  await new Promise<void>((resolve) => keyServer.close(() => resolve()));
  const room = 901;
  const post = await request(`${server.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${await sign(known.privateKey, "k1", 7)}` },
    body: { text: "hello" },
  });
  t.equal(post.status, 503, post.text);
  t.equal(post.body.code, "service_unavailable");
  t.ok(Number(post.headers.get("retry-after")) >= 1, "Retry-After");

  const seed = new TestSocket(`${server.ws}/chatting`);
  await seed.open();
  seed.send({ id: "start", token: await sign(known.privateKey, "k1", 902) });
  const frame = await seed.next((f) => f.id === "error", "error frame");
  t.notMatch(String(frame.message), /unauthori[sz]ed|invalid/i, "not reported as a bad token");
  t.equal((await seed.waitClose()).code, 1013);

  // Back again: the same tokens are accepted.
  await new Promise<void>((resolve) => keyServer.listen(port, "127.0.0.1", resolve));
  t.teardown(() => keyServer.close());
  const presenter = new TestSocket(
    `${server.ws}/v1/rooms/${room}/presenter?access_token=${await sign(known.privateKey, "k1", room)}`,
  );
  await presenter.open();
  await presenter.next((f) => f.type === "ready", "ready with an RS256 token once the JWKS answers");
  presenter.close(1000);
});

t.test("PRESENTER_ROLES: only tokens with one of the roles open a presenter socket", async (t) => {
  const server = await startTestServer({ PRESENTER_ROLES: "Streamer,host" });
  t.teardown(() => server.shutdown());
  const room = 903;
  const open = async (role: unknown) => {
    const token = await mintToken({ user_idx: room, ...(role === undefined ? {} : { role: role as string }) });
    const socket = new TestSocket(`${server.ws}/v1/rooms/${room}/presenter?access_token=${token}`);
    try {
      await socket.open();
      await socket.next((f) => f.type === "ready", "ready");
      socket.close(1000);
      await socket.waitClose();
      return 101;
    } catch {
      return socket.rejection?.status ?? 0;
    }
  };
  t.equal(await open("streamer"), 101, "a listed role, any case");
  t.equal(await open(["viewer", "HOST"]), 101, "a list claim holding a listed role");
  t.equal(await open(undefined), 403, "no role");
  t.equal(await open("viewer"), 403, "an unlisted role");
  t.equal(await open(["viewer"]), 403, "a list without a listed role");

  const seed = new TestSocket(`${server.ws}/chatting`);
  await seed.open();
  seed.send({ id: "start", token: await mintToken({ user_idx: room, role: "Viewer" }) });
  await seed.next((f) => f.id === "tokenException", "tokenException");
  t.equal((await seed.waitClose()).code, 4003);
});
