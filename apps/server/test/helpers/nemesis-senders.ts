import { performance } from "node:perf_hooks";
import type { PostAttempt, PostOutcome } from "./history.js";
import type { Prng } from "./nemesis-prng.js";
import type { NodeProcess } from "./processes.js";

/** A post with no answer within this is indeterminate (its node may be stopped or dead). */
const POST_TIMEOUT_MS = 3000;
/** Attempts per logical post: the first, then retries of 503 and network errors with the same clientMsgId. */
const ATTEMPTS = 4;

export interface Sender {
  id: number;
  token: string;
  rng: Prng;
}

/**
 * Viewers posting with a clientMsgId to random running nodes, retrying 503s and lost answers
 * (network error, timeout) with the same clientMsgId, recording every attempt. `total` logical
 * posts are spread over the senders; each one's text is unique.
 */
export class Senders {
  readonly attempts: PostAttempt[] = [];
  completed = 0;
  private listeners: (() => void)[] = [];
  private next = 0;
  /** Posts may start while their index is below this (the nemesis hands out the workload in slices). */
  private allowed = 0;
  private gate: (() => void)[] = [];

  constructor(
    private readonly senders: Sender[],
    private readonly rooms: number[],
    private readonly total: number,
    private readonly nodes: () => NodeProcess[],
    /** Called after every finished post, with that sender's PRNG (the run's own chaos: takeovers, drops). */
    private readonly afterPost: (rng: Prng) => void,
  ) {}

  /** Lets posts up to index `n` (exclusive) start. */
  allow(n: number): void {
    this.allowed = Math.min(n, this.total);
    for (const open of this.gate.splice(0)) open();
  }

  /** Runs until every post is done. */
  run(): Promise<void> {
    return Promise.all(this.senders.map((s) => this.loop(s))).then(() => undefined);
  }

  /** Resolves once `n` posts are done in all (or all of them are). */
  untilCompleted(n: number, timeoutMs = 120_000): Promise<void> {
    const target = Math.min(n, this.total);
    if (this.completed >= target) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== listener);
        reject(new Error(`senders: only ${this.completed} of ${target} posts done after ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = () => {
        if (this.completed < target) return;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== listener);
        resolve();
      };
      this.listeners.push(listener);
    });
  }

  private async loop(sender: Sender): Promise<void> {
    for (;;) {
      while (this.next >= this.allowed && this.next < this.total)
        await new Promise<void>((open) => this.gate.push(open));
      if (this.next >= this.total) return;
      const op = this.next++;
      const room = sender.rng.pick(this.rooms);
      await this.post(sender, room, `op${op} r${room} s${sender.id}`, `cm-${op}`);
      this.completed++;
      this.afterPost(sender.rng);
      for (const l of [...this.listeners]) l();
      // Think time between posts: the workload's pace, not synchronisation.
      await new Promise((resolve) => setTimeout(resolve, sender.rng.int(0, 25)));
    }
  }

  private async post(sender: Sender, room: number, text: string, clientMsgId: string): Promise<void> {
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const running = this.nodes();
      if (running.length === 0) return;
      const node = sender.rng.pick(running);
      const start = performance.now();
      const outcome = await send(node, room, sender.token, text, clientMsgId);
      this.attempts.push({
        room,
        text,
        clientMsgId,
        sender: sender.id,
        node: node.name,
        start,
        end: performance.now(),
        outcome,
      });
      if (outcome.kind === "ok" || outcome.kind === "refused") return;
      // The client's retry backoff.
      await new Promise((resolve) => setTimeout(resolve, sender.rng.int(50, 250)));
    }
  }
}

async function send(
  node: NodeProcess,
  room: number,
  token: string,
  text: string,
  clientMsgId: string,
): Promise<PostOutcome> {
  try {
    const res = await fetch(`${node.http}/v1/rooms/${room}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ text, clientMsgId }),
      signal: AbortSignal.timeout(POST_TIMEOUT_MS),
    });
    const body = (await res.json().catch(() => ({}))) as { seq?: unknown; id?: unknown };
    if (res.status >= 200 && res.status < 300) {
      if (typeof body.seq !== "number" || typeof body.id !== "string")
        throw new Error(`2xx without seq/id: ${JSON.stringify(body)}`);
      return { kind: "ok", status: res.status, seq: body.seq, id: body.id };
    }
    if (res.status === 503) return { kind: "unavailable", status: 503 };
    if (res.status >= 400 && res.status < 500) return { kind: "refused", status: res.status };
    // Anything else (a 500) is not an honest answer: the checker treats it as "unknown".
    return { kind: "indeterminate", error: `status ${res.status}` };
  } catch (err) {
    if (err instanceof Error && err.message.startsWith("2xx without")) throw err;
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    return { kind: "indeterminate", error: cause ?? (err as Error).name };
  }
}
