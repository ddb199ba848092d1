import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import { topLevelLiteral } from "./json-literal.js";

/** Who a verified token speaks for. */
export interface Principal {
  userId: number;
  nickname: string | undefined;
  /** Lower-cased roles of the `role` claim (a string or an array of strings; anything else gives none). */
  roles: string[];
  /** The token's `exp`, in ms since the epoch. */
  expiresAt: number;
  /** Rooms the token's moderator claim (MODERATOR_CLAIM) names; [] when it is absent or malformed. */
  modRooms: number[];
  /** The token holds the operator role (OPERATOR_ROLE): the log's operator routes, never posting or presenting. */
  operator?: boolean;
}

/** A token refused, in our own words (never the token's contents). */
export class AuthError extends Error {
  /**
   * @param unavailable true when the token could not be checked at all because the key source
   * (JWKS) is unreachable or answered nonsense: a server-side outage, not a bad token.
   */
  constructor(
    message: string,
    readonly unavailable: boolean = false,
  ) {
    super(message);
    this.name = "AuthError";
  }
}

export interface TokenVerifierOptions {
  secret: string | undefined;
  jwksUrl: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
  /** Seconds of clock skew allowed on `exp`, `nbf` and `iat`. @default 5 */
  clockToleranceS?: number;
  /** Longest accepted token lifetime in seconds (`exp - iat`, or `exp - now` without `iat`); 0 = no limit. @default 86400 */
  maxTokenAgeS?: number;
  /** How long one JWKS fetch may take. @default 5000 */
  jwksTimeoutMs?: number;
  /**
   * Least time between two JWKS fetches that an unknown `kid` triggers; within it, an unknown `kid`
   * is "try again shortly" (the keys may have just rotated), not a bad token. @default 5000
   */
  jwksCooldownMs?: number;
  /** Clock in ms since the epoch (tests move it). @default Date.now */
  now?: () => number;
  /** The claim listing rooms the token may moderate (an array of room ids). @default "mod_rooms" */
  moderatorClaim?: string;
  /** The role (lower-case) that makes a token an operator's. @default "operator" */
  operatorRole?: string;
}

export type TokenVerifier = (token: string) => Promise<Principal>;

export const DEFAULT_CLOCK_TOLERANCE_S = 5;
export const DEFAULT_MAX_TOKEN_AGE_S = 86_400;
export const DEFAULT_MODERATOR_CLAIM = "mod_rooms";
export const DEFAULT_OPERATOR_ROLE = "operator";

/**
 * Verifies a JWT with jose: HS256 with the shared secret, or the keys of a
 * JWKS URL (asymmetric algorithms only). `exp` is required and enforced, as
 * are `nbf`, `iat` (not in the future) and the maximum lifetime, each with
 * the clock tolerance; `iss` and `aud` when configured.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  let key: Uint8Array | JWTVerifyGetKey;
  let algorithms: string[];
  if (options.jwksUrl !== undefined) {
    key = remoteKeySet(options.jwksUrl, options.jwksTimeoutMs ?? 5000, options.jwksCooldownMs ?? JWKS_COOLDOWN_MS);
    algorithms = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
  } else if (options.secret !== undefined) {
    key = new TextEncoder().encode(options.secret);
    algorithms = ["HS256"];
  } else {
    throw new Error("a JWT secret or a JWKS URL is required");
  }
  const toleranceS = options.clockToleranceS ?? DEFAULT_CLOCK_TOLERANCE_S;
  const maxAgeS = options.maxTokenAgeS ?? DEFAULT_MAX_TOKEN_AGE_S;
  const now = options.now ?? Date.now;
  const moderatorClaim = options.moderatorClaim ?? DEFAULT_MODERATOR_CLAIM;
  const operatorRole = (options.operatorRole ?? DEFAULT_OPERATOR_ROLE).toLowerCase();
  const verifyOptions = {
    algorithms,
    clockTolerance: toleranceS,
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
    ...(options.audience === undefined ? {} : { audience: options.audience }),
  };

  const cache = new VerifiedTokenCache(CACHE_ENTRIES, CACHE_TTL_MS, now);
  return async (token: string): Promise<Principal> => {
    const hit = cache.get(token);
    if (hit) return hit;
    const currentDate = new Date(now());
    let payload: JWTPayload;
    try {
      // Both overloads share the options; the key's type picks one.
      payload =
        typeof key === "function"
          ? (await jwtVerify(token, key, { ...verifyOptions, currentDate })).payload
          : (await jwtVerify(token, key, { ...verifyOptions, currentDate })).payload;
    } catch (err) {
      throw toAuthError(err);
    }
    checkLifetime(payload, Math.floor(currentDate.getTime() / 1000), toleranceS, maxAgeS);
    const principal = toPrincipal(payload, token, moderatorClaim, operatorRole);
    // Never cached past exp: after it, the next use re-verifies (and the tolerance decides).
    cache.set(token, principal, principal.expiresAt);
    return principal;
  };
}

/** jose checked that exp/iat/nbf, when present, are numbers and that exp and nbf hold; the rest is ours. */
function checkLifetime(payload: JWTPayload, nowS: number, toleranceS: number, maxAgeS: number): void {
  const { exp, iat } = payload;
  if (exp === undefined) throw new AuthError("token has no expiry");
  if (iat !== undefined && iat > nowS + toleranceS) throw new AuthError("token is issued in the future");
  if (maxAgeS > 0) {
    // Without iat the lifetime left is all we can measure; our clock may lag the issuer's by the tolerance.
    const tooLong = iat !== undefined ? exp - iat > maxAgeS : exp - nowS > maxAgeS + toleranceS;
    if (tooLong) throw new AuthError(`token lifetime exceeds the maximum of ${maxAgeS} s`);
  }
}

