import fc from "fast-check";
import t from "tap";
import { CLEAN_NAME, checkText, cleanNickname, MAX_NICKNAME_CODE_POINTS } from "../src/core/text.js";
import { request, seedHeaders } from "./helpers/http.js";
import { startTestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// Display names and message text against UTS #39 / UTS #36: no invisible or direction-changing
// characters in names (cleaned), none in text except what scripts and emoji need (refused).

/** Every code point a cleaned display name must never hold. */
// biome-ignore lint/complexity/useRegexLiterals: a `v` literal needs an ES2024 target in TypeScript
const NEVER_IN_NAME = new RegExp(
  String.raw`[\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}\p{Bidi_Control}\p{Cn}\p{Co}\p{Cs}\u2800[\p{White_Space}--\u0020]]`,
  "v",
);
const BIDI_OR_CONTROL = /[\p{Cc}\p{Cs}\u202A-\u202E\u2066-\u2069\u2028\u2029]/u;
const INVISIBLE = /[\u034F\u200B\u2060-\u2064\uFEFF\u00AD\u115F\u1160\u3164\uFFA0]/u;
const codePoints = (s: string): number => [...s].length;
const refused = { ok: false, code: "text_control_characters" };
const ZWSP = "\u200B";

t.test("names: bidi controls are removed", async (t) => {
  t.equal(cleanNickname("\u202Eevil", 1), "evil", "right-to-left override");
  t.equal(cleanNickname("\u202Enimda\u202C", 1), "nimda", "override + pop");
  t.equal(cleanNickname("a\u202A\u202B\u202D\u2066\u2067\u2068\u2069b", 1), "ab", "embeddings, isolates");
  t.equal(cleanNickname("\u200Eadmin\u200F\u061C", 1), "admin", "LRM, RLM, ALM");
});

t.test("names: zero-width and other invisible characters are removed", async (t) => {
  t.equal(cleanNickname("adm\u200Bin", 1), "admin", "zero-width space in the middle");
  t.equal(
    cleanNickname("a\u200Cd\u200Dm\u2060i\u2061\u2062\u2063\u2064n", 1),
    "admin",
    "ZWNJ, ZWJ, WJ, invisible operators",
  );
  t.equal(cleanNickname("\uFEFFadmin\u00AD", 1), "admin", "BOM, soft hyphen");
  t.equal(cleanNickname("ad\u034Fmin", 1), "admin", "combining grapheme joiner");
  t.equal(cleanNickname("\u3164", 9), "user-9", "Hangul filler alone is no name");
  t.equal(cleanNickname("a\u115F\u1160\u3164\uFFA0b", 1), "ab", "Hangul fillers");
  t.equal(cleanNickname("a\u180Eb\u17B4", 1), "ab", "Mongolian vowel separator, Khmer inherent vowel");
  t.equal(cleanNickname("\u2764\uFE0F\u{E0101}", 1), "\u2764", "variation selectors");
  t.equal(cleanNickname("adm\u{E0061}\u{E0064}in\u{E007F}", 1), "admin", "tag characters");
  t.equal(cleanNickname("\u2800\u2800", 4), "user-4", "Braille pattern blank");
  t.equal(cleanNickname("ad\u{F8FF}min\u{10FFFD}", 1), "admin", "private use");
  t.equal(cleanNickname("ad\u0378min\uFDD0\uFFFF", 1), "admin", "unassigned and noncharacters");
  t.equal(cleanNickname("ad\uD800min\uDFFF", 1), "admin", "lone surrogates");
  t.equal(cleanNickname("a\u0000b\u0007\u009F", 1), "ab", "controls");
});

t.test("names: white space collapsed, NFC, capped between grapheme clusters", async (t) => {
  t.equal(cleanNickname("  first\t\u3000\u00A0last\u2028 ", 1), "first last", "any white space -> one space");
  t.equal(cleanNickname("a \u200B b", 1), "a b", "removing an invisible does not leave two spaces");
  t.equal(cleanNickname("Cafe\u0301", 1), "Caf\u00E9", "NFC");
  t.equal(cleanNickname("e\u200B\u0301", 1), "\u00E9", "NFC after removal");
  t.equal(cleanNickname("\u1100\u1161\u11A8", 1), "\uAC01", "conjoining jamo compose");
  t.equal(cleanNickname("\u2000x", 1), "x");
  const family = "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}";
  const capped = cleanNickname(`${"a".repeat(62)}e\u0301\u0301x`, 1);
  t.equal(capped, `${"a".repeat(62)}\u00E9\u0301`, "NFC first, then 64 code points, not cutting e + two accents");
  t.equal(
    cleanNickname(`${"a".repeat(63)}e\u0301\u0302`, 1),
    "a".repeat(63),
    "a cluster that does not fit is dropped whole",
  );
  t.equal(cleanNickname(`${"a".repeat(63)} b`, 1), "a".repeat(63), "no trailing space after the cut");
  t.equal(cleanNickname(`${"😀".repeat(63)}\u{1F1F0}\u{1F1F7}`, 1), "😀".repeat(63), "a flag pair is not split");
  t.equal(
    cleanNickname(`x${"\u0301".repeat(100)}`, 1),
    `x${"\u0301".repeat(63)}`,
    "one huge cluster is cut by code points",
  );
  const thumb = "\u{1F44D}\u{1F3FD}";
  t.equal(cleanNickname(thumb.repeat(40), 1), thumb.repeat(32), "emoji modifier sequences kept whole");
  t.equal(cleanNickname(`a${thumb.repeat(40)}`, 1), `a${thumb.repeat(31)}`, "63 code points rather than a split");
  t.equal(cleanNickname(family, 1), "\u{1F468}\u{1F469}\u{1F467}", "ZWJ goes from names, the emoji stay");
  t.equal(cleanNickname("😀".repeat(70), 1), "😀".repeat(64), "no surrogate pair is cut");
  t.equal(cleanNickname(undefined, 5), "user-5");
  t.equal(cleanNickname(" \u200B\u202E ", 5), "user-5");
});

t.test("names: the fast path returns what the full cleaning would, for every character it admits", async (t) => {
  let checked = 0;
  for (let cp = 0; cp <= 0xffff; cp++) {
    const c = String.fromCharCode(cp);
    if (!CLEAN_NAME.test(c)) continue;
    // An invisible character at the end forces the full cleaning; its result must be `c` itself.
    if (cleanNickname(`${c}${ZWSP}`, 1) !== c || /\p{M}/u.test(c)) t.fail(`U+${cp.toString(16)} changes`);
    checked++;
  }
  t.ok(checked > 30_000, `${checked} characters admitted by the fast path, all checked`);
  t.notOk(CLEAN_NAME.test(" a") || CLEAN_NAME.test("a  b") || CLEAN_NAME.test("a "), "no stray spaces");
  t.equal(cleanNickname("안녕 세계 こんにちは 漢字 Zoë", 1), "안녕 세계 こんにちは 漢字 Zoë");
  const name = "kim";
  t.equal(cleanNickname(name, 1), name);
  t.equal(cleanNickname("\u3099", 3), "\u3099", "a combining voiced mark takes the full path and stays");
});

t.test("text: explicit bidi formatting characters are refused", async (t) => {
  for (const c of ["\u202A", "\u202B", "\u202C", "\u202D", "\u202E", "\u2066", "\u2067", "\u2068", "\u2069"]) {
    t.match(checkText(`a${c}b`, 100), refused, `U+${c.codePointAt(0)?.toString(16)}`);
  }
  t.match(checkText("\u2067balanced\u2069", 100), refused, "balanced isolates too");
  t.match(checkText("x\u202E", 100), {
    detail: "text must not contain control, invisible or direction-changing characters",
  });
});

t.test("text: invisible format characters are refused", async (t) => {
  const invisible = ["\u200B", "\u2060", "\u2061", "\u2064", "\uFEFF", "\u00AD", "\u034F", "\u115F", "\u1160"];
  for (const c of [...invisible, "\u3164", "\uFFA0", "\u17B4", "\u{E0041}", "\u{E0001}", "\u{1D173}", "\uFFF9"]) {
    t.match(checkText(`ad${c}min`, 100), refused, `U+${c.codePointAt(0)?.toString(16)}`);
  }
  t.match(checkText("line\u2028break", 100), refused, "line separator, like newline");
  t.match(checkText("para\u2029break", 100), refused, "paragraph separator");
  t.match(checkText("\u{1F3F4}\u{E0067}\u{E0062}hello world\u{E007F}", 100), refused, "tags smuggling text");
  const overlongTags = "\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E0065}\u{E0078}";
  t.match(checkText(`\u{1F3F4}${overlongTags}\u{E007F}`, 100), refused, "subdivision suffix over 4 characters");
  t.match(checkText("\u{1F3F4}\u{E0047}\u{E0042}\u{E0053}\u{E007F}", 100), refused, "upper-case tags");
  t.match(checkText("\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", 100), refused, "tags without the flag");
  t.match(checkText("\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}", 100), refused, "no cancel tag");
  t.match(checkText("a\u200Bb\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", 100), refused);
});

t.test("text: what scripts and emoji need passes unchanged", async (t) => {
  const ok = (s: string, what: string) => t.same(checkText(s, 200), { ok: true, text: s }, what);
  ok("\u{1F469}\u200D\u{1F4BB} coding", "emoji ZWJ sequence (woman technologist)");
  ok("\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}", "family");
  ok("\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} go", "Scotland flag");
  ok(
    "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}\u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}",
    "two flags",
  );
  ok("\u2764\uFE0F \u263A\uFE0E \u{1F44D}\u{1F3FD}", "variation selectors, skin tone");
  ok("\u845B\u{E0100}", "ideographic variation sequence");
  ok("\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645", "Persian with ZWNJ");
  ok("\u0915\u094D\u200D\u0937", "Devanagari with ZWJ");
  ok("\u0645\u0631\u062D\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", "Arabic");
  ok("\u05E9\u05DC\u05D5\u05DD \u05E2\u05D5\u05DC\u05DD 123", "Hebrew with digits");
  ok("\u05E9\u05DC\u05D5\u05DD\u200F!", "RLM");
  ok("Cafe\u0301", "not normalised");
  ok("\u1820\u180B\u1821\u180E\u1822", "Mongolian variation selector and vowel separator");
  ok("\u{F8FF} \u{1FAE9}", "private use and characters newer than the server's Unicode data");
});

t.test("text: C0/C1 controls and lone surrogates as before", async (t) => {
  for (const s of ["bell\u0007", "two\nlines", "x\u0085y", "x\uD800y", "x\uDC00", "a\tb", "\u007F"]) {
    t.match(checkText(s, 100), refused, JSON.stringify(s));
  }
  t.same(checkText("  hi  ", 10), { ok: true, text: "hi" });
  t.match(checkText("\u200B", 10), refused, "an invisible alone is refused, not empty");
  t.match(checkText("\uFEFF ", 10), { ok: false, code: "text_empty" }, "trim drops a BOM at the ends");
});

// Strings built from what matters here, plus any code point at all (lone surrogates included).
const interesting = fc.constantFrom(
  ..."\u202A\u202E\u2066\u2069\u200E\u061C\u200B\u200C\u200D\u2060\uFEFF\u00AD\u034F\u115F\u3164\uFFA0\u180E\uFE0F\u2800",
  ..."\u0301\u0344\u0F73\u1100\u1161\u11A8\uAC00\u2000\u3000\u00A0\t\n \u2028e a\u0000\u0085\uD800\uDC00",
  "\u{E0067}",
  "\u{E007F}",
  "\u{E0100}",
  "\u{1F3F4}",
  "\u{1F469}",
  "\u{F8FF}",
  "\u{10FFFF}",
);
const anyCodeUnitOrPoint = fc.oneof(
  fc.integer({ min: 0, max: 0x10ffff }).map((cp) => String.fromCodePoint(cp)),
  fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)),
);
const unit = fc.oneof(interesting, anyCodeUnitOrPoint, fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }));
// Short and long ones: names over the 64 code point cap exercise the grapheme cut.
const hostile = fc.oneof(fc.string({ unit, maxLength: 20 }), fc.string({ unit, minLength: 50, maxLength: 160 }));

