import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import type { Readable } from "node:stream";

/**
 * Waits on states that announce themselves through no event (a Redis key, an HTTP answer that
 * changes once another component acts): re-checks `check` until it holds, bounded. The interval
 * paces the re-checks only; the outcome never depends on it.
 */
export async function pollUntil<T>(
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Resolves with the promise's value, or rejects naming `what` if it takes longer than `timeoutMs`. */
export function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Resolves once a child process's stdout and stderr have ended. Its 'exit' event may come before
 * the last output was read: lines read right after `exited()` can miss the final ones.
 */
export async function outputEnded(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const streams = [child.stdout, child.stderr].filter((s): s is Readable => s !== null);
  await within(
    Promise.all(streams.map((s) => (s.closed ? undefined : once(s, "close")))),
    timeoutMs,
    "the process's output to end",
  );
}
