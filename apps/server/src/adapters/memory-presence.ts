import type { Presence, PresenceClaim, PresenceRecord } from "../core/ports.js";

interface Entry {
  record: PresenceRecord;
  expiresAt: number;
}

/** One-node presence with the same TTL semantics as the Redis adapter (checked lazily). */
export class MemoryPresence implements Presence {
  private readonly rooms = new Map<number, Entry>();
  private readonly acks = new Map<number, number>();
  private epoch = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly graceMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async get(roomId: number): Promise<PresenceRecord | null> {
    // A copy, as Redis returns: a caller changing it must not change the stored record.
    const record = this.live(roomId)?.record;
    return record ? { ...record } : null;
  }

  async claim(roomId: number, claim: PresenceClaim): Promise<number> {
    const epoch = ++this.epoch;
    this.rooms.set(roomId, { record: { ...claim, epoch, state: "live" }, expiresAt: this.now() + this.ttlMs });
    return epoch;
  }

  async renew(roomId: number, connId: string): Promise<boolean> {
    const entry = this.live(roomId);
    if (entry?.record.connId !== connId || entry.record.state !== "live") return false;
    entry.expiresAt = this.now() + this.ttlMs;
    return true;
  }

  async reassert(roomId: number, record: PresenceRecord): Promise<boolean> {
    const entry = this.live(roomId);
    // Same rule as Redis: another connection's record stands unless it is older.
    if (entry && entry.record.connId !== record.connId && entry.record.epoch >= record.epoch) return false;
    this.rooms.set(roomId, { record: { ...record, state: "live" }, expiresAt: this.now() + this.ttlMs });
    // Keep the epoch floor (as Redis does): the next claim must outrank the record just put back.
    if (record.epoch > this.epoch) this.epoch = record.epoch;
    return true;
  }

  async release(roomId: number, connId: string, mode: "stop" | "grace"): Promise<void> {
    const entry = this.live(roomId);
    if (entry?.record.connId !== connId) return;
    if (mode === "stop" || this.graceMs === 0) {
      this.rooms.delete(roomId);
    } else {
      this.rooms.set(roomId, {
        record: { ...entry.record, state: "grace" },
        expiresAt: this.now() + this.graceMs,
      });
    }
  }

  async ackedSeq(roomId: number): Promise<number> {
    return this.acks.get(roomId) ?? 0;
  }

  async recordAck(roomId: number, seq: number): Promise<void> {
    if (seq > (this.acks.get(roomId) ?? 0)) this.acks.set(roomId, seq);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.rooms.clear();
  }

  private live(roomId: number): Entry | undefined {
    const entry = this.rooms.get(roomId);
    if (entry && entry.expiresAt <= this.now()) {
      this.rooms.delete(roomId);
      return undefined;
    }
    return entry;
  }
}
