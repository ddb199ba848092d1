import type { RoomModerationState } from "../core/moderation-state.js";
import type { Admission, AdmissionRequest, Gate, Presence } from "../core/ports.js";
import { type GateLimits, gcra, tatExpired } from "../core/rate-limit.js";
import { admissionLimits, type LimitCheck, RoomStateCache } from "./gate-shared.js";

/** Rate-limit keys kept at most; past it, expired ones go first, then the oldest. */
const MAX_KEYS = 200_000;

/** One-node gate: the same decisions as the Redis gate, in memory (embedded default). */
export class MemoryGate implements Gate {
  private readonly tats = new Map<string, number>();
  private readonly rooms: RoomStateCache;

  constructor(
    private readonly presence: Presence,
    loadRoom: (roomId: number) => Promise<RoomModerationState>,
    private readonly limits: GateLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.rooms = new RoomStateCache(loadRoom);
  }

  /** In-process presence is never lost while the node runs. */
  presenceRebuilding(): boolean {
    return false;
  }

  async admit(request: AdmissionRequest): Promise<Admission> {
    const presence = await this.presence.get(request.roomId);
    // Nothing about a room that is not live is loaded or counted: posts to it are refused as not live.
    if (presence === null) return offAir();
    const state = await this.rooms.get(request.roomId);
    const now = this.now();
    const privileged =
      request.moderatorByClaim || request.senderId === request.roomId || state.moderators.includes(request.senderId);
    const admission: Admission = {
      presence,
      privileged,
      limited: undefined,
      restricted: undefined,
      locked: false,
      settings: state.settings,
      version: state.version,
    };
    const restriction = state.restrictions.find(
      (r) => r.userId === request.senderId && (r.untilMs === null || r.untilMs > now),
    );
    if (restriction) return { ...admission, restricted: { kind: restriction.kind, untilMs: restriction.untilMs } };
    if (state.settings.moderatorsOnly && !privileged) return { ...admission, locked: true };

    const checks = admissionLimits(request, privileged, state.settings.slowModeS, this.limits);
    const limited = this.take(checks, now);
    return limited === undefined ? admission : { ...admission, limited };
  }

  async syncRoom(state: RoomModerationState): Promise<void> {
    this.rooms.put(state);
  }

  async blockedTerms(roomId: number): Promise<{ version: number; terms: string[] }> {
    const state = await this.rooms.get(roomId);
    return { version: state.version, terms: state.blockedTerms };
  }

  async admitSocket(address: string): Promise<{ ok: boolean; retryAfterMs: number }> {
    const limit = this.limits.addressSockets;
    if (limit === undefined) return { ok: true, retryAfterMs: 0 };
    const refused = this.take([{ key: `o:${address}`, limit, scope: "address" }], this.now());
    return refused === undefined ? { ok: true, retryAfterMs: 0 } : { ok: false, retryAfterMs: refused.retryAfterMs };
  }

  /** All limits or none: a refused post consumes nothing. */
  private take(checks: LimitCheck[], now: number): Admission["limited"] {
    const next: number[] = [];
    let refused: Admission["limited"];
    for (const { key, limit, scope } of checks) {
      const result = gcra(this.tats.get(key), now, limit);
      if ("retryAfterMs" in result) {
        if (refused === undefined || result.retryAfterMs > refused.retryAfterMs) {
          refused = { scope, retryAfterMs: result.retryAfterMs };
        }
      } else next.push(result.tat);
    }
    if (refused) return refused;
    for (let i = 0; i < checks.length; i++) this.set((checks[i] as LimitCheck).key, next[i] as number, now);
    return undefined;
  }

  private set(key: string, tat: number, now: number): void {
    this.tats.delete(key);
    this.tats.set(key, tat);
    if (this.tats.size <= MAX_KEYS) return;
    for (const [k, t] of this.tats) {
      if (tatExpired(t, now)) this.tats.delete(k);
      if (this.tats.size <= MAX_KEYS * 0.9) return;
    }
    const oldest = this.tats.keys().next().value;
    if (oldest !== undefined) this.tats.delete(oldest);
  }
}

function offAir(): Admission {
  return {
    presence: null,
    privileged: false,
    limited: undefined,
    restricted: undefined,
    locked: false,
    settings: { slowModeS: 0, moderatorsOnly: false, maxTextLength: null },
    version: 0,
  };
}
