import { MODERATION_ACTIONS } from "@chatrelay/protocol";
import fc from "fast-check";
import t, { type Test } from "tap";
import {
  anyHostileValue,
  containsMarker,
  deepArray,
  deepObject,
  type JsonTree,
  MARKER,
  markedString,
  obj,
  raw,
  rawNumber,
  render,
  str,
} from "./helpers/hostile-json.js";
import { CONTROL_SEED_ROOM, CONTROL_V1_ROOM, HostileNode, openV1Presenter } from "./helpers/hostile-node.js";
import { assertServing, hostileSeed, runProperty } from "./helpers/hostile-property.js";
import { buildRequest, type RawResponse, rawExchange } from "./helpers/hostile-raw-http.js";
import { contentType, HOSTILE_ID_SEGMENTS, pct, validToken } from "./helpers/hostile-requests.js";
import { hostileToken, signRaw } from "./helpers/hostile-tokens.js";
import { call, snapshot } from "./helpers/moderation.js";
import type { TestSocket } from "./helpers/ws-client.js";

// Hostile input on the v1 moderation surface (REST routes and `moderate` frames on the presenter
// socket): never a 5xx or an internal error frame, never the client's input echoed (the marker may
// show only where the API shows stored data back to the room's own moderators: terms, audit
// targets, moderation event data), refusals in the documented shapes, refused requests change
// nothing, and the node (its own OS process) keeps relaying.

const SEED = hostileSeed(0x5eed_0010);
const started = Date.now();
const node = await HostileNode.start("hostile-moderation", {
  // Frames refused by the decoder count as bad frames: the limit is not what this file tests.
  WS_BAD_FRAME_LIMIT: "10000",
  // Room for 2,000-term frames and 5,000-deep nesting.
  WS_MAX_FRAME_BYTES: "1048576",
  RATE_LIMIT_ADDRESS_SOCKETS: "off",
});
t.teardown(() => node.stop());
t.comment(`fast-check seed ${SEED} (HOSTILE_SEED overrides); marker ${MARKER}`);

const LIVE = new Set([CONTROL_V1_ROOM, CONTROL_SEED_ROOM]);
/** A room whose state is read before and after refused requests. */
const WATCHED_ROOM = 9000;
/** The room of the presenter socket that receives hostile `moderate` frames. */
const FRAME_ROOM = 9100;
const REFUSALS = new Set([400, 401, 403, 404, 413, 415, 422]);
const exp = () => Math.floor(Date.now() / 1000) + 3600;

// ---------------------------------------------------------------- requests

type TokenKind = "presenter" | "viewer" | "mod-claim" | "forged" | "none";
type BodyKind = "none" | "shaped" | "hostile";

interface ModRequest {
  route: string;
  method: string;
  target: string;
  headers: [string, string][];
  body: Buffer | undefined;
  token: TokenKind;
  /** The route answers its state to any verified token (settings, moderators). */
  publicRead: boolean;
}

interface RouteSpec {
  name: string;
  method: string;
  /** Path after /v1/rooms/:roomId/ ; ":id" is replaced by a user id or a seq. */
  path: string;
  body?: fc.Arbitrary<JsonTree>;
  publicRead?: boolean;
  mutates: boolean;
}

const mostly = <T>(benign: fc.Arbitrary<T>, hostile: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 3, arbitrary: benign }, { weight: 1, arbitrary: hostile });

/** A field: usually present (benign or hostile), sometimes absent. */
const fieldOf = (name: string, value: fc.Arbitrary<JsonTree>) =>
  fc.option(value, { nil: undefined, freq: 6 }).map((v): [string, JsonTree][] => (v === undefined ? [] : [[name, v]]));

