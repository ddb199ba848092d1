import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { anyHostileValue, type JsonTree, MARKER, markedString, obj, raw, render, str } from "./hostile-json.js";
import { buildRequest } from "./hostile-raw-http.js";
import { hostileToken, signRaw } from "./hostile-tokens.js";

export type Route = "seed-post" | "v1-post" | "v1-history" | "v1-presenter" | "unknown-route";

/** A generated request and what it is, for the failure message and the expectations. */
export interface HostileRequest {
  route: Route;
  method: string;
  target: string;
  headers: [string, string][];
  body: Buffer | undefined;
  /** Seed: the gateway secret is missing or wrong, so the only right answer is 401. */
  untrusted?: boolean;
  /** Valid by the schema (extreme values): a 200 is as right as a 4xx. */
  mayAccept?: boolean;
}

export function toBytes(r: HostileRequest): Buffer {
  // An upgrade needs "Connection: Upgrade" (buildRequest would add "Connection: close").
  if (r.route === "v1-presenter")
    return buildRequest(r.method, r.target, [["connection", "Upgrade"], ...r.headers], r.body, false);
  return buildRequest(r.method, r.target, r.headers, r.body);
}

/**
 * Percent-encodes any string, lone surrogates included (encodeURIComponent
 * throws on them; Buffer.from writes U+FFFD, as a client library would).
 */
export function pct(s: string): string {
  let out = "";
  for (const byte of Buffer.from(s, "utf8")) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export function describeRequest(r: HostileRequest): string {
  const body = r.body === undefined ? "" : ` body ${JSON.stringify(r.body.toString("utf8").slice(0, 300))}`;
  return `${r.method} ${r.target.slice(0, 300)} headers ${JSON.stringify(r.headers).slice(0, 600)}${body}`;
}

/** Header-safe text (visible ASCII and spaces) that carries the marker. */
export const markedHeaderValue: fc.Arbitrary<string> = fc
  .tuple(fc.string({ unit: "binary-ascii", maxLength: 12 }), fc.string({ unit: "binary-ascii", maxLength: 12 }))
  .map(([a, b]) => `${a}${MARKER}${b}`.replace(/[^\x20-\x7e]/g, "").trim());

const TCHAR = /[^!#$%&'*+\-.^_`|~0-9A-Za-z]/g;

/** Extra headers: unknown ones named with the marker, and known ones a server might echo or trust. */
const extraHeader: fc.Arbitrary<[string, string]> = fc.oneof(
  fc
    .tuple(fc.string({ unit: "binary-ascii", maxLength: 8 }), markedHeaderValue)
    .map(([name, value]): [string, string] => [`x-${MARKER}${name.replace(TCHAR, "")}`, value]),
  fc.tuple(
    fc.constantFrom(
      "x-request-id",
      "x-forwarded-for",
      "x-real-ip",
      "forwarded",
      "accept",
      "accept-encoding",
      "accept-language",
      "origin",
      "referer",
      "cookie",
      "user-agent",
      "content-encoding",
      "content-language",
      "if-none-match",
      "range",
      "x-http-method-override",
      "upgrade",
      "sec-websocket-key",
      "x-gateway-secret",
    ),
    markedHeaderValue,
  ),
);

export const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 6, arbitrary: fc.constant("application/json") },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      undefined,
      "application/json; charset=utf-8",
      `application/json; charset=${MARKER}`,
      "application/json; charset=utf-16",
      "Application/JSON",
      "text/plain",
      "text/plain; charset=utf-8",
      "application/x-www-form-urlencoded",
      `multipart/form-data; boundary=${MARKER}`,
      `${MARKER}/json`,
      `application/${MARKER}+json`,
      "application/json, text/plain",
      "*/*",
      "",
    ),
  },
);

/** Ids of rooms nobody broadcasts in (the control rooms are excluded). */
export function roomNotLive(live: Set<number>): fc.Arbitrary<number> {
  return fc.integer({ min: 1, max: 2 ** 31 }).filter((n) => !live.has(n));
}

/**
 * Mostly the benign choice, one time in four a hostile one: each request is
 * hostile in a few places at once, so many get past the outer checks and
 * reach the deep ones (text rules, the relay) with hostile values.
 */
function mostly<T>(benign: fc.Arbitrary<T>, hostile: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ weight: 3, arbitrary: benign }, { weight: 1, arbitrary: hostile });
}

/** Path segments where an id belongs that are anything but a safe positive id (past 2^53, prototype names, ...). */
export const HOSTILE_ID_SEGMENTS: readonly string[] = [
  "0",
  "-1",
  "1.5",
  "1e3",
  "0x10",
  "+1",
  "%201",
  "9007199254740993",
  "9999999999999999",
  "99999999999999999999",
  "%00",
  "%2e%2e",
  "1%2f2",
  "__proto__",
  "constructor",
  `${MARKER}%00`,
];

