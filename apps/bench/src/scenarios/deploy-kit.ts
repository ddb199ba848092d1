/** What every load deployment is built from: nodes, databases, presenters, and their teardown. */
import type { BenchConfig } from "../config.js";
import { openChatrelayPresenters, type PresenterGroup } from "../load/presenters.js";
import type { Tracker } from "../load/tracker.js";
import { startChatrelayNode, type Target } from "../targets.js";
import { type BenchDatabase, createDatabase, mintToken, REDIS_URL, redisPrefix } from "../util/services.js";

export interface Deployment {
  /** Where the posts go; more than one: each post goes to one of them at random (a load balancer's spread). */
  postBases: string[];
  targets: Target[];
  delivers: boolean;
  openPresenters?: (tracker: Tracker, rooms: number[]) => Promise<PresenterGroup>;
  /** Runs before the presenters connect (room set-up whose events must not reach them as frames). */
  prepareRooms?: (rooms: number[]) => Promise<string>;
  /** Runs once the presenters are connected (rooms are live): a check of that set-up. */
  checkRooms?: (rooms: number[]) => Promise<void>;
  db?: BenchDatabase;
  /** The rooms this deployment is loaded with, when not the configured 1..rooms (the hot room). */
  rooms?: number[];
}

/** Teardown steps, run in reverse order, each one even when an earlier one failed. */
export class Teardown {
  private readonly steps: (() => Promise<void>)[] = [];
  push(step: () => Promise<void>): void {
    this.steps.push(step);
  }
  async run(): Promise<string[]> {
    const errors: string[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    return errors;
  }
}

const tokenCache = new Map<number, Promise<string>>();
export function presenterToken(room: number): Promise<string> {
  let t = tokenCache.get(room);
  if (!t) {
    t = mintToken(room, `presenter-${room}`);
    tokenCache.set(room, t);
  }
  return t;
}

/** A chatrelay node stopped by the teardown. */
export async function startNode(name: string, env: Record<string, string>, config: BenchConfig, down: Teardown) {
  const t = await startChatrelayNode({ name, env, profileDir: config.profileDir });
  down.push(() => t.proc.stop(15_000));
  return t;
}

/** A fresh PostgreSQL database and Redis key prefix, both removed by the teardown. */
export async function pgAndRedis(label: string, down: Teardown) {
  const db = await createDatabase(label);
  down.push(() => db.drop());
  const redis = redisPrefix(label);
  down.push(() => redis.clean());
  return { db, env: { DATABASE_URL: db.url, REDIS_URL, REDIS_KEY_PREFIX: redis.prefix } };
}

/** chatrelay v1 presenter sockets on the node (or nginx) at `port`. */
export const relayPresenters = (port: number) => (tracker: Tracker, rooms: number[]) =>
  openChatrelayPresenters(`ws://127.0.0.1:${port}`, rooms, presenterToken, tracker, {
    concurrency: 50,
    timeoutMs: 30_000,
  });

/** Presenters spread over several nodes: room i (i-th of `rooms`) on node i mod n, as a balancer would place them. */
export const spreadPresenters = (ports: number[]) => async (tracker: Tracker, rooms: number[]) => {
  const settled = await Promise.allSettled(
    ports.map((port, n) =>
      relayPresenters(port)(
        tracker,
        rooms.filter((_, i) => i % ports.length === n),
      ),
    ),
  );
  const groups = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const refused = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (refused) {
    await Promise.all(groups.map((g) => g.close()));
    throw refused.reason;
  }
  return {
    get unexpectedCloses() {
      return groups.flatMap((g) => g.unexpectedCloses);
    },
    count: groups.reduce((s, g) => s + g.count, 0),
    async close() {
      await Promise.all(groups.map((g) => g.close()));
    },
  } satisfies PresenterGroup;
};