/** Values that break typed fields: wrong types, odd numbers, deep nesting, prototype-named objects. */
const wrongValue: fc.Arbitrary<JsonTree> = fc.oneof(
  rawNumber,
  anyHostileValue,
  fc.constantFrom(
    raw("1e400"),
    raw("-0"),
    raw("1.5"),
    raw("9007199254740993"),
    raw(deepArray(5000)),
    raw(deepObject(5000, "__proto__")),
    obj(["__proto__", obj(["slowModeS", raw("1")])]),
    obj(["valueOf", raw("1")], ["toString", str(MARKER)]),
    str("1"),
    str("true"),
  ),
);

/** Texts for reasons and terms: marked Unicode (lone surrogates...), 1000+ units, empty. */
const hostileText: fc.Arbitrary<JsonTree> = fc.oneof(
  { weight: 5, arbitrary: markedString.map(str) },
  { weight: 1, arbitrary: fc.integer({ min: 401, max: 3000 }).map((n) => str(MARKER.repeat(Math.ceil(n / 12)))) },
  { weight: 1, arbitrary: fc.constantFrom(str(""), str(`\ud800${MARKER}`), str(`${MARKER}\udfff`)) },
  { weight: 1, arbitrary: wrongValue },
);

const termsValue: fc.Arbitrary<JsonTree> = fc.oneof(
  { weight: 5, arbitrary: fc.array(hostileText, { minLength: 1, maxLength: 5 }).map((items) => arr(items)) },
  // Past maxItems (500): a huge array of terms.
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 501, max: 2000 })
      .map((n) => arr(Array.from({ length: n }, (_, i) => str(`${MARKER}${i}`)))),
  },
  { weight: 1, arbitrary: fc.constantFrom(arr([]), arr([str("")]), arr([arr([str(MARKER)])])) },
  { weight: 1, arbitrary: wrongValue },
);

function arr(items: JsonTree[]): JsonTree {
  return { k: "arr", items };
}

/** An object of the route's fields with, sometimes, extra hostile entries (`__proto__`, marked keys). */
function shaped(...fields: fc.Arbitrary<[string, JsonTree][]>[]): fc.Arbitrary<JsonTree> {
  const extras = fc.oneof(
    { weight: 3, arbitrary: fc.constant([] as [string, JsonTree][]) },
    {
      weight: 1,
      arbitrary: fc.array(
        fc.tuple(fc.oneof(markedString, fc.constantFrom("__proto__", "constructor", "prototype")), anyHostileValue),
        { minLength: 1, maxLength: 3 },
      ),
    },
  );
  return fc.tuple(fc.tuple(...fields), extras, fc.nat()).map(([parts, extra, at]): JsonTree => {
    const entries = parts.flat();
    entries.splice(at % (entries.length + 1), 0, ...extra);
    return { k: "obj", entries };
  });
}

const settingsBody = shaped(
  fieldOf(
    "slowModeS",
    mostly(
      fc.integer({ min: 0, max: 120 }).map((n) => raw(String(n))),
      wrongValue,
    ),
  ),
  fieldOf("moderatorsOnly", mostly(fc.constantFrom(raw("true"), raw("false")), wrongValue)),
  fieldOf("maxTextLength", mostly(fc.constantFrom(raw("null"), raw("50"), raw("2000")), wrongValue)),
);
const banBody = shaped(fieldOf("reason", hostileText));
const timeoutBody = shaped(
  fieldOf(
    "durationS",
    mostly(
      fc.integer({ min: 1, max: 1_209_600 }).map((n) => raw(String(n))),
      wrongValue,
    ),
  ),
  fieldOf("reason", hostileText),
);
const termsBody = shaped(fieldOf("terms", termsValue));

