import { performance } from "node:perf_hooks";

/** "sequential": one sender, each post sent when the last one was answered (the probe). */
export type PhaseMode = "warmup" | "closed" | "open" | "sequential";

/** What one load phase produced, as seen from the generator and the presenters. */
export class Phase {
  readonly httpLatMs: number[] = [];
  readonly e2eLatMs: number[] = [];
  issued = 0;
  ok = 0;
  failed = 0;
  readonly failures: Record<string, number> = {};
  readonly failureSamples: string[] = [];
  /** First receipts, at a presenter, of messages this phase posted. */
  received = 0;
  duplicates = 0;
  orderViolations = 0;
  /** Received at a presenter although the post did not get a 2xx (a timeout, say): not an error. */
  deliveredWithoutAck = 0;
  /** 2xx'd and still not received when the phase was checked. */
  outstanding = 0;
  lost = 0;
  /** Open loop: sends skipped because too many requests were already in flight. */
  generatorDropped = 0;
  startedAt = 0;
  endedAt = 0;
  /** Last 2xx or presenter frame of this phase. */
  lastEventAt = 0;
  offeredRate: number | undefined;
  concurrency: number | undefined;
  private drainWaiters: (() => void)[] = [];

  constructor(
    readonly name: string,
    readonly mode: PhaseMode,
  ) {}

  get seconds(): number {
    return Math.max(1e-9, (this.endedAt - this.startedAt) / 1000);
  }

  /** Resolves once every 2xx'd message of the phase reached its presenter. */
  whenDelivered(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  notifyIfDrained(): void {
    if (this.outstanding !== 0) return;
    for (const wake of this.drainWaiters.splice(0)) wake();
  }
}

interface Sent {
  phase: Phase;
  t0: number;
  acked: boolean;
  received: number;
}

/**
 * Follows every message from its post to its presenter frame: latency,
 * loss (2xx'd, never received), duplicates (received twice) and order
 * (each room's frames must carry seq n, n+1, n+2, ...).
 */
export class Tracker {
  private nextMessageId = 1;
  private readonly sent = new Map<number, Sent>();
  private readonly roomNext = new Map<number, number>();
  /** Frames that no post of this run explains. */
  foreignFrames = 0;
  /** Order violations of frames whose message is unknown. */
  strayOrderViolations = 0;
  presenterErrors: string[] = [];
  /** Frames counted by the prefix of their text: messages another process posted (the flood's spammer). */
  private readonly tagged = new Map<string, { count: number; waiters: { atLeast: number; wake: () => void }[] }>();

  /** Counts frames whose text starts with `prefix` instead of matching them to a post of this process. */
  tag(prefix: string): void {
    this.tagged.set(prefix, { count: 0, waiters: [] });
  }

  taggedCount(prefix: string): number {
    return this.tagged.get(prefix)?.count ?? 0;
  }

  /** Resolves once `atLeast` frames with the prefix have arrived. */
  whenTagged(prefix: string, atLeast: number): Promise<void> {
    const t = this.tagged.get(prefix);
    if (!t || t.count >= atLeast) return Promise.resolve();
    return new Promise((wake) => t.waiters.push({ atLeast, wake }));
  }

  nextId(): number {
    return this.nextMessageId++;
  }

  /** A presenter is ready: its next frame must carry `lastSeq + 1`. */
  roomReady(roomId: number, lastSeq: number): void {
    this.roomNext.set(roomId, lastSeq + 1);
  }

  issued(id: number, phase: Phase, t0: number): void {
    phase.issued++;
    this.sent.set(id, { phase, t0, acked: false, received: 0 });
  }

  acked(id: number, httpMs: number): void {
    const s = this.sent.get(id);
    if (!s) return;
    s.acked = true;
    s.phase.ok++;
    s.phase.httpLatMs.push(httpMs);
    s.phase.lastEventAt = performance.now();
    if (s.received === 0) s.phase.outstanding++;
    else s.phase.deliveredWithoutAck--;
  }

  failed(id: number, why: string, detail: string): void {
    const s = this.sent.get(id);
    if (!s) return;
    s.phase.failed++;
    s.phase.failures[why] = (s.phase.failures[why] ?? 0) + 1;
    if (s.phase.failureSamples.length < 5) s.phase.failureSamples.push(`${why}: ${detail.slice(0, 200)}`);
  }

  /** A message frame at a presenter; `text` starts with "<id> <t0> ". */
  onFrame(roomId: number, seq: number, text: string, now: number): void {
    const sp1 = text.indexOf(" ");
    const sp2 = text.indexOf(" ", sp1 + 1);
    const id = Number(text.slice(0, sp1));
    const t0 = Number(text.slice(sp1 + 1, sp2 === -1 ? undefined : sp2));
    const s = this.sent.get(id);

    const expected = this.roomNext.get(roomId);
    if (expected !== undefined && seq !== expected) {
      if (s) s.phase.orderViolations++;
      else this.strayOrderViolations++;
    }
    if (expected === undefined || seq >= expected) this.roomNext.set(roomId, seq + 1);

    for (const [prefix, t] of this.tagged) {
      if (!text.startsWith(prefix)) continue;
      t.count++;
      const due = t.waiters.filter((w) => t.count >= w.atLeast);
      t.waiters = t.waiters.filter((w) => t.count < w.atLeast);
      for (const w of due) w.wake();
      return;
    }
    if (!s) {
      this.foreignFrames++;
      return;
    }
    s.phase.lastEventAt = now;
    s.received++;
    if (s.received > 1) {
      s.phase.duplicates++;
      return;
    }
    s.phase.received++;
    s.phase.e2eLatMs.push(now - (Number.isFinite(t0) ? t0 : s.t0));
    if (s.acked) {
      s.phase.outstanding--;
      s.phase.notifyIfDrained();
    } else {
      s.phase.deliveredWithoutAck++;
    }
  }

  /** After the wait for deliveries: whatever is still outstanding is lost. */
  settle(phase: Phase): void {
    phase.lost = phase.outstanding;
  }
}

/** A message text that carries its id and its send time (performance.now(), ms). */
export function messageText(id: number, t0: number): string {
  const head = `${id} ${t0.toFixed(3)} `;
  return head + FILLER.slice(0, Math.max(8, 64 - head.length));
}

const FILLER = "chatrelay bench message, the rest is padding to a typical chat line length.";

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export function summarize(values: number[]): LatencySummary | null {
  if (values.length === 0) return null;
  const v = Float64Array.from(values).sort();
  const at = (q: number) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))] ?? 0;
  let sum = 0;
  for (const x of v) sum += x;
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    count: v.length,
    p50: r(at(0.5)),
    p90: r(at(0.9)),
    p99: r(at(0.99)),
    p999: r(at(0.999)),
    max: r(v[v.length - 1] ?? 0),
    mean: r(sum / v.length),
  };
}
