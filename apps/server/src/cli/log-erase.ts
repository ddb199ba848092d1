import type { Database } from "../chatlog/database.js";
import { PrismaChatLog } from "../chatlog/prisma-chat-log.js";
import { UserErasure } from "../chatlog/user-erasure.js";
import type { ChatMessage } from "../core/message.js";
import type { Bus } from "../core/ports.js";
import { commandArgs } from "./command-args.js";
import { CliError, ExitCode, usageError } from "./exit-codes.js";
import { Progress } from "./progress.js";

const USAGE = `usage: chatrelay log erase --user N --operator N --reason TEXT [--yes]

Empties the text and nickname of every chat message user N sent, in every room (the entries stay,
marked deleted), records the erasure in the audit (GET /v1/erasures) and logs an \`erase\` moderation
event in each affected room.
  --user N       whose messages (a positive user id)
  --operator N   who erases (your user id; it goes into the audit and is the events' actor)
  --reason TEXT  why (1 to 500 characters; kept in the audit)
  --yes          do it; without it the command prints what it would do and exits 2
With REDIS_URL (and REDIS_KEY_PREFIX, REDIS_USERNAME, REDIS_PASSWORD as the nodes have them) the
events are published to live presenters at once; without it presenters read them from the log
(gap fill at the room's next message, or their next resume).`;

const MAX_REASON = 500;

/** `chatrelay log erase`: the operator route's erasure, from the command line. */
export async function runErase(db: Database, args: string[]): Promise<number> {
  const parsed = commandArgs(
    args,
    {
      user: { type: "string" },
      operator: { type: "string" },
      reason: { type: "string" },
      yes: { type: "boolean" },
    },
    USAGE,
  );
  if (parsed === undefined) return ExitCode.ok;
  const values = parsed as { user?: string; operator?: string; reason?: string; yes?: boolean };
  const userId = positiveId(values.user, "--user");
  const operatorId = positiveId(values.operator, "--operator");
  const reason = values.reason?.trim();
  if (reason === undefined || reason.length === 0 || reason.length > MAX_REASON) {
    throw usageError(`--reason is required: 1 to ${MAX_REASON} characters`);
  }

  const out = (line: string) => process.stderr.write(`${line}\n`);
  const log = new PrismaChatLog(db, 64);
  const plan = await new UserErasure(db, log, async () => {}).plan(userId);
  const total = plan.reduce((sum, r) => sum + r.messages, 0);
  out(`user ${userId}: ${total} message(s) to erase in ${plan.length} room(s)`);
  for (const r of plan) out(`  room ${r.roomId}: ${r.messages}`);
  if (values.yes !== true) {
    out("nothing was changed: repeat with --yes to erase");
    return ExitCode.usage;
  }
  const publisher = await connectPublisher();
  try {
    out(publisher.note);
    const progress = new Progress("erased", total, out);
    const result = await new UserErasure(db, log, publisher.publish).erase({
      operatorId,
      userId,
      reason,
      onRoom: (room) => {
        const event = room.eventSeq === undefined ? "" : `, erase event seq ${room.eventSeq}`;
        out(`  room ${room.roomId}: ${room.messages} erased${event}`);
        progress.add(room.messages);
      },
    });
    progress.finish();
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return ExitCode.ok;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new CliError(
      `the erasure failed (its audit row in GET /v1/erasures says how far it got; running it again is safe): ${reason}`,
      ExitCode.failed,
    );
  } finally {
    await publisher.close();
  }
}

function positiveId(raw: string | undefined, name: string): number {
  if (raw === undefined) throw usageError(`${name} is required`);
  const n = /^[1-9]\d{0,15}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw usageError(`${name} must be a positive integer`);
  return n;
}

interface Publisher {
  publish: (event: ChatMessage) => Promise<void>;
  note: string;
  close: () => Promise<void>;
}

/**
 * The cluster's bus when REDIS_URL is set (the RedisBus the nodes use, so the channel and payload
 * are theirs). A publish that fails is not an error: the event is in the log, and presenters get
 * it by gap fill or resume.
 */