/** Marks a failure to obtain the keys (fetch, timeout, bad response) as opposed to a token no key matches. */
class KeySourceUnavailable extends Error {}

/** Least time between two JWKS fetches that an unknown `kid` triggers (each such token would otherwise fetch). */
const JWKS_COOLDOWN_MS = 5_000;

function remoteKeySet(url: string, timeoutMs: number, cooldownMs: number): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(new URL(url), { timeoutDuration: timeoutMs, cooldownDuration: cooldownMs });
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      // Right after a fetch, a key the issuer has just rotated in cannot be known yet: that is "try
      // again shortly" (503), not "your token is bad" (401), which would log a valid user out.
      if (err instanceof errors.JWKSNoMatchingKey && remote.coolingDown) {
        throw new KeySourceUnavailable("JWKS fetched too recently to look for a new key", { cause: err });
      }
      // These come from matching the token's header against keys that were fetched fine.
      if (
        err instanceof errors.JWKSNoMatchingKey ||
        err instanceof errors.JWKSMultipleMatchingKeys ||
        err instanceof errors.JOSENotSupported
      ) {
        throw err;
      }
      // jose's JWKSTimeout, fetch's TypeError, a non-200 or non-JSON answer, JWKSInvalid.
      throw new KeySourceUnavailable("JWKS unavailable", { cause: err });
    }
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
    const now = this.now();
    const until = Math.min(expiresAt, now + this.ttlMs);
    // A token accepted within the clock tolerance after its exp is not worth a slot.
    if (until <= now) return;
    if (this.entries.size >= this.max) {
      // Map iteration order is insertion order: drop the oldest entry.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(token, { principal, until });
  }
}

const USER_ID_TEXT = /^[1-9]\d{0,15}$/;
const NO_USER_ID = "token has no valid user id: expected a positive integer `user_idx` or `sub` claim";

function toPrincipal(payload: JWTPayload, token: string, moderatorClaim: string, operatorRole: string): Principal {
  const claim = Object.hasOwn(payload, "user_idx") ? "user_idx" : "sub";
  const raw = payload[claim];
  let text: string | undefined;
  if (typeof raw === "string") text = raw;
  else if (typeof raw === "number") text = numberLiteral(token, claim);
  if (text === undefined || !USER_ID_TEXT.test(text)) throw new AuthError(NO_USER_ID);
  const userId = Number(text);
  if (!Number.isSafeInteger(userId)) throw new AuthError(NO_USER_ID);

  const nickname = typeof payload.nickname === "string" ? payload.nickname : undefined;
  const roles = rolesOf(payload.role);
  // exp is present (checkLifetime) and a number (jose).
  const expiresAt = (payload.exp ?? 0) * 1000;
  const modRooms = Object.hasOwn(payload, moderatorClaim) ? modRoomsOf(payload[moderatorClaim]) : [];
  return { userId, nickname, roles, expiresAt, modRooms, operator: roles.includes(operatorRole) };
}

/** Most rooms one token may name in its moderator claim; a longer list counts as malformed. */
const MAX_MOD_ROOMS = 1000;

/**
 * The moderator claim: an array of room ids (positive safe integers, or their decimal text).
 * Lenient but never partial: anything malformed grants nothing, and a number too large to be
 * exact (which JSON.parse rounded) is never a safe integer, so it can never name another room.
 */
export function modRoomsOf(claim: unknown): number[] {
  if (!Array.isArray(claim) || claim.length > MAX_MOD_ROOMS) return [];
  const rooms = new Set<number>();
  for (const item of claim) {
    const id = typeof item === "string" && USER_ID_TEXT.test(item) ? Number(item) : item;
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id <= 0) return [];
    rooms.add(id);
  }
  return [...rooms];
}

/** The claim's number as written in the payload, so that a rounded value is never taken for an id. */
function numberLiteral(token: string, claim: string): string | undefined {
  const segment = token.split(".")[1];
  if (segment === undefined) return undefined;
  return topLevelLiteral(Buffer.from(segment, "base64url").toString("utf8"), claim);
}

function rolesOf(claim: unknown): string[] {
  if (typeof claim === "string") return [claim.toLowerCase()];
  if (Array.isArray(claim) && claim.every((r): r is string => typeof r === "string")) {
    return claim.map((r) => r.toLowerCase());
  }
  return [];
}

function toAuthError(err: unknown): AuthError {
  if (err instanceof KeySourceUnavailable) return new AuthError("token keys are unavailable (JWKS unreachable)", true);
  if (err instanceof errors.JWTExpired) return new AuthError("token expired");
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case "iss":
        return new AuthError("token issuer is not accepted");
      case "aud":
        return new AuthError("token audience is not accepted");
      case "nbf":
        return new AuthError("token is not valid yet");
      default:
        return new AuthError("token claims are invalid");
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return new AuthError("token signature is invalid");
  if (err instanceof errors.JOSEAlgNotAllowed) return new AuthError("token algorithm is not allowed");
  if (err instanceof errors.JWKSNoMatchingKey) return new AuthError("no key in the JWKS matches the token");
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return new AuthError("token is malformed");
  return new AuthError("token could not be verified");
}

/** Extracts the token of an `Authorization: Bearer <token>` header. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