const ROUTES: RouteSpec[] = [
  { name: "PUT settings", method: "PUT", path: "settings", body: settingsBody, mutates: true },
  { name: "GET settings", method: "GET", path: "settings", publicRead: true, mutates: false },
  { name: "PUT moderator", method: "PUT", path: "moderators/:id", mutates: true },
  { name: "DELETE moderator", method: "DELETE", path: "moderators/:id", mutates: true },
  { name: "GET moderators", method: "GET", path: "moderators", publicRead: true, mutates: false },
  { name: "PUT ban", method: "PUT", path: "bans/:id", body: banBody, mutates: true },
  { name: "DELETE ban", method: "DELETE", path: "bans/:id", mutates: true },
  { name: "GET bans", method: "GET", path: "bans", mutates: false },
  { name: "PUT timeout", method: "PUT", path: "timeouts/:id", body: timeoutBody, mutates: true },
  { name: "POST blocked-terms", method: "POST", path: "blocked-terms", body: termsBody, mutates: true },
  { name: "DELETE blocked-terms", method: "DELETE", path: "blocked-terms", body: termsBody, mutates: true },
  { name: "GET blocked-terms", method: "GET", path: "blocked-terms", mutates: false },
  { name: "DELETE message", method: "DELETE", path: "messages/:id", mutates: true },
  { name: "POST clear", method: "POST", path: "clear", mutates: true },
  { name: "GET audit", method: "GET", path: "audit", mutates: false },
];

/** Room ids nobody broadcasts in and nobody else in this file uses. */
const hostileRoomId = fc.integer({ min: 20_000, max: 2 ** 31 }).filter((n) => !LIVE.has(n));

/** :roomId — mostly a valid id, else ids past 2^53, prototype names, the marker. */
const roomSegment = (room: number) =>
  mostly(fc.constant(String(room)), fc.oneof(markedString.map(pct), fc.constantFrom(...HOSTILE_ID_SEGMENTS)));

/** :userId / :seq — mostly a valid id, else the same hostile set plus edges of the safe range and long ones. */
const idSegment = mostly(
  fc.integer({ min: 1, max: 2 ** 31 }).map(String),
  fc.oneof(
    markedString.map(pct),
    fc.constantFrom(
      ...HOSTILE_ID_SEGMENTS,
      "-0",
      "9007199254740992",
      "18446744073709551616",
      "toString",
      "9".repeat(40),
      `${MARKER}${"x".repeat(40)}`,
    ),
  ),
);

/** Audit query: valid cursors, or hostile ones. */
const auditQuery = mostly(
  fc.constantFrom("", "?limit=1", "?limit=200", "?before=9999999999999999", "?before=1&limit=999"),
  fc.oneof(
    markedString.map((s) => `?before=${pct(s)}`),
    markedString.map((s) => `?${pct(s)}=${pct(s)}`),
    fc.constantFrom(
      "?limit=0",
      "?limit=1000",
      "?limit=-1",
      "?limit=1.5",
      "?before=0",
      "?before=9007199254740993",
      "?before=12345678901234567",
      "?__proto__=1",
      "?constructor=x",
      "?limit=1&limit=2",
    ),
  ),
);

/** The moderator claim in hostile forms (none names the room as a safe integer, except "room" itself). */
const modClaim = (room: number) =>
  fc.constantFrom(
    `[${room + 1}]`,
    `[${room}.5]`,
    "[1e400]",
    "[9007199254740993]",
    `{"0":${room}}`,
    `["${MARKER}"]`,
    `[-${room}]`,
    `[[${room}]]`,
    `"${room}"`,
    `[${Array.from({ length: 1001 }, () => room).join(",")}]`,
  );

interface GeneratedToken {
  kind: TokenKind;
  auth: string | undefined;
}

