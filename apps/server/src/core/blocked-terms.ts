import { checkText } from "./text.js";

// A room's blocked terms (docs/protocol.md "Blocked terms"). Terms are literal text typed by a
// moderator, never regular expressions, and matching is one pass of an Aho-Corasick automaton
// over the message: linear in the text for any term list, so a term list cannot be a ReDoS.
//
// Word matches without backtracking: the folded text is read as a stream of symbols in which a
// boundary marker # sits at every position where a word may start or end (between two
// characters that are not both word characters, and at both ends). "hello, world" is read as
// "#hello#,# #world#". A word term is compiled the same way with markers at both ends ("#ass#"),
// a substring term without them ("spam"); markers inside a term come from its own characters, so
// they line up with the text's. A word term then occurs in the marked text exactly where it
// occurs in the text on word boundaries, and every test is a plain substring test.

/** Most terms per room. */
export const MAX_BLOCKED_TERMS = 500;
/** Most code points in one term (its canonical form, without the `*` of a substring term). */
export const MAX_TERM_CODE_POINTS = 100;
/** Raw input longer than this (UTF-16 units) is refused before any normalisation work. */
const MAX_TERM_INPUT_UNITS = 1_000;

// Removed from texts and terms before matching: what renders as nothing (every default-ignorable
// code point: ZWJ, ZWNJ, zero-width space, bidi controls, direction marks, variation selectors,
// soft hyphen, tags, Hangul fillers, ...), control characters other than white space, lone
// surrogates, interlinear annotation controls. Text rules let ZWJ, ZWNJ, LRM/RLM/ALM and
// variation selectors into messages: "sp<ZWJ>am" must still match "spam".
const INVISIBLE_CLASS = String.raw`[[\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cs}\uFFF9-\uFFFB]--\p{White_Space}]`;
const INVISIBLE_RUN = new RegExp(`${INVISIBLE_CLASS}+`, "gv");
const INVISIBLE_ONE = new RegExp(`^${INVISIBLE_CLASS}$`, "v");
const WHITE_SPACE_RUN = /\p{White_Space}+/gu;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * The form texts and terms are compared in: invisible characters removed, NFKC (full-width
 * letters, ligatures, compatibility forms), lower case (`toLowerCase`, not full case folding:
 * "ß" and "ss" stay different; final sigma is mapped to σ), every run of white space one space,
 * trimmed. Idempotent.
 */
export function foldText(text: string): string {
  if (PRINTABLE_ASCII.test(text)) {
    const lower = text.toLowerCase();
    return (lower.includes("  ") ? lower.replace(/ {2,}/g, " ") : lower).trim();
  }
  let s = text.replace(INVISIBLE_RUN, "").normalize("NFKC").toLowerCase();
  if (s.includes("ς")) s = s.replaceAll("ς", "σ");
  return s.replace(WHITE_SPACE_RUN, " ").trim();
}

/**
 * The canonical form of a blocked term, for storage and matching, or undefined when it is
 * refused. `*spam*` (a leading and a trailing `*`) is a substring term; anything else is a word
 * term. Refused: what message text rules refuse (control, invisible and direction-changing
 * characters), an empty term, a term over MAX_TERM_CODE_POINTS once folded, and a `*` at one
 * end only (`*spam`, `spam*`: ambiguous). A `*` inside a term is a literal star.
 */
export function normalizeTerm(raw: string): string | undefined {
  if (typeof raw !== "string" || raw.length > MAX_TERM_INPUT_UNITS) return undefined;
  const checked = checkText(raw, MAX_TERM_INPUT_UNITS);
  if (!checked.ok) return undefined;
  const folded = foldText(checked.text);
  const starts = folded.startsWith("*");
  const ends = folded.endsWith("*");
  if (starts !== ends) return undefined;
  const body = starts ? folded.slice(1, -1).trim() : folded;
  if (body.length === 0 || countCodePoints(body) > MAX_TERM_CODE_POINTS) return undefined;
  return starts ? `*${body}*` : body;
}

export interface TermMatcher {
  /** Terms compiled (input terms that normalised). */
  readonly size: number;
  /** Approximate memory held by the compiled automaton, for a cache's budget. */
  readonly bytes: number;
  /** Whether the text contains a blocked term. */
  matches(text: string): boolean;
  /** Index (into the list given to compileTerms) of a term the text contains, or -1. For logs only. */
  firstMatch(text: string): number;
}

