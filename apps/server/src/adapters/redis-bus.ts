import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Bus, BusEvent, BusHandler } from "../core/ports.js";
import { decodeBusEvent, encodeBusEvent } from "./bus-codec.js";

/** Redis pub/sub: one channel per room; this node subscribes while it holds the room's presenter. */
export class RedisBus implements Bus {
  private readonly handlers = new Map<string, BusHandler>();
  private readonly resyncListeners: (() => void)[] = [];
  private lostConnection = false;

  constructor(
    private readonly commands: Redis,
    private readonly subscriber: Redis,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {
    subscriber.on("message", (channel: string, payload: string) => {
      const handler = this.handlers.get(channel);
      if (!handler) return;
      let event: BusEvent;
      try {
        event = decodeBusEvent(payload);
      } catch (err) {
        this.logger.warn({ err, channel }, "dropping undecodable bus payload");
        return;
      }
      handler(event);
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
    this.handlers.set(channel, handler);
    await this.subscriber.subscribe(channel);
  }

  async unsubscribe(roomId: number): Promise<void> {
    const channel = this.channel(roomId);
    this.handlers.delete(channel);
    await this.subscriber.unsubscribe(channel);
  }

  onResync(listener: () => void): void {
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
