import fc from "fast-check";
import t from "tap";
import {
  compileTerms,
  foldText,
  MAX_BLOCKED_TERMS,
  MAX_TERM_CODE_POINTS,
  normalizeTerm,
  type ScanStats,
} from "../src/core/blocked-terms.js";

// Blocked terms: literal word and substring terms, folded (NFKC, lower case, invisibles removed),
// matched by an automaton whose work is linear in the text (docs/protocol.md "Blocked terms").

const blocks = (terms: string[], text: string): boolean => compileTerms(terms).matches(text);
const codePoints = (s: string): number => [...s].length;

// Reference semantics, written independently of the automaton: indexOf over the folded text,
// then a boundary test at both ends of each occurrence.
const REF_WORD = /^[\p{L}\p{M}\p{N}]$/u;
const REF_OWN_WORD =
  /^[\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Bopomofo}\p{scx=Yi}\p{scx=Thai}\p{scx=Lao}\p{scx=Khmer}\p{scx=Myanmar}\p{scx=Tai_Tham}\p{scx=Tai_Viet}\p{scx=New_Tai_Lue}]$/u;
const refIsWord = (ch: string | undefined): boolean => ch !== undefined && REF_WORD.test(ch) && !REF_OWN_WORD.test(ch);
/** No word may continue across position i (UTF-16 index) of s. */
function refBoundary(s: string, i: number): boolean {
  const before = i === 0 ? undefined : [...s.slice(0, i)].at(-1);
  const after = i === s.length ? undefined : [...s.slice(i)][0];
  return !(refIsWord(before) && refIsWord(after));
}
function reference(terms: string[], text: string): boolean {
  const s = foldText(text);
  for (const raw of terms) {
    const term = normalizeTerm(raw);
    if (term === undefined) continue;
    if (term.length >= 3 && term.startsWith("*") && term.endsWith("*")) {
      if (s.includes(term.slice(1, -1))) return true;
      continue;
    }
    for (let i = s.indexOf(term); i >= 0; i = s.indexOf(term, i + 1)) {
      if (refBoundary(s, i) && refBoundary(s, i + term.length)) return true;
    }
  }
  return false;
}

t.test("normalizeTerm: canonical form", async (t) => {
  t.equal(normalizeTerm("Spam"), "spam", "lower case");
  t.equal(normalizeTerm("  Buy \u00A0  NOW  "), "buy now", "trimmed, white space collapsed");
  t.equal(normalizeTerm("buy\u3000now"), "buy now", "ideographic space");
  t.equal(normalizeTerm("ＳＰＡＭ"), "spam", "full-width letters (NFKC)");
  t.equal(normalizeTerm("\uFB01sh"), "fish", "ligature fi (NFKC)");
  t.equal(normalizeTerm("ΟΔΟΣ"), "οδοσ", "final sigma folds to sigma");
  t.equal(normalizeTerm("cafe\u0301"), "café", "composed (NFKC)");
  t.equal(normalizeTerm("he\u200Dart"), "heart", "ZWJ (allowed in text) removed");
  t.equal(normalizeTerm("\u2764\uFE0F"), "\u2764", "variation selector removed");
  t.equal(normalizeTerm("*Spam*"), "*spam*", "substring term");
  t.equal(normalizeTerm(" * Spam  Bot * "), "*spam bot*", "substring term, inner trimmed");
  t.equal(normalizeTerm("＊spam＊"), "*spam*", "full-width stars are stars");
  t.equal(normalizeTerm("f*ck"), "f*ck", "a star inside is literal");
  t.equal(normalizeTerm("***"), "***", "substring term for a literal star");
  t.equal(normalizeTerm("x".repeat(MAX_TERM_CODE_POINTS)), "x".repeat(MAX_TERM_CODE_POINTS), "at the limit");
  t.equal(
    normalizeTerm(`*${"x".repeat(MAX_TERM_CODE_POINTS)}*`)?.length,
    MAX_TERM_CODE_POINTS + 2,
    "stars not counted",
  );
  t.equal(
    normalizeTerm("😀".repeat(MAX_TERM_CODE_POINTS)),
    "😀".repeat(MAX_TERM_CODE_POINTS),
    "code points, not units",
  );
});

