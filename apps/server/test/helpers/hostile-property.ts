import fc from "fast-check";
import type { Test } from "tap";
import type { HostileNode } from "./hostile-node.js";

/** One fixed seed per file (printed); HOSTILE_SEED overrides it to explore. */
export function hostileSeed(fileDefault: number): number {
  const env = process.env.HOSTILE_SEED;
  return env !== undefined && /^-?\d+$/.test(env) ? Number(env) : fileDefault;
}

/**
 * Runs an async property a bounded number of times with a fixed seed. No
 * shrinking after a failure (`endOnFailure`): the node under test keeps its
 * state, so a shrunk counterexample would not be trustworthy.
 */
export async function runProperty<T>(
  t: Test,
  name: string,
  seed: number,
  numRuns: number,
  property: fc.IAsyncProperty<[T]>,
): Promise<void> {
  const started = Date.now();
  try {
    await fc.assert(property, { seed, numRuns, endOnFailure: true, includeErrorInReport: true });
    t.pass(`${name}: ${numRuns} generated cases held (seed ${seed}, ${Date.now() - started} ms)`);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    t.fail(`${name} (seed ${seed}): ${message.length > 6000 ? `${message.slice(0, 6000)}…` : message}`);
  }
}

/** The node survived what came before: same process, /healthz, control presenters open and relaying. */
export async function assertServing(t: Test, node: HostileNode, after: string): Promise<void> {
  const problems = await node.serving(after);
  t.same(problems, [], `after ${after}: the node still serves and relays`);
}
