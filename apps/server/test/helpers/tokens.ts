import { createHmac } from "node:crypto";
import { SignJWT } from "jose";

export const TEST_JWT_SECRET = "test-secret-0123456789-0123456789-abcdef";

export interface TokenClaims {
  user_idx?: number | string;
  sub?: string;
  nickname?: string;
  /** A role or a list of roles (the `role` claim). */
  role?: string | string[];
  iss?: string;
  aud?: string;
  /** Seconds from now; negative for an expired token; null for a token without `exp`. */
  expiresIn?: number | null;
  /** Seconds from now until the token becomes valid. */
  notBefore?: number;
  /** `iat` in seconds from now (default 0); null for a token without `iat`. */
  issuedAt?: number | null;
}

/** An HS256 token as the API gateway or an identity provider would mint it. */
export async function mintToken(claims: TokenClaims, secret = TEST_JWT_SECRET): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const { expiresIn = 3600, notBefore, issuedAt = 0, iss, aud, sub, ...rest } = claims;
  let jwt = new SignJWT({ ...rest }).setProtectedHeader({ alg: "HS256" });
  if (issuedAt !== null) jwt = jwt.setIssuedAt(now + issuedAt);
  if (expiresIn !== null) jwt = jwt.setExpirationTime(now + expiresIn);
  if (notBefore !== undefined) jwt = jwt.setNotBefore(now + notBefore);
  if (iss !== undefined) jwt = jwt.setIssuer(iss);
  if (aud !== undefined) jwt = jwt.setAudience(aud);
  if (sub !== undefined) jwt = jwt.setSubject(sub);
  return jwt.sign(new TextEncoder().encode(secret));
}

/**
 * A compact JWS over exactly the given header and payload JSON text, signed
 * with HS256 (or unsigned when the header says `"alg":"none"`): for tokens no
 * library would mint, such as a user id literal JSON.parse would round.
 */
export function craftToken(headerJson: string, payloadJson: string, secret = TEST_JWT_SECRET): string {
  const signingInput = `${Buffer.from(headerJson).toString("base64url")}.${Buffer.from(payloadJson).toString("base64url")}`;
  const unsigned = (JSON.parse(headerJson) as { alg?: unknown }).alg === "none";
  const signature = unsigned ? "" : createHmac("sha256", secret).update(signingInput).digest("base64url");
  return `${signingInput}.${signature}`;
}

/** Every RATE_LIMIT_* variable switched off. */
export const RATE_LIMITS_OFF: Record<string, string> = {
  RATE_LIMIT_ROOM: "off",
  RATE_LIMIT_ROOM_PRIVILEGED: "off",
  RATE_LIMIT_SENDER: "off",
  RATE_LIMIT_ADDRESS_POSTS: "off",
  RATE_LIMIT_ADDRESS_SOCKETS: "off",
};
