import type { Database, SqlSession } from "./database.js";
import type { ExportRange } from "./export-range.js";

/**
 * Reading a room's log for an export, a chunk at a time, in seq order, shared by the HTTP route
 * and the CLI. Memory is bounded by construction: a chunk is at most `chunkRows` rows, and the
 * reader is at most one chunk ahead of its consumer (see Handoff). Nothing is ever read with
 * OFFSET, nor the whole range at once.
 *
 * - PostgreSQL: one server-side cursor (DECLARE ... NO SCROLL CURSOR, FETCH n) in a read-only
 *   transaction on a dedicated connection (`db.transaction`, never the read pool), named
 *   `chatrelay-export` in pg_stat_activity. The export sees one snapshot: rows committed after
 *   it started are not in it. Ending the generator early (the client went away) ends the
 *   transaction and closes the connection.
 * - PGlite: keyset chunks (the next buckets of seqs after the last one read), each a short
 *   statement on the shared handle, so appends run between chunks.
 * Either way the upper bound is fixed when the export starts (`toSeq`, or the room's last seq
 * then), so a busy room cannot keep an export going forever.
 *
 * The store encodes each row itself (`lineSql`, from transport/export-format.ts) and joins the
 * lines of a bucket of BUCKET_SEQS seqs into one value: a million rows reach JavaScript as ten
 * thousand strings of ~30 KB, not a million row objects. That per-row garbage, alive across
 * young-generation collections while a chunk waited for the socket, is what grew the node's
 * heap (and RSS) by 80-140 MB over a million rows; the formatting also moves to the database.
 */

/** One chunk: its buckets' encoded lines (one part per bucket, written together, corked). */
export interface ExportChunk {
  parts: string[];
  rows: number;
  lastSeq: number;
}

/** Columns `lineSql` may use (besides chat_message's own): the tombstone rule applied to the text. */
export const EXPORT_TEXT_SQL = "CASE WHEN deleted_at IS NULL THEN text ELSE '' END";

export const EXPORT_CHUNK_ROWS = 2000;

/** Seqs per aggregated row (a bucket): the store joins up to this many encoded lines into one value. */
const BUCKET_SEQS = 100;

/** What the application calls its export connection (pg_stat_activity.application_name). */
export const EXPORT_APPLICATION_NAME = "chatrelay-export";

const MAX_SEQ = Number.MAX_SAFE_INTEGER;

type BucketRow = { n: string; seq: string; line: string };

function toChunk(rows: BucketRow[], previous: number): ExportChunk {
  let count = 0;
  let lastSeq = previous;
  for (const r of rows) {
    const seq = Number(r.seq);
    // Nothing in SQL promises the buckets come out in generate_series' order: checked here.
    if (!(seq > lastSeq)) throw new Error("the export's buckets came out of seq order");
    lastSeq = seq;
    count += Number(r.n);
  }
  return { parts: rows.map((r) => r.line), rows: count, lastSeq };
}

/**
 * The range's rows, one aggregated row per non-empty bucket of BUCKET_SEQS seqs: buckets $4..$5
 * (inclusive), counted from $2 (after, exclusive), up to $3 (inclusive); $1 the room. Each bucket
 * is an index range scan of the primary key (room_id, seq); the time filter applies within it.
 */
function bucketQuery(range: ExportRange, lineSql: string, params: unknown[]): string {
  let filter = "";
  if (range.fromMs !== undefined) {
    params.push(new Date(range.fromMs).toISOString());
    filter += ` AND created_at >= $${params.length}::timestamptz`;
  }
  if (range.toMs !== undefined) {
    params.push(new Date(range.toMs).toISOString());
    filter += ` AND created_at < $${params.length}::timestamptz`;
  }
  return `SELECT agg.n::text AS n, agg.last_seq::text AS seq, agg.lines AS line
FROM generate_series($4::bigint, $5::bigint) AS b(i)
CROSS JOIN LATERAL (
  SELECT count(*) AS n, max(seq) AS last_seq, string_agg(${lineSql}, '' ORDER BY seq) AS lines
  FROM chat_message
  WHERE room_id = $1::bigint AND seq > $2::bigint + b.i * ${BUCKET_SEQS}
    AND seq <= least($2::bigint + (b.i + 1) * ${BUCKET_SEQS}, $3::bigint)${filter}
) AS agg
WHERE agg.n > 0`;
}

/** The last seq an export may include: `toSeq`, or the room's newest seq when it starts. */
async function upperBound(session: SqlSession, roomId: number, range: ExportRange): Promise<number> {
  const head = await session.query<{ last_seq: string }>(
    "SELECT last_seq::text AS last_seq FROM chat_room WHERE room_id = $1::bigint",
    [String(roomId)],
  );
  return Math.min(range.toSeq ?? MAX_SEQ, Number(head[0]?.last_seq ?? 0));
}

const bucketCount = (after: number, upTo: number) => Math.ceil((upTo - after) / BUCKET_SEQS);
const bucketsPerChunk = (chunkRows: number) => Math.max(1, Math.floor(chunkRows / BUCKET_SEQS));

/**
 * The range's rows of one room, in seq order, in chunks of at most `chunkRows` (rounded down to
 * whole buckets, at least one), each row encoded by `lineSql` (an SQL expression over
 * chat_message's columns, ending with its line break).
 */
