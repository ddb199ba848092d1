// Micro-benchmark of blocked-term matching and compiling (not a test).
// Usage: node --import tsx apps/server/scripts/bench-blocked-terms.ts [iterations]
import { compileTerms, foldText, MAX_BLOCKED_TERMS } from "../src/core/blocked-terms.js";

const iterations = Number(process.argv[2] ?? 500_000);
let sink = 0;

function bench(what: string, runs: number, run: () => number): void {
  for (let i = 0; i < Math.min(runs, 50_000); i++) sink += run(); // warm up, let V8 optimise
  const start = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) sink += run();
  const ns = Number(process.hrtime.bigint() - start) / runs;
  const shown = ns >= 100_000 ? `${(ns / 1e6).toFixed(2)} ms` : `${ns.toFixed(0)} ns`;
  process.stdout.write(`${what.padEnd(58)} ${shown.padStart(10)}/call\n`);
}

// Deterministic pseudo-random terms: lower-case words of 4-10 letters (ending in "qz", so no
// message below contains one), one in four a substring term, one in ten two words.
let seed = 42;
const random = (n: number): number => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % n;
};
const word = (): string =>
  `${Array.from({ length: 4 + random(7) }, () => String.fromCharCode(97 + random(26))).join("")}qz`;
const terms = Array.from({ length: MAX_BLOCKED_TERMS }, () => {
  const body = random(10) === 0 ? `${word()} ${word()}` : word();
  return random(4) === 0 ? `*${body}*` : body;
});
const worstTerms = Array.from(
  { length: MAX_BLOCKED_TERMS },
  (_, i) => `${String(i).padStart(3, "0")}${"x".repeat(97)}`,
);

// 100-code-point messages that contain no term (the hot path's common case).
const ascii = "Great stream today! Loved the part where you explained the boss fight, can you do it again tomorrow?";
const korean =
  "오늘 방송 정말 재밌었어요 보스전 설명해 주신 부분이 최고였어요 내일도 다시 해 주실 수 있나요 기대하고 있을게요 화이팅입니다 감사합니다 다음 방송도 꼭 볼게요 친구들한테도 알려줄게요 ㅋㅋㅋ";
const emoji =
  "\u{1F469}\u200D\u{1F4BB} nice stream \u2764\uFE0F\u{1F525}\u{1F525} that boss fight was insane \u{1F44F}\u{1F44F} again tomorrow please?? see you then, bye for now \u{1F44B}\u{1F3FD}";
const first100 = (s: string): string => [...s].slice(0, 100).join("");
const messages: [string, string][] = [
  ["ASCII", first100(ascii)],
  ["Korean", first100(korean)],
  ["emoji + ZWJ + VS", first100(emoji)],
];
for (const [name, text] of messages) process.stdout.write(`# ${name}: ${[...text].length} code points\n`);

for (const [name, text] of messages) bench(`foldText only, ${name}`, iterations, () => foldText(text).length);
for (const count of [0, 50, MAX_BLOCKED_TERMS]) {
  const matcher = compileTerms(terms.slice(0, count));
  for (const [name, text] of messages) {
    bench(`matches, ${String(count).padStart(3)} terms, ${name}`, iterations, () => (matcher.matches(text) ? 1 : 0));
  }
}
const hit = compileTerms(terms);
const hitText = `${ascii.slice(0, 60)} ${(terms[250] ?? "").replaceAll("*", "")}`;
bench("matches, 500 terms, ASCII with a term near the end", iterations, () => (hit.matches(hitText) ? 1 : 0));

bench("compileTerms, 50 terms", 2_000, () => compileTerms(terms.slice(0, 50)).size);
bench("compileTerms, 500 terms", 200, () => compileTerms(terms).size);
bench("compileTerms, 500 terms of 100 code points", 50, () => compileTerms(worstTerms).size);
if (sink === -1) process.stdout.write("\n");
