import t, { type Test } from "tap";
import { messages } from "./helpers/cluster.js";
import { type HttpResult, request } from "./helpers/http.js";
import { JwksServer, type SigningKey, signingKey, signRs256 } from "./helpers/jwks-server.js";
import { NodeProcess } from "./helpers/processes.js";
import { mintToken } from "./helpers/tokens.js";
import { pollUntil } from "./helpers/wait.js";
import { TestSocket } from "./helpers/ws-client.js";

// JWT_ISSUER / JWT_AUDIENCE / JWT_JWKS_URL on real node processes, on every surface a token
// opens: posting (v1), the v1 presenter upgrade and the seed socket's start frame. The verifier's
// rules are unit-tested in auth-tokens.test.ts and jwks.test.ts (in process); this file proves the
// running node applies them everywhere, fetches and refetches the keys, and tells an outage of the
// key source (503, retry) apart from a bad token (401).

const ISSUER = "https://id.chatrelay.test";
const AUDIENCE = "chatrelay";
const RIGHT = { iss: ISSUER, aud: AUDIENCE };
/** Tokens with the wrong or a missing iss/aud, as minted by some other identity provider or for another service. */
const WRONG: [string, { iss?: string; aud?: string }][] = [
  ["wrong issuer", { iss: "https://evil.test", aud: AUDIENCE }],
  ["wrong audience", { iss: ISSUER, aud: "another-service" }],
  ["no issuer", { aud: AUDIENCE }],
  ["no audience", { iss: ISSUER }],
];
/** The node refetches a key set for an unknown kid at most once per 5 s (its cooldown, token-verifier.ts). */
const JWKS_COOLDOWN_MS = 5_000;
/** The node's JWKS fetch timeout (token-verifier.ts, 5 s) plus room for a loaded machine. */
const JWKS_TIMEOUT_BOUND_MS = 5000 + 5000;

type Mint = (user: number, claims: { iss?: string; aud?: string }) => Promise<string>;

/** What each surface answers for a token. */
interface Answers {
  post: number;
  v1Presenter: number;
  /** "ready", or the answer frame's id and the close code, e.g. "tokenException 4003". */
  seedStart: string;
}

/** Tries the token on all three surfaces: a post to `liveRoom`, and presenting its own user's room on v1 and seed. */
async function tryEverySurface(node: NodeProcess, token: string, user: number, liveRoom: number): Promise<Answers> {
  const posted = await postAs(node, liveRoom, token, `from ${user}`);
  const v1 = new TestSocket(`${node.ws}/v1/rooms/${user}/presenter?access_token=${token}`);
  let v1Presenter: number;
  try {
    await v1.open();
    await v1.next((f) => f.type === "ready", "v1 ready");
    v1Presenter = 101;
  } catch {
    v1Presenter = v1.rejection?.status ?? 0;
  }
  v1.close(1000);
  await v1.waitClose().catch(() => undefined);

  const seed = new TestSocket(`${node.ws}/chatting`);
  await seed.open();
  seed.send({ id: "start", token, ready: true });
  await seed.until(() => seed.json().some((f) => f.id === "ready") || seed.closed !== undefined, "seed answer");
  let seedStart: string;
  if (seed.json().some((f) => f.id === "ready")) seedStart = "ready";
  else {
    const frame = seed.json().find((f) => f.id === "tokenException" || f.id === "error");
    seedStart = `${String(frame?.id)} ${seed.closed?.code}`;
  }
  seed.close(1000);
  await seed.waitClose().catch(() => undefined);
  return { post: posted.status, v1Presenter, seedStart };
}

function postAs(node: NodeProcess, room: number, token: string, text: string): Promise<HttpResult> {
  return request(`${node.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${token}` },
    body: { text },
  });
}

async function openV1(node: NodeProcess, room: number, token: string): Promise<TestSocket> {
  const socket = new TestSocket(`${node.ws}/v1/rooms/${room}/presenter?access_token=${token}`);
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready");
  return socket;
}

