import { post } from "./cluster.js";
import { mintToken } from "./tokens.js";
import type { TestSocket } from "./ws-client.js";

export interface Accepted {
  seq: number;
  id: string;
}

/**
 * Concurrent senders posting a steady stream to a room across several nodes
 * (round-robin, skipping nodes that refuse connections), recording every
 * 2xx'd message and every refusal.
 */
export class ChatStream {
  readonly accepted: Accepted[] = [];
  readonly refused: number[] = [];
  private running = true;
  private loops: Promise<void>[] = [];
  private listeners: (() => void)[] = [];

  private constructor(
    private readonly room: number,
    private readonly targets: () => string[],
    private readonly padding: string,
  ) {}

  /** `textSize`: pad each text to about this many characters (to fill socket buffers quickly). */
  static async start(room: number, targets: () => string[], senders: number, textSize = 0): Promise<ChatStream> {
    const stream = new ChatStream(room, targets, ".".repeat(textSize));
    const tokens = await Promise.all(Array.from({ length: senders }, (_, i) => mintToken({ user_idx: 9000 + i })));
    stream.loops = tokens.map((token, i) => stream.loop(token, i));
    return stream;
  }

  /** Resolves once `n` more posts were answered (any status): the stream is flowing. */
  answered(n: number, timeoutMs = 20_000): Promise<void> {
    const target = this.accepted.length + this.refused.length + n;
    return this.until(() => this.accepted.length + this.refused.length >= target, `${n} more answers`, timeoutMs);
  }

  until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`chat stream: timed out waiting for ${what}`)), timeoutMs);
      const listener = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== listener);
        resolve();
      };
      this.listeners.push(listener);
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(token: string, offset: number): Promise<void> {
    for (let k = 0; this.running; k++) {
      const nodes = this.targets();
      const base = nodes[(offset + k) % nodes.length] as string;
      try {
        const res = await post(base, this.room, token, `s${offset}-${k}${this.padding}`);
        if (res.status === 201) this.accepted.push({ seq: res.body.seq as number, id: res.body.id as string });
        else this.refused.push(res.status);
      } catch {
        this.refused.push(0); // connection refused or reset: a dead node
      }
      for (const l of [...this.listeners]) l();
    }
  }
}

/** What a client does with the frames of all its connections: drop duplicates by seq. */
export function dedupe(frames: { seq: number; id: string }[]): Map<number, string> {
  const seen = new Map<number, string>();
  for (const f of frames) if (!seen.has(f.seq)) seen.set(f.seq, f.id);
  return seen;
}

/** Seqs of one connection are strictly increasing (in order, no duplicate within a connection). */
export function strictlyIncreasing(seqs: number[]): boolean {
  return seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number));
}

export function lastSeqOf(socket: TestSocket): number {
  let last = 0;
  for (const f of socket.json<{ type: string; seq: number }>()) if (f.type === "message" && f.seq > last) last = f.seq;
  return last;
}
