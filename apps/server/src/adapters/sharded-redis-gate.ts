import type { AdmissionRequest } from "../core/ports.js";
import type { Limit } from "../core/rate-limit.js";
import { type AdmitReply, pair, RedisGate } from "./redis-gate.js";

type LimitScope = "room" | "sender" | "address" | "slow_mode";

interface Counted {
  key: string;
  limit: Limit;
  scope: LimitScope;
}

/**
 * The gate on a Redis Cluster. A script may only touch keys of one slot, and the per-sender and
 * per-address limits span rooms, so they cannot share the room's script: the room's part (presence,
 * mirror, per-room and slow-mode limits, all on the room's slot) and each cross-room limit run as
 * separate scripts, in parallel on their shards. A post refused by any of them is given back to
 * the limits that counted it, so (as on one Redis) only admitted posts count.
 */
export class ShardedRedisGate extends RedisGate {
  protected override async run(request: AdmissionRequest): Promise<AdmitReply> {
    const { roomId, senderId, address } = request;
    const p = this.prefix;
    const privileged = request.moderatorByClaim || senderId === roomId;
    const [roomCount, roomWindow] = pair(this.limits.room);
    const [privCount, privWindow] = pair(this.limits.roomPrivileged);
    const roomKey = `${p}rl:{${roomId}}:${senderId}`;
    const slowKey = `${p}rl:{${roomId}}:w:${senderId}`;
    // Declared keys must all hash to the room's slot; these two slots are never touched (their counts
    // are 0). The presence key stands in: a key that exists keeps a slot mid-migration answering
    // (a missing one sends the script to the importing node, which answers TRYAGAIN).
    const unused = `${p}presence:{${roomId}}`;
    const crossRoom: Counted[] = [];
    if (this.limits.sender) crossRoom.push({ key: `${p}rl:u:${senderId}`, limit: this.limits.sender, scope: "sender" });
    if (this.limits.addressPosts && address !== undefined) {
      crossRoom.push({ key: `${p}rl:a:${address}`, limit: this.limits.addressPosts, scope: "address" });
    }
    const [room, ...takes] = await Promise.all([
      this.scripts.gateAdmit(
        `${p}presence:{${roomId}}`,
        `${p}mod:{${roomId}}`,
        roomKey,
        unused,
        unused,
        slowKey,
        senderId,
        privileged ? 1 : 0,
        roomCount,
        roomWindow,
        privCount,
        privWindow,
        0,
        0,
        0,
        0,
      ) as Promise<AdmitReply>,
      ...crossRoom.map(
        (c) => this.scripts.gateTake(c.key, c.limit.count, c.limit.windowMs) as Promise<[number, number]>,
      ),
    ]);
    const refused = crossRoom.flatMap((c, i) => (takes[i]?.[0] === 1 ? [] : [{ ...c, waitMs: Number(takes[i]?.[1]) }]));
    if (room[1] === "ok" && refused.length === 0) return room;

    // Refused: give back every count this post took.
    const refunds = crossRoom.filter((_, i) => takes[i]?.[0] === 1);
    if (room[1] === "ok") refunds.push(...this.roomCounts(room, roomKey, slowKey));
    await Promise.allSettled(refunds.map((c) => this.scripts.gateRefund(c.key, c.limit.count, c.limit.windowMs)));

    // Off air, banned, locked, unmirrored: those answers come before any limit, as on one Redis.
    if (room[1] !== "ok" && room[1] !== "limited") return room;
    let worst = room[1] === "limited" ? Number(room[2]) : 0;
    let scope = room[1] === "limited" ? (room[8] ?? "") : "";
    for (const r of refused) {
      if (r.waitMs > worst) {
        worst = r.waitMs;
        scope = r.scope;
      }
    }
    return [room[0], "limited", String(worst), room[3], room[4], room[5], room[6], room[7], scope];
  }

  /** The room-slot limits an admitted reply counted (the script's own choice, repeated here). */
  private roomCounts(reply: AdmitReply, roomKey: string, slowKey: string): Counted[] {
    const privileged = reply[3] === "1";
    const counted: Counted[] = [];
    const room = privileged ? this.limits.roomPrivileged : this.limits.room;
    if (room) counted.push({ key: roomKey, limit: room, scope: "room" });
    const slowS = Number(reply[5] ?? 0);
    if (slowS > 0 && !privileged) {
      counted.push({ key: slowKey, limit: { count: 1, windowMs: slowS * 1000 }, scope: "slow_mode" });
    }
    return counted;
  }
}
