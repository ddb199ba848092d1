import type { Cluster, Redis } from "ioredis";
import type { Presence, PresenceClaim, PresenceRecord } from "../core/ports.js";

// Value layout: state|epoch|connId|nodeId (nodeId last: it is the only free-form part).
const PARSE = "local state, epoch, conn = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|')";

/** Claim: a new epoch, never below the last one (Redis' clock, so node clocks do not matter). */
const CLAIM = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local epoch = now
if epoch <= prev then epoch = prev + 1 end
local e = string.format('%.0f', epoch)
redis.call('SET', KEYS[2], e)
redis.call('SET', KEYS[1], 'live|' .. e .. '|' .. ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return e`;

const RENEW = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
${PARSE}
if conn ~= ARGV[1] or state ~= 'live' then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

/**
 * After a Redis restart: put our claim back unless another connection's record is there with a
 * newer epoch (or the same one); an older record (re-asserted first after a data loss) loses to us.
 * Keep the epoch floor.
 */
const REASSERT = `
local v = redis.call('GET', KEYS[1])
if v then
  ${PARSE}
  if conn ~= ARGV[1] and tonumber(epoch) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], 'live|' .. ARGV[2] .. '|' .. ARGV[1] .. '|' .. ARGV[3], 'PX', ARGV[4])
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
if prev < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
return 1`;

const RELEASE = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
${PARSE}
if conn ~= ARGV[1] then return 0 end
if ARGV[2] == 'stop' or tonumber(ARGV[3]) == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], 'grace' .. string.sub(v, string.len(state) + 1), 'PX', ARGV[3])
end
return 1`;

const RECORD_ACK = `
local prev = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > prev then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 1`;

const ACK_TTL_MS = 24 * 3600 * 1000;

/** Keys first, then arguments: each script declares its key count, so the first argument is a key. */
type Script = (...keysThenArgs: (string | number)[]) => Promise<unknown>;

/** Scripts run by SHA (EVALSHA, loaded on first use): the heartbeat of many rooms sends no script text. */
const SCRIPTS = {
  presenceClaim: { lua: CLAIM, numberOfKeys: 2 },
  presenceRenew: { lua: RENEW, numberOfKeys: 1 },
  presenceReassert: { lua: REASSERT, numberOfKeys: 2 },
  presenceRelease: { lua: RELEASE, numberOfKeys: 1 },
  presenceRecordAck: { lua: RECORD_ACK, numberOfKeys: 1 },
} as const;

/** Presence in Redis: a key per room naming the holding connection, with a TTL that heartbeats renew. */
export class RedisPresence implements Presence {
  private readonly scripts: Record<keyof typeof SCRIPTS, Script>;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly ttlMs: number,
    private readonly graceMs: number,
  ) {
    // A declared key count puts a key first in every call, which is what a cluster client's
    // auto-pipelining groups commands by (a leading count would put every script in slot "2").
    for (const [name, definition] of Object.entries(SCRIPTS)) redis.defineCommand(name, definition);
    this.scripts = redis as unknown as Record<keyof typeof SCRIPTS, Script>;
  }

  private keys(roomId: number): [string, string] {
    return [`${this.prefix}presence:{${roomId}}`, `${this.prefix}epoch:{${roomId}}`];
  }

  async get(roomId: number): Promise<PresenceRecord | null> {
    const value = await this.redis.get(this.keys(roomId)[0]);
    return value === null ? null : parseRecord(value);
  }

  async claim(roomId: number, claim: PresenceClaim): Promise<number> {
    const epoch = await this.scripts.presenceClaim(...this.keys(roomId), claim.connId, claim.nodeId, this.ttlMs);
    return Number(epoch);
  }

  async renew(roomId: number, connId: string): Promise<boolean> {
    return (await this.scripts.presenceRenew(this.keys(roomId)[0], connId, this.ttlMs)) === 1;
  }

  async reassert(roomId: number, record: PresenceRecord): Promise<boolean> {
    const result = await this.scripts.presenceReassert(
      ...this.keys(roomId),
      record.connId,
      String(record.epoch),
      record.nodeId,
      this.ttlMs,
    );
    return result === 1;
  }

  async release(roomId: number, connId: string, mode: "stop" | "grace"): Promise<void> {
    await this.scripts.presenceRelease(this.keys(roomId)[0], connId, mode, this.graceMs);
  }

  async ackedSeq(roomId: number): Promise<number> {
    return Number((await this.redis.get(`${this.prefix}ack:{${roomId}}`)) ?? 0);
  }

  async recordAck(roomId: number, seq: number): Promise<void> {
    await this.scripts.presenceRecordAck(`${this.prefix}ack:{${roomId}}`, seq, ACK_TTL_MS);
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    // The bus owns the connections' lifecycle.
  }
}

export function parseRecord(value: string): PresenceRecord {
  const [state, epoch, connId, ...node] = value.split("|");
  return {
    state: state === "grace" ? "grace" : "live",
    epoch: Number(epoch),
    connId: connId ?? "",
    nodeId: node.join("|"),
  };
}