t.test("normalizeTerm: refusals", async (t) => {
  const refused: [string, string][] = [
    ["", "empty"],
    ["   ", "white space only"],
    ["\u3000", "ideographic space only"],
    ["x".repeat(MAX_TERM_CODE_POINTS + 1), "over the limit"],
    ["\uFDFA".repeat(6), "over the limit once NFKC expands it"],
    ["a".repeat(2000), "huge input"],
    ["sp\u200Bam", "zero-width space"],
    ["sp\nam", "newline"],
    ["buy\tnow", "tab (a control character, as in message text)"],
    ["\u202Espam", "bidi override"],
    ["sp\u00ADam", "soft hyphen"],
    ["*spam", "star at the start only"],
    ["spam*", "star at the end only"],
    ["*", "a lone star"],
    ["**", "two stars, no body"],
    ["* *", "stars around white space"],
  ];
  for (const [raw, why] of refused) t.equal(normalizeTerm(raw), undefined, why);
  t.equal(normalizeTerm(42 as unknown as string), undefined, "not a string");
});

t.test("normalizeTerm and foldText are idempotent", async (t) => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 40 }), (raw) => {
      const folded = foldText(raw);
      if (foldText(folded) !== folded) return false;
      const term = normalizeTerm(raw);
      return term === undefined || normalizeTerm(term) === term;
    }),
    { numRuns: 3000 },
  );
  t.pass("idempotent on random Unicode");
});

t.test("word terms match whole words only (Scunthorpe)", async (t) => {
  t.ok(blocks(["ass"], "you ass"), "alone");
  t.ok(blocks(["ass"], "ASS!"), "before punctuation, upper case");
  t.ok(blocks(["ass"], "(ass)"), "in brackets");
  t.ok(blocks(["ass"], "smart-ass"), "after a hyphen");
  t.ok(blocks(["ass"], "ass_hat"), "underscore is not a word character");
  t.ok(blocks(["don"], "don't"), "apostrophe separates words");
  t.notOk(blocks(["ass"], "class"), "class");
  t.notOk(blocks(["ass"], "assassin"), "assassin");
  t.notOk(blocks(["ass"], "bass guitar"), "bass");
  t.notOk(blocks(["ass"], "ass1"), "digits are word characters");
  t.notOk(blocks(["ass"], "passé"), "accented letters are word characters");
  t.notOk(blocks(["ass"], "ass\u0301"), "a combining mark continues the word");
  t.notOk(blocks(["cunt"], "Scunthorpe United"), "Scunthorpe");
  t.notOk(blocks(["hell"], "hello shell"), "hello, shell");
  t.ok(blocks(["hell"], "what the hell."), "hell");
  t.notOk(blocks(["ass"], ""), "empty text");
});

t.test("substring terms match anywhere", async (t) => {
  t.ok(blocks(["*spam*"], "spammer"), "prefix of a word");
  t.ok(blocks(["*spam*"], "antispam"), "suffix of a word");
  t.ok(blocks(["*ass*"], "class"), "inside a word");
  t.ok(blocks(["*buy now*"], "rebuy nowhere"), "multi-word, inside words");
  t.notOk(blocks(["*spam*"], "s p a m"), "spaced-out letters are another text");
  t.notOk(blocks(["*spam*"], "spa m"), "split");
  t.ok(blocks(["*!!*"], "hey!!!"), "punctuation");
});

t.test("case and width folding", async (t) => {
  t.ok(blocks(["spam"], "ＳＰＡＭ"), "full-width text");
  t.ok(blocks(["ＳＰＡＭ"], "Spam"), "full-width term");
  t.ok(blocks(["fish"], "\uFB01SH"), "ligature in the text");
  t.ok(blocks(["office"], "o\uFB03ce"), "ffi ligature");
  t.ok(blocks(["spam"], "\u{1D412}\u{1D40F}\u{1D400}\u{1D40C}"), "mathematical bold letters");
  t.ok(blocks(["spam"], "\u24E2\u24DF\u24D0\u24DC"), "circled letters");
  t.ok(blocks(["οδοσ"], "ΟΔΟΣ"), "final sigma in the text");
  t.ok(blocks(["ΟΔΟΣ"], "οδοσ"), "final sigma in the term");
  t.ok(blocks(["café"], "CAFE\u0301"), "decomposed accent in the text");
  t.notOk(blocks(["strasse"], "straße"), "ß is not ss (toLowerCase, not full case folding)");
});