function tokenFor(room: number, kinds: TokenKind[]): fc.Arbitrary<GeneratedToken> {
  return fc.constantFrom(...kinds).chain((kind): fc.Arbitrary<GeneratedToken> => {
    switch (kind) {
      case "presenter":
        return fc.constant({ kind, auth: `Bearer ${validToken(room)}` });
      case "viewer":
        return fc
          .integer({ min: 1, max: 2 ** 31 })
          .filter((u) => u !== room)
          .map((u) => ({ kind, auth: `Bearer ${validToken(u)}` }));
      case "mod-claim":
        return fc
          .tuple(
            modClaim(room),
            fc.integer({ min: 1, max: 2 ** 31 }).filter((u) => u !== room),
          )
          .map(([claim, u]) => ({
            kind,
            auth: `Bearer ${signRaw(`{"user_idx":${u},"nickname":"${MARKER}","mod_rooms":${claim},"exp":${exp()}}`)}`,
          }));
      case "forged":
        return fc.oneof(
          hostileToken.map((tok) => ({ kind, auth: `Bearer ${tok}` })),
          fc.constantFrom(
            { kind, auth: `Basic ${Buffer.from(`${MARKER}:x`).toString("base64")}` },
            { kind, auth: `Bearer ${signRaw(`{"user_idx":${room},"exp":${exp()}}`, `x${MARKER}`)}` },
          ),
        );
      case "none":
        return fc.constant({ kind, auth: undefined });
    }
  });
}

/** A body for the route: its shape with hostile fields (mostly), any JSON, truncated, invalid UTF-8, empty. */
function bodyFor(spec: RouteSpec): fc.Arbitrary<{ kind: BodyKind; bytes: Buffer | undefined }> {
  const shape = spec.body;
  const hostile = fc.oneof(
    anyHostileValue.map((j) => Buffer.from(render(j))),
    fc.constantFrom(
      Buffer.from(deepArray(5000)),
      Buffer.from(deepObject(5000, "terms", JSON.stringify(MARKER))),
      Buffer.from(`{"__proto__":{"terms":["${MARKER}"],"durationS":5}}`),
      Buffer.from(`{"constructor":{"prototype":{"reason":"${MARKER}"}}}`),
      Buffer.from(`{"terms":["a"],"terms":{"toString":"${MARKER}"}}`),
      Buffer.concat([Buffer.from(`{"reason":"${MARKER}`), Buffer.from([0xed, 0xa0, 0x80, 0xff]), Buffer.from('"}')]),
      Buffer.from(`{"terms":["${MARKER}"`),
      Buffer.from(""),
      Buffer.from(" "),
      Buffer.from(`\ufeff{"terms":["${MARKER}"]}`),
      Buffer.from(`{"terms":["${MARKER}"]}`, "utf16le"),
    ),
  );
  if (shape === undefined) {
    return fc.oneof(
      { weight: 4, arbitrary: fc.constant({ kind: "none" as BodyKind, bytes: undefined }) },
      { weight: 1, arbitrary: hostile.map((bytes) => ({ kind: "hostile" as BodyKind, bytes })) },
    );
  }
  return fc.oneof(
    { weight: 6, arbitrary: shape.map((j) => ({ kind: "shaped" as BodyKind, bytes: Buffer.from(render(j)) })) },
    { weight: 2, arbitrary: hostile.map((bytes) => ({ kind: "hostile" as BodyKind, bytes })) },
    ...(spec.name === "PUT ban" ? [fc.constant({ kind: "none" as BodyKind, bytes: undefined })] : []),
  );
}

function requestFor(spec: RouteSpec, roomArb: fc.Arbitrary<number>, kinds: TokenKind[], hostileRoom: boolean) {
  return roomArb.chain((room) =>
    fc
      .record({
        roomSeg: hostileRoom ? roomSegment(room) : fc.constant(String(room)),
        id: idSegment,
        query: spec.path === "audit" ? auditQuery : fc.constant(""),
        token: tokenFor(room, kinds),
        type: mostly(fc.constant<string | undefined>("application/json"), contentType),
        body: bodyFor(spec),
        requestId: fc.option(markedString.map(pct), { nil: undefined, freq: 4 }),
      })
      .map(({ roomSeg, id, query, token, type, body, requestId }): ModRequest => {
        const headers: [string, string][] = [];
        if (token.auth !== undefined) headers.push(["authorization", token.auth]);
        if (body.bytes !== undefined && type !== undefined) headers.push(["content-type", type]);
        if (requestId !== undefined) headers.push([`x-${MARKER}`, requestId]);
        return {
          route: spec.name,
          method: spec.method,
          target: `/v1/rooms/${roomSeg}/${spec.path.replace(":id", id)}${query}`,
          headers,
          body: body.bytes,
          token: token.kind,
          publicRead: spec.publicRead === true,
        };
      }),
  );
}

