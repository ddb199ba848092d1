import { parentPort, workerData } from "node:worker_threads";
import { messages, PGlite } from "@electric-sql/pglite";

/**
 * The embedded chat log's own thread: PGlite (PostgreSQL compiled to
 * WebAssembly) runs here, so SQL never blocks the node's event loop, which
 * keeps serving HTTP and WebSocket work meanwhile. It answers requests from
 * `PGliteThread` in order, one at a time (PGlite is a single connection).
 * Values come back parsed by PGlite's own parsers (dates, bigints, arrays and
 * JSON cross the thread as they are), except the types the caller has parsers
 * of its own for: those come back as text (a function cannot cross threads).
 */

export type WorkerRequest =
  | { id: number; op: "query"; sql: string; params: unknown[]; textTypes: number[] }
  | { id: number; op: "exec"; sql: string }
  | { id: number; op: "close" };

export interface WorkerField {
  name: string;
  dataTypeID: number;
}

export type WorkerReply =
  | { id: number; ok: true; rows: unknown[][]; fields: WorkerField[]; affectedRows: number | undefined }
  | { id: number; ok: false; error: Record<string, unknown> & { message: string; database: boolean } };

const asIs = (x: string): string => x;
/** Parser sets that leave the given types as text, by their list (the Prisma adapter's one set, mostly). */
const textParsers = new Map<string, Record<number, (x: string) => string>>();
function leaveAsText(typeIds: number[]): Record<number, (x: string) => string> {
  const key = typeIds.join(",");
  let parsers = textParsers.get(key);
  if (parsers === undefined) {
    parsers = Object.fromEntries(typeIds.map((t) => [t, asIs]));
    if (textParsers.size < 16) textParsers.set(key, parsers);
  }
  return parsers;
}

const port = parentPort;
if (port === null) throw new Error("pglite-worker.ts runs as a worker thread");
const { dataDir } = workerData as { dataDir: string };
const db = await PGlite.create(dataDir);

let queue: Promise<void> = Promise.resolve();
port.on("message", (req: WorkerRequest) => {
  queue = queue.then(() => handle(req));
});
port.postMessage({ ready: true });

async function handle(req: WorkerRequest): Promise<void> {
  try {
    if (req.op === "close") {
      await db.close();
      port?.postMessage({ id: req.id, ok: true, rows: [], fields: [], affectedRows: undefined });
      return;
    }
    if (req.op === "exec") {
      await db.exec(req.sql);
      port?.postMessage({ id: req.id, ok: true, rows: [], fields: [], affectedRows: undefined });
      return;
    }
    const result = await db.query<unknown[]>(req.sql, req.params, {
      rowMode: "array",
      parsers: leaveAsText(req.textTypes),
    });
    const fields = result.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID }));
    port?.postMessage({ id: req.id, ok: true, rows: result.rows, fields, affectedRows: result.affectedRows });
  } catch (err) {
    port?.postMessage({ id: req.id, ok: false, error: describe(err) });
  }
}

/** An error as plain data: PostgreSQL's fields (code, detail, constraint...) survive the crossing. */
function describe(err: unknown): Record<string, unknown> & { message: string; database: boolean } {
  if (!(err instanceof Error)) return { message: String(err), database: false };
  const out: Record<string, unknown> & { message: string; database: boolean } = {
    message: err.message,
    database: err instanceof messages.DatabaseError,
  };
  for (const [k, v] of Object.entries(err)) if (typeof v === "string" || typeof v === "number") out[k] = v;
  return out;
}