/**
 * Compiles a room's terms (canonical or raw: each is normalised again; refused ones are skipped).
 * More than MAX_BLOCKED_TERMS is a caller's bug (the store caps the list): RangeError.
 */
export function compileTerms(terms: readonly string[]): CompiledTerms {
  if (terms.length > MAX_BLOCKED_TERMS) {
    throw new RangeError(`at most ${MAX_BLOCKED_TERMS} blocked terms, got ${terms.length}`);
  }
  return new CompiledTerms(terms);
}

/** Work counter of one scan: automaton transitions tried (goto and failure moves). */
export interface ScanStats {
  steps: number;
}

const ROOT = 0;
const NOT_IN_ALPHABET = -1;
const SPACE = 0x20;
const FINAL_SIGMA = 0x3c2;
const SIGMA = 0x3c3;
/** Transitions tried since the module loaded (scan reads the difference; one thread, no reentry). */
let transitions = 0;

export class CompiledTerms implements TermMatcher {
  readonly size: number;
  readonly bytes: number;
  /** Symbol of each ASCII code point (NOT_IN_ALPHABET when no term has it). */
  private readonly asciiSymbol = new Int32Array(128).fill(NOT_IN_ALPHABET);
  private readonly symbol = new Map<number, number>();
  /** Symbol of the boundary marker; NOT_IN_ALPHABET when no term holds one. */
  private markSymbol = NOT_IN_ALPHABET;
  private nextSymbol = 0;
  /** Root's goto for every symbol (0: stay at the root). */
  private readonly rootNext: Int32Array;
  /** Other states' gotos, sorted by symbol: edges edgeStart[s] .. edgeStart[s + 1] - 1. */
  private readonly edgeStart: Int32Array;
  private readonly edgeSymbol: Int32Array;
  private readonly edgeNext: Int32Array;
  private readonly fail: Int32Array;
  /** Input index of a term ending at this state or at a state on its failure chain, or -1. */
  private readonly output: Int32Array;

  constructor(terms: readonly string[]) {
    const compiled: { index: number; symbols: number[] }[] = [];
    let maxStates = 1;
    terms.forEach((raw, index) => {
      const term = normalizeTerm(raw);
      if (term === undefined) return;
      const symbols = this.termSymbols(term);
      compiled.push({ index, symbols });
      maxStates += symbols.length;
    });
    this.size = compiled.length;
    const alphabet = this.nextSymbol;

    // The trie in flat arrays: children of a state are a sibling list sorted by symbol
    // (a non-root state has at most one child per term, so the lists stay short); the root's
    // children are a dense table.
    const rootChild = new Int32Array(alphabet);
    const firstChild = new Int32Array(maxStates).fill(-1);
    const nextSibling = new Int32Array(maxStates).fill(-1);
    const inSymbol = new Int32Array(maxStates);
    const ownTerm = new Int32Array(maxStates).fill(-1);
    let states = 1;
    let edges = 0;
    for (const { index, symbols } of compiled) {
      let state = ROOT;
      for (const sym of symbols) {
        if (state === ROOT) {
          let next = rootChild[sym] ?? 0;
          if (next === 0) {
            next = states++;
            inSymbol[next] = sym;
            rootChild[sym] = next;
          }
          state = next;
          continue;
        }
        let before = -1;
        let child = firstChild[state] ?? -1;
        while (child >= 0 && (inSymbol[child] ?? 0) < sym) {
          before = child;
          child = nextSibling[child] ?? -1;
        }
        if (child < 0 || inSymbol[child] !== sym) {
          const created = states++;
          edges++;
          inSymbol[created] = sym;
          nextSibling[created] = child;
          if (before < 0) firstChild[state] = created;
          else nextSibling[before] = created;
          child = created;
        }
        state = child;
      }
      if (ownTerm[state] === -1) ownTerm[state] = index;
    }

    this.rootNext = rootChild;
    this.edgeStart = new Int32Array(states + 1);
    this.edgeSymbol = new Int32Array(edges);
    this.edgeNext = new Int32Array(edges);
    let at = 0;
    for (let s = 0; s < states; s++) {
      this.edgeStart[s] = at;
      if (s === ROOT) continue;
      for (let c = firstChild[s] ?? -1; c >= 0; c = nextSibling[c] ?? -1) {
        this.edgeSymbol[at] = inSymbol[c] ?? 0;
        this.edgeNext[at] = c;
        at++;
      }
    }
    this.edgeStart[states] = at;

    // Failure links and outputs, breadth first (a state's failure target is shallower).
    this.fail = new Int32Array(states);
    this.output = new Int32Array(states).fill(-1);
    const queue = new Int32Array(states);
    let tail = 0;
    for (const next of rootChild) if (next !== 0) queue[tail++] = next;
    for (let head = 0; head < tail; head++) {
      const s = queue[head] ?? ROOT;
      const own = ownTerm[s] ?? -1;
      this.output[s] = own >= 0 ? own : (this.output[this.fail[s] ?? ROOT] ?? -1);
      for (let e = this.edgeStart[s] ?? 0; e < (this.edgeStart[s + 1] ?? 0); e++) {
        const sym = this.edgeSymbol[e] ?? 0;
        const next = this.edgeNext[e] ?? 0;
        let f = this.fail[s] ?? ROOT;
        let target = this.goto(f, sym);
        while (target < 0) {
          f = this.fail[f] ?? ROOT;
          target = this.goto(f, sym);
        }
        this.fail[next] = target;
        queue[tail++] = next;
      }
    }
    // Typed arrays, plus ~40 bytes per entry of the symbol map.
    this.bytes = 4 * (128 + alphabet + 3 * states + 1 + 2 * edges) + 40 * this.symbol.size;
  }