t.test("property: cleanNickname never throws, 1..64 code points, nothing removed survives, idempotent", async (t) => {
  fc.assert(
    fc.property(hostile, fc.nat(), (raw, id) => {
      const once = cleanNickname(raw, id);
      const n = codePoints(once);
      if (n < 1 || n > MAX_NICKNAME_CODE_POINTS) return false;
      if (NEVER_IN_NAME.test(once) || / {2}/.test(once) || once.trim() !== once) return false;
      if (once.normalize("NFC") !== once) return false;
      return cleanNickname(once, id) === once;
    }),
    { numRuns: 20_000 },
  );
  t.pass("20000 hostile names");
});

t.test("property: names made of fast-path characters are returned unchanged by both paths", async (t) => {
  const fastChar = fc.oneof(
    fc.integer({ min: 0x21, max: 0x7e }),
    fc.integer({ min: 0xae, max: 0xff }),
    fc.integer({ min: 0xac00, max: 0xd7a3 }),
    fc.integer({ min: 0x4e00, max: 0x9fff }),
  );
  const word = fc.string({ unit: fastChar.map((cp) => String.fromCodePoint(cp)), minLength: 1, maxLength: 10 });
  fc.assert(
    fc.property(fc.array(word, { minLength: 1, maxLength: 6 }), (words) => {
      const name = words.join(" ").slice(0, 64).trimEnd();
      return cleanNickname(name, 1) === name && cleanNickname(`${name}${ZWSP}`, 1) === name;
    }),
    { numRuns: 2_000 },
  );
  t.pass();
});

