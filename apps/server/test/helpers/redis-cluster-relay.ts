import { startCluster, stopAll } from "./cluster.js";
import { createTestDatabase, uniqueRedisPrefix } from "./databases.js";
import { request } from "./http.js";
import type { NodeProcess } from "./processes.js";
import { type ClusterNodeProcess, RedisClusterProcesses } from "./redis-cluster.js";
import { mintToken } from "./tokens.js";

/** Three chatrelay nodes on a 3+3 Redis Cluster and a PostgreSQL log of their own. */
export interface RelayOnCluster {
  redis: RedisClusterProcesses;
  nodes: NodeProcess[];
  /** The nodes' REDIS_KEY_PREFIX. */
  keyPrefix: string;
  stop(): Promise<void>;
}

/** Starts everything, or stops whatever started if a later part fails. */
export async function startRelayOnCluster(env: Record<string, string> = {}, count = 3): Promise<RelayOnCluster> {
  const db = await createTestDatabase();
  let redis: RedisClusterProcesses | undefined;
  let nodes: NodeProcess[] = [];
  const stop = async () => {
    await stopAll(nodes);
    await redis?.stop();
    await db.drop();
  };
  const keyPrefix = uniqueRedisPrefix();
  try {
    redis = await RedisClusterProcesses.start();
    nodes = await startCluster(count, {
      REDIS_CLUSTER_NODES: redis.spec,
      REDIS_KEY_PREFIX: keyPrefix,
      DATABASE_URL: db.url,
      ...env,
    });
    return { redis, nodes, keyPrefix, stop };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

/** The Redis key of a room's hash tag: its bus channel, presence and gate keys all share this slot. */
export function roomTag(room: number): string {
  return `{${room}}`;
}

/** `perMaster` room ids (from `from` upwards) for each master, so rooms spread over every shard. */
export async function roomsByMaster(
  redis: RedisClusterProcesses,
  perMaster: number,
  from: number,
): Promise<Map<ClusterNodeProcess, number[]>> {
  const masters = await redis.masters();
  const byId = new Map<string, number[]>(masters.map((m) => [m.id, []]));
  for (let room = from; [...byId.values()].some((r) => r.length < perMaster); room++) {
    if (room > from + 10_000) throw new Error("could not spread rooms over the masters");
    const rooms = byId.get((await redis.masterOf(roomTag(room))).id);
    if (rooms && rooms.length < perMaster) rooms.push(room);
  }
  return new Map(masters.map((m) => [m, byId.get(m.id) as number[]]));
}

/** The node's `chatrelay_bus_received_total` (payloads received on its rooms' subscriptions). */
export async function busReceived(node: NodeProcess): Promise<number> {
  const res = await request(`${node.ops}/metrics`);
  const match = /^chatrelay_bus_received_total (\d+)/m.exec(res.text);
  if (!match) throw new Error(`${node.name}: no chatrelay_bus_received_total in /metrics`);
  return Number(match[1]);
}

const RETRY_BACKOFF_MS = 100;

export interface Answer {
  status: number;
  ms: number;
}

export interface AcceptedPost {
  seq: number;
  id: string;
  clientMsgId: string;
}

/**
 * Senders posting a steady stream into one room across nodes, each post with its own clientMsgId.
 * A 503 is retried with the same clientMsgId (what a client does), so every post ends 2xx'd unless
 * something else goes wrong; every attempt's status and latency is kept.
 */
export class RetryingStream {
  readonly accepted: AcceptedPost[] = [];
  readonly answers: Answer[] = [];
  private running = true;
  private loops: Promise<void>[] = [];
  private listeners: (() => void)[] = [];

  private constructor(
    private readonly room: number,
    private readonly targets: string[],
    /** A post that keeps getting 503 is given up after this long (the test then fails on it). */
    private readonly retryForMs: number,
  ) {}

  static async start(room: number, targets: string[], senders = 2, retryForMs = 30_000): Promise<RetryingStream> {
    const stream = new RetryingStream(room, targets, retryForMs);
    const tokens = await Promise.all(Array.from({ length: senders }, (_, i) => mintToken({ user_idx: 7000 + i })));
    stream.loops = tokens.map((token, i) => stream.loop(token, i));
    return stream;
  }

  /** 2xx'd posts so far. */
  get count(): number {
    return this.accepted.length;
  }

  /** Resolves once `n` more posts were 2xx'd. */
  acceptedMore(n: number, timeoutMs = 30_000): Promise<void> {
    const target = this.accepted.length + n;
    return this.until(() => this.accepted.length >= target, `${target} accepted posts`, timeoutMs);
  }

  /** Resolves once `n` more attempts were answered, whatever the status. */
  answeredMore(n: number, timeoutMs = 30_000): Promise<void> {
    const target = this.answers.length + n;
    return this.until(() => this.answers.length >= target, `${target} answered attempts`, timeoutMs);
  }

  private until(check: () => boolean, what: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== listener);
        reject(
          new Error(
            `stream to room ${this.room}: no ${what} after ${timeoutMs} ms (${this.accepted.length} accepted, ${this.answers.length} answers; last ${JSON.stringify(this.answers.slice(-5))})`,
          ),
        );
      }, timeoutMs);
      const listener = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== listener);
        resolve();
      };
      this.listeners.push(listener);
      listener();
    });
  }

  /** Stops after each sender's current post (retries included) is settled. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(token: string, sender: number): Promise<void> {
    for (let k = 0; this.running; k++) {
      const clientMsgId = `s${sender}-${k}`;
      const giveUpAt = Date.now() + this.retryForMs;
      for (let attempt = 0; ; attempt++) {
        const base = this.targets[(sender + k + attempt) % this.targets.length] as string;
        const started = Date.now();
        let status: number;
        let body: Record<string, unknown> = {};
        try {
          const res = await request<Record<string, unknown>>(`${base}/v1/rooms/${this.room}/messages`, {
            headers: { authorization: `Bearer ${token}` },
            body: { text: `${clientMsgId} to ${this.room}`, clientMsgId },
          });
          status = res.status;
          body = res.body;
        } catch {
          status = 0;
        }
        this.answers.push({ status, ms: Date.now() - started });
        if (status === 201) this.accepted.push({ seq: body.seq as number, id: body.id as string, clientMsgId });
        for (const l of [...this.listeners]) l();
        if (status === 201) break;
        if (status !== 503 || Date.now() > giveUpAt) break;
        // Client back-off before the retry (pacing, not synchronisation: the outcome does not depend on it).
        await new Promise((resolve) => setTimeout(resolve, RETRY_BACKOFF_MS));
      }
    }
  }
}