function describe(r: ModRequest): string {
  const body = r.body === undefined ? "" : ` body ${JSON.stringify(r.body.toString("utf8").slice(0, 300))}`;
  return `${r.route}: ${r.method} ${r.target.slice(0, 300)} token=${r.token} headers ${JSON.stringify(r.headers).slice(0, 400)}${body}`;
}

// ---------------------------------------------------------------- answers

/** The answer without the parts that show stored data back to the room's moderators. */
function withoutStoredData(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutStoredData);
  if (typeof v !== "object" || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, value] of Object.entries(v)) if (k !== "terms" && k !== "target") out[k] = withoutStoredData(value);
  return out;
}

function headerEcho(res: RawResponse): string | undefined {
  for (const [name, value] of Object.entries(res.headers)) {
    if (name !== "x-request-id" && containsMarker(value)) return `header ${name} echoes client input`;
  }
  return undefined;
}

/** Why `res` is not a right answer to `r`, or undefined. */
function answerProblem(r: ModRequest, res: RawResponse): string | undefined {
  if (res.status === 0) return "the server closed the connection without an answer";
  if (res.status >= 500) return `server error ${res.status}`;
  const echo = headerEcho(res);
  if (echo) return echo;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(res.body.toString("utf8")) as Record<string, unknown>;
  } catch {
    return "the body is not JSON";
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "the body is not a JSON object";
  if (res.status >= 200 && res.status < 300) {
    // Only the room's presenter (or a token whose claim names the room) may change or read private
    // state; settings and moderators are readable with any verified token.
    const verified = r.token === "presenter" || r.token === "viewer" || r.token === "mod-claim";
    const mayAccept = r.token === "presenter" || r.token === "mod-claim" || (r.publicRead && verified);
    if (!mayAccept) return `accepted (${res.status}) with a ${r.token} token`;
    if (containsMarker(JSON.stringify(withoutStoredData(body)))) return "the accepted answer echoes client input";
    if (r.route === "GET audit") {
      return Array.isArray(body.items) && (body.nextBefore === null || Number.isSafeInteger(body.nextBefore))
        ? undefined
        : "not an audit page";
    }
    if (!Number.isSafeInteger(body.roomId) || !Number.isSafeInteger(body.version)) return "no roomId/version";
    if (r.method !== "GET") {
      if (!Number.isSafeInteger(body.seq)) return "a change without its seq";
      if (!MODERATION_ACTIONS.includes(body.action as never)) return "a change without a known action";
    }
    return undefined;
  }
  if (!REFUSALS.has(res.status)) return `status ${res.status} is not a refusal the contract allows`;
  if (containsMarker(res.body)) return "the refusal echoes client input";
  const type = res.headers["content-type"] ?? "";
  if (!/^application\/problem\+json/.test(type)) return `content-type ${type}, expected application/problem+json`;
  if (body.status !== res.status) return `problem status ${String(body.status)} differs from ${res.status}`;
  if (typeof body.code !== "string" || typeof body.type !== "string" || typeof body.title !== "string")
    return "problem without code/type/title";
  if (body.detail !== undefined && typeof body.detail !== "string") return "problem detail is not a string";
  if ((r.token === "none" || r.token === "forged") && res.status === 403) return "an unverified token got 403, not 401";
  return undefined;
}

function codeOf(res: RawResponse): string {
  try {
    const body = JSON.parse(res.body.toString("utf8")) as Record<string, unknown>;
    return typeof body.code === "string" ? body.code : res.status < 300 ? "ok" : "-";
  } catch {
    return "-";
  }
}

