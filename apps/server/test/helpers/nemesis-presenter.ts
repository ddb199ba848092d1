import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import type { PresenterConnection } from "./history.js";
import type { Prng } from "./nemesis-prng.js";
import type { NodeProcess } from "./processes.js";

/** A socket that sent no `ready` within this is given up (its node may be stopped). */
const READY_TIMEOUT_MS = 5000;

interface Live {
  record: PresenterConnection;
  ws: WebSocket;
  /** Given up client-side: nothing more is recorded from it. */
  abandoned: boolean;
  readyTimer?: NodeJS.Timeout;
}

/**
 * One room's presenter as an SDK would run it: one socket at a time, reconnecting (to a random
 * running node, with lastSeq = the last seq it processed in order) when it drops, dropping
 * duplicates by seq, and sometimes taking over on purpose by opening a new socket while the old
 * one is still open. Every socket is recorded for the history checker, including frames an old
 * socket still gets after a takeover (that is what the fence check looks at).
 *
 * Discipline the checker relies on: a new socket is opened only when no other socket is waiting
 * for its `ready` (a waiting one is abandoned first), so the order in which `ready` frames arrive
 * is the order in which the connections claimed the room.
 */
export class PresenterClient {
  /** The last seq processed in order (what a reconnect resumes after). */
  lastSeq = 0;
  readonly delivered = new Set<number>();
  private current: Live | undefined;
  private pending: Live | undefined;
  private readonly older = new Set<Live>();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private waiters: (() => void)[] = [];
  opened = 0;

  constructor(
    readonly room: number,
    private readonly token: string,
    private readonly nodes: () => NodeProcess[],
    private readonly rng: Prng,
    private readonly record: PresenterConnection[],
  ) {}

  start(): void {
    this.connect();
  }

  /** Opens a new socket while the current one stays open (the server must replace the old one). */
  takeover(): void {
    if (this.stopped || this.pending) return;
    this.connect();
  }

  /** Drops the current socket client-side (no close frame), as a lost network would. */
  drop(): void {
    const live = this.current;
    if (!live) return;
    this.abandon(live);
  }

  get connected(): boolean {
    return this.current !== undefined;
  }

  /** Resolves once `check` holds (re-checked on every frame and socket change); bounded. */
  until(check: () => boolean, what: string, timeoutMs: number): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const listener = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== listener);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== listener);
        reject(new Error(`room ${this.room} presenter: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.push(listener);
    });
  }

  /** Closes every socket normally and stops reconnecting. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    for (const live of [this.current, this.pending, ...this.older]) {
      if (!live) continue;
      clearTimeout(live.readyTimer);
      live.abandoned = true;
      live.ws.terminate();
    }
  }

  private connect(): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    if (this.stopped) return;
    if (this.pending) this.abandon(this.pending);
    const candidates = this.nodes();
    if (candidates.length === 0) {
      this.reconnectSoon();
      return;
    }
    const node = this.rng.pick(candidates);
    const url = `${node.ws}/v1/rooms/${this.room}/presenter?access_token=${this.token}&lastSeq=${this.lastSeq}`;
    const record: PresenterConnection = {
      room: this.room,
      index: this.opened++,
      node: node.name,
      openedAt: performance.now(),
      messages: [],
    };
    this.record.push(record);
    const live: Live = { record, ws: new WebSocket(url), abandoned: false };
    this.pending = live;
    live.readyTimer = setTimeout(() => {
      if (this.pending === live) {
        this.abandon(live);
        this.connect();
      }
    }, READY_TIMEOUT_MS);
    live.ws.on("error", () => {});
    live.ws.on("message", (data) => this.onFrame(live, data.toString()));
    live.ws.on("close", (code) => this.onClose(live, code));
  }

  private onFrame(live: Live, text: string): void {
    if (live.abandoned) return;
    const at = performance.now();
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if (frame.type === "ready") {
      live.record.ready = {
        lastSeq: frame.lastSeq as number,
        resumeFrom: (frame.resumeFrom as number | null) ?? null,
        connId: String(frame.connId),
        at,
      };
      if (this.pending === live) {
        clearTimeout(live.readyTimer);
        this.pending = undefined;
        if (this.current) this.older.add(this.current);
        this.current = live;
      }
    } else if (frame.type === "message") {
      const m = { seq: frame.seq as number, id: String(frame.id), text: String(frame.text), at };
      if (live.record.ready) live.record.messages.push(m);
      else live.record.early = [...(live.record.early ?? []), m];
      this.delivered.add(m.seq);
      // The SDK's dedupe: process in order, drop what was seen.
      if (m.seq === this.lastSeq + 1) this.lastSeq = m.seq;
    }
    this.notify();
  }

  private onClose(live: Live, code: number): void {
    clearTimeout(live.readyTimer);
    if (!live.abandoned) live.record.closed = { code, at: performance.now() };
    this.older.delete(live);
    if (this.pending === live) {
      this.pending = undefined;
      if (!this.current) this.reconnectSoon();
    } else if (this.current === live) {
      this.current = undefined;
      if (!this.pending) this.reconnectSoon();
    }
    this.notify();
  }

  /** Gives a socket up client-side: terminated, nothing more recorded from it. */
  private abandon(live: Live): void {
    clearTimeout(live.readyTimer);
    live.abandoned = true;
    live.record.closed = { code: -1, at: performance.now() };
    live.ws.terminate();
  }

  private reconnectSoon(): void {
    if (this.stopped || this.reconnectTimer) return;
    // A client's backoff (workload pacing, not synchronisation).
    this.reconnectTimer = setTimeout(() => this.connect(), this.rng.int(20, 200));
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}
