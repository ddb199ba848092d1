import t from "tap";
import { mayOpenPresenter } from "../src/auth/presenter-rule.js";
import { createTokenVerifier, type Principal } from "../src/auth/token-verifier.js";
import { loadConfig } from "../src/config.js";
import { testEnv } from "./helpers/server.js";
import { mintToken, TEST_JWT_SECRET, type TokenClaims } from "./helpers/tokens.js";

// Principals come from real tokens through the real verifier, roles as a client would write them.
const verify = createTokenVerifier({
  secret: TEST_JWT_SECRET,
  jwksUrl: undefined,
  issuer: undefined,
  audience: undefined,
});
const principal = async (claims: TokenClaims): Promise<Principal> => verify(await mintToken(claims));
const rolesFrom = (value: string | undefined) => loadConfig(testEnv({ PRESENTER_ROLES: value })).jwt.presenterRoles;

const ROOM = 42;
const cases: [string, TokenClaims][] = [
  ["no role", { user_idx: ROOM }],
  ['role "Viewer"', { user_idx: ROOM, role: "Viewer" }],
  ['role ["viewer"]', { user_idx: ROOM, role: ["viewer"] }],
  ['role "guest"', { user_idx: ROOM, role: "guest" }],
  ['role "Presenter"', { user_idx: ROOM, role: "Presenter" }],
  ['role ["viewer", "STREAMER"]', { user_idx: ROOM, role: ["viewer", "STREAMER"] }],
];

t.test("without PRESENTER_ROLES: any token of the room's own user, whatever its role", async (t) => {
  const roles = rolesFrom(undefined);
  t.equal(roles, undefined);
  for (const [what, claims] of cases) {
    t.equal(mayOpenPresenter(await principal(claims), ROOM, roles), true, what);
  }
});

t.test("with PRESENTER_ROLES: only tokens holding one of those roles (case-insensitive)", async (t) => {
  const roles = rolesFrom("presenter, Streamer");
  t.same(roles, ["presenter", "streamer"]);
  const expected: Record<string, boolean> = {
    "no role": false,
    'role "Viewer"': false,
    'role ["viewer"]': false,
    'role "guest"': false,
    'role "Presenter"': true,
    'role ["viewer", "STREAMER"]': true,
  };
  for (const [what, claims] of cases) {
    t.equal(mayOpenPresenter(await principal(claims), ROOM, roles), expected[what], what);
  }
  t.equal(mayOpenPresenter(await principal({ user_idx: ROOM, role: "presenter" }), ROOM, []), false, "empty: nobody");
});

t.test("never another user's room, whatever the roles", async (t) => {
  for (const roles of [undefined, ["presenter"]]) {
    for (const [what, claims] of cases) {
      const other = await principal({ ...claims, user_idx: ROOM + 1 });
      t.equal(mayOpenPresenter(other, ROOM, roles), false, `${what}, PRESENTER_ROLES=${roles ?? "unset"}`);
    }
  }
});
