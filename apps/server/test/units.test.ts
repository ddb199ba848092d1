import t from "tap";
import { VerifiedTokenCache } from "../src/auth/token-verifier.js";
import { GroupCommitWriter } from "../src/chatlog/group-commit.js";
import { uuidv7 } from "../src/core/ids.js";
import { checkText, cleanNickname } from "../src/core/text.js";

t.test("uuidv7: RFC 9562 layout, time-ordered", async (t) => {
  const a = uuidv7(1_700_000_000_000);
  const b = uuidv7(1_700_000_000_001);
  t.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.ok(a < b, "a later millisecond sorts after");
  t.equal(a.slice(0, 13).replace("-", ""), (1_700_000_000_000).toString(16).padStart(12, "0"));
});

t.test("verified token cache: never past exp, never past its TTL, bounded", async (t) => {
  let now = 1000;
  const cache = new VerifiedTokenCache(2, 500, () => now);
  const p = { userId: 1, nickname: undefined, roles: [], expiresAt: 10_000, modRooms: [] };
  cache.set("a", p, 1200);
  t.equal(cache.get("a"), p);
  now = 1200;
  t.equal(cache.get("a"), undefined, "expired with the token's exp");
  cache.set("b", p, 10_000);
  now = 1700;
  t.equal(cache.get("b"), undefined, "dropped after the cache TTL even though exp is later");
  cache.set("c", p, 10_000);
  cache.set("d", p, 10_000);
  cache.set("e", p, 10_000);
  t.equal(cache.get("c"), undefined, "oldest evicted at the size bound");
  t.equal(cache.get("e"), p);
});

t.test("text rules", async (t) => {
  t.same(checkText("  hi  ", 10), { ok: true, text: "hi" }, "trimmed");
  t.match(checkText("", 10), { ok: false, code: "text_empty" });
  t.match(checkText("a\tb", 10), { ok: false, code: "text_control_characters" });
  t.match(checkText("\u007f", 10), { ok: false, code: "text_control_characters" });
  t.match(checkText("😀😀", 2), { ok: true }, "code points, not UTF-16 units");
  t.match(checkText("😀😀😀", 2), { ok: false, code: "text_too_long" });
  t.match(checkText("ok\ud83d", 10), { ok: false, code: "text_control_characters" }, "lone surrogate");
});

t.test("group commit writer: batches what queues up, at most maxInFlight at once, close waits", async (t) => {
  const calls: { items: number[]; finish: () => void }[] = [];
  const writer = new GroupCommitWriter<number, number>(
    (items) =>
      new Promise((resolve) => {
        calls.push({ items, finish: () => resolve(items.map((i) => (i === 13 ? new Error("bad 13") : i * 10))) });
      }),
    3,
    undefined,
    2,
  );
  const results = [1, 2, 3, 4, 5, 6, 7, 13].map((i) => writer.write(i));
  await new Promise((resolve) => setImmediate(resolve));
  t.same(
    calls.map((c) => c.items),
    [
      [1, 2, 3],
      [4, 5, 6],
    ],
    "two batches in flight, each at most maxBatch",
  );
  calls[0]?.finish();
  t.same(await Promise.all(results.slice(0, 3)), [10, 20, 30], "each caller gets its own result after its batch");
  t.same(calls[2]?.items, [7, 13], "the next batch starts as soon as one finishes");
  const closing = writer.close();
  await t.rejects(writer.write(99), /closed/);
  calls[1]?.finish();
  calls[2]?.finish();
  t.same(await Promise.all(results.slice(3, 7)), [40, 50, 60, 70]);
  await t.rejects(results[7] as Promise<number>, /bad 13/, "a failed item rejects alone");
  await closing;
});

t.test("display names: clean ones pass unchanged, others are cleaned", async (t) => {
  t.equal(cleanNickname("알리스", 7), "알리스");
  t.equal(cleanNickname(" padded ", 7), "padded");
  t.equal(cleanNickname("a\u0000b", 7), "ab");
  t.equal(cleanNickname("", 7), "user-7");
  t.equal(cleanNickname(undefined, 7), "user-7");
  t.equal(cleanNickname("😀".repeat(70), 7), "😀".repeat(64), "capped at 64 characters, not UTF-16 units");
});
