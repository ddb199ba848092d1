import { uniqueRedisPrefix } from "./databases.js";
import { PrivatePostgres } from "./postgres-server.js";
import { NodeProcess } from "./processes.js";
import { PrivateRedis } from "./redis-server.js";

const DB = "chatrelay_nemesis";

/**
 * The system under test for the nemesis: N chatrelay node processes on a private redis-server and a
 * private PostgreSQL, with the faults the nemesis injects. A node slot keeps its letter; each
 * (re)start is a new incarnation ("node-b#2") on a port the OS picks.
 */
export class NemesisCluster {
  /** The current process of each slot (an exited one until it is restarted). */
  readonly nodes: NodeProcess[] = [];
  private readonly incarnations: number[] = [];
  private readonly paused = new Set<NodeProcess>();
  redisUp = true;
  postgresUp = true;
  /** Every incarnation ever started, for teardown. */
  private readonly started: NodeProcess[] = [];

  private constructor(
    readonly redis: PrivateRedis,
    readonly postgres: PrivatePostgres,
    private readonly env: Record<string, string>,
  ) {}

  get databaseUrl(): string {
    return this.postgres.url(DB);
  }

  static async start(count: number, env: Record<string, string>): Promise<NemesisCluster> {
    const redis = await PrivateRedis.start();
    let postgres: PrivatePostgres;
    try {
      postgres = await PrivatePostgres.start();
    } catch (err) {
      await redis.stop();
      throw err;
    }
    const cluster = new NemesisCluster(redis, postgres, {});
    try {
      const databaseUrl = await postgres.createDatabase(DB);
      Object.assign(cluster.env, {
        REDIS_URL: redis.url,
        REDIS_KEY_PREFIX: uniqueRedisPrefix(),
        DATABASE_URL: databaseUrl,
        ...env,
      });
      // One at a time: the first runs the migrations, and a 2-core machine starts them faster in a row.
      for (let i = 0; i < count; i++) {
        cluster.incarnations.push(0);
        cluster.nodes.push(await cluster.spawn(i));
      }
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Nodes whose process runs (a SIGSTOPped one included: a client cannot tell it is stopped). */
  running(): NodeProcess[] {
    return this.nodes.filter((n) => !n.exit);
  }

  isPaused(node: NodeProcess): boolean {
    return this.paused.has(node);
  }

  async killNode(slot: number): Promise<NodeProcess> {
    const node = this.nodes[slot] as NodeProcess;
    this.resumeNode(slot);
    await node.kill("SIGKILL");
    return node;
  }

  async restartNode(slot: number): Promise<NodeProcess> {
    const node = await this.spawn(slot);
    this.nodes[slot] = node;
    return node;
  }

  /** SIGSTOP: the node keeps its sockets and answers nothing; its heartbeat stops, so its presence expires. */
  pauseNode(slot: number): NodeProcess {
    const node = this.nodes[slot] as NodeProcess;
    if (node.child.pid !== undefined && !node.exit) process.kill(node.child.pid, "SIGSTOP");
    this.paused.add(node);
    return node;
  }

  resumeNode(slot: number): void {
    const node = this.nodes[slot] as NodeProcess;
    if (!this.paused.delete(node)) return;
    if (node.child.pid !== undefined && !node.exit) process.kill(node.child.pid, "SIGCONT");
  }

  async killRedis(): Promise<void> {
    this.redisUp = false;
    await this.redis.stop();
  }

  /** Redis comes back empty: presence, gate state and subscriptions are gone. */
  async restartRedis(): Promise<void> {
    await this.redis.restart();
    this.redisUp = true;
  }

  async killPostgres(): Promise<void> {
    this.postgresUp = false;
    await this.postgres.kill();
  }

  /** Same data folder: everything committed before the crash is there. */
  async restartPostgres(): Promise<void> {
    await this.postgres.restart();
    this.postgresUp = true;
  }

  /** Brings everything that is down back up. */
  async heal(): Promise<void> {
    for (let slot = 0; slot < this.nodes.length; slot++) this.resumeNode(slot);
    if (!this.postgresUp) await this.restartPostgres();
    if (!this.redisUp) await this.restartRedis();
    for (let slot = 0; slot < this.nodes.length; slot++) if (this.nodes[slot]?.exit) await this.restartNode(slot);
  }

  async stop(): Promise<void> {
    for (const node of this.started) {
      if (node.exit) continue;
      if (node.child.pid !== undefined) process.kill(node.child.pid, "SIGCONT");
      await node.kill("SIGKILL");
    }
    await this.redis.stop();
    await this.postgres.destroy();
  }

  private async spawn(slot: number): Promise<NodeProcess> {
    const incarnation = (this.incarnations[slot] ?? 0) + 1;
    this.incarnations[slot] = incarnation;
    const name = `node-${String.fromCharCode(97 + slot)}${incarnation > 1 ? `#${incarnation}` : ""}`;
    const node = await NodeProcess.start(name, this.env, 60_000);
    this.started.push(node);
    return node;
  }
}
