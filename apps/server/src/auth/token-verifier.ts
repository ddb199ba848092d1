import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";

/** Who a verified token speaks for. */
export interface Principal {
  userId: number;
  nickname: string | undefined;
  /** `role` claim when present ("presenter" / "viewer"); a viewer token never opens a presenter socket. */
  role: string | undefined;
}

export class AuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AuthError";
  }
}

export interface TokenVerifierOptions {
  secret: string | undefined;
  jwksUrl: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
}

export type TokenVerifier = (token: string) => Promise<Principal>;

/**
 * Verifies a JWT with jose: HS256 with the shared secret, or the keys of a
 * JWKS URL (asymmetric algorithms only). `exp` and `nbf` are always
 * enforced; `iss` and `aud` when configured.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  let key: Uint8Array | JWTVerifyGetKey;
  let algorithms: string[];
  if (options.jwksUrl !== undefined) {
    key = createRemoteJWKSet(new URL(options.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 });
    algorithms = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
  } else if (options.secret !== undefined) {
    key = new TextEncoder().encode(options.secret);
    algorithms = ["HS256"];
  } else {
    throw new Error("a JWT secret or a JWKS URL is required");
  }
  const verifyOptions = {
    algorithms,
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
    ...(options.audience === undefined ? {} : { audience: options.audience }),
  };

  const cache = new VerifiedTokenCache(CACHE_ENTRIES, CACHE_TTL_MS);
  return async (token: string): Promise<Principal> => {
    const hit = cache.get(token);
    if (hit) return hit;
    let payload: JWTPayload;
    try {
      // Both overloads share the options; the key's type picks one.
      payload =
        typeof key === "function"
          ? (await jwtVerify(token, key, verifyOptions)).payload
          : (await jwtVerify(token, key, verifyOptions)).payload;
    } catch (err) {
      throw new AuthError(describe(err));
    }
    const principal = toPrincipal(payload);
    cache.set(token, principal, typeof payload.exp === "number" ? payload.exp * 1000 : Number.POSITIVE_INFINITY);
    return principal;
  };
}

// Clients reuse one token for many posts: remember verified tokens briefly
// (never past their `exp`) instead of re-running the signature check each time.
const CACHE_ENTRIES = 10_000;
const CACHE_TTL_MS = 60_000;

export class VerifiedTokenCache {
  private readonly entries = new Map<string, { principal: Principal; until: number }>();

  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(token: string): Principal | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    if (entry.until <= this.now()) {
      this.entries.delete(token);
      return undefined;
    }
    return entry.principal;
  }

  set(token: string, principal: Principal, expiresAt: number): void {
    if (this.entries.size >= this.max) {
      // Map iteration order is insertion order: drop the oldest entry.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(token, { principal, until: Math.min(expiresAt, this.now() + this.ttlMs) });
  }
}

function toPrincipal(payload: JWTPayload): Principal {
  const raw = payload.user_idx ?? payload.sub;
  const userId =
    typeof raw === "number" ? raw : typeof raw === "string" && /^[1-9]\d{0,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(userId) || userId <= 0) {
    throw new AuthError("token has no user id: expected a positive integer `user_idx` or `sub` claim");
  }
  const nickname = typeof payload.nickname === "string" ? payload.nickname : undefined;
  const role = typeof payload.role === "string" ? payload.role : undefined;
  return { userId, nickname, role };
}

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "token expired";
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim check failed: ${err.claim} ${err.reason}`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return "token signature is invalid";
  if (err instanceof errors.JOSEAlgNotAllowed) return "token algorithm is not allowed";
  if (err instanceof errors.JWKSNoMatchingKey) return "no key in the JWKS matches the token";
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return "token is malformed";
  if (err instanceof errors.JOSEError) return `token rejected: ${err.code}`;
  return "token could not be verified";
}

/** Extracts the token of an `Authorization: Bearer <token>` header. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
