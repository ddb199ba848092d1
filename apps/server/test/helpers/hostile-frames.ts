import fc from "fast-check";
import {
  anyHostileValue,
  deepArray,
  deepObject,
  hostileObject,
  MARKER,
  markedString,
  obj,
  raw,
  render,
  str,
} from "./hostile-json.js";

export type Surface = "v1" | "seed";

/** One WebSocket frame a hostile presenter sends: text (maybe not UTF-8) or binary. */
export interface HostileFrame {
  what: string;
  data: string | Buffer;
  binary: boolean;
}

const text = (what: string, data: string): HostileFrame => ({ what, data, binary: false });

/** The field that names a frame's kind on each surface. */
export const discriminatorOf = (surface: Surface): string => (surface === "v1" ? "type" : "id");

/**
 * Generated bad frames: none is a valid command on either surface, so each
 * must get exactly one error frame (and count against the bad-frame limit).
 */
export function hostileFrame(surface: Surface): fc.Arbitrary<HostileFrame> {
  const objectText = hostileObject(discriminatorOf(surface)).map(render);
  return fc.oneof(
    { weight: 5, arbitrary: objectText.map((t) => text("object", t)) },
    { weight: 2, arbitrary: anyHostileValue.map((v) => text("any JSON value", render(v))) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          objectText.filter((t) => t.length > 1),
          fc.nat(),
        )
        .map(([t, cut]) => text("truncated JSON", t.slice(0, 1 + (cut % (t.length - 1))))),
    },
    { weight: 1, arbitrary: markedString.map((s) => text("not JSON", s)) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.uint8Array({ maxLength: 64 }), objectText).map(
        ([bytes, t]): HostileFrame => ({
          what: "binary",
          data: Buffer.concat([Buffer.from(bytes), Buffer.from(t)]),
          binary: true,
        }),
      ),
    },
    { weight: 1, arbitrary: fc.constant(text("empty text frame", "")) },
  );
}

/**
 * Hand-built bad frames every surface must survive: prototype keys, deep
 * nesting (5,000 levels), numbers JSON.stringify never writes, lone
 * surrogates, almost-valid commands with wrong field types.
 */
