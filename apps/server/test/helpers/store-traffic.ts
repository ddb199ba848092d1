import { performance } from "node:perf_hooks";
import { mintToken } from "./tokens.js";

/** One post as the client saw it: when it went out, when and how it was answered. */
export interface PostRecord {
  text: string;
  sentAt: number;
  answeredAt?: number;
  /** HTTP status; 0 when there was no answer (connection error, or no answer within the request bound). */
  status?: number;
  retryAfter?: string | null;
  seq?: number;
  id?: string;
}

/**
 * Posts to one room of one node and records every outcome with its timing (performance.now() ms):
 * a steady stream from a few senders (`start`), and single probes (`send`) the test times itself.
 */
export class PostTraffic {
  readonly posts: PostRecord[] = [];
  private running = false;
  private loops: Promise<void>[] = [];
  private listeners: (() => void)[] = [];
  private counter = 0;

  private constructor(
    private readonly baseHttp: string,
    private readonly room: number,
    private readonly tag: string,
    private readonly tokens: string[],
    /** No post may take longer than this; past it the record says status 0. */
    private readonly requestTimeoutMs: number,
  ) {}

  static async create(
    baseHttp: string,
    room: number,
    { senders = 4, tag = `r${room}`, requestTimeoutMs = 60_000 } = {},
  ): Promise<PostTraffic> {
    const tokens = await Promise.all(Array.from({ length: senders }, (_, i) => mintToken({ user_idx: 7000 + i })));
    return new PostTraffic(baseHttp, room, tag, tokens, requestTimeoutMs);
  }

  /** Starts one sequential post loop per sender. */
  start(): void {
    this.running = true;
    this.loops = this.tokens.map(async (token) => {
      while (this.running) await this.send(token);
    });
  }

  /** Stops the loops without waiting (teardown of a failed test: the node goes next, ending what is in flight). */
  halt(): void {
    this.running = false;
  }

  /** Stops the loops and waits (bounded) until every post they sent was answered. */
  async stop(timeoutMs = 90_000): Promise<void> {
    this.running = false;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`posts still unanswered after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([Promise.all(this.loops), bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One post with a unique text; resolves with its record once answered. */
  async send(token = this.tokens[0] as string, timeoutMs = this.requestTimeoutMs): Promise<PostRecord> {
    const record: PostRecord = { text: `${this.tag}-${++this.counter}`, sentAt: performance.now() };
    this.posts.push(record);
    try {
      const res = await fetch(`${this.baseHttp}/v1/rooms/${this.room}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ text: record.text }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body = (await res.json().catch(() => ({}))) as { seq?: number; id?: string };
      record.status = res.status;
      record.retryAfter = res.headers.get("retry-after");
      if (res.status === 201) {
        record.seq = body.seq;
        record.id = body.id;
      }
    } catch {
      record.status = 0;
    }
    record.answeredAt = performance.now();
    for (const l of [...this.listeners]) l();
    return record;
  }

  /** Sends `count` posts, one loop per sender at a time; resolves with their records once all are answered. */
  async sendMany(count: number): Promise<PostRecord[]> {
    const records: PostRecord[] = [];
    let left = count;
    await Promise.all(
      this.tokens.map(async (token) => {
        while (left > 0) {
          left--;
          records.push(await this.send(token));
        }
      }),
    );
    return records;
  }

  /** Answered posts matching `filter`. */
  answered(filter: (p: PostRecord) => boolean = () => true): PostRecord[] {
    return this.posts.filter((p) => p.answeredAt !== undefined && filter(p));
  }

  /** Waits, re-checking on every answer, until `check` holds. */
  until(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const listener = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== listener);
        resolve();
      };
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== listener);
        reject(new Error(`post traffic: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.listeners.push(listener);
    });
  }
}
