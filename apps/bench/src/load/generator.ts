import { performance } from "node:perf_hooks";
import { Pool } from "undici";
import { messageText, type Phase, type Tracker } from "./tracker.js";

export interface GeneratorOptions {
  /**
   * http://host:port of what receives the posts. Several: each post goes to one of them, picked at
   * random (a random balancer; not by post number, which would tie each room to one node).
   */
  baseUrls: string[];
  /** One bearer token per sender (a viewer of every room). */
  senderTokens: string[];
  rooms: number[];
  /** Keep-alive connections in the pool. */
  connections: number;
  /** Put before each text (the flood's spammer marks its messages so the presenters' tracker can tell them). */
  textPrefix?: string;
}

/**
 * Posts chat messages over keep-alive HTTP/1.1 connections (undici Pool):
 * closed loop (N senders, each waits for its answer) or open loop (a fixed
 * offered rate, whatever the answers do). Latency is measured from the
 * intended send time, so a slow server cannot hide queueing (no coordinated omission).
 */
export class Generator {
  private readonly pools: Pool[];
  private readonly authHeaders: Record<string, string>[];
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly options: GeneratorOptions,
    private readonly tracker: Tracker,
  ) {
    if (options.baseUrls.length === 0) throw new Error("generator: no base URL");
    this.pools = options.baseUrls.map(
      (url) =>
        new Pool(url, {
          connections: options.connections,
          pipelining: 1,
          keepAliveTimeout: 60_000,
          keepAliveMaxTimeout: 60_000,
          headersTimeout: 30_000,
          bodyTimeout: 30_000,
        }),
    );
    this.authHeaders = options.senderTokens.map((t) => ({
      authorization: `Bearer ${t}`,
      "content-type": "application/json",
    }));
  }

  /** `concurrency` senders, each posting its next message as soon as the previous one is answered. */
  async closedLoop(phase: Phase, concurrency: number, durationMs: number): Promise<void> {
    phase.concurrency = concurrency;
    phase.startedAt = performance.now();
    const deadline = phase.startedAt + durationMs;
    const sender = async (index: number) => {
      while (performance.now() < deadline) await this.postOne(phase, index, performance.now());
    };
    await Promise.all(Array.from({ length: concurrency }, (_, i) => sender(i)));
    phase.endedAt = performance.now();
  }

  /** One sender posting `posts` messages one after the other: each sent when the last one is answered. */
  async sequential(phase: Phase, posts: number): Promise<void> {
    phase.concurrency = 1;
    phase.startedAt = performance.now();
    for (let i = 0; i < posts; i++) await this.postOne(phase, 0, performance.now());
    phase.endedAt = performance.now();
  }

  /**
   * Posts at `rate` messages/s for `durationMs`, message i due at start + i/rate.
   * Past `maxInFlight` unanswered posts the generator skips sends (counted) instead of queueing them.
   */
  async openLoop(phase: Phase, rate: number, durationMs: number, maxInFlight = 4096): Promise<void> {
    phase.offeredRate = rate;
    const total = Math.max(1, Math.round((rate * durationMs) / 1000));
    const interval = 1000 / rate;
    const start = performance.now();
    phase.startedAt = start;
    let i = 0;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        const due = Math.min(total, Math.floor((now - start) / interval) + 1);
        while (i < due) {
          const t0 = start + i * interval;
          const sender = i % this.authHeaders.length;
          i++;
          if (this.inFlight >= maxInFlight) {
            phase.generatorDropped++;
            continue;
          }
          void this.postOne(phase, sender, t0);
        }
        if (i >= total) resolve();
        else setTimeout(tick, Math.max(0, start + i * interval - performance.now()));
      };
      tick();
    });
    await this.idle();
    // Throughput counts over the offered window, not the tail of the last answers.
    phase.endedAt = start + durationMs;
  }

  async close(): Promise<void> {
    await this.idle();
    await Promise.all(this.pools.map((p) => p.close()));
  }

  private idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async postOne(phase: Phase, sender: number, t0: number): Promise<void> {
    const id = this.tracker.nextId();
    const rooms = this.options.rooms;
    const room = rooms[id % rooms.length] as number;
    this.tracker.issued(id, phase, t0);
    this.inFlight++;
    try {
      const pools = this.pools;
      const pool = pools.length === 1 ? pools[0] : pools[Math.floor(Math.random() * pools.length)];
      const res = await (pool as Pool).request({
        path: `/v1/rooms/${room}/messages`,
        method: "POST",
        headers: this.authHeaders[sender],
        body: `{"text":"${this.options.textPrefix ?? ""}${messageText(id, t0)}"}`,
      });
      const body = await res.body.text();
      if (res.statusCode === 201) this.tracker.acked(id, performance.now() - t0);
      else this.tracker.failed(id, `http ${res.statusCode}`, body);
    } catch (err) {
      this.tracker.failed(id, (err as { code?: string }).code ?? "error", (err as Error).message);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }
}