  matches(text: string): boolean {
    return this.size > 0 && this.scan(text) >= 0;
  }

  firstMatch(text: string): number {
    return this.size > 0 ? this.scan(text) : -1;
  }

  /** firstMatch, adding the automaton's transitions to stats.steps (tests, benchmarks). */
  firstMatchCounting(text: string, stats: ScanStats): number {
    const before = transitions;
    const found = this.firstMatch(text);
    stats.steps += transitions - before;
    return found;
  }

  /** Symbols of a canonical term: markers inside, and at both ends for a word term. */
  private termSymbols(term: string): number[] {
    const substring = term.length >= 3 && term.startsWith("*") && term.endsWith("*");
    const body = substring ? term.slice(1, -1) : term;
    const out: number[] = [];
    let previousIsWord = false;
    let first = true;
    for (const ch of body) {
      const cp = ch.codePointAt(0) ?? 0;
      const isWord = classOf(cp) === WORD;
      if ((!first || !substring) && !(previousIsWord && isWord)) out.push(this.markSymbolOrNew());
      out.push(this.symbolOrNew(cp));
      previousIsWord = isWord;
      first = false;
    }
    if (!substring) out.push(this.markSymbolOrNew());
    return out;
  }

  private symbolOrNew(cp: number): number {
    let sym = this.symbol.get(cp);
    if (sym === undefined) {
      sym = this.nextSymbol++;
      this.symbol.set(cp, sym);
      if (cp < 128) this.asciiSymbol[cp] = sym;
    }
    return sym;
  }

  private markSymbolOrNew(): number {
    if (this.markSymbol === NOT_IN_ALPHABET) this.markSymbol = this.nextSymbol++;
    return this.markSymbol;
  }

  private symbolOf(cp: number): number {
    return cp < 128 ? (this.asciiSymbol[cp] ?? NOT_IN_ALPHABET) : (this.symbol.get(cp) ?? NOT_IN_ALPHABET);
  }

