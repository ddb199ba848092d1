import calculateSlot from "cluster-key-slot";
import { type Cluster, Redis } from "ioredis";
import type { Logger } from "pino";
import type { Bus, BusEvent, BusHandler } from "../core/ports.js";
import { type BusCodecLimits, decodeBusEvent, encodeBusEvent } from "./bus-codec.js";
import { type BusCounters, RateLimitedWarning } from "./redis-bus.js";

export interface ShardedBusOptions {
  /** How often the rooms' subscriptions are compared with the cluster's slot map (ms). */
  checkIntervalMs?: number;
  /** Told whether every room's subscription is in place (false while one waits for its shard). */
  onPlaced?: (allPlaced: boolean) => void;
}

interface RoomSubscription {
  roomId: number;
  channel: string;
  slot: number;
  handler: BusHandler;
  /** The master ("host:port") this room is subscribed on; undefined while it is not. */
  shard: string | undefined;
  /** Set while a placement is in flight: later subscribe() calls wait for it. */
  placing: Promise<void> | undefined;
}

const REPAIR_BASE_MS = 50;
const REPAIR_CAP_MS = 1000;

/**
 * The bus on a Redis Cluster with sharded pub/sub: a room's channel ({room} hash tag) lives on the
 * shard that owns its slot, SPUBLISH reaches only that shard, and this node holds one subscriber
 * connection per master it needs, subscribing room by room (never a CROSSSLOT batch).
 *
 * A subscription ends without any unsubscribe of ours when its master dies (failover) or the server
 * drops it (`SUNSUBSCRIBE` when the slot migrates). The room is then placed again on the slot's
 * current owner, and only after that are the resync listeners told which rooms came back: they
 * read from the log what was published in the gap. Until then the room's messages are dropped
 * here, since the catch-up delivers them in order.
 */
