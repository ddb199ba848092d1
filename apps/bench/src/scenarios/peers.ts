/** The Socket.IO reference systems: the peer without a log, and the same peer with one awaited INSERT per message. */
import type { BenchConfig } from "../config.js";
import { openSocketIoPresenters } from "../load/presenters.js";
import { startHelperServer } from "../targets.js";
import { createDatabase, JWT_SECRET, REDIS_URL, redisPrefix } from "../util/services.js";
import { type Deployment, presenterToken, type Teardown } from "./deploy-kit.js";

/**
 * Ingest process A (the HTTP post) and edge process B (the presenters), Redis adapter between.
 * `naiveLog`: A also writes each message to PostgreSQL (`chat_message` in a fresh database,
 * one awaited INSERT through a `pg` pool) before it emits and answers.
 */
export async function deploySocketIoPeer(
  label: string,
  config: BenchConfig,
  down: Teardown,
  naiveLog: boolean,
): Promise<Deployment> {
  const redis = redisPrefix(label);
  down.push(() => redis.clean());
  const env: Record<string, string> = { REDIS_URL, REDIS_KEY_PREFIX: redis.prefix, JWT_SECRET };
  const db = naiveLog ? await createDatabase(label) : undefined;
  if (db) down.push(() => db.drop());
  const ingestEnv = db ? { ...env, PEER_LOG_DATABASE_URL: db.url } : env;
  const [ingest, edge] = await Promise.all([
    startHelperServer(`${label}-A-posts`, "peer.ts", { ...ingestEnv, PEER_ROLE: "ingest" }, config.profileDir),
    startHelperServer(`${label}-B-presenters`, "peer.ts", { ...env, PEER_ROLE: "edge" }, config.profileDir),
  ]);
  down.push(() => ingest.proc.stop(5000));
  down.push(() => edge.proc.stop(5000));
  return {
    postBases: [`http://127.0.0.1:${ingest.port}`],
    targets: [ingest, edge],
    delivers: true,
    openPresenters: (tracker, rooms) =>
      openSocketIoPresenters(`http://127.0.0.1:${edge.port}`, rooms, presenterToken, tracker, {
        concurrency: 50,
        timeoutMs: 30_000,
      }),
    ...(db ? { db } : {}),
  };
}