async function connectPublisher(): Promise<Publisher> {
  const redisUrl = process.env.REDIS_URL?.trim();
  const clusterNodes = process.env.REDIS_CLUSTER_NODES?.trim() || undefined;
  if (clusterNodes !== undefined || (redisUrl !== undefined && /^rediss?\+cluster:/i.test(redisUrl))) {
    return connectClusterPublisher(
      clusterNodes === undefined ? "REDIS_URL" : "REDIS_CLUSTER_NODES",
      clusterNodes ?? (redisUrl as string),
    );
  }
  if (redisUrl === undefined || redisUrl === "") {
    return {
      publish: async () => {},
      note: "REDIS_URL is not set: live presenters get the erase events from the log (at the room's next message, or on their next resume)",
      close: async () => {},
    };
  }
  const [{ Redis }, { effectiveRedisUrl }, { RedisBus }, { default: pino }] = await Promise.all([
    import("ioredis"),
    import("../adapters/redis.js"),
    import("../adapters/redis-bus.js"),
    import("pino"),
  ]);
  const env = (name: string) => process.env[name]?.trim() || undefined;
  const url = effectiveRedisUrl({
    redisUrl,
    redisUsername: env("REDIS_USERNAME"),
    redisPassword: env("REDIS_PASSWORD"),
  });
  const options = { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 2000, lazyConnect: true };
  const commands = new Redis(url, { ...options, connectionName: "chatrelay:cli:cmd" });
  const subscriber = new Redis(url, { ...options, connectionName: "chatrelay:cli:sub" });
  for (const conn of [commands, subscriber]) conn.on("error", () => {});
  try {
    await Promise.all([commands.connect(), subscriber.connect()]);
  } catch {
    commands.disconnect();
    subscriber.disconnect();
    throw new CliError(
      "cannot connect to Redis at REDIS_URL (unset it to erase without publishing)",
      ExitCode.unavailable,
    );
  }
  const bus = new RedisBus(
    commands,
    subscriber,
    env("REDIS_KEY_PREFIX") ?? "chatrelay:",
    pino({ level: "silent" }),
    { maxTextLength: Number.MAX_SAFE_INTEGER },
    IGNORED_COUNTS,
  );
  return publisherOn(bus, "REDIS_URL is set: each erase event is published to the room's live presenter");
}

const IGNORED_COUNTS = { busReceived: () => {}, busRejected: () => {} };

/** Publishing through a node's own bus adapter, so the channel and payload are the nodes'. */
function publisherOn(bus: Bus, note: string): Publisher {
  return {
    publish: async (event) => {
      await bus.publish(event.roomId, { kind: "message", message: event }).catch(() => {});
    },
    note,
    close: () => bus.close(),
  };
}

/** The same on a Redis Cluster: SPUBLISH on the room's shard, as the nodes' sharded bus does. */
async function connectClusterPublisher(name: string, raw: string): Promise<Publisher> {
  const [{ parseClusterSpec }, { clusterClient }, { ShardedRedisBus }, { default: pino }] = await Promise.all([
    import("../adapters/redis-cluster-spec.js"),
    import("../adapters/redis-cluster.js"),
    import("../adapters/sharded-redis-bus.js"),
    import("pino"),
  ]);
  const spec = parseClusterSpec(raw, name);
  if (typeof spec === "string") throw new CliError(spec, ExitCode.usage);
  const env = (key: string) => process.env[key]?.trim() || undefined;
  const cluster = clusterClient(
    spec,
    { username: env("REDIS_USERNAME"), password: env("REDIS_PASSWORD") },
    "chatrelay:cli:cmd",
  );
  cluster.on("error", () => {});
  try {
    await cluster.connect();
  } catch {
    cluster.disconnect();
    throw new CliError(
      `cannot connect to the Redis Cluster at ${name} (unset it to erase without publishing)`,
      ExitCode.unavailable,
    );
  }
  const bus = new ShardedRedisBus(
    cluster,
    env("REDIS_KEY_PREFIX") ?? "chatrelay:",
    pino({ level: "silent" }),
    { maxTextLength: Number.MAX_SAFE_INTEGER },
    IGNORED_COUNTS,
  );
  return publisherOn(bus, `${name} names a Redis Cluster: each erase event is published to the room's live presenter`);
}
