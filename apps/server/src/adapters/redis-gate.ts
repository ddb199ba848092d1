import type { Cluster, Redis } from "ioredis";
import type { RoomModerationState } from "../core/moderation-state.js";
import type { Admission, AdmissionRequest, Gate } from "../core/ports.js";
import type { GateLimits, Limit } from "../core/rate-limit.js";
import type { PresenceRebuildWindow } from "./presence-rebuild.js";
import { parseRecord } from "./redis-presence.js";

/** How long a room's mirror lives in Redis without a change; a missing mirror is reloaded from the store. */
export const MIRROR_TTL_MS = 300_000;

// GCRA in Lua, the same arithmetic as core/rate-limit.ts: whole microseconds (exact in Lua's doubles),
// the interval rounded down, so a burst is exactly the count. \`now\` is in ms; the wait comes back in ms.
const GCRA = `
local function gcra_check(key, count, window_ms, now_ms)
  local now = now_ms * 1000
  local window = window_ms * 1000
  local interval = math.max(1, math.floor(window / count))
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local nxt = tat + interval
  if nxt - now > window then return false, math.ceil((nxt - window - now) / 1000) end
  return true, nxt
end`;

/**
 * One round trip per post: presence, the room's mirror (version, settings, is
 * the sender a moderator, is the sender restricted), then every rate limit
 * that applies, counted only when all admit the post.
 * KEYS: presence, mirror, room limit, sender limit, address limit, slow-mode key.
 * ARGV: sender, privileged by claim (0/1), room count/window, privileged count/window,
 *       sender count/window, address count/window (count 0 = off).
 * Reply: {presence|nil, status, n, privileged, version, slow, locked, maxlen, scope}.
 */
const ADMIT = `${GCRA}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local presence = redis.call('GET', KEYS[1])
if not presence then return {false, 'offair'} end
local m = redis.call('HMGET', KEYS[2], 'v', 'slow', 'locked', 'maxlen', 'm:' .. ARGV[1], 'r:' .. ARGV[1])
if not m[1] then return {presence, 'load'} end
local privileged = ARGV[2] == '1' or m[5] ~= false
local priv = privileged and '1' or '0'
local slow, locked, maxlen = m[2] or '0', m[3] or '0', m[4] or ''
if m[6] then
  local untilv = tonumber(m[6])
  if untilv == 0 or untilv > now then return {presence, 'restricted', m[6], priv, m[1], slow, locked, maxlen, ''} end
end
if locked == '1' and not privileged then return {presence, 'locked', '0', priv, m[1], slow, locked, maxlen, ''} end
local keys, counts, windows, scopes = {}, {}, {}, {}
local function add(key, count, window, scope)
  if tonumber(count) > 0 then
    table.insert(keys, key); table.insert(counts, tonumber(count)); table.insert(windows, tonumber(window)); table.insert(scopes, scope)
  end
end
if privileged then add(KEYS[3], ARGV[5], ARGV[6], 'room') else add(KEYS[3], ARGV[3], ARGV[4], 'room') end
add(KEYS[4], ARGV[7], ARGV[8], 'sender')
add(KEYS[5], ARGV[9], ARGV[10], 'address')
if tonumber(slow) > 0 and not privileged then add(KEYS[6], 1, tonumber(slow) * 1000, 'slow_mode') end
local tats, worst, worstScope = {}, 0, ''
for i = 1, #keys do
  local ok, v = gcra_check(keys[i], counts[i], windows[i], now)
  if ok then tats[i] = v elseif v > worst then worst = v; worstScope = scopes[i] end
end
if worst > 0 then return {presence, 'limited', tostring(worst), priv, m[1], slow, locked, maxlen, worstScope} end
for i = 1, #keys do redis.call('SET', keys[i], string.format('%.0f', tats[i]), 'PX', math.ceil(windows[i])) end
return {presence, 'ok', '0', priv, m[1], slow, locked, maxlen, ''}`;

