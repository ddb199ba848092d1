// Micro-benchmark of the per-message text and display-name checks (not a test).
// Usage: node --import tsx apps/server/scripts/bench-text.ts [iterations]
import { checkText, cleanNickname } from "../src/core/text.js";

const iterations = Number(process.argv[2] ?? 2_000_000);
let sink = 0;

function bench(what: string, run: () => number): void {
  for (let i = 0; i < 100_000; i++) sink += run(); // warm up, let V8 optimise
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink += run();
  const ns = Number(process.hrtime.bigint() - start) / iterations;
  process.stdout.write(`${what.padEnd(44)} ${ns.toFixed(1).padStart(7)} ns/call\n`);
}

const asciiText = "hello from the crowd"; // 20 characters
const koreanText = "안녕하세요 오늘 방송 재밌어요 ㅋㅋㅋ";
const emojiText =
  "\u{1F469}\u200D\u{1F4BB} nice stream \u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} \u2764\uFE0F";
bench("checkText: 20-char ASCII", () => (checkText(asciiText, 500).ok ? 1 : 0));
bench("checkText: Korean", () => (checkText(koreanText, 500).ok ? 1 : 0));
bench("checkText: emoji ZWJ + flag tags", () => (checkText(emojiText, 500).ok ? 1 : 0));
bench("checkText: refused (U+202E)", () => (checkText("abc\u202Edef", 500).ok ? 1 : 0));
bench("cleanNickname: ASCII (fast path)", () => cleanNickname("viewer_2024 fan", 7).length);
bench("cleanNickname: Korean (fast path)", () => cleanNickname("알리스", 7).length);
bench("cleanNickname: emoji (full cleaning)", () => cleanNickname("kim 😀", 7).length);
bench("cleanNickname: ad\\u200Bmin (full cleaning)", () => cleanNickname("ad\u200Bmin", 7).length);
if (sink === -1) process.stdout.write("\n");
