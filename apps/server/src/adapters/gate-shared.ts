import type { RoomModerationState } from "../core/moderation-state.js";
import type { Admission, AdmissionRequest } from "../core/ports.js";
import type { GateLimits, Limit } from "../core/rate-limit.js";

export interface LimitCheck {
  key: string;
  limit: Limit;
  scope: NonNullable<Admission["limited"]>["scope"];
}

/** The limits that apply to one post, with in-process keys (the Redis gate builds its own keys). */
export function admissionLimits(
  request: AdmissionRequest,
  privileged: boolean,
  slowModeS: number,
  limits: GateLimits,
): LimitCheck[] {
  const checks: LimitCheck[] = [];
  const room = privileged ? limits.roomPrivileged : limits.room;
  if (room) checks.push({ key: `r:${request.roomId}:${request.senderId}`, limit: room, scope: "room" });
  if (limits.sender) checks.push({ key: `s:${request.senderId}`, limit: limits.sender, scope: "sender" });
  if (limits.addressPosts && request.address !== undefined) {
    checks.push({ key: `a:${request.address}`, limit: limits.addressPosts, scope: "address" });
  }
  if (slowModeS > 0 && !privileged) {
    const slow = { count: 1, windowMs: slowModeS * 1000 };
    checks.push({ key: `w:${request.roomId}:${request.senderId}`, limit: slow, scope: "slow_mode" });
  }
  return checks;
}

/** Rooms whose moderation state a node holds in memory at most. */
const MAX_ROOMS = 10_000;

/**
 * The embedded gate's per-room state: loaded once from the store (concurrent
 * loads of one room share one read), replaced by newer versions, bounded.
 */
export class RoomStateCache {
  private readonly rooms = new Map<number, RoomModerationState>();
  private readonly loading = new Map<number, Promise<RoomModerationState>>();

  constructor(private readonly load: (roomId: number) => Promise<RoomModerationState>) {}

  async get(roomId: number): Promise<RoomModerationState> {
    const cached = this.rooms.get(roomId);
    if (cached) return cached;
    let pending = this.loading.get(roomId);
    if (!pending) {
      pending = this.load(roomId).finally(() => this.loading.delete(roomId));
      this.loading.set(roomId, pending);
    }
    const loaded = await pending;
    // A change synced while the load was in flight is newer: keep it.
    const now = this.rooms.get(roomId);
    if (now === undefined || now.version < loaded.version) this.put(loaded);
    return this.rooms.get(roomId) as RoomModerationState;
  }

  put(state: RoomModerationState): void {
    const current = this.rooms.get(state.roomId);
    if (current !== undefined && current.version > state.version) return;
    this.rooms.delete(state.roomId);
    this.rooms.set(state.roomId, state);
    if (this.rooms.size > MAX_ROOMS) {
      const oldest = this.rooms.keys().next().value;
      if (oldest !== undefined) this.rooms.delete(oldest);
    }
  }
}
