/** A retention policy: null means no limit of that kind (kept forever by that rule). */
export interface RetentionPolicy {
  /** Entries older than this many days are pruned. */
  maxAgeDays: number | null;
  /** Only the room's newest this many entries are kept. */
  maxCount: number | null;
}

/** Bounds shared by the environment (config.ts), the routes and the table's CHECK constraints. */
export const RETENTION_LIMITS = {
  maxAgeDays: { min: 1, max: 36_500 },
  maxCount: { min: 1, max: Number.MAX_SAFE_INTEGER },
} as const;

export const KEEP_FOREVER: RetentionPolicy = { maxAgeDays: null, maxCount: null };

export function keepsEverything(policy: RetentionPolicy): boolean {
  return policy.maxAgeDays === null && policy.maxCount === null;
}

/** A room's own policy (a row of room_retention), or the global one when it has none. */
export function effectivePolicy(global: RetentionPolicy, override: RetentionPolicy | null): RetentionPolicy {
  return override ?? global;
}
