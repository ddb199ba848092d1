import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import t from "tap";
import { AuthError, createTokenVerifier, type TokenVerifier } from "../src/auth/token-verifier.js";
import { request } from "./helpers/http.js";
import { startTestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";

type Mode = "keys" | "status-500" | "not-json" | "bad-key-set" | "hang";

/** A JWKS endpoint on loopback whose answer the test chooses. */
class JwksServer {
  mode: Mode = "keys";
  private readonly hanging: ServerResponse[] = [];
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(jwks: { keys: JWK[] }): Promise<JwksServer> {
    let self: JwksServer | undefined;
    const server = createServer((_req: IncomingMessage, res: ServerResponse) => self?.answer(res, jwks));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    self = new JwksServer(server, `http://127.0.0.1:${port}/.well-known/jwks.json`);
    return self;
  }

  private answer(res: ServerResponse, jwks: { keys: JWK[] }): void {
    if (this.mode === "hang") {
      this.hanging.push(res);
      return;
    }
    const answers: Record<Exclude<Mode, "hang">, [number, string]> = {
      keys: [200, JSON.stringify(jwks)],
      "status-500": [500, "{}"],
      "not-json": [200, "<html>gateway</html>"],
      "bad-key-set": [200, '{"keys":"none"}'],
    };
    const [status, body] = answers[this.mode];
    res.writeHead(status, { "content-type": "application/json" }).end(body);
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, "close");
  }
}

const { publicKey, privateKey } = await generateKeyPair("RS256");
const other = await generateKeyPair("RS256");
const KID = "test-key-1";
const jwk = { ...(await exportJWK(publicKey)), kid: KID, alg: "RS256", use: "sig" };
const jwks = await JwksServer.start({ keys: [jwk] });
t.teardown(() => jwks.stop());

async function rs256(claims: Record<string, unknown>, key: typeof privateKey = privateKey, kid = KID): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid }).setIssuedAt().setExpirationTime("10m").sign(key);
}

const verifierFor = (url: string, jwksTimeoutMs?: number, jwksCooldownMs?: number): TokenVerifier =>
  createTokenVerifier({
    secret: undefined,
    jwksUrl: url,
    issuer: undefined,
    audience: undefined,
    jwksTimeoutMs,
    jwksCooldownMs,
  });

async function refusal(verify: TokenVerifier, token: string): Promise<AuthError> {
  const err = await verify(token).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof AuthError)) throw new Error(`expected an AuthError, got ${String(err)}`);
  for (const part of token.split(".")) {
    if (err.message.includes(part)) throw new Error("the error carries token contents");
  }
  return err;
}

t.test("a node on a loopback http JWKS accepts RS256 tokens of its keys only", async (t) => {
  const server = await startTestServer({ JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url });
  t.teardown(() => server.shutdown());
  t.equal(server.config.jwt.devSecret, false);
  const post = (token: string) =>
    request(`${server.http}/v1/rooms/5/messages`, {
      headers: { authorization: `Bearer ${token}` },
      body: { text: "hi" },
    });
  t.equal((await post(await rs256({ user_idx: 7 }))).status, 409, "valid RS256: accepted (room not live)");
  t.equal((await post(await rs256({ user_idx: 7 }, other.privateKey))).status, 401, "other key, same kid");
  t.equal((await post(await mintToken({ user_idx: 7 }))).status, 401, "HS256 is not accepted with a JWKS");
  // Right after a fetch an unknown kid may be a key rotated in since: "try again shortly", not 401.
  const unknown = await post(await rs256({ user_idx: 7 }, privateKey, "unknown-kid"));
  t.equal(unknown.status, 503, "unknown kid within the refetch cooldown: 503");
  t.ok(unknown.headers.get("retry-after"), "with Retry-After");
});

t.test("verifier: key source problems are marked unavailable, token problems are not", async (t) => {
  // Without a cooldown every unknown kid refetches first: still unknown after a fresh fetch is the token's fault.
  const verify = verifierFor(jwks.url, undefined, 0);
  t.match(await verify(await rs256({ user_idx: 9, role: "Presenter" })), { userId: 9, roles: ["presenter"] });
  const unknownKid = await refusal(verify, await rs256({ user_idx: 9 }, privateKey, "unknown-kid"));
  t.equal(unknownKid.unavailable, false, "no matching key after a fresh fetch is the token's fault");
  const cooling = verifierFor(jwks.url);
  await cooling(await rs256({ user_idx: 9, n: 1 }));
  const early = await refusal(cooling, await rs256({ user_idx: 9 }, privateKey, "unknown-kid"));
  t.equal(early.unavailable, true, "an unknown kid within the cooldown after a fetch: unavailable (try again)");
  const forged = await refusal(verify, await rs256({ user_idx: 9 }, other.privateKey));
  t.equal(forged.unavailable, false, "a bad signature is the token's fault");

  for (const mode of ["status-500", "not-json", "bad-key-set", "hang"] as const) {
    jwks.mode = mode;
    const err = await refusal(verifierFor(jwks.url, 300), await rs256({ user_idx: 9, mode }));
    t.equal(err.unavailable, true, `${mode}: unavailable`);
    t.match(err.message, /unavailable/);
  }
  jwks.mode = "keys";
});

t.test("verifier: an unreachable JWKS is unavailable; keys fetched before keep working", async (t) => {
  const gone = await JwksServer.start({ keys: [jwk] });
  const verify = verifierFor(gone.url);
  await verify(await rs256({ user_idx: 10 }));
  const fresh = verifierFor(gone.url);
  await gone.stop();
  const err = await refusal(fresh, await rs256({ user_idx: 10, n: 1 }));
  t.equal(err.unavailable, true, "connection refused before any keys: unavailable");
  t.match(await verify(await rs256({ user_idx: 10, n: 2 })), { userId: 10 }, "cached keys survive the outage");
});