  /** The state after reading sym in state s by its own edges; -1 when it has none (root: 0). */
  private goto(s: number, sym: number): number {
    if (s === ROOT) return this.rootNext[sym] ?? ROOT;
    let lo = this.edgeStart[s] ?? 0;
    let hi = (this.edgeStart[s + 1] ?? 0) - 1;
    if (hi - lo < 8) {
      for (; lo <= hi; lo++) if (this.edgeSymbol[lo] === sym) return this.edgeNext[lo] ?? -1;
      return -1;
    }
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const at = this.edgeSymbol[mid] ?? 0;
      if (at === sym) return this.edgeNext[mid] ?? -1;
      if (at < sym) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** The automaton's state after one more symbol: one goto, after failure moves as needed. */
  private advance(state: number, sym: number): number {
    if (sym === NOT_IN_ALPHABET) return ROOT; // no term holds it: every partial match ends here
    let s = state;
    for (;;) {
      transitions++;
      const next = this.goto(s, sym);
      if (next >= 0) return next;
      s = this.fail[s] ?? ROOT;
    }
  }

  /**
   * One pass over foldText(text) read as symbols, without building it: invisible characters
   * are removed and NFKC + lower case applied only when the text needs it; white space runs,
   * trimming and final sigma are handled here. Each symbol takes one goto plus failure moves; a
   * failure move goes to a shallower state and every goto deepens by one, so the moves are at
   * most twice the symbols, and the symbols at most twice the folded code points plus one: at
   * most 4n + 2 steps for n folded code points, whatever the terms.
   */
  private scan(text: string): number {
    const s = prepareForScan(text);
    const mark = this.markSymbol;
    const output = this.output;
    let state = ROOT;
    let previousIsWord = false;
    let started = false;
    let pendingSpace = false;
    const n = s.length;
    for (let i = 0; i < n; i++) {
      let cp = s.charCodeAt(i);
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
        const low = s.charCodeAt(i + 1);
        if (low >= 0xdc00 && low <= 0xdfff) {
          cp = ((cp - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
          i++;
        }
      }
      const cls = classOf(cp);
      if (cls === WHITE_SPACE) {
        pendingSpace = started; // a run is one space; none at the ends (trimmed)
        continue;
      }
      if (cls === INVISIBLE) continue; // none left after prepareForScan; kept for safety
      if (pendingSpace) {
        // A space is not a word character: a boundary on both of its sides.
        state = this.advance(state, mark);
        if ((output[state] ?? -1) >= 0) return output[state] ?? -1;
        state = this.advance(state, this.symbolOf(SPACE));
        if ((output[state] ?? -1) >= 0) return output[state] ?? -1;
        previousIsWord = false;
        pendingSpace = false;
      }
      const isWord = cls === WORD;
      if (!(previousIsWord && isWord)) {
        state = this.advance(state, mark);
        if ((output[state] ?? -1) >= 0) return output[state] ?? -1;
      }
      state = this.advance(state, this.symbolOf(cp === FINAL_SIGMA ? SIGMA : cp));
      if ((output[state] ?? -1) >= 0) return output[state] ?? -1;
      previousIsWord = isWord;
      started = true;
    }
    state = this.advance(state, mark);
    return output[state] ?? -1;
  }
}

/** The text with invisible characters removed, NFKC and lower case; white space is left to scan. */
function prepareForScan(text: string): string {
  let ascii = true;
  let kept = ""; // text before `from`, invisible characters removed (slices: cheaper than a regex)
  let from = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0x20 && cp < 0x7f) continue;
    if (cp >= 0x80) ascii = false;
    const start = i;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        cp = ((cp - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
        i++;
      }
    }
    if (classOf(cp) === INVISIBLE) {
      // lone surrogates included
      kept += text.slice(from, start);
      from = i + 1;
    }
  }
  let s = from === 0 ? text : kept + text.slice(from);
  if (!ascii) s = s.normalize("NFKC");
  return s.toLowerCase();
}

// Word characters: letters, marks, numbers (`\p{L}\p{M}\p{N}`), except those of scripts written
// without spaces between words (Han, kana, Thai, ...): there a word boundary cannot be seen, so
// each such character is its own word and a plain term made of them matches anywhere, like a
// substring term. Korean is written with spaces: Hangul are word characters.
const WORD_CHARACTER = /^[\p{L}\p{M}\p{N}]$/u;
const OWN_WORD =
  /^[\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Bopomofo}\p{scx=Yi}\p{scx=Thai}\p{scx=Lao}\p{scx=Khmer}\p{scx=Myanmar}\p{scx=Tai_Tham}\p{scx=Tai_Viet}\p{scx=New_Tai_Lue}]$/u;
const WHITE_SPACE_CHARACTER = /^\p{White_Space}$/u;
const UNKNOWN = 0;
const WORD = 1;
const OTHER = 2;
const WHITE_SPACE = 3;
const INVISIBLE = 4;
/** Class of each code point, computed on first sight (1.1 MB, pages touched only where used). */
const codePointClass = new Uint8Array(0x110000);

function classOf(cp: number): number {
  let c = codePointClass[cp] ?? OTHER;
  if (c === UNKNOWN) {
    const ch = String.fromCodePoint(cp);
    if (INVISIBLE_ONE.test(ch)) c = INVISIBLE;
    else if (WHITE_SPACE_CHARACTER.test(ch)) c = WHITE_SPACE;
    else if (WORD_CHARACTER.test(ch) && !OWN_WORD.test(ch)) c = WORD;
    else c = OTHER;
    codePointClass[cp] = c;
  }
  return c;
}

function countCodePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}