/** Right iss/aud: accepted everywhere (and the post delivered); wrong or missing: 401, upgrade 401, start 4003. */
async function checkIssuerAndAudience(t: Test, node: NodeProcess, mint: Mint, firstRoom: number): Promise<void> {
  const liveRoom = firstRoom;
  const presenter = await openV1(node, liveRoom, await mint(liveRoom, RIGHT));
  const right = await tryEverySurface(node, await mint(firstRoom + 1, RIGHT), firstRoom + 1, liveRoom);
  t.same(right, { post: 201, v1Presenter: 101, seedStart: "ready" }, "right iss and aud: accepted on every surface");
  await presenter.until(() => messages(presenter).some((m) => m.text === `from ${firstRoom + 1}`), "the post");

  let user = firstRoom + 2;
  for (const [what, claims] of WRONG) {
    const answers = await tryEverySurface(node, await mint(user, claims), user, liveRoom);
    t.same(answers, { post: 401, v1Presenter: 401, seedStart: "tokenException 4003" }, `${what}: refused everywhere`);
    user++;
  }
  t.same(
    messages(presenter).map((m) => m.text),
    [`from ${firstRoom + 1}`],
    "no refused post reached the presenter",
  );
  t.notOk(
    node.lines.some(
      (l) => l.msg === "presenter attached" && Number(l.roomId) > firstRoom + 1 && Number(l.roomId) < user,
    ),
    "no refused token attached a presenter",
  );
  presenter.close(1000);
}

t.test("HS256 node with JWT_ISSUER and JWT_AUDIENCE: iss/aud checked on every surface", async (t) => {
  const node = await NodeProcess.start("jwt-hs256", { JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE });
  t.teardown(() => node.kill("SIGKILL"));
  const mint: Mint = (user, claims) => mintToken({ user_idx: user, ...claims });
  await checkIssuerAndAudience(t, node, mint, 1400);
});

t.test("JWKS node: RS256 end to end, iss/aud, and key rotation at run time", async (t) => {
  const jwks = await JwksServer.start();
  t.teardown(() => jwks.stop());
  const first = await signingKey("key-2026-01");
  jwks.publish(first);
  const node = await NodeProcess.start("jwt-jwks", {
    JWT_SECRET: "", // unset: the node verifies with the JWKS keys only
    JWT_JWKS_URL: jwks.url,
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: AUDIENCE,
  });
  t.teardown(() => node.kill("SIGKILL"));
  const signedBy =
    (key: SigningKey): Mint =>
    (user, claims) =>
      signRs256(key, { user_idx: user, nickname: `user${user}` }, claims);

  await t.test("tokens of a published key: post and presenters (v1 and seed); iss/aud as configured", async (t) => {
    await checkIssuerAndAudience(t, node, signedBy(first), 1410);
    t.ok(jwks.fetches.length >= 1, `the node fetched the key set (${jwks.fetches.length} times)`);
    const hs256 = await mintToken({ user_idx: 1420, ...RIGHT });
    t.same(
      await tryEverySurface(node, hs256, 1420, 1410),
      { post: 401, v1Presenter: 401, seedStart: "tokenException 4003" },
      "an HS256 token (no key in the JWKS) is refused everywhere",
    );
  });

  await t.test("rotation: a token of a newly published key is accepted once the node refetches", async (t) => {
    const room = 1430;
    const presenter = await openV1(node, room, await signedBy(first)(room, RIGHT));
    const second = await signingKey("key-2026-02");
    // The identity provider publishes the new key next to the old one, then signs with it.
    jwks.publish(first, second);
    const fetchesBefore = jwks.fetches.length;
    const viewer = await signedBy(second)(1431, RIGHT);
    const refusals: { status: number; retryAfter: string | undefined }[] = [];
    // Until the node refetches (jose refetches for an unknown kid at most once per cooldown), the
    // new kid matches no key it holds: "try again shortly", never "your token is bad".
    const accepted = await pollUntil(
      async () => {
        const res = await postAs(node, room, viewer, "signed with the new key");
        if (res.status === 201) return res;
        refusals.push({ status: res.status, retryAfter: res.headers.get("retry-after") ?? undefined });
        return undefined;
      },
      "a post signed with the new key to be accepted",
      JWKS_COOLDOWN_MS + 15_000,
      250,
    );
    t.comment(`${refusals.length} refusals before the node refetched`);
    t.ok(
      refusals.every((r) => r.status === 503 && r.retryAfter !== undefined),
      `before the refetch: 503 with Retry-After, never 401 (${[...new Set(refusals.map((r) => r.status))].join(",") || "none"})`,
    );
    t.ok(jwks.fetches.length > fetchesBefore, "the node fetched the key set again");
    t.equal(accepted.status, 201);
    await presenter.until(() => messages(presenter).some((m) => m.text === "signed with the new key"), "delivered");

    const newPresenter = await openV1(node, 1432, await signedBy(second)(1432, RIGHT));
    t.pass("a presenter token of the new key opens a v1 presenter socket");
    const oldViewer = await signedBy(first)(1433, RIGHT);
    t.equal((await postAs(node, room, oldViewer, "old key")).status, 201, "the old key, still published, works");
    t.equal(
      (await postAs(node, room, await signedBy(second)(1434, { iss: ISSUER, aud: "x" }), "wrong aud")).status,
      401,
      "the new key's tokens are held to iss/aud too",
    );
    presenter.close(1000);
    newPresenter.close(1000);
  });
});

