import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "./processes.js";
import { pollUntil } from "./wait.js";

/**
 * Redis' key → slot function (CRC16/XMODEM of the key, or of its first non-empty `{tag}`), written out
 * here because the tests need Redis' answer: ioredis' `cluster-key-slot` 1.1.1 misreads keys whose first
 * tag is empty ("{}{701}" → slot of "{701"): ioredis then follows a MOVED; chatrelay's keys never look like that.
 */
export function redisKeySlot(key: string): number {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

const HOST = "127.0.0.1";
const SLOTS = 16384;
/** Bounds for states the cluster reaches by itself (formation, failover, epoch propagation). */
const FORM_TIMEOUT_MS = 30_000;
const FAILOVER_TIMEOUT_MS = 30_000;
const MIGRATE_BATCH = 100;

export interface ClusterNodeProcess {
  port: number;
  /** CLUSTER MYID */
  id: string;
}

export interface RedisClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  nodeTimeoutMs?: number;
  /** Binaries (default: from PATH); tests point these elsewhere to check the missing-binary error. */
  redisServer?: string;
  redisCli?: string;
}

/** One redis-server process of the cluster, with its own data dir and a client for admin commands. */
class RedisNode implements ClusterNodeProcess {
  id = "";
  private log = "";
  private exited: Promise<void>;
  private admin: Redis | undefined;

  constructor(
    readonly port: number,
    readonly busPort: number,
    readonly dir: string,
    readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    const keep = (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-8000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get address(): string {
    return `${HOST}:${this.port}`;
  }

  tail(): string {
    return this.log.split("\n").slice(-15).join("\n");
  }

  ready(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`redis-server :${this.port} not ready in ${timeoutMs} ms: ${this.tail()}`)),
        timeoutMs,
      );
      const check = () => {
        if (!this.log.includes("Ready to accept connections")) return;
        clearTimeout(timer);
        this.child.stdout?.off("data", check);
        resolve();
      };
      this.child.stdout?.on("data", check);
      this.child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`redis-server :${this.port} exited (${code ?? signal}): ${this.tail()}`));
      });
      check();
    });
  }

  /** A command on this node only (cluster admin commands are node-local: no redirects). */
  async call(...args: (string | number)[]): Promise<unknown> {
    if (!this.alive) throw new Error(`redis-server :${this.port} is not running`);
    if (!this.admin) {
      this.admin = new Redis({
        host: HOST,
        port: this.port,
        commandTimeout: 5000,
        maxRetriesPerRequest: 1,
        // A failed admin call should fail the waiting condition's check, not reconnect forever.
        retryStrategy: () => null,
      });
      this.admin.on("error", () => {});
    }
    try {
      return await this.admin.call(String(args[0]), ...args.slice(1).map(String));
    } catch (err) {
      // A dead connection cannot be reused (retryStrategy null): the next call opens a new one.
      if (this.admin?.status === "end") this.admin = undefined;
      throw err;
    }
  }

  async info(section: string): Promise<Record<string, string>> {
    const text = (await this.call("INFO", section)) as string;
    return parseFields(text);
  }

  async kill(): Promise<void> {
    this.admin?.disconnect();
    this.admin = undefined;
    if (this.alive) this.child.kill("SIGKILL");
    await this.exited;
  }
}

function parseFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

interface NodesLine {
  id: string;
  port: number;
  flags: string[];
  masterId: string | undefined;
  slots: [number, number][];
}

/** Parses CLUSTER NODES ("<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>..."). */
function parseClusterNodes(text: string): NodesLine[] {
  return text
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .map((line) => {
      const [id, addr, flags, master, , , , , ...slots] = line.trim().split(" ");
      const port = Number((addr ?? "").split("@")[0]?.split(":").pop());
      return {
        id: id as string,
        port,
        flags: (flags ?? "").split(","),
        masterId: master === "-" ? undefined : master,
        slots: slots
          .filter((s) => !s.startsWith("["))
          .map((s) => {
            const [from, to] = s.split("-").map(Number) as [number, number | undefined];
            return [from, to ?? from] as [number, number];
          }),
      };
    });
}

/** Owner (node id) of each slot range per CLUSTER SLOTS. */
type SlotRanges = { from: number; to: number; masterId: string; masterPort: number }[];

async function slotRanges(node: RedisNode): Promise<SlotRanges> {
  const reply = (await node.call("CLUSTER", "SLOTS")) as [number, number, [string, number, string], ...unknown[]][];
  return reply.map(([from, to, master]) => ({ from, to, masterId: master[2], masterPort: Number(master[1]) }));
}

function ownerIn(ranges: SlotRanges, slot: number): string | undefined {
  return ranges.find((r) => r.from <= slot && slot <= r.to)?.masterId;
}

function checkBinary(bin: string): void {
  const probe = spawnSync(bin, ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0)
    throw new Error(
      `cannot run ${bin} (${probe.error?.message ?? `exit ${probe.status}`}); the Redis Cluster tests need redis-server and redis-cli >= 7 (install it: apt-get install -y redis-server)`,
    );
}

