import { setTimeout as sleep } from "node:timers/promises";

export interface SpreadOptions {
  /** Starts fall at random within this window (0: all at once, still bounded by `concurrency`). */
  spreadMs: number;
  /** Most tasks running at once. */
  concurrency: number;
  /** Injected by tests; Math.random otherwise. */
  random?: () => number;
  /** Waits until a task's start; injected by tests (no timing assertions), a timer otherwise. */
  wait?: (ms: number) => Promise<void>;
  /** Milliseconds since an arbitrary origin; injected by tests. */
  now?: () => number;
}

/**
 * Runs `task` once for every item, each starting at a random moment within `spreadMs` and never
 * more than `concurrency` at once. After an outage every node resyncs every presenter: spread out,
 * the stores see a steady trickle instead of one burst. `task` handles its own errors.
 */
export async function runSpread<T>(
  items: readonly T[],
  options: SpreadOptions,
  task: (item: T) => Promise<void>,
): Promise<void> {
  const random = options.random ?? Math.random;
  const wait = options.wait ?? ((ms: number) => sleep(ms));
  const now = options.now ?? (() => performance.now());
  const concurrency = Math.max(1, Math.floor(options.concurrency));
  const schedule = items
    .map((item) => ({ item, at: Math.floor(random() * Math.max(0, options.spreadMs)) }))
    .sort((a, b) => a.at - b.at);
  const origin = now();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const entry = schedule[next++];
      if (entry === undefined) return;
      const due = entry.at - (now() - origin);
      if (due > 0) await wait(due);
      await task(entry.item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, schedule.length) }, worker));
}