t.test("JWKS outage: 503 with Retry-After and close 1013, never 401; served again without a restart", async (t) => {
  const jwks = await JwksServer.start();
  t.teardown(() => jwks.stop());
  const key = await signingKey("key-outage");
  jwks.publish(key);
  jwks.mode = "error";
  const node = await NodeProcess.start("jwt-jwks-outage", { JWT_SECRET: "", JWT_JWKS_URL: jwks.url });
  t.teardown(() => node.kill("SIGKILL"));
  const room = 1440;
  const presenterToken = await signRs256(key, { user_idx: room });
  const viewer = await signRs256(key, { user_idx: 1441 });

  // The key source answers 503: nothing to verify with. The token may be fine: ask to retry.
  const down = await postAs(node, room, viewer, "during the outage");
  t.equal(down.status, 503, "post: 503");
  t.match(down.body, { code: "service_unavailable" });
  t.ok(Number(down.headers.get("retry-after")) >= 1, `Retry-After: ${down.headers.get("retry-after")}`);
  const v1 = new TestSocket(`${node.ws}/v1/rooms/${room}/presenter?access_token=${presenterToken}`);
  await t.rejects(v1.open(), /upgrade refused: 503/, "v1 presenter upgrade: 503");
  const seed = new TestSocket(`${node.ws}/chatting`);
  await seed.open();
  seed.send({ id: "start", token: presenterToken, ready: true });
  const error = await seed.next((f) => f.id === "error" || f.id === "tokenException", "the start's answer");
  t.equal(error.id, "error", "seed start: an error frame, not tokenException (the token is not at fault)");
  t.equal((await seed.waitClose()).code, 1013, "seed start: close 1013 try again later");

  // The key source does not answer at all: the node gives up at its fetch timeout, still 503.
  jwks.mode = "hang";
  const started = Date.now();
  const hung = await postAs(node, room, viewer, "while the JWKS hangs");
  const took = Date.now() - started;
  t.equal(hung.status, 503, `a hanging JWKS: 503 after ${took} ms`);
  // A node without a fetch timeout would hold the post (and its client) as long as the JWKS hangs.
  t.ok(took < JWKS_TIMEOUT_BOUND_MS, `answered within ${JWKS_TIMEOUT_BOUND_MS} ms`);

  // The key source is back: the very same tokens work, no restart.
  jwks.mode = "serve";
  const presenter = await openV1(node, room, presenterToken);
  t.equal((await postAs(node, room, viewer, "after the outage")).status, 201, "post accepted");
  await presenter.until(() => messages(presenter).some((m) => m.text === "after the outage"), "delivered");
  t.same(
    messages(presenter).map((m) => m.text),
    ["after the outage"],
    "nothing refused during the outage was kept",
  );
  t.ok(
    jwks.fetches.some((f) => f.served === "error") && jwks.fetches.some((f) => f.served === "hang"),
    "the node did try the key source during the outage",
  );
  presenter.close(1000);
});