async function exchange(r: ModRequest): Promise<RawResponse> {
  const bytes = buildRequest(r.method, r.target, r.headers, r.body);
  const res = await rawExchange(node.port, bytes).catch(async (err: Error) => {
    if (await node.diedSoon()) node.assertRunning(describe(r));
    throw new Error(`${describe(r)}: ${err.message}`);
  });
  if (res.status === 0 && (await node.diedSoon())) node.assertRunning(describe(r));
  node.assertRunning(describe(r));
  return res;
}

async function restProperty(t: Test, name: string, seed: number, runs: number, arb: fc.Arbitrary<ModRequest>) {
  const answers = new Map<string, number>();
  await runProperty(
    t,
    name,
    seed,
    runs,
    fc.asyncProperty(arb, async (r) => {
      const res = await exchange(r);
      const key = `${r.route} ${res.status} ${codeOf(res)}`;
      answers.set(key, (answers.get(key) ?? 0) + 1);
      const problem = answerProblem(r, res);
      if (problem) {
        throw new Error(
          `${problem}\n  request: ${describe(r)}\n  answer: ${res.status} ${res.body.toString("utf8").slice(0, 400)}`,
        );
      }
    }),
  );
  t.comment(
    `${name} answers: ${[...answers]
      .sort()
      .map(([k, n]) => `${k} x${n}`)
      .join(", ")}`,
  );
  await assertServing(t, node, name);
}

const anyRoute = fc.constantFrom(...ROUTES);
const ALL_TOKENS: TokenKind[] = ["presenter", "presenter", "presenter", "viewer", "mod-claim", "forged", "none"];

t.test("every moderation route: hostile ids, bodies, tokens and content types", async (t) => {
  await restProperty(
    t,
    "moderation REST",
    SEED + 1,
    800,
    anyRoute.chain((spec) => requestFor(spec, hostileRoomId, ALL_TOKENS, true)),
  );
});

t.test("refused requests change nothing: viewer, forged, claimless and missing tokens", async (t) => {
  // The watched room has state of every kind, set by its presenter.
  const setup: [string, string, object?][] = [
    ["PUT", "settings", { slowModeS: 5, maxTextLength: 300 }],
    ["PUT", "moderators/4242", undefined],
    ["PUT", "bans/5", { reason: "spam" }],
    ["PUT", "timeouts/6", { durationS: 3600 }],
    ["POST", "blocked-terms", { terms: ["alpha", "beta"] }],
  ];
  for (const [method, path, body] of setup) {
    const res = await call(node.http, method, `/v1/rooms/${WATCHED_ROOM}/${path}`, WATCHED_ROOM, body);
    t.equal(res.status, 200, `setup ${method} ${path}`);
  }
  const before = await snapshot(node.http, WATCHED_ROOM);
  t.equal(before.auditLength, setup.length, "the audit shows the setup");

  // A valid shaped body reaches authorisation; hostile ones are refused earlier. Either way nothing may change.
  const mutating = ROUTES.filter((r) => r.mutates);
  await restProperty(
    t,
    "refused moderation changes",
    SEED + 2,
    400,
    fc
      .constantFrom(...mutating)
      .chain((spec) =>
        requestFor(spec, fc.constant(WATCHED_ROOM), ["viewer", "viewer", "mod-claim", "forged", "none"], false),
      ),
  );
  const after = await snapshot(node.http, WATCHED_ROOM);
  t.same(after, before, "settings, moderators, bans, terms and audit unchanged by refused requests");
});

// ---------------------------------------------------------------- frames