/** Replaces a room's mirror unless a newer version is already there. ARGV: version, ttl, JSON of the state. */
const SYNC = `
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
local s = cjson.decode(ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'slow', s.slow, 'locked', s.locked, 'maxlen', s.maxlen, 'terms', s.terms)
for _, id in ipairs(s.mods) do redis.call('HSET', KEYS[1], 'm:' .. id, '1') end
for _, r in ipairs(s.restr) do redis.call('HSET', KEYS[1], 'r:' .. r[1], r[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

/** One GCRA limit. ARGV: count, window. Reply: {1, 0} or {0, retryAfterMs}. */
const TAKE = `${GCRA}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ok, v = gcra_check(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)
if not ok then return {0, v} end
redis.call('SET', KEYS[1], string.format('%.0f', v), 'PX', math.ceil(tonumber(ARGV[2])))
return {1, 0}`;

/**
 * Gives back one GCRA take (a post another limit refused after this one counted it): the limit's
 * clock moves back one interval, never below now. ARGV: count, window.
 */
const REFUND = `
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = redis.call('TIME')
local now = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1000
local back = tat - math.max(1, math.floor(tonumber(ARGV[2]) * 1000 / tonumber(ARGV[1])))
if back <= now then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], string.format('%.0f', back), 'KEEPTTL') end
return 1`;

/** Keys first, then arguments: each script declares its key count (see RedisPresence: auto-pipelining on a cluster). */
type Script = (...keysThenArgs: (string | number)[]) => Promise<unknown>;
const SCRIPTS = {
  gateAdmit: { lua: ADMIT, numberOfKeys: 6 },
  gateSync: { lua: SYNC, numberOfKeys: 1 },
  gateTake: { lua: TAKE, numberOfKeys: 1 },
  gateRefund: { lua: REFUND, numberOfKeys: 1 },
} as const;

export type AdmitReply = [string | null, string, string?, string?, string?, string?, string?, string?, string?];

/** The gate on Redis: every node reads the same mirror and counters, so limits and bans hold cluster-wide. */
export class RedisGate implements Gate {
  protected readonly scripts: Record<keyof typeof SCRIPTS, Script>;
  private readonly loading = new Map<number, Promise<void>>();

  constructor(
    private readonly redis: Redis | Cluster,
    protected readonly prefix: string,
    private readonly loadRoom: (roomId: number) => Promise<RoomModerationState>,
    protected readonly limits: GateLimits,
    private readonly rebuild?: PresenceRebuildWindow,
  ) {
    for (const [name, definition] of Object.entries(SCRIPTS)) redis.defineCommand(name, definition);
    this.scripts = redis as unknown as Record<keyof typeof SCRIPTS, Script>;
  }

  async admit(request: AdmissionRequest): Promise<Admission> {
    let reply = await this.run(request);
    if (reply[1] === "load") {
      // First post to this room since Redis started (or its mirror expired): mirror it from the store, once.
      await this.reload(request.roomId);
      reply = await this.run(request);
      if (reply[1] === "load") throw new Error("room moderation state could not be mirrored");
    }
    return toAdmission(reply);
  }

  async syncRoom(state: RoomModerationState): Promise<void> {
    const payload = JSON.stringify({
      slow: String(state.settings.slowModeS),
      locked: state.settings.moderatorsOnly ? "1" : "0",
      maxlen: state.settings.maxTextLength === null ? "" : String(state.settings.maxTextLength),
      terms: JSON.stringify(state.blockedTerms),
      mods: state.moderators.map(String),
      restr: state.restrictions.map((r) => [String(r.userId), String(r.untilMs ?? 0)]),
    });
    await this.scripts.gateSync(this.mirrorKey(state.roomId), String(state.version), MIRROR_TTL_MS, payload);
  }

  async blockedTerms(roomId: number): Promise<{ version: number; terms: string[] }> {
    let [version, terms] = await this.redis.hmget(this.mirrorKey(roomId), "v", "terms");
    if (version === null) {
      await this.reload(roomId);
      [version, terms] = await this.redis.hmget(this.mirrorKey(roomId), "v", "terms");
    }
    const parsed: unknown = JSON.parse(terms ?? "[]");
    return {
      version: Number(version ?? 0),
      terms: Array.isArray(parsed) ? parsed.filter((t): t is string => typeof t === "string") : [],
    };
  }

  presenceRebuilding(): boolean {
    return this.rebuild?.active() ?? false;
  }

  async admitSocket(address: string): Promise<{ ok: boolean; retryAfterMs: number }> {
    const limit = this.limits.addressSockets;
    if (limit === undefined) return { ok: true, retryAfterMs: 0 };
    const [ok, wait] = (await this.scripts.gateTake(`${this.prefix}rl:o:${address}`, limit.count, limit.windowMs)) as [
      number,
      number,
    ];
    return { ok: ok === 1, retryAfterMs: Number(wait) };
  }

  protected run(request: AdmissionRequest): Promise<AdmitReply> {
    const { roomId, senderId, address } = request;
    const p = this.prefix;
    const privileged = request.moderatorByClaim || senderId === roomId;
    const [roomCount, roomWindow] = pair(this.limits.room);
    const [privCount, privWindow] = pair(this.limits.roomPrivileged);
    const [senderCount, senderWindow] = pair(this.limits.sender);
    const [addrCount, addrWindow] = address === undefined ? [0, 0] : pair(this.limits.addressPosts);
    return this.scripts.gateAdmit(
      `${p}presence:{${roomId}}`,
      this.mirrorKey(roomId),
      `${p}rl:{${roomId}}:${senderId}`,
      `${p}rl:u:${senderId}`,
      `${p}rl:a:${address ?? "-"}`,
      `${p}rl:{${roomId}}:w:${senderId}`,
      senderId,
      privileged ? 1 : 0,
      roomCount,
      roomWindow,
      privCount,
      privWindow,
      senderCount,
      senderWindow,
      addrCount,
      addrWindow,
    ) as Promise<AdmitReply>;
  }

  private mirrorKey(roomId: number): string {
    return `${this.prefix}mod:{${roomId}}`;
  }

  /** Concurrent posts to an unmirrored room share one store read. */
  private reload(roomId: number): Promise<void> {
    let pending = this.loading.get(roomId);
    if (!pending) {
      pending = this.loadRoom(roomId)
        .then((state) => this.syncRoom(state))
        .finally(() => this.loading.delete(roomId));
      this.loading.set(roomId, pending);
    }
    return pending;
  }
}

export function pair(limit: Limit | undefined): [number, number] {
  return limit === undefined ? [0, 0] : [limit.count, limit.windowMs];
}

function toAdmission(reply: AdmitReply): Admission {
  const [presence, status, n = "0", priv = "0", version = "0", slow = "0", locked = "0", maxlen = "", scope = ""] =
    reply;
  const admission: Admission = {
    presence: presence === null ? null : parseRecord(presence),
    privileged: priv === "1",
    limited: undefined,
    restricted: undefined,
    locked: false,
    settings: {
      slowModeS: Number(slow),
      moderatorsOnly: locked === "1",
      maxTextLength: maxlen === "" ? null : Number(maxlen),
    },
    version: Number(version),
  };
  if (status === "restricted") {
    const until = Number(n);
    admission.restricted = until === 0 ? { kind: "ban", untilMs: null } : { kind: "timeout", untilMs: until };
  } else if (status === "locked") {
    admission.locked = true;
  } else if (status === "limited") {
    admission.limited = { scope: scope as NonNullable<Admission["limited"]>["scope"], retryAfterMs: Number(n) };
  }
  return admission;
}
