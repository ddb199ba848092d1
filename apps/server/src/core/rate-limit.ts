/** `count` posts per `windowMs`, with a burst of up to `count` (GCRA). */
export interface Limit {
  count: number;
  windowMs: number;
}

/** Every limit the gate applies; undefined switches one off. */
export interface GateLimits {
  /** Per sender per room (viewers). */
  room: Limit | undefined;
  /** Per sender per room for the room's presenter and moderators. */
  roomPrivileged: Limit | undefined;
  /** Per sender across all rooms. */
  sender: Limit | undefined;
  /** Per client address, posts. */
  addressPosts: Limit | undefined;
  /** Per client address, WebSocket opens. */
  addressSockets: Limit | undefined;
}

/** Parses "20/30s" (also ms, m, h) or "off". */
export function parseLimit(raw: string): Limit | undefined | "invalid" {
  if (raw === "off") return undefined;
  const m = /^([1-9]\d{0,6})\/([1-9]\d{0,6})(ms|s|m|h)$/.exec(raw);
  if (!m) return "invalid";
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[3] as "ms" | "s" | "m" | "h"];
  const windowMs = Number(m[2]) * unit;
  if (windowMs > 86_400_000) return "invalid";
  return { count: Number(m[1]), windowMs };
}

export function describeLimit(limit: Limit | undefined): string {
  return limit === undefined ? "off" : `${limit.count}/${limit.windowMs}ms`;
}

/**
 * GCRA (the generic cell rate algorithm), i.e. a token bucket of `count`
 * refilled at count per window: one number per key, the theoretical arrival
 * time (TAT). A post is allowed while it would not push the TAT more than a
 * window past now: a burst of `count`, then one per window/count. TATs are
 * whole microseconds (exact as doubles below 2^53), and the interval is
 * rounded down, so a burst is exactly `count` whatever the window. Returns
 * the new TAT, or the wait in ms when refused. The Redis gate runs the same
 * arithmetic in Lua.
 */
export function gcra(tat: number | undefined, nowMs: number, limit: Limit): { tat: number } | { retryAfterMs: number } {
  const now = Math.floor(nowMs) * 1000;
  const window = limit.windowMs * 1000;
  const interval = Math.max(1, Math.floor(window / limit.count));
  const next = Math.max(tat ?? now, now) + interval;
  if (next - now > window) return { retryAfterMs: Math.ceil((next - window - now) / 1000) };
  return { tat: next };
}

/** A TAT (µs) older than now (ms) counts for nothing: its key may be forgotten. */
export function tatExpired(tat: number, nowMs: number): boolean {
  return tat <= nowMs * 1000;
}

/** Every limit off (unit tests of other parts; benchmarks set the env vars to "off"). */
export const NO_LIMITS: GateLimits = {
  room: undefined,
  roomPrivileged: undefined,
  sender: undefined,
  addressPosts: undefined,
  addressSockets: undefined,
};
