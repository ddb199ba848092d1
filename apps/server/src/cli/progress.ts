/**
 * Progress of long CLI work on stderr (stdout may carry the export itself): rows done, rate and,
 * when the total is known, the ETA. At most one line per `everyMs`, and a last one at the end.
 */
export class Progress {
  private readonly started = Date.now();
  private lastShown = 0;
  private done = 0;

  constructor(
    private readonly what: string,
    private readonly total: number | undefined,
    private readonly write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
    private readonly everyMs = 1000,
  ) {}

  add(rows: number): void {
    this.done += rows;
    const now = Date.now();
    if (now - this.lastShown >= this.everyMs) {
      this.lastShown = now;
      this.write(this.line(now));
    }
  }

  finish(): void {
    this.write(`${this.line(Date.now())} done`);
  }

  get rows(): number {
    return this.done;
  }

  private line(now: number): string {
    const seconds = Math.max((now - this.started) / 1000, 0.001);
    const rate = this.done / seconds;
    let line = `${this.what}: ${this.done.toLocaleString("en-US")} rows, ${Math.round(rate).toLocaleString("en-US")} rows/s`;
    if (this.total !== undefined && this.total > 0) {
      const left = Math.max(this.total - this.done, 0);
      const pct = Math.min(100, (100 * this.done) / this.total);
      line += `, ${pct.toFixed(1)}% of ${this.total.toLocaleString("en-US")}`;
      if (rate > 0 && left > 0) line += `, ETA ${formatSeconds(left / rate)}`;
    }
    return line;
  }
}

function formatSeconds(s: number): string {
  if (s < 60) return `${Math.ceil(s)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${Math.ceil(s % 60)}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}