/**
 * A real Redis Cluster on loopback: `masters` masters with `replicasPerMaster` replicas each, one
 * redis-server process per node, in tmp dirs of their own. Start with `start()`, end with `stop()`.
 */
export class RedisClusterProcesses {
  private readonly all: RedisNode[];

  private constructor(
    nodes: RedisNode[],
    private readonly root: string,
  ) {
    this.all = nodes;
  }

  static async start(options: RedisClusterOptions = {}): Promise<RedisClusterProcesses> {
    const masters = options.masters ?? 3;
    const replicasPerMaster = options.replicasPerMaster ?? 1;
    const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000;
    const server = options.redisServer ?? "redis-server";
    const cli = options.redisCli ?? "redis-cli";
    checkBinary(server);
    checkBinary(cli);
    if (masters < 3) throw new Error("redis-cli --cluster create needs at least 3 masters");

    const root = mkdtempSync(join(tmpdir(), "chatrelay-redis-cluster-"));
    const cluster = new RedisClusterProcesses([], root);
    try {
      const count = masters * (1 + replicasPerMaster);
      // Two ports per node: clients and the cluster bus (the default bus port, port + 10000, may not exist or be taken).
      const ports = await distinctFreePorts(count * 2);
      for (let i = 0; i < count; i++) {
        const port = ports[2 * i] as number;
        const busPort = ports[2 * i + 1] as number;
        const nodeDir = join(root, `node-${port}`);
        mkdirSync(nodeDir);
        const child = spawn(
          server,
          [
            "--port",
            String(port),
            "--cluster-port",
            String(busPort),
            "--bind",
            HOST,
            "--dir",
            nodeDir,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            join(nodeDir, `nodes-${port}.conf`),
            "--cluster-node-timeout",
            String(nodeTimeoutMs),
            // A replica promotes however stale its link looks: the tests kill masters on purpose.
            "--cluster-replica-validity-factor",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
          ],
          { cwd: nodeDir, stdio: ["ignore", "pipe", "pipe"] },
        );
        child.on("error", () => {});
        cluster.all.push(new RedisNode(port, busPort, nodeDir, child));
      }
      await Promise.all(cluster.all.map((n) => n.ready(10_000)));
      for (const n of cluster.all) n.id = (await n.call("CLUSTER", "MYID")) as string;

      const created = spawnSync(
        cli,
        [
          "--cluster",
          "create",
          ...cluster.all.map((n) => n.address),
          "--cluster-replicas",
          String(replicasPerMaster),
          "--cluster-yes",
        ],
        { encoding: "utf8", timeout: FORM_TIMEOUT_MS },
      );
      if (created.status !== 0)
        throw new Error(`redis-cli --cluster create failed (${created.status}): ${created.stdout}\n${created.stderr}`);
      await cluster.settled(masters, replicasPerMaster, FORM_TIMEOUT_MS);
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** Every node started (killed ones included, see `live`). */
  get nodes(): ClusterNodeProcess[] {
    return this.all;
  }

  /** Nodes whose process still runs. */
  get live(): ClusterNodeProcess[] {
    return this.liveNodes();
  }

  /** "127.0.0.1:p1,127.0.0.1:p2,..." of the running nodes (all of them until one is killed), for REDIS_CLUSTER_NODES. */
  get spec(): string {
    return this.liveNodes()
      .map((n) => n.address)
      .join(",");
  }

  slotOf(key: string): number {
    return redisKeySlot(key);
  }

  /** The master that owns the slot, as a live node sees it (CLUSTER SLOTS). */
  async masterOf(slotOrKey: number | string): Promise<ClusterNodeProcess> {
    const slot = this.toSlot(slotOrKey);
    const ranges = await slotRanges(this.anyLive());
    const id = ownerIn(ranges, slot);
    if (id === undefined) throw new Error(`slot ${slot} has no owner`);
    return this.byId(id);
  }

  /** Masters that run and serve slots. */
  async masters(): Promise<ClusterNodeProcess[]> {
    const lines = parseClusterNodes((await this.anyLive().call("CLUSTER", "NODES")) as string);
    return lines
      .filter((l) => l.flags.includes("master") && !l.flags.includes("fail") && l.slots.length > 0)
      .map((l) => this.byId(l.id))
      .filter((n) => n.alive)
      .sort((x, y) => x.port - y.port);
  }

  /** SIGKILLs the master owning the slot; resolves once one of its replicas owns the slot everywhere and the cluster is ok. */
  async killMasterOf(
    slotOrKey: number | string,
  ): Promise<{ killed: ClusterNodeProcess; promoted: ClusterNodeProcess }> {
    const slot = this.toSlot(slotOrKey);
    const killed = this.byId((await this.masterOf(slot)).id);
    const lines = parseClusterNodes((await killed.call("CLUSTER", "NODES")) as string);
    const replicaIds = new Set(lines.filter((l) => l.masterId === killed.id).map((l) => l.id));
    if (replicaIds.size === 0) throw new Error(`master :${killed.port} of slot ${slot} has no replica to promote`);
    await killed.kill();
    const promotedId = await pollUntil(
      async () => {
        try {
          const owners = new Set<string | undefined>();
          for (const n of this.liveNodes()) {
            const info = parseFields((await n.call("CLUSTER", "INFO")) as string);
            if (info.cluster_state !== "ok") return undefined;
            owners.add(ownerIn(await slotRanges(n), slot));
          }
          const [owner] = owners;
          if (owners.size !== 1 || owner === undefined || !replicaIds.has(owner)) return undefined;
          const role = (await this.byId(owner).info("replication")).role;
          return role === "master" ? owner : undefined;
        } catch {
          return undefined; // a node busy with the failover; ask again
        }
      },
      `a replica of :${killed.port} to take over slot ${slot}`,
      FAILOVER_TIMEOUT_MS,
    );
    return { killed, promoted: this.byId(promotedId) };
  }

  /**
   * Moves one slot, keys included, to another master while clients keep using it (the steps of
   * `redis-cli --cluster reshard`): IMPORTING on the target, MIGRATING on the source, MIGRATE in
   * batches, then SETSLOT NODE on target, source and every other master; resolves once every live
   * node names the target as the owner. `whileMigrating` runs once the keys are on the target but
   * the source still owns the slot (every key command is ASK-redirected, SPUBLISH still served by
   * the source): a test holds the slot in that state as long as it needs.
   */
  async migrateSlot(
    slot: number,
    to: ClusterNodeProcess,
    options: { whileMigrating?: () => Promise<void> } = {},
  ): Promise<void> {
    const target = this.byId(to.id);
    const source = this.byId((await this.masterOf(slot)).id);
    if (source === target) return;
    await target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", source.id);
    await source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", target.id);
    const moveKeys = async () => {
      for (;;) {
        const keys = (await source.call("CLUSTER", "GETKEYSINSLOT", slot, MIGRATE_BATCH)) as string[];
        if (keys.length === 0) return;
        await source.call("MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", ...keys);
      }
    };
    await moveKeys();
    if (options.whileMigrating) {
      await options.whileMigrating();
      // Keys created on the source meanwhile (none expected: new keys are ASK-redirected) go too.
      await moveKeys();
    }
    await target.call("CLUSTER", "SETSLOT", slot, "NODE", target.id);
    await source.call("CLUSTER", "SETSLOT", slot, "NODE", target.id);
    for (const m of await this.masters())
      if (m !== source && m !== target) await this.byId(m.id).call("CLUSTER", "SETSLOT", slot, "NODE", target.id);
    await pollUntil(
      async () => {
        for (const n of this.liveNodes()) if (ownerIn(await slotRanges(n), slot) !== target.id) return undefined;
        return true;
      },
      `every node to see slot ${slot} on :${target.port}`,
      FAILOVER_TIMEOUT_MS,
    );
  }

  /** A command on one node only (no redirects): what that node itself holds or serves. */
  command(node: ClusterNodeProcess, ...args: (string | number)[]): Promise<unknown> {
    return this.byId(node.id).call(...args);
  }

  /** SIGKILLs every node and removes the data dirs. */
  async stop(): Promise<void> {
    await Promise.all(this.all.map((n) => n.kill()));
    rmSync(this.root, { recursive: true, force: true });
  }

  /** The last lines each node logged (for failure messages). */
  logs(): string {
    return this.all.map((n) => `--- redis :${n.port} (${n.alive ? "live" : "dead"})\n${n.tail()}`).join("\n");
  }

  private async settled(masters: number, replicasPerMaster: number, timeoutMs: number): Promise<void> {
    const total = masters * (1 + replicasPerMaster);
    await pollUntil(
      async () => {
        for (const n of this.all) {
          const info = parseFields((await n.call("CLUSTER", "INFO")) as string);
          if (
            info.cluster_state !== "ok" ||
            info.cluster_slots_assigned !== String(SLOTS) ||
            info.cluster_slots_ok !== String(SLOTS) ||
            info.cluster_known_nodes !== String(total)
          )
            return undefined;
          // Replicas must be in sync before anything kills a master.
          const repl = await n.info("replication");
          if (repl.role === "slave" && repl.master_link_status !== "up") return undefined;
          if (repl.role === "master" && Number(repl.connected_slaves) < replicasPerMaster) return undefined;
        }
        return true;
      },
      `the cluster to form (cluster_state ok, ${SLOTS} slots, replicas linked)`,
      timeoutMs,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.logs()}`);
    });
  }

  private toSlot(slotOrKey: number | string): number {
    return typeof slotOrKey === "number" ? slotOrKey : this.slotOf(slotOrKey);
  }

  private liveNodes(): RedisNode[] {
    return this.all.filter((n) => n.alive);
  }

  private anyLive(): RedisNode {
    const node = this.liveNodes()[0];
    if (!node) throw new Error("no redis-server of the cluster is running");
    return node;
  }

  private byId(id: string): RedisNode {
    const node = this.all.find((n) => n.id === id);
    if (!node) throw new Error(`no node with id ${id}`);
    return node;
  }
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}
