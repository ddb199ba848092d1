import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Bus, BusEvent, BusHandler } from "../core/ports.js";
import { type BusCodecLimits, type BusRejectReason, decodeBusEvent, encodeBusEvent } from "./bus-codec.js";

/** What the bus counts (the ops metrics): payloads received on room subscriptions, and those dropped. */
export interface BusCounters {
  busReceived(): void;
  busRejected(reason: BusRejectReason): void;
}

/** At most one warning per interval, however fast forged payloads arrive; the count of the rest goes with it. */
export class RateLimitedWarning {
  private lastAt = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    private readonly message: string,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** `fields` must hold only values this node produced (never the payload itself). */
  warn(fields: Record<string, unknown>): void {
    const at = this.now();
    if (at - this.lastAt < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.logger.warn({ ...fields, suppressedSinceLast: this.suppressed }, this.message);
    this.lastAt = at;
    this.suppressed = 0;
  }
}

/** Redis pub/sub: one channel per room; this node subscribes while it holds the room's presenter. */
export class RedisBus implements Bus {
  private readonly handlers = new Map<string, { roomId: number; handler: BusHandler }>();
  private readonly resyncListeners: ((roomIds?: readonly number[]) => void)[] = [];
  private lostConnection = false;
  private readonly rejectWarning: RateLimitedWarning;

  constructor(
    private readonly commands: Redis,
    private readonly subscriber: Redis,
    private readonly prefix: string,
    private readonly logger: Logger,
    limits: BusCodecLimits,
    counters: BusCounters,
  ) {
    this.rejectWarning = new RateLimitedWarning(logger, "dropping invalid bus payload");
    subscriber.on("message", (channel: string, payload: unknown) => {
      // ioredis re-subscribes on its own after a reconnect, before this node has re-asserted its
      // presenters: what arrives meanwhile is read from the log by the resync instead.
      counters.busReceived();
      if (this.lostConnection) return;
      const entry = this.handlers.get(channel);
      if (!entry) return;
      // Validated before anything is delivered: whoever can publish on Redis can write here.
      const decoded = decodeBusEvent(payload, entry.roomId, limits);
      if (!decoded.ok) {
        counters.busRejected(decoded.reason);
        // The channel is ours (it matched a subscription); the payload is never logged.
        this.rejectWarning.warn({
          reason: decoded.reason,
          channel,
          chars: typeof payload === "string" ? payload.length : -1,
        });
        return;
      }
      entry.handler(decoded.event);
    });
    for (const conn of [commands, subscriber]) {
      conn.on("close", () => {
        this.lostConnection = true;
      });
      conn.on("ready", () => void this.afterReconnect());
    }
  }

  channel(roomId: number): string {
    // Braces: a hash tag, so the room's keys and channel share a slot on Redis Cluster.
    return `${this.prefix}room:{${roomId}}`;
  }

  async publish(roomId: number, event: BusEvent): Promise<void> {
    await this.commands.publish(this.channel(roomId), encodeBusEvent(event));
  }

  async subscribe(roomId: number, handler: BusHandler): Promise<void> {
    const channel = this.channel(roomId);
    this.handlers.set(channel, { roomId, handler });
    await this.subscriber.subscribe(channel);
  }

  async unsubscribe(roomId: number): Promise<void> {
    const channel = this.channel(roomId);
    this.handlers.delete(channel);
    await this.subscriber.unsubscribe(channel);
  }

  onResync(listener: (roomIds?: readonly number[]) => void): void {
    this.resyncListeners.push(listener);
  }

  async ping(): Promise<void> {
    if (this.subscriber.status !== "ready") throw new Error(`redis subscriber is ${this.subscriber.status}`);
    await this.commands.ping();
  }

  async close(): Promise<void> {
    this.handlers.clear();
    await Promise.allSettled([this.subscriber.quit(), this.commands.quit()]);
  }

  private async afterReconnect(): Promise<void> {
    if (!this.lostConnection || this.commands.status !== "ready" || this.subscriber.status !== "ready") return;
    this.lostConnection = false;
    try {
      // Re-assert every subscription before reading what was missed, so nothing falls between the two.
      const channels = [...this.handlers.keys()];
      if (channels.length > 0) await this.subscriber.subscribe(...channels);
    } catch (err) {
      this.lostConnection = true;
      this.logger.warn({ err }, "resubscribe failed; will retry on the next reconnect");
      return;
    }
    this.logger.info({ rooms: this.handlers.size }, "redis back: resubscribed, resyncing presenters");
    for (const listener of this.resyncListeners) listener();
  }
}
