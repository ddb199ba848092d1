import { SignJWT } from "jose";

export const TEST_JWT_SECRET = "test-secret-0123456789-0123456789-abcdef";

export interface TokenClaims {
  user_idx?: number;
  sub?: string;
  nickname?: string;
  role?: string;
  iss?: string;
  aud?: string;
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number;
  /** Seconds from now until the token becomes valid. */
  notBefore?: number;
}

/** An HS256 token as the API gateway or an identity provider would mint it. */
export async function mintToken(claims: TokenClaims, secret = TEST_JWT_SECRET): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const { expiresIn = 3600, notBefore, iss, aud, sub, ...rest } = claims;
  let jwt = new SignJWT({ ...rest })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt(now)
    .setExpirationTime(now + expiresIn);
  if (notBefore !== undefined) jwt = jwt.setNotBefore(now + notBefore);
  if (iss !== undefined) jwt = jwt.setIssuer(iss);
  if (aud !== undefined) jwt = jwt.setAudience(aud);
  if (sub !== undefined) jwt = jwt.setSubject(sub);
  return jwt.sign(new TextEncoder().encode(secret));
}
