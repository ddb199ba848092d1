import { randomBytes } from "node:crypto";
import fc from "fast-check";

/**
 * A string no server could produce by itself. Every generated key and string
 * value carries it, so any reply that contains it echoed client input.
 * Compared case-insensitively (Node lower-cases header names; a server might
 * lower-case other things).
 */
export const MARKER = `ZQXJ${randomBytes(4).toString("hex")}`;

export function containsMarker(text: string | Buffer | undefined): boolean {
  if (text === undefined) return false;
  const s = Buffer.isBuffer(text) ? text.toString("latin1") : text;
  return s.toLowerCase().includes(MARKER.toLowerCase());
}

/**
 * JSON as a syntax tree, so frames can hold what JSON.stringify never writes:
 * raw number texts (1e400, -0, 9007199254740993, 20,000 digits), duplicate keys.
 */
export type JsonTree =
  | { k: "raw"; text: string }
  | { k: "str"; v: string }
  | { k: "arr"; items: JsonTree[] }
  | { k: "obj"; entries: [string, JsonTree][] };

/** Renders without whitespace, so a proper prefix of an object or array is never valid JSON. */
export function render(j: JsonTree): string {
  switch (j.k) {
    case "raw":
      return j.text;
    case "str":
      // JSON.stringify escapes lone surrogates (\ud800), so they arrive as such after JSON.parse.
      return JSON.stringify(j.v);
    case "arr":
      return `[${j.items.map(render).join(",")}]`;
    case "obj":
      return `{${j.entries.map(([key, value]) => `${JSON.stringify(key)}:${render(value)}`).join(",")}}`;
  }
}

export const str = (v: string): JsonTree => ({ k: "str", v });
export const raw = (text: string): JsonTree => ({ k: "raw", text });
export const obj = (...entries: [string, JsonTree][]): JsonTree => ({ k: "obj", entries });

/** Odd tails for marked strings: lone surrogates, NUL, separators, BOM, injection-looking text. */
const oddTail = fc.constantFrom(
  "",
  "\ud800",
  "\udfff",
  "x\udc00y",
  "\udbff\u0000",
  "\u0000",
  "\u0007\u001b[31m",
  "\u0085",
  "\u2028\u2029",
  "\ufeff",
  "%00",
  "%E0%A4%A",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: template-injection bait, meant literally
  "${7*7}",
  "{{7*7}}",
  "<script>alert(1)</script>",
  '\\"',
  "../../etc/passwd",
  "\r\nx-injected: 1",
  "😀".repeat(3),
);

/** A string that always carries the marker, with arbitrary Unicode (any code point) around it. */
export const markedString: fc.Arbitrary<string> = fc
  .tuple(fc.string({ unit: "binary", maxLength: 6 }), fc.string({ unit: "binary", maxLength: 10 }), oddTail)
  .map(([head, tail, odd]) => `${head}${MARKER}${tail}${odd}`);

/** Number texts that stress parsers: overflow, underflow, -0, beyond 2^53, very long. */
export const rawNumber: fc.Arbitrary<JsonTree> = fc
  .oneof(
    fc.constantFrom(
      "1e400",
      "-1e400",
      "-0",
      "0",
      "9007199254740993",
      "-9007199254740993",
      "18446744073709551616",
      "1e-400",
      "2e-324",
      "1.7976931348623157e309",
      "123456789012345678901234567890",
      "0.1",
      "1E+2",
      "-1",
      "4294967296",
      "1.5",
    ),
    fc.integer().map(String),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  )
  .map(raw);

const literal: fc.Arbitrary<JsonTree> = fc.constantFrom("true", "false", "null").map(raw);

/** Keys a careless handler trips over (prototype members, our own field names) or that carry the marker. */
export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: markedString },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "toString",
      "valueOf",
      "__proto__",
      "constructor",
      "prototype",
      "hasOwnProperty",
      "isPrototypeOf",
      "toJSON",
      "__defineGetter__",
      "then",
      "length",
      "id",
      "type",
      "seq",
      "token",
      "lastSeq",
      "ready",
      "text",
      "clientMsgId",
    ),
  },
);