/** `moderate` frames with each action's fields, hostile values, unknown fields, and unknown actions. */
const moderateFrame: fc.Arbitrary<string> = (() => {
  const action = mostly(
    fc.constantFrom(...MODERATION_ACTIONS).map(str),
    fc.oneof(
      markedString.map(str),
      wrongValue,
      fc.constantFrom(str("BAN"), str("ban\u0000"), str("__proto__"), str("constructor"), str("toString")),
    ),
  );
  const id = mostly(
    fc.integer({ min: 1, max: 2 ** 31 }).map((n) => raw(String(n))),
    fc.oneof(
      wrongValue,
      fc.constantFrom(raw("0"), raw("-1"), raw("9007199254740992"), raw("1e400"), raw("-0"), str("7")),
    ),
  );
  const duration = mostly(
    fc.integer({ min: 1, max: 1_209_600 }).map((n) => raw(String(n))),
    wrongValue,
  );
  /** Each action's own fields (so many frames get past the decoder), with hostile values. */
  const fieldsOf = (a: JsonTree): fc.Arbitrary<[string, JsonTree][]>[] => {
    const name = a.k === "str" ? a.v : "";
    switch (name) {
      case "settings":
        return [fieldOf("settings", mostly(settingsBody, wrongValue))];
      case "moderator_add":
      case "moderator_remove":
      case "unban":
        return [fieldOf("userId", id)];
      case "ban":
        return [fieldOf("userId", id), fieldOf("reason", hostileText)];
      case "timeout":
        return [fieldOf("userId", id), fieldOf("durationS", duration), fieldOf("reason", hostileText)];
      case "terms_add":
      case "terms_remove":
        return [fieldOf("terms", termsValue)];
      case "delete":
        return [fieldOf("targetSeq", id)];
      default:
        // clear, or an action that is not one: any field of any action.
        return [
          fc.oneof(
            fc.constant<[string, JsonTree][]>([]),
            fieldOf("userId", id),
            fieldOf("terms", termsValue),
            fieldOf("settings", settingsBody),
          ),
        ];
    }
  };
  const frame = action
    .chain((a) =>
      shaped(
        fc.constant<[string, JsonTree][]>([
          ["type", str("moderate")],
          ["action", a],
        ]),
        ...fieldsOf(a),
      ),
    )
    .map(render);
  return fc.oneof(
    { weight: 12, arbitrary: frame },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        `{"type":"moderate","action":"terms_add","terms":${deepArray(5000, JSON.stringify(MARKER))}}`,
        `{"type":"moderate","action":"settings","settings":${deepObject(5000, "slowModeS")}}`,
        `{"type":"moderate"}`,
        `{"type":"moderate","__proto__":{"action":"clear"}}`,
        `{"type":"moderate","action":"clear","constructor":{"prototype":{"x":"${MARKER}"}}}`,
        `{"type":"moderate","action":"ban","userId":7,"action":{"toString":"${MARKER}"}}`,
        `{"type":"moderate","action":"ban","userId":7,"reason":"\\ud800${MARKER}"}`,
        `{"type":"moderate","action":"timeout","userId":7,"durationS":1e400}`,
        `{"type":"moderate","action":"delete","targetSeq":9007199254740993}`,
        `{"type":"moderate","action":"settings","settings":{"__proto__":{"slowModeS":1}}}`,
        `{"type":"moderate","action":"terms_add","terms":[${Array.from({ length: 2000 }, (_, i) => `"${MARKER}${i}"`).join(",")}]}`,
        `{"type":"moderate","action":"terms_add","terms":["${MARKER.repeat(90)}"]}`,
        `{"type":"moderate","action":"ban","userId":7,"reason":"${MARKER.repeat(40)}"}`,
      ),
    },
  );
})();

const FRAME_KEYS: Record<string, string> = {
  error: "code,message,type",
  moderated: "action,seq,type",
  pong: "type",
};

/**
 * Sends one frame; waits for its answer (`moderated` or `error`), then a ping round trip. Between
 * the frame and the pong: exactly one answer, in the documented shape, never an internal error,
 * never the marker outside moderation event data (stored data shown to the room's presenter).
 */