export function handBuiltFrames(surface: Surface): HostileFrame[] {
  const d = discriminatorOf(surface);
  const frames: HostileFrame[] = [
    text("5,000-deep array", deepArray(5000)),
    text("5,000-deep array around the marker", deepArray(5000, JSON.stringify(MARKER))),
    text("5,000-deep object", deepObject(5000, "a")),
    text(`5,000-deep object under "${d}"`, `{"${d}":${deepObject(5000, "a", JSON.stringify(MARKER))}}`),
    text("20,000 unclosed brackets", "[".repeat(20_000)),
    text(`{"${d}":{"toString":1}}`, `{"${d}":{"toString":1}}`),
    text(`{"${d}":{"toString":"x","valueOf":"y"}}`, `{"${d}":{"toString":"${MARKER}","valueOf":"${MARKER}"}}`),
    text(`{"${d}":{"valueOf":1}}`, `{"${d}":{"valueOf":1}}`),
    text(`{"${d}":{"__proto__":{"toString":1}}}`, `{"${d}":{"__proto__":{"toString":1}}}`),
    text(`{"${d}":[]}`, `{"${d}":[]}`),
    text(`{"${d}":["ping"]}`, `{"${d}":["ping"]}`),
    text(`{"${d}":null}`, `{"${d}":null}`),
    text(`{"${d}":true}`, `{"${d}":true}`),
    text('{"__proto__":{"id":"start"}}', '{"__proto__":{"id":"start","token":"x"}}'),
    text('{"__proto__":{"type":"ping"}}', '{"__proto__":{"type":"ping"}}'),
    text('{"constructor":{"prototype":{}}}', '{"constructor":{"prototype":{}}}'),
    text('{"constructor":{"prototype":{"type":"ping"}}}', '{"constructor":{"prototype":{"type":"ping","id":"stop"}}}'),
    text('{"toString":1}', '{"toString":1}'),
    text('{"valueOf":{},"hasOwnProperty":1}', `{"valueOf":{},"hasOwnProperty":1,"${d}":"${MARKER}"}`),
    text("duplicate key, last one bad", `{"${d}":"ping","${d}":{"toString":1}}`),
    text(`{"${d}":1e400}`, `{"${d}":1e400}`),
    text(`{"${d}":-0}`, `{"${d}":-0}`),
    text(`{"${d}":9007199254740993}`, `{"${d}":9007199254740993}`),
    text(`{"${d}":<20,000 digits>}`, `{"${d}":1${"0".repeat(20_000)}}`),
    text("1e400", "1e400"),
    text("-0", "-0"),
    text("9007199254740993", "9007199254740993"),
    text("escaped lone surrogate", `{"${d}":"\\ud800${MARKER}"}`),
    text("raw lone surrogate (the client sends U+FFFD)", `{"${d}":"\ud800${MARKER}"}`),
    text("NUL in the discriminator", `{"${d}":"ping\\u0000"}`),
    text("upper-case PING", `{"${d}":"PING"}`),
    text("BOM before a ping", `\ufeff{"${d}":"ping"}`),
    text('JSON string "ping"', '"ping"'),
    text("null", "null"),
    text("[]", "[]"),
    text("{}", "{}"),
    text("whitespace", " \t\r\n"),
    text("truncated", `{"${d}":`),
    text("empty", ""),
    text("long string", JSON.stringify({ [d]: MARKER.repeat(5000) })),
    { what: "binary ping", data: Buffer.from(surface === "v1" ? '{"type":"ping"}' : "ping"), binary: true },
    { what: "empty binary", data: Buffer.alloc(0), binary: true },
    text(`{"${d}":"ack","seq":"1"}`, render(obj([d, str("ack")], ["seq", str("1")]))),
    text(`{"${d}":"ack","seq":1e400}`, render(obj([d, str("ack")], ["seq", raw("1e400")]))),
    text(`{"${d}":"ack","seq":9007199254740993}`, render(obj([d, str("ack")], ["seq", raw("9007199254740993")]))),
    text(`{"${d}":"ack","seq":-1}`, render(obj([d, str("ack")], ["seq", raw("-1")]))),
    text(`{"${d}":"ack","seq":1.5}`, render(obj([d, str("ack")], ["seq", raw("1.5")]))),
    text(`{"${d}":"ack","seq":{"valueOf":1}}`, render(obj([d, str("ack")], ["seq", obj(["valueOf", raw("1")])]))),
    text(`{"${d}":"ack","seq":[1]}`, render(obj([d, str("ack")], ["seq", { k: "arr", items: [raw("1")] }]))),
    text(`{"${d}":"ack"}`, render(obj([d, str("ack")]))),
  ];
  if (surface === "v1") {
    frames.push(
      text('{"type":"auth"}', '{"type":"auth"}'),
      text('{"type":"auth","token":{"toString":1}}', '{"type":"auth","token":{"toString":1}}'),
      text('{"type":"auth","token":""}', '{"type":"auth","token":""}'),
      text('{"type":"auth","token":[...]}', `{"type":"auth","token":["${MARKER}"]}`),
    );
  } else {
    // On a started seed socket a second start is a bad frame whatever it carries.
    frames.push(
      text('{"id":"start","token":{"toString":1}}', '{"id":"start","token":{"toString":1}}'),
      text('{"id":"start","token":"<marker>"}', `{"id":"start","token":"${MARKER}"}`),
      text('{"id":"start","lastSeq":1e400}', `{"id":"start","token":"${MARKER}","lastSeq":1e400}`),
      text("ping with a trailing space", "ping "),
      text("PING", "PING"),
    );
  }
  return frames;
}

/** A hand-built frame, for a readable failure message. */
export function describeFrame(f: HostileFrame): string {
  const data = Buffer.isBuffer(f.data) ? `<${f.data.length} bytes>` : JSON.stringify(f.data.slice(0, 80));
  return `${f.what} (${f.binary ? "binary" : "text"}, ${data}${Buffer.byteLength(f.data) > 80 ? "…" : ""})`;
}