t.test("property: checkText never throws; accepts only its trimmed input and nothing invisible", async (t) => {
  fc.assert(
    fc.property(hostile, (raw) => {
      const r = checkText(raw, 50);
      if (!r.ok) return ["text_empty", "text_too_long", "text_control_characters"].includes(r.code);
      return r.text === raw.trim() && !BIDI_OR_CONTROL.test(r.text) && !INVISIBLE.test(r.text);
    }),
    { numRuns: 20_000 },
  );
  t.pass();
});

t.test("through a listening server", async (t) => {
  const server = await startTestServer();
  t.teardown(() => server.shutdown());
  const room = 811;
  const socket = new TestSocket(
    `${server.ws}/v1/rooms/${room}/presenter?access_token=${await mintToken({ user_idx: room })}`,
  );
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready");
  t.teardown(() => socket.close(1000));
  const post = async (text: string, nickname: string, sender: number) =>
    request<Record<string, unknown>>(`${server.http}/v1/rooms/${room}/messages`, {
      headers: { authorization: `Bearer ${await mintToken({ user_idx: sender, nickname })}` },
      body: { text },
    });

  t.test("token nicknames arrive cleaned", async (t) => {
    t.equal((await post("one", "\u202Eevil", 31)).status, 201);
    t.equal((await socket.next((f) => f.text === "one", "one")).nickname, "evil");
    t.equal((await post("two", "ad\u200Bmin", 32)).status, 201);
    t.equal((await socket.next((f) => f.text === "two", "two")).nickname, "admin");
  });

  t.test("a gateway header nickname arrives cleaned (seed surface)", async (t) => {
    const res = await request(`${server.http}/send/message`, {
      headers: seedHeaders(33, "\u2067adm\u{E0069}in\u3164 "),
      body: { presenterIdx: room, userType: "viewer", textMessage: "three" },
    });
    t.equal(res.status, 200);
    t.equal((await socket.next((f) => f.text === "three", "three")).nickname, "admin");
  });

  t.test("bidi override text: 400 text_control_characters, nothing delivered or logged", async (t) => {
    const bad = await post("\u202E", "fan", 34);
    t.equal(bad.status, 400);
    t.equal(bad.body.code, "text_control_characters");
    t.equal((await post("adm\u200Bin says hi", "fan", 34)).status, 400);
    const emoji = "\u{1F469}\u200D\u{1F4BB} \u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
    t.equal((await post(emoji, "fan", 34)).status, 201);
    await socket.next((f) => f.text === emoji, "the emoji message");
    const messages = socket.json().filter((f) => f.type === "message");
    t.same(
      messages.map((f) => f.text),
      ["one", "two", "three", emoji],
      "the refused texts never reached the presenter",
    );
    t.same(
      messages.map((f) => f.seq),
      [1, 2, 3, 4],
      "and consumed no seq",
    );
    const logged = await server.relay.history(room, undefined, 10);
    t.equal(logged.length, 4, "nor the log");
  });
});
