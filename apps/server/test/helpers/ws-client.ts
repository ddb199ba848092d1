import WebSocket from "ws";

export interface Closed {
  code: number;
  reason: string;
}

/**
 * A real WebSocket client that records every frame and lets a test wait for
 * the next one matching a predicate, with a bounded timeout (no sleeps).
 */
export class TestSocket {
  readonly frames: string[] = [];
  closed: Closed | undefined;
  private waiters: { check: () => boolean; resolve: () => void }[] = [];
  private readonly opened: Promise<void>;
  /** Set when the server refused the upgrade. */
  rejection: { status: number; body: string } | undefined;

  constructor(
    url: string,
    options: WebSocket.ClientOptions = {},
    readonly ws = new WebSocket(url, options),
  ) {
    this.opened = new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => {
          this.rejection = { status: res.statusCode ?? 0, body };
          reject(new Error(`upgrade refused: ${res.statusCode} ${body}`));
          this.notify();
        });
      });
    });
    this.opened.catch(() => {});
    ws.on("message", (data) => {
      this.frames.push(data.toString());
      this.notify();
    });
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.notify();
    });
    ws.on("error", () => {});
  }

  open(): Promise<void> {
    return this.opened;
  }

  send(data: string | object | Buffer): void {
    this.ws.send(typeof data === "string" || Buffer.isBuffer(data) ? data : JSON.stringify(data));
  }

  /** JSON frames received so far (non-JSON frames skipped). */
  json<T = Record<string, unknown>>(): T[] {
    const out: T[] = [];
    for (const f of this.frames) {
      try {
        out.push(JSON.parse(f) as T);
      } catch {
        // "pong" and other text frames
      }
    }
    return out;
  }

  /** Waits until `check` holds, re-evaluated on every frame and on close. */
  until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; frames: ${this.frames.slice(-5).join(" | ")}; closed: ${JSON.stringify(this.closed)}`,
          ),
        );
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Waits for the n-th frame (1-based) and returns it. */
  async frame(n: number, timeoutMs?: number): Promise<string> {
    await this.until(() => this.frames.length >= n, `frame #${n}`, timeoutMs);
    return this.frames[n - 1] as string;
  }

  /** Waits for a JSON frame matching the predicate and returns it. */
  async next<T = Record<string, unknown>>(predicate: (f: T) => boolean, what: string, timeoutMs?: number): Promise<T> {
    let found: T | undefined;
    await this.until(
      () => {
        found = this.json<T>().find(predicate);
        return found !== undefined;
      },
      what,
      timeoutMs,
    );
    return found as T;
  }

  async waitClose(timeoutMs?: number): Promise<Closed> {
    await this.until(() => this.closed !== undefined, "close", timeoutMs);
    return this.closed as Closed;
  }

  close(code?: number, reason?: string): void {
    this.ws.close(code, reason);
  }

  terminate(): void {
    this.ws.terminate();
  }

  private notify(): void {
    for (const w of [...this.waiters]) {
      if (w.check()) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve();
      }
    }
  }
}