/** A path segment for :roomId: a valid id of a room that is not live, or anything but a room id. */
function roomSegment(live: Set<number>): fc.Arbitrary<string> {
  return mostly(
    roomNotLive(live).map(String),
    fc.oneof(markedString.map(pct), fc.constantFrom(...HOSTILE_ID_SEGMENTS)),
  );
}

const exp = () => Math.floor(Date.now() / 1000) + 3600;

/** A correctly signed token for `user`, its nickname carrying the marker. */
export const validToken = (user: number): string =>
  signRaw(`{"user_idx":${user},"nickname":"${MARKER}\\u0000\\ud800","exp":${exp()}}`);

/** Authorization header values: a valid token for a user who is not live, or anything else. */
function authorization(live: Set<number>): fc.Arbitrary<string | undefined> {
  return mostly(
    roomNotLive(live).map((u) => `Bearer ${validToken(u)}`),
    fc.oneof(
      hostileToken.map((tok) => `Bearer ${tok}`),
      fc.constantFrom(
        undefined,
        "Bearer",
        "Bearer ",
        `Basic ${Buffer.from(`${MARKER}:${MARKER}`).toString("base64")}`,
        MARKER,
        `Bearer ${MARKER} ${MARKER}`,
        `bearer ${MARKER}`,
        `Bearer\t${MARKER}`,
      ),
    ),
  );
}

/** Bodies: shaped like the route's body with hostile fields, any hostile JSON, truncated, not UTF-8, empty. */
function body(shaped: fc.Arbitrary<JsonTree>): fc.Arbitrary<Buffer | undefined> {
  return fc.oneof(
    { weight: 12, arbitrary: shaped.map((j) => Buffer.from(render(j))) },
    { weight: 1, arbitrary: anyHostileValue.map((j) => Buffer.from(render(j))) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(shaped.map(render), fc.nat())
        .filter(([t]) => t.length > 1)
        .map(([t, cut]) => Buffer.from(t.slice(0, 1 + (cut % (t.length - 1))))),
    },
    {
      weight: 1,
      arbitrary: shaped.map((j) => {
        const text = render(j);
        const at = text.indexOf(MARKER);
        if (at === -1) return Buffer.concat([Buffer.from(text), Buffer.from([0xff])]);
        return Buffer.concat([
          Buffer.from(text.slice(0, at)),
          Buffer.from([0xc0, 0x80, 0xff]),
          Buffer.from(text.slice(at)),
        ]);
      }),
    },
    { weight: 1, arbitrary: fc.constantFrom(undefined, Buffer.alloc(0), Buffer.from(" ")) },
  );
}

/** A field of a shaped body: usually present (benign or hostile value), sometimes absent. */
function field(name: string, values: fc.Arbitrary<JsonTree>): fc.Arbitrary<[string, JsonTree][]> {
  return fc.option(values, { nil: undefined, freq: 8 }).map((v) => (v === undefined ? [] : [[name, v]]));
}

/** Message texts: marked Unicode (lone surrogates, controls, BOM...), too long, or not a string. */
const markedText: fc.Arbitrary<JsonTree> = fc.oneof(
  { weight: 6, arbitrary: markedString.map(str) },
  // Over MAX_TEXT_LENGTH and, sometimes, over BODY_LIMIT_BYTES.
  {
    weight: 1,
    arbitrary: fc.integer({ min: 400, max: 20_000 }).map((n) => str(MARKER.repeat(Math.ceil(n / MARKER.length)))),
  },
  { weight: 1, arbitrary: anyHostileValue },
);

function shapedObject(...fields: fc.Arbitrary<[string, JsonTree][]>[]): fc.Arbitrary<JsonTree> {
  const extras = fc.oneof(
    { weight: 3, arbitrary: fc.constant([] as [string, JsonTree][]) },
    {
      weight: 1,
      arbitrary: fc.array(
        fc.tuple(fc.oneof(markedString, fc.constantFrom("__proto__", "constructor", "toString")), anyHostileValue),
        { minLength: 1, maxLength: 3 },
      ),
    },
  );
  return fc.tuple(fc.tuple(...fields), extras, fc.nat()).map(([parts, extra, at]) => {
    const entries = parts.flat();
    entries.splice(at % (entries.length + 1), 0, ...extra);
    return { k: "obj", entries } as JsonTree;
  });
}