export class ShardedRedisBus implements Bus {
  private readonly rooms = new Map<string, RoomSubscription>();
  private readonly shards = new Map<string, Redis>();
  private readonly resyncListeners: ((roomIds?: readonly number[]) => void)[] = [];
  private readonly rejectWarning: RateLimitedWarning;
  private readonly check: NodeJS.Timeout;
  private repairTimer: NodeJS.Timeout | undefined;
  private repairing = false;
  private repairAgain = false;
  private repairAttempt = 0;
  private closed = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly prefix: string,
    private readonly logger: Logger,
    private readonly limits: BusCodecLimits,
    private readonly counters: BusCounters,
    private readonly options: ShardedBusOptions = {},
  ) {
    this.rejectWarning = new RateLimitedWarning(logger, "dropping invalid bus payload");
    // Slot map changes (a failover seen by a command's MOVED, a refresh) move rooms to their new owner.
    this.check = setInterval(() => this.checkPlacement(), options.checkIntervalMs ?? 1000);
    this.check.unref();
    cluster.on("refresh", () => this.checkPlacement());
  }

  channel(roomId: number): string {
    return `${this.prefix}room:{${roomId}}`;
  }

  async publish(roomId: number, event: BusEvent): Promise<void> {
    await this.cluster.spublish(this.channel(roomId), encodeBusEvent(event));
  }

  async subscribe(roomId: number, handler: BusHandler): Promise<void> {
    const channel = this.channel(roomId);
    let room = this.rooms.get(channel);
    if (room) {
      room.handler = handler;
      if (room.placing) await room.placing;
      else if (room.shard === undefined) await this.place(room);
      return;
    }
    room = { roomId, channel, slot: calculateSlot(channel), handler, shard: undefined, placing: undefined };
    this.rooms.set(channel, room);
    try {
      await this.place(room);
    } catch (err) {
      if (this.rooms.get(channel) === room) this.rooms.delete(channel);
      throw err;
    }
  }

  async unsubscribe(roomId: number): Promise<void> {
    const channel = this.channel(roomId);
    const room = this.rooms.get(channel);
    if (!room) return;
    this.rooms.delete(channel);
    const conn = room.shard === undefined ? undefined : this.shards.get(room.shard);
    room.shard = undefined;
    if (conn?.status === "ready") await conn.sunsubscribe(channel);
  }

  onResync(listener: (roomIds?: readonly number[]) => void): void {
    this.resyncListeners.push(listener);
  }

  async ping(): Promise<void> {
    if (this.cluster.status !== "ready") throw new Error(`redis cluster is ${this.cluster.status}`);
    await this.cluster.ping();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.check);
    if (this.repairTimer) clearTimeout(this.repairTimer);
    this.rooms.clear();
    const shards = [...this.shards.values()];
    this.shards.clear();
    await Promise.allSettled([...shards.map((s) => s.quit()), this.cluster.quit()]);
  }

  /** Rooms that lost their subscription and wait for it (a failover or migration in progress). */
  get unplacedRooms(): number {
    let n = 0;
    for (const room of this.rooms.values()) if (room.shard === undefined && room.placing === undefined) n++;
    return n;
  }

  /** Subscribes one room on its slot's owner (first subscription; the repair handles losses). */
  private place(room: RoomSubscription): Promise<void> {
    const placing = (async () => {
      const owner = await this.ownerOf(room.slot);
      const conn = await this.shardConnection(owner);
      await conn.ssubscribe(room.channel);
      const current = this.rooms.get(room.channel);
      if (current !== room) {
        // Unsubscribed while the reply was on its way: undo it (a newer subscribe of the room keeps it).
        if (current === undefined) void conn.sunsubscribe(room.channel).catch(() => {});
        return;
      }
      // The connection may have died while the reply was on its way: then the repair places it.
      if (this.shards.get(owner) === conn) room.shard = owner;
      else this.scheduleRepair(0);
    })().finally(() => {
      room.placing = undefined;
    });
    room.placing = placing;
    return placing;
  }

  /** The master that owns a slot, by the cluster client's map (refreshed once if it has none). */
  private async ownerOf(slot: number): Promise<string> {
    let owner = this.cluster.slots[slot]?.[0];
    if (owner === undefined) {
      await this.refreshSlots();
      owner = this.cluster.slots[slot]?.[0];
    }
    if (owner === undefined) throw new Error(`no Redis Cluster master owns slot ${slot}`);
    return owner;
  }

  private refreshSlots(): Promise<void> {
    return new Promise((resolve) => this.cluster.refreshSlotsCache(() => resolve()));
  }

  /** One subscriber connection per master, made on first use; it never reconnects (the repair re-places). */
  private async shardConnection(nodeKey: string): Promise<Redis> {
    let conn = this.shards.get(nodeKey);
    if (!conn) {
      const [host, port] = splitNodeKey(nodeKey);
      conn = new Redis({
        ...this.cluster.options.redisOptions,
        host,
        port,
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        connectionName: `${this.cluster.options.redisOptions?.connectionName ?? "chatrelay"}:ssub`,
      });
      this.shards.set(nodeKey, conn);
      const current = conn;
      current.on("smessage", (channel: string, payload: string) => this.onMessage(nodeKey, channel, payload));
      // An unsolicited SUNSUBSCRIBE (the slot left this master): ioredis reports it as "moved".
      current.on("moved", () => this.lose(nodeKey, "the server dropped a subscription (slot moved)"));
      current.on("error", (err: Error) => this.logger.debug({ err, shard: nodeKey }, "redis cluster subscriber error"));
      current.on("end", () => {
        if (this.shards.get(nodeKey) === current) this.shards.delete(nodeKey);
        this.lose(nodeKey, "connection to the shard lost");
      });
    }
    if (conn.status === "wait") await conn.connect();
    else if (conn.status !== "ready") await waitReady(conn);
    return conn;
  }

  private onMessage(nodeKey: string, channel: string, payload: unknown): void {
    this.counters.busReceived();
    const room = this.rooms.get(channel);
    // Not (or no longer) placed on this shard: a restore is pending and reads the gap from the log.
    if (!room || room.shard !== nodeKey) return;
    const decoded = decodeBusEvent(payload, room.roomId, this.limits);
    if (!decoded.ok) {
      this.counters.busRejected(decoded.reason);
      this.rejectWarning.warn({
        reason: decoded.reason,
        channel,
        chars: typeof payload === "string" ? payload.length : -1,
      });
      return;
    }
    room.handler(decoded.event);
  }

  /** Every room subscribed on `nodeKey` lost its subscription: place them again. */
  private lose(nodeKey: string, why: string): void {
    if (this.closed) return;
    let lost = 0;
    for (const room of this.rooms.values()) {
      if (room.shard === nodeKey) {
        room.shard = undefined;
        lost++;
      }
    }
    if (lost > 0) {
      this.logger.warn({ shard: nodeKey, rooms: lost }, `sharded subscriptions lost: ${why}`);
      this.options.onPlaced?.(false);
    }
    this.scheduleRepair(0);
  }

  /** Rooms whose slot the cluster's map now gives to another master move there (migration, failover). */
  private checkPlacement(): void {
    if (this.closed) return;
    let moved = false;
    for (const room of this.rooms.values()) {
      if (room.shard === undefined || room.placing) continue;
      const owner = this.cluster.slots[room.slot]?.[0];
      if (owner !== undefined && owner !== room.shard) {
        const old = this.shards.get(room.shard);
        if (old?.status === "ready") void old.sunsubscribe(room.channel).catch(() => {});
        room.shard = undefined;
        moved = true;
      }
    }
    if (moved) {
      this.logger.info("slot owners changed: moving sharded subscriptions");
      this.options.onPlaced?.(false);
      this.scheduleRepair(0);
    }
  }

  private scheduleRepair(delayMs: number): void {
    if (this.closed) return;
    if (this.repairing) {
      this.repairAgain = true;
      return;
    }
    if (this.repairTimer) return;
    this.repairTimer = setTimeout(() => {
      this.repairTimer = undefined;
      void this.repair();
    }, delayMs);
    this.repairTimer.unref();
  }

  /**
   * Places every unplaced room on its slot's current owner, one SSUBSCRIBE per slot, then tells the
   * resync listeners which rooms came back. Retries with back-off while a shard is unreachable
   * (its replica not promoted yet).
   */
  private async repair(): Promise<void> {
    this.repairing = true;
    this.repairAgain = false;
    let failed = false;
    try {
      await this.refreshSlots();
      const bySlot = new Map<number, RoomSubscription[]>();
      for (const room of this.rooms.values()) {
        if (room.shard !== undefined || room.placing) continue;
        const group = bySlot.get(room.slot);
        if (group) group.push(room);
        else bySlot.set(room.slot, [room]);
      }
      for (const [slot, group] of bySlot) {
        if (this.closed) return;
        try {
          const owner = await this.ownerOf(slot);
          const conn = await this.shardConnection(owner);
          await conn.ssubscribe(...group.map((r) => r.channel));
          if (this.shards.get(owner) !== conn) throw new Error("the shard's connection ended meanwhile");
          const restored: number[] = [];
          for (const room of group) {
            if (this.rooms.get(room.channel) !== room) continue;
            room.shard = owner;
            restored.push(room.roomId);
          }
          if (restored.length > 0) {
            this.logger.info({ shard: owner, slot, rooms: restored.length }, "sharded subscriptions restored");
            for (const listener of this.resyncListeners) listener(restored);
          }
        } catch (err) {
          failed = true;
          this.logger.debug({ err, slot }, "sharded subscription not restored yet");
        }
      }
    } finally {
      this.repairing = false;
    }
    if (failed) {
      this.repairAttempt++;
      const ceiling = Math.min(REPAIR_CAP_MS, REPAIR_BASE_MS * 2 ** Math.min(this.repairAttempt, 10));
      this.scheduleRepair(Math.round(REPAIR_BASE_MS + Math.random() * (ceiling - REPAIR_BASE_MS)));
    } else {
      this.repairAttempt = 0;
      if (this.repairAgain) this.scheduleRepair(0);
      else this.options.onPlaced?.(this.unplacedRooms === 0);
    }
  }
}

function splitNodeKey(nodeKey: string): [string, number] {
  const at = nodeKey.lastIndexOf(":");
  return [nodeKey.slice(0, at), Number(nodeKey.slice(at + 1))];
}

/** Resolves when the connection is ready, rejects when it ends first. */
function waitReady(conn: Redis): Promise<void> {
  return new Promise((resolve, reject) => {
    const onReady = () => {
      conn.off("end", onEnd);
      resolve();
    };
    const onEnd = () => {
      conn.off("ready", onReady);
      reject(new Error("connection to the shard ended"));
    };
    conn.once("ready", onReady);
    conn.once("end", onEnd);
  });
}