export async function* exportChunks(
  db: Database,
  roomId: number,
  range: ExportRange,
  lineSql: string,
  chunkRows = EXPORT_CHUNK_ROWS,
): AsyncGenerator<ExportChunk, void, undefined> {
  if (range.toMs !== undefined && range.fromMs !== undefined && range.toMs <= range.fromMs) return;
  if (db.kind === "postgres") yield* cursorChunks(db, roomId, range, lineSql, bucketsPerChunk(chunkRows));
  else yield* keysetChunks(db, roomId, range, lineSql, bucketsPerChunk(chunkRows));
}

/**
 * How many rows the range holds, when that is cheap: a seq-only range is a count over the
 * primary key's range. A time filter would read every row of the seq range: undefined then.
 */
export async function countExportRows(db: Database, roomId: number, range: ExportRange): Promise<number | undefined> {
  if (range.fromMs !== undefined || range.toMs !== undefined) return undefined;
  const rows = await db.transaction((s) =>
    s.query<{ n: string }>(
      "SELECT count(*)::text AS n FROM chat_message WHERE room_id = $1::bigint AND seq > $2::bigint AND seq <= $3::bigint",
      [String(roomId), String(range.afterSeq), String(range.toSeq ?? MAX_SEQ)],
    ),
  );
  return Number(rows[0]?.n ?? 0);
}

async function* keysetChunks(
  db: Database,
  roomId: number,
  range: ExportRange,
  lineSql: string,
  perChunk: number,
): AsyncGenerator<ExportChunk, void, undefined> {
  const upTo = await db.transaction((s) => upperBound(s, roomId, range));
  const buckets = bucketCount(range.afterSeq, upTo);
  const params: unknown[] = [String(roomId), String(range.afterSeq), String(upTo), "0", "0"];
  const sql = bucketQuery(range, lineSql, params);
  let lastSeq = range.afterSeq;
  for (let first = 0; first < buckets; first += perChunk) {
    params[3] = String(first);
    params[4] = String(Math.min(first + perChunk, buckets) - 1);
    const rows = await db.transaction((s) => s.query<BucketRow>(sql, params));
    if (rows.length === 0) continue;
    const chunk = toChunk(rows, lastSeq);
    lastSeq = chunk.lastSeq;
    yield chunk;
  }
}

async function* cursorChunks(
  db: Database,
  roomId: number,
  range: ExportRange,
  lineSql: string,
  perChunk: number,
): AsyncGenerator<ExportChunk, void, undefined> {
  const handoff = new Handoff<ExportChunk>();
  // The transaction runs beside the generator: it hands over a chunk, fetches the next one while
  // the consumer writes that one, then waits until the consumer takes it (or stops). So at most
  // two chunks exist at a time: the one being written and the one waiting.
  const reading = db
    .transaction(async (s: SqlSession) => {
      await s.query("SET TRANSACTION READ ONLY");
      await s.query(`SET LOCAL application_name = '${EXPORT_APPLICATION_NAME}'`);
      const upTo = await upperBound(s, roomId, range);
      const buckets = bucketCount(range.afterSeq, upTo);
      if (buckets <= 0) return;
      const params: unknown[] = [String(roomId), String(range.afterSeq), String(upTo), "0", String(buckets - 1)];
      await s.query(`DECLARE export_rows NO SCROLL CURSOR FOR ${bucketQuery(range, lineSql, params)}`, params);
      let lastSeq = range.afterSeq;
      for (;;) {
        const rows = await s.query<BucketRow>(`FETCH ${perChunk} FROM export_rows`);
        if (rows.length === 0) return;
        const chunk = toChunk(rows, lastSeq);
        lastSeq = chunk.lastSeq;
        if (!(await handoff.put(chunk))) return;
        if (rows.length < perChunk) return;
      }
    })
    .then(
      () => handoff.end(),
      (err: unknown) => handoff.fail(err),
    );
  try {
    for (;;) {
      const chunk = await handoff.take();
      if (chunk === undefined) return;
      yield chunk;
    }
  } finally {
    handoff.cancel();
    // The connection is closed before the generator finishes: an aborted export leaves no session.
    await reading;
  }
}

/**
 * One value at a time from a producer to a consumer: `put` resolves once the consumer took the
 * value (true) or gave up (false); `take` resolves with the next value, or undefined at the end.
 */
class Handoff<T> {
  private value: T | undefined;
  private done = false;
  private failure: { err: unknown } | undefined;
  private cancelled = false;
  private taker: (() => void) | undefined;
  private putter: ((more: boolean) => void) | undefined;

  put(value: T): Promise<boolean> {
    if (this.cancelled) return Promise.resolve(false);
    this.value = value;
    this.wakeTaker();
    return new Promise((resolve) => {
      this.putter = resolve;
    });
  }

  end(): void {
    this.done = true;
    this.wakeTaker();
  }

  fail(err: unknown): void {
    this.failure = { err };
    this.done = true;
    this.wakeTaker();
  }

  cancel(): void {
    this.cancelled = true;
    this.value = undefined;
    this.wakePutter(false);
  }

  async take(): Promise<T | undefined> {
    while (this.value === undefined && !this.done) {
      await new Promise<void>((resolve) => {
        this.taker = resolve;
      });
    }
    const value = this.value;
    this.value = undefined;
    if (value !== undefined) {
      // Taken: the producer may read the next one while the consumer writes this one.
      this.wakePutter(true);
      return value;
    }
    if (this.failure !== undefined) throw this.failure.err;
    return undefined;
  }

  private wakeTaker(): void {
    const taker = this.taker;
    this.taker = undefined;
    taker?.();
  }

  private wakePutter(more: boolean): void {
    const putter = this.putter;
    this.putter = undefined;
    putter?.(more);
  }
}