async function probeModerate(socket: TestSocket, frame: string): Promise<string> {
  const from = socket.frames.length;
  const what = JSON.stringify(frame.slice(0, 200));
  socket.ws.send(frame);
  const parsed = (i: number) => socket.frames.slice(from, i).map((f) => JSON.parse(f) as Record<string, unknown>);
  const isAnswer = (f: Record<string, unknown>) => f.type === "error" || f.type === "moderated";
  await socket.until(
    () => socket.closed !== undefined || parsed(socket.frames.length).some(isAnswer),
    `an answer to ${what}`,
    10_000,
  );
  if (socket.closed) throw new Error(`${what}: socket closed ${JSON.stringify(socket.closed)}`);
  const pingFrom = socket.frames.length;
  socket.ws.send('{"type":"ping"}');
  const pongAt = () => socket.frames.findIndex((f, i) => i >= pingFrom && f === '{"type":"pong"}');
  await socket.until(() => socket.closed !== undefined || pongAt() !== -1, `pong after ${what}`, 5000);
  if (socket.closed) throw new Error(`${what}: socket closed ${JSON.stringify(socket.closed)}`);
  const replies = parsed(pongAt());
  const answers = replies.filter(isAnswer);
  if (answers.length !== 1) throw new Error(`${what}: ${answers.length} answers: ${JSON.stringify(replies)}`);
  for (const f of replies) {
    const shown = JSON.stringify(f).slice(0, 300);
    if (f.type === "moderation") {
      if (containsMarker(JSON.stringify({ ...f, data: undefined }))) throw new Error(`${what}: echo in ${shown}`);
      continue;
    }
    if (containsMarker(JSON.stringify(f))) throw new Error(`${what}: reply echoes client input: ${shown}`);
    const keys = Object.keys(f).sort().join(",");
    if (FRAME_KEYS[String(f.type)] !== keys) throw new Error(`${what}: unexpected frame ${shown}`);
    if (f.type === "error") {
      if (typeof f.code !== "string" || typeof f.message !== "string" || f.message.length > 200)
        throw new Error(`${what}: error frame not in our words: ${shown}`);
      if (f.code === "internal_error" || f.code === "service_unavailable")
        throw new Error(`${what}: server-side failure: ${shown}`);
    } else if (f.type === "moderated") {
      if (!MODERATION_ACTIONS.includes(f.action as never) || !Number.isSafeInteger(f.seq))
        throw new Error(`${what}: bad moderated frame ${shown}`);
    }
  }
  return answers[0]?.type === "error" ? String(answers[0].code) : `moderated ${String(answers[0]?.action)}`;
}

t.test("hostile `moderate` frames on the room's own presenter socket", async (t) => {
  const socket = await openV1Presenter(node, FRAME_ROOM);
  const answers = new Map<string, number>();
  await runProperty(
    t,
    "moderate frames",
    SEED + 3,
    600,
    fc.asyncProperty(moderateFrame, async (frame) => {
      const answer = await probeModerate(socket, frame).catch(async (err: Error) => {
        if (await node.diedSoon()) node.assertRunning(frame.slice(0, 200));
        throw err;
      });
      answers.set(answer, (answers.get(answer) ?? 0) + 1);
      node.assertRunning(frame.slice(0, 200));
    }),
  );
  t.comment(
    `moderate frame answers: ${[...answers]
      .sort()
      .map(([k, n]) => `${k} x${n}`)
      .join(", ")}`,
  );
  t.ok(
    [...answers.keys()].some((k) => k.startsWith("moderated")),
    "some generated frames reached the service and applied",
  );
  t.ok(
    [...answers.keys()].some((k) => k !== "invalid_frame" && !k.startsWith("moderated")),
    "some generated frames were refused by the service (past the decoder)",
  );
  socket.close(1000);
  await assertServing(t, node, "moderate frames");
});

t.test("after everything: same process, still serving", async (t) => {
  await assertServing(t, node, "the whole file");
  t.comment(`hostile-moderation: ${Date.now() - started} ms`);
});