t.test("multi-word terms match across any run of white space", async (t) => {
  const terms = ["buy now"];
  for (const text of ["buy now", "BUY    NOW", "buy\tnow", "buy\u00A0now", "buy\u3000now", "ok buy \u2003 now!"]) {
    t.ok(blocks(terms, text), JSON.stringify(text));
  }
  t.notOk(blocks(terms, "buynow"), "no space");
  t.notOk(blocks(terms, "buy nowhere"), "word boundary at the end");
  t.notOk(blocks(terms, "rebuy now"), "word boundary at the start");
  t.notOk(blocks(terms, "buy-now"), "punctuation is not white space");
});

t.test("invisible characters do not hide a term", async (t) => {
  const evasions = [
    "sp\u200Bam", // zero-width space (refused by text rules, still caught here)
    "sp\u200Dam", // ZWJ (allowed by text rules)
    "sp\u200Cam", // ZWNJ (allowed)
    "sp\u200Eam", // LRM (allowed)
    "s\uFE0Fpam", // variation selector (allowed)
    "sp\u00ADam", // soft hyphen
    "sp\u2060am", // word joiner
    "\uFEFFspam", // BOM
    "s\u{E0041}pam", // tag character
  ];
  for (const text of evasions) {
    t.ok(blocks(["spam"], text), `word term: ${JSON.stringify(text)}`);
    t.ok(blocks(["*spam*"], `xx${text}xx`), `substring term: ${JSON.stringify(text)}`);
  }
  t.ok(blocks(["spam"], "sp\uD800am"), "lone surrogate");
  t.ok(blocks(["spam"], "sp\uDC00am\uD83D"), "lone low and trailing high surrogates");
  t.notOk(blocks(["ass"], "cl\u200Dass"), "removing them cannot create a word boundary");
});

t.test("emoji terms", async (t) => {
  t.ok(blocks(["\u{1F921}"], "nice\u{1F921}stream"), "an emoji is its own word");
  t.ok(blocks(["\u2764\uFE0F"], "\u2764"), "with or without the variation selector");
  t.ok(blocks(["\u2764"], "i \u2764\uFE0F it"), "text presentation vs emoji presentation");
  t.ok(blocks(["\u{1F469}\u200D\u{1F4BB}"], "\u{1F469}\u{1F4BB}"), "ZWJ sequence = its parts");
  t.ok(blocks(["\u{1F467}"], "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}"), "a part of a ZWJ sequence matches");
  t.notOk(blocks(["\u{1F921}"], "\u{1F600}"), "another emoji");
  const scotland = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
  t.ok(blocks(["\u{1F3F4}"], `go ${scotland}`), "a subdivision flag folds to the black flag (tags are invisible)");
});

t.test("scripts without spaces: each character is its own word", async (t) => {
  t.ok(blocks(["傻瓜"], "你是傻瓜吗"), "Chinese term inside a sentence");
  t.ok(blocks(["傻瓜"], "傻瓜"), "alone");
  t.notOk(blocks(["傻瓜"], "傻 瓜"), "split by a space");
  t.ok(blocks(["バカ"], "おまえはバカだ"), "Japanese katakana term inside hiragana");
  t.ok(blocks(["ばか"], "ばかー"), "prolonged sound mark");
  t.ok(blocks(["ควาย"], "ไอ้ควาย"), "Thai");
  t.ok(blocks(["spam"], "买spam卖"), "Latin word next to Han characters");
  t.notOk(blocks(["바보"], "너는바보야"), "Korean is written with spaces: a word term needs them");
  t.ok(blocks(["바보"], "너는 바보 야"), "Korean word between spaces");
  t.ok(blocks(["*바보*"], "너는바보야"), "Korean substring term");
});

