import { createHmac } from "node:crypto";
import fc from "fast-check";
import { MARKER, markedString } from "./hostile-json.js";
import { TEST_JWT_SECRET } from "./tokens.js";

const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64url");

/**
 * A JWT over a payload given as raw JSON text (so claims can be 1e400, -0,
 * duplicate keys, objects with toString), signed with HS256 and `secret`.
 */
export function signRaw(
  payloadJson: string,
  secret = TEST_JWT_SECRET,
  headerJson = '{"alg":"HS256","typ":"JWT"}',
): string {
  const signingInput = `${b64(headerJson)}.${b64(payloadJson)}`;
  const signature = createHmac("sha256", secret).update(signingInput).digest("base64url");
  return `${signingInput}.${signature}`;
}

const exp = () => Math.floor(Date.now() / 1000) + 3600;

/**
 * Tokens no server may accept as a presenter or sender identity, or may only
 * refuse: wrong signature, alg "none", hostile claim values (correctly
 * signed), garbage. Most carry the marker somewhere.
 */
export const hostileToken: fc.Arbitrary<string> = fc.oneof(
  markedString.map((s) => s.replace(/[^\x21-\x7e]/g, "")),
  fc
    .constantFrom(
      () => `${b64('{"alg":"none","typ":"JWT"}')}.${b64(`{"user_idx":7,"nickname":"${MARKER}","exp":${exp()}}`)}.`,
      () => signRaw(`{"user_idx":7,"nickname":"${MARKER}","exp":${exp()}}`, `wrong-${TEST_JWT_SECRET}`),
      () => signRaw(`{"user_idx":"${MARKER}","exp":${exp()}}`),
      () => signRaw(`{"user_idx":{"toString":1},"exp":${exp()}}`),
      () => signRaw(`{"user_idx":1e400,"exp":${exp()}}`),
      () => signRaw(`{"user_idx":-0,"exp":${exp()}}`),
      () => signRaw(`{"user_idx":9007199254740993,"exp":${exp()}}`),
      () => signRaw(`{"user_idx":[7],"exp":${exp()}}`),
      () => signRaw(`{"sub":"${MARKER}","exp":${exp()}}`),
      () => signRaw(`{"user_idx":7,"exp":"${MARKER}"}`),
      () => signRaw(`{"user_idx":7,"exp":{"valueOf":1}}`),
      () => signRaw(`{"user_idx":7,"exp":1e400,"nbf":"${MARKER}"}`),
      () => signRaw(`{"__proto__":{"user_idx":7},"constructor":{"prototype":{"user_idx":7}},"exp":${exp()}}`),
      () => signRaw(`{"user_idx":7,"exp":-1,"nickname":"${MARKER}"}`),
      () => signRaw(`["${MARKER}"]`),
      () => signRaw(`"${MARKER}"`),
      () => signRaw(`{"user_idx":7,"exp":${exp()}}`, TEST_JWT_SECRET, `{"alg":"HS256","crit":["${MARKER}"]}`),
      () => signRaw(`{"user_idx":7,"exp":${exp()}}`, TEST_JWT_SECRET, `{"alg":"${MARKER}"}`),
      () => signRaw(`{"user_idx":7,"exp":${exp()}}`, TEST_JWT_SECRET, `{"alg":"HS256","b64":false,"crit":["b64"]}`),
      () => `${b64(MARKER)}.${b64(MARKER)}.${b64(MARKER)}`,
      () => `${MARKER}.${MARKER}`,
      () => `${"a".repeat(9000)}${MARKER}`,
      () => "...",
    )
    .map((make) => make()),
);