/** Leaves never include a bare string without the marker: no generated value can be a valid discriminator. */
const leaf: fc.Arbitrary<JsonTree> = fc.oneof(markedString.map(str), rawNumber, literal);

/** Any JSON value built from hostile keys and leaves (fc.letrec). */
export const hostileTree: fc.Arbitrary<JsonTree> = fc.letrec<{ value: JsonTree; arr: JsonTree; obj: JsonTree }>(
  (tie) => ({
    value: fc.oneof({ depthSize: "small", withCrossShrink: true }, leaf, tie("arr"), tie("obj")),
    arr: fc.array(tie("value"), { maxLength: 4 }).map((items): JsonTree => ({ k: "arr", items })),
    obj: fc
      .array(fc.tuple(hostileKey, tie("value")), { maxLength: 5 })
      .map((entries): JsonTree => ({ k: "obj", entries })),
  }),
).value;

/** fc.jsonValue with the marker put into every key and string. */
export const markedJsonValue: fc.Arbitrary<JsonTree> = fc.jsonValue({ maxDepth: 3 }).map(mark);

function mark(v: unknown): JsonTree {
  if (typeof v === "string") return str(MARKER + v);
  if (typeof v === "number") return raw(JSON.stringify(v));
  if (v === null || typeof v === "boolean") return raw(String(v));
  if (Array.isArray(v)) return { k: "arr", items: v.map(mark) };
  return { k: "obj", entries: Object.entries(v as object).map(([key, value]) => [MARKER + key, mark(value)]) };
}

export const anyHostileValue: fc.Arbitrary<JsonTree> = fc.oneof(hostileTree, markedJsonValue);

/** An object whose `discriminator` field (if present) is never a valid value, among hostile entries. */
export function hostileObject(discriminator: string): fc.Arbitrary<JsonTree> {
  return fc
    .tuple(
      fc.array(fc.tuple(hostileKey, anyHostileValue), { maxLength: 5 }),
      fc.option(anyHostileValue, { nil: undefined }),
      fc.nat(),
    )
    .map(([entries, tag, at]): JsonTree => {
      const all = [...entries];
      if (tag !== undefined) all.splice(at % (all.length + 1), 0, [discriminator, tag]);
      return { k: "obj", entries: all };
    });
}

/** n-deep nesting, built as text (JSON.stringify would recurse). */
export function deepArray(depth: number, inner = ""): string {
  return "[".repeat(depth) + inner + "]".repeat(depth);
}

export function deepObject(depth: number, key: string, inner = "1"): string {
  return `{${JSON.stringify(key)}:`.repeat(depth) + inner + "}".repeat(depth);
}

/** Byte sequences that are not UTF-8: stray continuation, overlong, surrogate, truncated, out of range. */
export const INVALID_UTF8: Buffer[] = [
  Buffer.from([0xff]),
  Buffer.from([0xfe, 0xff]),
  Buffer.from([0x80]),
  Buffer.from([0xc0, 0x80]),
  Buffer.from([0xc1, 0xbf]),
  Buffer.from([0xe0, 0x80, 0x80]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
];

export const invalidUtf8Bytes: fc.Arbitrary<Buffer> = fc
  .tuple(fc.constantFrom(...INVALID_UTF8), fc.nat({ max: 2 }), fc.string({ unit: "grapheme-ascii", maxLength: 8 }))
  .map(([bad, where, pad]) => {
    const marked = Buffer.from(`{"id":"${MARKER}${pad}","type":"${MARKER}"}`);
    // The bad bytes go before, inside or after an otherwise valid, marked JSON text.
    if (where === 0) return Buffer.concat([bad, marked]);
    if (where === 1) return Buffer.concat([marked.subarray(0, 8), bad, marked.subarray(8)]);
    return Buffer.concat([marked, bad]);
  });
