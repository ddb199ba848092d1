import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

/** An RS256 signing key of a test identity provider, with its public JWK. */
export interface SigningKey {
  kid: string;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];
  jwk: JWK;
}

export async function signingKey(kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" } };
}

/** An RS256 token signed by `key`, as an identity provider publishing a JWKS would mint it. */
export function signRs256(
  key: SigningKey,
  claims: Record<string, unknown>,
  { iss, aud }: { iss?: string; aud?: string } = {},
): Promise<string> {
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid: key.kid })
    .setIssuedAt()
    .setExpirationTime("10m");
  if (iss !== undefined) jwt = jwt.setIssuer(iss);
  if (aud !== undefined) jwt = jwt.setAudience(aud);
  return jwt.sign(key.privateKey);
}

/**
 * A JWKS endpoint on loopback (nodes accept plain http only there) that serves the keys the test
 * publishes at the moment, or an outage: a 503 answer, or no answer at all. It records every fetch.
 */
export class JwksServer {
  keys: JWK[] = [];
  mode: "serve" | "error" | "hang" = "serve";
  readonly fetches: { at: number; served: "keys" | "error" | "hang" }[] = [];
  private readonly hanging: ServerResponse[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<JwksServer> {
    let self: JwksServer | undefined;
    const server = createServer((_req: IncomingMessage, res: ServerResponse) => self?.answer(res));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    self = new JwksServer(server, `http://127.0.0.1:${port}/.well-known/jwks.json`);
    return self;
  }

  publish(...keys: SigningKey[]): void {
    this.keys = keys.map((k) => k.jwk);
  }

  private answer(res: ServerResponse): void {
    const served = this.mode === "serve" ? "keys" : this.mode;
    this.fetches.push({ at: Date.now(), served });
    if (this.mode === "hang") {
      this.hanging.push(res);
      return;
    }
    if (this.mode === "error") {
      res.writeHead(503, { "content-type": "text/plain" }).end("identity provider down");
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: this.keys }));
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, "close");
  }
}
