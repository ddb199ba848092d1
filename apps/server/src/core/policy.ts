import { ErrorCode } from "@chatrelay/protocol";
import { type CompiledTerms, compileTerms, MAX_BLOCKED_TERMS, type TermMatcher } from "./blocked-terms.js";
import type { Admission, AdmissionRequest, Gate } from "./ports.js";
import { RelayError } from "./relay-error.js";

/** Memory a node gives compiled blocked terms (a 500-term room is ~64 KiB, the worst case ~1 MB). */
const MAX_MATCHER_BYTES = 64 * 1024 * 1024;

/**
 * The policy step of the post path: one gate round trip (presence, limits,
 * ban or timeout, settings), then what only the node can check (the room's
 * length limit and blocked terms, compiled once per room version). A refusal
 * is a RelayError; nothing is logged or delivered for it.
 */
export class Policy {
  private readonly matchers = new Map<number, { version: number; matcher: CompiledTerms }>();
  private readonly refusals = new RefusalCache();
  private matcherBytes = 0;

  constructor(private readonly gate: Gate) {}

  /** See Gate.presenceRebuilding. */
  presenceRebuilding(): boolean {
    return this.gate.presenceRebuilding();
  }

  async admit(request: AdmissionRequest, text: string): Promise<Admission> {
    const refusedUntil = this.refusals.until(request.roomId, request.senderId);
    if (refusedUntil !== undefined) throw limitError("room", refusedUntil - Date.now());
    let admission: Admission;
    try {
      admission = await this.gate.admit(request);
    } catch (err) {
      throw new RelayError(ErrorCode.ServiceUnavailable, "presence store unavailable; try again shortly", err, 1);
    }
    // Not live: the honest "not live" answer comes first, whatever else would refuse the post.
    if (admission.presence === null) return admission;
    const { restricted, limited } = admission;
    if (restricted?.kind === "ban") throw new RelayError(ErrorCode.Banned, "you are banned from this room");
    if (restricted) {
      throw new RelayError(
        ErrorCode.TimedOut,
        "you are timed out in this room",
        undefined,
        secondsUntil(restricted.untilMs),
      );
    }
    if (admission.locked) throw new RelayError(ErrorCode.RoomLocked, "only moderators may post in this room now");
    if (limited) {
      // Per-sender refusals are remembered here until they lapse: a flooding sender costs no gate round trip.
      if (limited.scope === "room" || limited.scope === "sender") {
        this.refusals.remember(request.roomId, request.senderId, limited.scope, Date.now() + limited.retryAfterMs);
      }
      throw limitError(limited.scope, limited.retryAfterMs);
    }
    const max = admission.settings.maxTextLength;
    if (max !== null && text.length > max && [...text].length > max) {
      throw new RelayError(ErrorCode.TextTooLong, `text must be at most ${max} characters in this room`);
    }
    if (admission.version > 0 && (await this.matcher(request.roomId, admission.version)).matches(text)) {
      throw new RelayError(ErrorCode.TextBlocked, "the message contains a term blocked in this room");
    }
    return admission;
  }

  private async matcher(roomId: number, version: number): Promise<TermMatcher> {
    const cached = this.matchers.get(roomId);
    if (cached !== undefined && cached.version >= version) return cached.matcher;
    let terms: { version: number; terms: string[] };
    try {
      terms = await this.gate.blockedTerms(roomId);
    } catch (err) {
      throw new RelayError(ErrorCode.ServiceUnavailable, "room settings unavailable; try again shortly", err, 1);
    }
    // The store keeps at most MAX_BLOCKED_TERMS per room; a longer list from a damaged mirror is cut, not fatal.
    const entry = { version: terms.version, matcher: compileTerms(terms.terms.slice(0, MAX_BLOCKED_TERMS)) };
    this.forget(roomId);
    this.matchers.set(roomId, entry);
    this.matcherBytes += entry.matcher.bytes;
    for (const oldest of this.matchers.keys()) {
      if (this.matcherBytes <= MAX_MATCHER_BYTES || oldest === roomId) break;
      this.forget(oldest);
    }
    return entry.matcher;
  }

  private forget(roomId: number): void {
    const entry = this.matchers.get(roomId);
    if (entry === undefined) return;
    this.matchers.delete(roomId);
    this.matcherBytes -= entry.matcher.bytes;
  }
}

function limitError(scope: NonNullable<Admission["limited"]>["scope"], retryAfterMs: number): RelayError {
  const wait = Math.max(1, Math.ceil(retryAfterMs / 1000));
  if (scope === "slow_mode") {
    return new RelayError(ErrorCode.SlowMode, "slow mode: wait before your next message", undefined, wait);
  }
  return new RelayError(ErrorCode.RateLimited, "too many messages; slow down", undefined, wait);
}

/** Refusals remembered per sender, at most this many. */
const MAX_REFUSALS = 100_000;

/**
 * Node-local memory of rate-limit refusals, until their retry time. Sound
 * cluster-wide: a refused post consumes nothing and other nodes can only push
 * a limit's arrival time later, so no node could admit the sender earlier.
 * (Slow mode is not remembered: a moderator may switch it off.)
 */
class RefusalCache {
  private readonly bySenderRoom = new Map<string, number>();
  private readonly bySender = new Map<number, number>();

  until(roomId: number, senderId: number): number | undefined {
    const now = Date.now();
    const room = this.bySenderRoom.get(`${roomId}:${senderId}`);
    const sender = this.bySender.get(senderId);
    const until = Math.max(room ?? 0, sender ?? 0);
    return until > now ? until : undefined;
  }

  remember(roomId: number, senderId: number, scope: "room" | "sender", until: number): void {
    if (scope === "room") bounded(this.bySenderRoom, `${roomId}:${senderId}`, until);
    else bounded(this.bySender, senderId, until);
  }
}

function bounded<K>(map: Map<K, number>, key: K, until: number): void {
  map.delete(key);
  map.set(key, until);
  if (map.size <= MAX_REFUSALS) return;
  const now = Date.now();
  for (const [k, u] of map) {
    if (u <= now || map.size > MAX_REFUSALS) map.delete(k);
    if (map.size <= MAX_REFUSALS * 0.9) return;
  }
}

function secondsUntil(untilMs: number | null): number {
  return untilMs === null ? 3600 : Math.max(1, Math.ceil((untilMs - Date.now()) / 1000));
}