t.test("compileTerms: indexes, refused terms, limits", async (t) => {
  const m = compileTerms(["", "spam", "sp\u200Bam", "*egg*", "spam"]);
  t.equal(m.size, 3, "refused terms are skipped");
  t.equal(m.firstMatch("SPAM"), 1, "index into the input list, first of duplicates");
  t.equal(m.firstMatch("eggs"), 3, "substring term's index");
  t.equal(m.firstMatch("ham"), -1, "no match");
  t.notOk(compileTerms([]).matches("anything"), "no terms");
  t.equal(compileTerms(["", "\n"]).size, 0, "only refused terms");
  t.throws(() => compileTerms(Array.from({ length: MAX_BLOCKED_TERMS + 1 }, (_, i) => `t${i}`)), RangeError);
  const full = compileTerms(Array.from({ length: MAX_BLOCKED_TERMS }, (_, i) => `t${i}`));
  t.equal(full.size, MAX_BLOCKED_TERMS, "the limit itself compiles");
  t.equal(full.firstMatch("say t499 now"), 499);
});

// Small alphabets make matches, near misses, boundaries and folding collisions frequent.
const PIECES = [
  "a",
  "b",
  "A",
  "ab",
  "ａ",
  " ",
  "  ",
  "\t",
  "-",
  "!",
  "*",
  "\u200D",
  "\u200B",
  "é",
  "e\u0301",
  "1",
  "傻",
  "瓜",
  "バ",
  "\u{1F467}",
  "ß",
  "Σ",
  "ς",
  "σ",
  "\uFB01",
  "fi",
  "\u0301",
  "\uD83D", // lone halves, or a pair when two meet
  "\uDE00",
];
const piecesString = (max: number) => fc.array(fc.constantFrom(...PIECES), { maxLength: max }).map((p) => p.join(""));
const termArb = fc.tuple(piecesString(4), fc.boolean()).map(([body, star]) => (star ? `*${body}*` : body));

t.test("matches equals the naive reference (random terms and texts)", async (t) => {
  fc.assert(
    fc.property(fc.array(termArb, { maxLength: 8 }), fc.array(piecesString(30), { maxLength: 5 }), (terms, texts) => {
      const m = compileTerms(terms);
      return texts.every((text) => m.matches(text) === reference(terms, text));
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(
      fc.array(fc.string({ unit: "binary", maxLength: 6 }), { maxLength: 6 }),
      fc.string({ unit: "binary", maxLength: 60 }),
      (terms, text) => compileTerms(terms).matches(text) === reference(terms, text),
    ),
    { numRuns: 1000 },
  );
  // Planted: a text built around a term it must contain.
  fc.assert(
    fc.property(termArb, piecesString(10), piecesString(10), (term, before, after) => {
      const body = term.length >= 3 && term.startsWith("*") && term.endsWith("*") ? term.slice(1, -1) : term;
      const text = `${before}${body}${after}`;
      return compileTerms([term]).matches(text) === reference([term], text);
    }),
    { numRuns: 2000 },
  );
  t.pass("agrees with the reference");
});

t.test("work is linear in the text: at most 4n + 2 steps", async (t) => {
  const steps = (terms: string[], text: string): { found: number; steps: number } => {
    const stats: ScanStats = { steps: 0 };
    const found = compileTerms(terms).firstMatchCounting(text, stats);
    return { found, steps: stats.steps };
  };
  const a10k = "a".repeat(10_000);
  const n = codePoints(foldText(a10k));
  const prefixes = Array.from({ length: MAX_BLOCKED_TERMS }, (_, i) => "a".repeat(i + 1));
  const cases: [string, string[], string, boolean][] = [
    ["word terms a, aa, ... (500)", prefixes, a10k, false],
    ["substring terms a...ab (500, never complete)", prefixes.map((p) => `*${p}b*`), a10k, false],
    ["word terms a...ab (500)", prefixes.map((p) => `${p}b`), a10k, false],
    ["word terms a...a, text of single a's", prefixes.slice(1), "a ".repeat(5_000), false],
    ["100-a term, text ends with it", ["a".repeat(100)], `${"a ".repeat(5_000)}${"a".repeat(100)}`, true],
  ];
  for (const [why, terms, text, found] of cases) {
    const r = steps(terms, text);
    t.equal(r.found >= 0, found, `${why}: result`);
    t.ok(r.steps <= 4 * codePoints(foldText(text)) + 2, `${why}: ${r.steps} steps for ${n} code points`);
  }
  fc.assert(
    fc.property(fc.array(termArb, { maxLength: 12 }), piecesString(80), (terms, text) => {
      const r = steps(terms, text);
      return r.steps <= 4 * codePoints(foldText(text)) + 2;
    }),
    { numRuns: 2000 },
  );
});