const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 8 });
const extraHeaders = fc.oneof(
  { weight: 1, arbitrary: fc.constant([] as [string, string][]) },
  { weight: 1, arbitrary: fc.array(extraHeader, { minLength: 1, maxLength: 3 }) },
);
const jsonType = mostly(fc.constant<string | undefined>("application/json"), contentType);

function headerList(pairs: [string, string | undefined][], extra: [string, string][]): [string, string][] {
  const out: [string, string][] = [];
  for (const [name, value] of pairs) if (value !== undefined) out.push([name, value]);
  return [...out, ...extra];
}

/** POST /send/message as a hostile gateway (or a client pretending to be one) would send it. */
export function seedPost(secret: string, live: Set<number>): fc.Arbitrary<HostileRequest> {
  const shaped = shapedObject(
    field(
      "presenterIdx",
      mostly(
        roomNotLive(live).map((n) => raw(String(n))),
        fc.oneof(fc.constant(raw("null")), anyHostileValue),
      ),
    ),
    field("userType", mostly(fc.constantFrom(str("viewer"), str("presenter")), anyHostileValue)),
    field("textMessage", markedText),
  );
  return fc
    .record({
      secret: fc.oneof(
        { weight: 8, arbitrary: fc.constant("ok") },
        { weight: 1, arbitrary: fc.constantFrom("missing", "wrong", "twice") },
      ),
      userIdx: maybe(
        mostly(
          roomNotLive(live).map(String),
          fc.oneof(
            markedHeaderValue,
            fc.constantFrom("0", "-1", "1e3", "0x10", "9007199254740993", "99999999999999999", "1, 2", "", "7 7"),
          ),
        ),
      ),
      email: maybe(mostly(markedHeaderValue, fc.constant(""))),
      nickname: maybe(
        mostly(
          markedString.map(pct),
          fc.oneof(
            markedHeaderValue,
            fc.constantFrom(`%E0%A4%A${MARKER}`, `%00${MARKER}`, `%ZZ${MARKER}`, `${MARKER}%`, `%ED%A0%80${MARKER}`),
          ),
        ),
      ),
      type: jsonType,
      body: body(shaped),
      extra: extraHeaders,
    })
    .map(({ secret: s, userIdx, email, nickname, type, body: b, extra }): HostileRequest => {
      const secretHeaders: [string, string][] =
        s === "ok"
          ? [["x-gateway-secret", secret]]
          : s === "wrong"
            ? [["x-gateway-secret", `${secret.slice(0, -4)}${MARKER.slice(0, 4)}`]]
            : s === "twice"
              ? [
                  ["x-gateway-secret", secret],
                  ["x-gateway-secret", MARKER],
                ]
              : [];
      return {
        route: "seed-post",
        method: "POST",
        target: "/send/message",
        headers: [
          ...secretHeaders,
          ...headerList(
            [
              ["x-forward-userIdx", userIdx],
              ["x-forward-email", email],
              ["x-forward-nickname", nickname],
              ["content-type", type],
            ],
            extra.filter(([name]) => name !== "x-gateway-secret"),
          ),
        ],
        body: b,
        untrusted: s !== "ok",
      };
    });
}

/** POST /v1/rooms/:roomId/messages. */
export function v1Post(live: Set<number>): fc.Arbitrary<HostileRequest> {
  const shaped = shapedObject(
    field("text", markedText),
    fc
      .option(
        mostly(
          fc.string({ unit: fc.constantFrom(..."abcXYZ019._:-"), maxLength: 20 }).map((id) => str(`${MARKER}${id}`)),
          fc.oneof(markedString.map(str), anyHostileValue),
        ),
        { nil: undefined, freq: 2 },
      )
      .map((v): [string, JsonTree][] => (v === undefined ? [] : [["clientMsgId", v]])),
  );
  return fc
    .record({
      room: roomSegment(live),
      auth: authorization(live),
      type: jsonType,
      body: body(shaped),
      extra: extraHeaders,
    })
    .map(
      ({ room, auth, type, body: b, extra }): HostileRequest => ({
        route: "v1-post",
        method: "POST",
        target: `/v1/rooms/${room}/messages`,
        headers: headerList(
          [
            ["authorization", auth],
            ["content-type", type],
          ],
          extra,
        ),
        body: b,
      }),
    );
}

const queryPair = (k: string, v: string) => `${pct(k)}=${pct(v)}`;

const BAD_NUMBERS = ["0", "-1", "1.5", "1e3", "0x10", "", " 1", "01", "99999999999999999999", "NaN", "Infinity"];

