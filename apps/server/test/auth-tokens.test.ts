import t from "tap";
import { AuthError, createTokenVerifier } from "../src/auth/token-verifier.js";
import { type HttpResult, request } from "./helpers/http.js";
import { startTestServer } from "./helpers/server.js";
import { craftToken, mintToken, TEST_JWT_SECRET, type TokenClaims } from "./helpers/tokens.js";

const ISSUER = "https://id.chatrelay.test";
const AUDIENCE = "chatrelay";
const server = await startTestServer({
  JWT_ISSUER: ISSUER,
  JWT_AUDIENCE: AUDIENCE,
  JWT_MAX_TOKEN_AGE_S: "3600",
  JWT_CLOCK_TOLERANCE_S: "5",
});
t.teardown(() => server.shutdown());

/** A token as this node's identity provider would mint it, with overrides. */
const token = (claims: TokenClaims, secret?: string) =>
  mintToken({ user_idx: 7, iss: ISSUER, aud: AUDIENCE, ...claims }, secret);

/** A hand-made HS256 token over the exact payload text, with valid iss/aud/iat/exp around it. */
function crafted(userIdxLiteral: string): string {
  const now = Math.floor(Date.now() / 1000);
  return craftToken(
    '{"alg":"HS256","typ":"JWT"}',
    `{"iss":"${ISSUER}","aud":"${AUDIENCE}","iat":${now},"exp":${now + 600},"user_idx":${userIdxLiteral}}`,
  );
}

function post(jwt: string): Promise<HttpResult<Record<string, unknown>>> {
  // Room 5 has no presenter: an accepted token gets 409 room_not_live, a refused one 401.
  return request(`${server.http}/v1/rooms/5/messages`, {
    headers: { authorization: `Bearer ${jwt}` },
    body: { text: "hello" },
  });
}

t.test("tokens the node accepts (control, and skew within the clock tolerance)", async (t) => {
  const accepted: [string, string][] = [
    ["valid", await token({})],
    ["sub instead of user_idx", await token({ user_idx: undefined, sub: "42" })],
    ["expired 2 s ago, tolerance 5 s", await token({ expiresIn: -2, issuedAt: -600 })],
    ["valid from 3 s ahead", await token({ notBefore: 3 })],
    ["issued 3 s ahead", await token({ issuedAt: 3 })],
    ["lifetime exactly the maximum", await token({ expiresIn: 3600 })],
    ["no iat, exp within the maximum", await token({ issuedAt: null, expiresIn: 3000 })],
    ["largest safe id", crafted("9007199254740991")],
  ];
  for (const [what, jwt] of accepted) {
    const res = await post(jwt);
    t.equal(res.status, 409, `${what}: accepted (409 room_not_live, not 401)`);
  }
});

t.test("refused tokens get 401 problem+json that never echoes the token", async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const valid = await token({});
  const [header, , signature] = valid.split(".");
  const otherPayload = Buffer.from(
    JSON.stringify({ iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600, user_idx: 8 }),
  ).toString("base64url");
  const refused: [string, string, RegExp][] = [
    ["no exp", await token({ expiresIn: null }), /no expiry/],
    ["expired beyond the tolerance", await token({ expiresIn: -10, issuedAt: -600 }), /expired/],
    ["lifetime beyond JWT_MAX_TOKEN_AGE_S", await token({ expiresIn: 3601 }), /lifetime exceeds/],
    ["no iat and exp beyond the maximum", await token({ issuedAt: null, expiresIn: 7200 }), /lifetime exceeds/],
    ["issued in the future", await token({ issuedAt: 60, expiresIn: 120 }), /issued in the future/],
    ["not valid yet", await token({ notBefore: 60 }), /not valid yet/],
    [
      "alg none",
      craftToken('{"alg":"none"}', `{"iss":"${ISSUER}","aud":"${AUDIENCE}","exp":${now + 600},"user_idx":7}`),
      /algorithm/,
    ],
    [
      "forged signature (other secret)",
      await token({}, "another-secret-9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
      /signature/,
    ],
    ["payload swapped under a valid signature", `${header}.${otherPayload}.${signature}`, /signature/],
    ["wrong issuer", await token({ iss: "https://evil.test" }), /issuer/],
    ["no issuer", await mintToken({ user_idx: 7, aud: AUDIENCE }), /claims|issuer/],
    ["wrong audience", await token({ aud: "someone-else" }), /audience/],
    ["user_idx 9007199254740993", crafted("9007199254740993"), /user id/],
    ['user_idx "9007199254740993"', crafted('"9007199254740993"'), /user id/],
    ["user_idx rounded by JSON.parse to 42", crafted("42.0000000000000001"), /user id/],
    ["user_idx 4.2e1", crafted("4.2e1"), /user id/],
    ["user_idx 0", crafted("0"), /user id/],
    ["user_idx -7", crafted("-7"), /user id/],
    ["user_idx 1.5", crafted("1.5"), /user id/],
    ['user_idx "042"', crafted('"042"'), /user id/],
    ['user_idx of 17 digits "12345678901234567"', crafted('"12345678901234567"'), /user id/],
    ["user_idx null", crafted("null"), /user id/],
    ["user_idx true", crafted("true"), /user id/],
    ["sub that is not a number", await token({ user_idx: undefined, sub: "alice" }), /user id/],
    ["garbage", "abc.def.ghi", /malformed/],
  ];
  for (const [what, jwt, reason] of refused) {
    const res = await post(jwt);
    t.equal(res.status, 401, `${what}: 401`);
    t.match(res.headers.get("content-type"), /^application\/problem\+json/, `${what}: problem+json`);
    t.match(res.body, { status: 401, code: "unauthorized" }, what);
    t.match(String(res.body.detail), reason, `${what}: says why`);
    for (const part of jwt.split(".").filter((p) => p.length > 0)) {
      t.notOk(res.text.includes(part), `${what}: no token segment echoed`);
    }
  }
});

