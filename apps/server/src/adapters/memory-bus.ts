import type { Bus, BusEvent, BusHandler } from "../core/ports.js";

/** One-node bus: delivers synchronously, in publish order. */
export class MemoryBus implements Bus {
  private readonly handlers = new Map<number, BusHandler>();

  async publish(roomId: number, event: BusEvent): Promise<void> {
    this.handlers.get(roomId)?.(event);
  }

  async subscribe(roomId: number, handler: BusHandler): Promise<void> {
    this.handlers.set(roomId, handler);
  }

  async unsubscribe(roomId: number): Promise<void> {
    this.handlers.delete(roomId);
  }

  onResync(): void {
    // Never disconnects.
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.handlers.clear();
  }
}