/** One query parameter that no valid request has: a marked value for a known key, a bad number, or an unknown key. */
const hostileCursor: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.constantFrom("before", "limit", "lastSeq"), markedString).map(([k, v]) => queryPair(k, v)),
  // Values outside each key's pattern (before: 1-16 digits, no leading 0; limit: 1-4 digits).
  fc.tuple(fc.constantFrom("before", "limit"), fc.constantFrom(...BAD_NUMBERS)).map(([k, v]) => queryPair(k, v)),
  fc.constant(queryPair("limit", "10000")),
  fc.constant(queryPair("before", "12345678901234567")),
  fc.tuple(markedString, markedString).map(([k, v]) => queryPair(k, v)),
  fc
    .tuple(fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty"), markedString)
    .map(([k, v]) => queryPair(k, v)),
);

/**
 * Valid by the schema but extreme: a cursor beyond 2^53, the largest limit.
 * The answer may be a 200 (an empty page), never a 5xx.
 */
const extremeCursor: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom("before=9999999999999999", "before=9007199254740993", "before=1", "before=2"),
    fc.constantFrom("limit=9999", "limit=1000", "limit=1", ""),
  )
  .map(([b, l]) => [b, l].filter(Boolean).join("&"));

const extraPair: fc.Arbitrary<string> = fc.constantFrom(
  "before=5",
  "limit=10",
  "before=1&before=2",
  "limit=1&limit=2",
  "before",
  "limit=",
  "&&",
  "=",
);

function query(mandatory: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(mandatory, fc.array(extraPair, { maxLength: 2 }), fc.nat()).map(([m, extra, at]) => {
    const all = [...extra];
    all.splice(at % (all.length + 1), 0, m);
    return all.join("&");
  });
}

/** GET /v1/rooms/:roomId/messages: a bad query parameter, or extreme cursors (which may succeed). */
export function v1History(live: Set<number>): fc.Arbitrary<HostileRequest> {
  return fc
    .record({
      room: roomSegment(live),
      auth: authorization(live),
      q: fc.oneof(
        { weight: 3, arbitrary: query(hostileCursor).map((q) => ({ q, mayAccept: false })) },
        { weight: 1, arbitrary: extremeCursor.map((q) => ({ q, mayAccept: true })) },
      ),
      extra: extraHeaders,
    })
    .map(
      ({ room, auth, q, extra }): HostileRequest => ({
        route: "v1-history",
        method: "GET",
        target: `/v1/rooms/${room}/messages?${q.q}`,
        headers: headerList([["authorization", auth]], extra),
        body: undefined,
        mayAccept: q.mayAccept,
      }),
    );
}

/**
 * The v1 presenter upgrade with something wrong: a token that is not the
 * room's presenter's, a bad lastSeq, or an unknown parameter. Never a 101.
 */
export function v1PresenterUpgrade(live: Set<number>): fc.Arbitrary<HostileRequest> {
  // What is wrong with the request, given its room.
  const bad: fc.Arbitrary<(room: number) => string[]> = fc.oneof(
    hostileToken.map((tok) => () => [queryPair("access_token", tok)]),
    // A valid token of another user.
    fc.constant((room: number) => [queryPair("access_token", validToken(room + 1))]),
    hostileCursor.map((p) => (room: number) => [p, queryPair("access_token", validToken(room))]),
  );
  return fc.record({ room: roomNotLive(live), bad, headers: fc.array(extraHeader, { maxLength: 2 }) }).map(
    ({ room, bad: params, headers }): HostileRequest => ({
      route: "v1-presenter",
      method: "GET",
      target: `/v1/rooms/${room}/presenter?${params(room).join("&")}`,
      headers: [
        ["upgrade", "websocket"],
        ["sec-websocket-version", "13"],
        ["sec-websocket-key", randomBytes(16).toString("base64")],
        ...headers.filter(([name]) => !["upgrade", "sec-websocket-key"].includes(name)),
      ],
      body: undefined,
    }),
  );
}

/** Paths no route serves, carrying the marker. */
export const unknownRoute: fc.Arbitrary<HostileRequest> = fc
  .record({
    method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
    path: fc.oneof(
      markedString.map((s) => `/${pct(s)}`),
      markedString.map((s) => `/v1/rooms/1/${pct(s)}`),
      markedString.map((s) => `/send/${pct(s)}`),
      markedString.map((s) => `/v1/${pct(s)}/messages`),
    ),
  })
  .map(
    ({ method, path }): HostileRequest => ({
      route: "unknown-route",
      method,
      target: path,
      headers: [],
      body: undefined,
    }),
  );

/** Literal room bodies for hand-built cases. */
export const seedBody = (presenterIdx: JsonTree, text: JsonTree, extra: [string, JsonTree][] = []) =>
  render(obj(["presenterIdx", presenterIdx], ["userType", str("viewer")], ["textMessage", text], ...extra));