t.test("verifier: exp bounds the cache, the tolerance bounds acceptance", async (t) => {
  let nowMs = Date.UTC(2030, 0, 1);
  const verify = createTokenVerifier({
    secret: TEST_JWT_SECRET,
    jwksUrl: undefined,
    issuer: undefined,
    audience: undefined,
    clockToleranceS: 5,
    now: () => nowMs,
  });
  const expS = nowMs / 1000 + 30;
  const jwt = craftToken('{"alg":"HS256"}', `{"user_idx":9,"iat":${expS - 60},"exp":${expS}}`);
  const first = await verify(jwt);
  t.equal(first.expiresAt, expS * 1000, "expiresAt is exp in ms");
  nowMs = expS * 1000 + 4000;
  t.same(await verify(jwt), first, "4 s past exp: still within the 5 s tolerance");
  nowMs = expS * 1000 + 5000;
  const late = await verify(jwt).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.type(late, AuthError, "5 s past exp: refused, the cached verification does not outlive exp");
  t.equal((late as AuthError).unavailable, false);

  const strict = createTokenVerifier({
    secret: TEST_JWT_SECRET,
    jwksUrl: undefined,
    issuer: undefined,
    audience: undefined,
    clockToleranceS: 0,
    now: () => nowMs,
  });
  nowMs = expS * 1000 - 1000;
  await strict(jwt);
  nowMs = expS * 1000;
  await t.rejects(strict(jwt), /token expired/, "tolerance 0: refused at exp although verified a second before");
});

t.test("verifier: roles come lower-cased from a string or a list of strings, else none", async (t) => {
  const verify = createTokenVerifier({
    secret: TEST_JWT_SECRET,
    jwksUrl: undefined,
    issuer: undefined,
    audience: undefined,
  });
  const rolesOf = async (role: unknown) => {
    const now = Math.floor(Date.now() / 1000);
    const claims = JSON.stringify({ user_idx: 3, iat: now, exp: now + 60, ...(role === undefined ? {} : { role }) });
    return (await verify(craftToken('{"alg":"HS256"}', claims))).roles;
  };
  t.same(await rolesOf("Viewer"), ["viewer"]);
  t.same(await rolesOf(["Presenter", "MOD"]), ["presenter", "mod"]);
  t.same(await rolesOf(undefined), []);
  t.same(await rolesOf(5), []);
  t.same(await rolesOf(["presenter", 1]), [], "a list with a non-string is no list of roles");
  t.same(await rolesOf({ name: "presenter" }), []);
  const p = await verify(await mintToken({ user_idx: 4, nickname: "Dana" }));
  t.match(p, { userId: 4, nickname: "Dana", roles: [] });
});

t.test("verifier: the user id is read as written", async (t) => {
  const verify = createTokenVerifier({
    secret: TEST_JWT_SECRET,
    jwksUrl: undefined,
    issuer: undefined,
    audience: undefined,
  });
  const now = Math.floor(Date.now() / 1000);
  const idOf = (payload: string) =>
    verify(craftToken('{"alg":"HS256"}', `{"iat":${now},"exp":${now + 60},${payload}}`));
  t.equal(
    (await idOf('"user_idx" : 12 , "x":[1,{"user_idx":3}]')).userId,
    12,
    "nested claims of the same name ignored",
  );
  t.equal((await idOf('"user_idx":1,"user_idx":13')).userId, 13, "the last duplicate, as JSON.parse keeps");
  t.equal((await idOf('"user\\u005fidx":14')).userId, 14, "an escaped claim name");
  t.equal((await idOf('"sub":"15"')).userId, 15);
  await t.rejects(
    idOf('"user_idx":null,"sub":"15"'),
    AuthError,
    "a present but null user_idx does not fall back to sub",
  );
  await t.rejects(idOf('"note":"\\"user_idx\\":5","user_idx":1e0'), AuthError, "exponent form refused");
});
