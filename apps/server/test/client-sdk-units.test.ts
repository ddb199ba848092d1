import { backoffDelay, DEFAULT_BACKOFF, parseRetryAfter, tokenExpiry } from "@chatrelay/client";
import t from "tap";
import { mintToken } from "./helpers/tokens.js";

// The SDK's pure parts: back-off bounds, reading a token's expiry, Retry-After.

t.test("back-off grows by its factor up to the cap, with half of each step random", async (t) => {
  const steps = [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000];
  steps.forEach((step, attempt) => {
    t.equal(
      backoffDelay(attempt, DEFAULT_BACKOFF, () => 0),
      step / 2,
      `attempt ${attempt}: at least half its step`,
    );
    t.equal(
      backoffDelay(attempt, DEFAULT_BACKOFF, () => 1),
      step,
      `attempt ${attempt}: at most its step`,
    );
  });
  const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(3, DEFAULT_BACKOFF)));
  t.ok(spread.size > 10, "clients cut off together do not retry together");
});

t.test("a token's expiry is read without verifying; anything else gives none", async (t) => {
  const token = await mintToken({ user_idx: 5, nickname: "é 名前" });
  const exp = tokenExpiry(token);
  t.ok(exp !== undefined && Math.abs(exp - Date.now()) < 24 * 3600 * 1000, "exp of a minted token, in ms");
  for (const bad of ["", "a.b.c", "x", "a.!!!.c", `a.${Buffer.from('{"exp":"soon"}').toString("base64url")}.c`]) {
    t.equal(tokenExpiry(bad), undefined, JSON.stringify(bad));
  }
});

t.test("Retry-After in seconds or as a date", async (t) => {
  t.equal(parseRetryAfter("2"), 2000);
  t.equal(parseRetryAfter(null), undefined);
  t.equal(parseRetryAfter("soon"), undefined);
  const inFuture = parseRetryAfter(new Date(Date.now() + 60_000).toUTCString()) ?? 0;
  t.ok(inFuture > 50_000 && inFuture <= 60_000, "an HTTP date");
});
