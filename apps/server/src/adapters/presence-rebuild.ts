import type { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";

/**
 * KEYS: the marker (exists while Redis keeps its data), the window (its end, Redis time in ms; expires then).
 * ARGV: window ms, 1 when this connection was up before (a reconnect), 0 on a node's first connect.
 * Reply: the window's remaining ms (0 or less: no window). Only GET, SET and TIME: what the
 * least-privilege ACL user of docs/operations.md may call.
 */
const CHECK = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not redis.call('GET', KEYS[1]) then
  redis.call('SET', KEYS[1], '1')
  if ARGV[2] == '1' then redis.call('SET', KEYS[2], tostring(now + tonumber(ARGV[1])), 'PX', ARGV[1]) end
end
return tonumber(redis.call('GET', KEYS[2]) or '0') - now`;

type CheckCommand = (marker: string, window: string, windowMs: number, reconnect: number) => Promise<number>;

/**
 * Redis restarted without its data (no persistence) or was flushed: every live room's presence key is
 * gone until the node holding its presenter re-announces it (its bus resync, at the latest its next
 * heartbeat). Meanwhile a post to a live room would get "not live", a final answer no sender retries.
 *
 * Whenever a node's command connection comes back it looks for a marker key that only a data loss
 * removes. The first node to miss it opens a window (a key with a TTL of one presence TTL, which
 * bounds the re-announcing) that every node reads on its own reconnect; inside the window a missing
 * presence is "not known yet" and a post answers 503 with Retry-After instead of 409. Nothing is read
 * per post: the window is kept on the node.
 */
export class PresenceRebuildWindow {
  private untilMs = 0;
  private connectedBefore = false;
  /** The newest check, for a caller that must know it ran (a node's start, tests). */
  lastCheck: Promise<void> = Promise.resolve();
  private readonly checkCommand: CheckCommand;
  private readonly markerKey: string;
  private readonly windowKey: string;

  constructor(
    redis: Redis | Cluster,
    prefix: string,
    private readonly windowMs: number,
    private readonly logger: Logger,
  ) {
    redis.defineCommand("presenceRebuildCheck", { numberOfKeys: 2, lua: CHECK });
    this.checkCommand = (redis as unknown as { presenceRebuildCheck: CheckCommand }).presenceRebuildCheck.bind(redis);
    // One hash tag: both keys on one slot of a Redis Cluster (the prefix has no braces there).
    this.markerKey = `${prefix}{presence-rebuild}:intact`;
    this.windowKey = `${prefix}{presence-rebuild}:window`;
    redis.on("ready", () => void this.check());
  }

  /**
   * Reads (and on a loss, opens) the window. Runs on every "ready" of the connection; call it once
   * after the first connect, whose "ready" came before this object existed.
   */
  check(): Promise<void> {
    const reconnect = this.connectedBefore;
    this.connectedBefore = true;
    this.lastCheck = this.run(reconnect);
    return this.lastCheck;
  }

  private async run(reconnect: boolean): Promise<void> {
    try {
      const remaining = Number(
        await this.checkCommand(this.markerKey, this.windowKey, this.windowMs, reconnect ? 1 : 0),
      );
      if (remaining > 0) {
        this.untilMs = Math.max(this.untilMs, Date.now() + remaining);
        this.logger.warn(
          { windowMs: remaining },
          "Redis came back without its data: presence is being rebuilt, posts to rooms not yet re-announced get 503",
        );
      }
    } catch (err) {
      // Lost again before the check: the next "ready" checks.
      this.logger.debug({ err }, "presence rebuild check failed");
    }
  }

  /** A missing presence may be a live room not yet re-announced. */
  active(now: number = Date.now()): boolean {
    return now < this.untilMs;
  }
}
