/** Exponential back-off with jitter, for reconnects and retries. */
export interface BackoffOptions {
  /** First delay (before jitter). @default 250 */
  initialMs: number;
  /** Largest delay (before jitter). @default 10000 */
  maxMs: number;
  /** Growth per attempt. @default 2 */
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 10_000, factor: 2 };

/**
 * The delay before retry number `attempt` (0 for the first): "equal jitter",
 * half of the exponential step fixed and half random, so that clients cut off
 * together (a node restart drops all its presenters at once) spread out
 * instead of reconnecting in waves, yet none retries at once.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const step = Math.min(options.maxMs, options.initialMs * options.factor ** Math.max(0, attempt));
  return Math.round(step / 2 + random() * (step / 2));
}
