import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { messages, type ParserOptions } from "@electric-sql/pglite";
import type { WorkerReply, WorkerRequest } from "./pglite-worker.js";

export interface QueryOptions {
  rowMode?: "array" | "object";
  parsers?: ParserOptions;
}

export interface QueryResult<T> {
  rows: T[];
  fields: { name: string; dataTypeID: number }[];
  affectedRows?: number;
}

/** The part of PGlite's transaction object its callers use (migrations, the Prisma adapter). */
export interface ThreadTransaction {
  query<T>(sql: string, params?: unknown[], options?: QueryOptions): Promise<QueryResult<T>>;
  exec(sql: string): Promise<QueryResult<unknown>[]>;
  rollback(): Promise<void>;
  readonly closed: boolean;
}

/**
 * PGlite on a worker thread (`pglite-worker.ts`), behind the part of PGlite's
 * interface the chat log, the migrations and `pglite-prisma-adapter` use.
 * Statements run one at a time, as on PGlite itself; a transaction holds the
 * connection until it ends, so nothing else runs inside it.
 */
export class PGliteThread {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();
  /** The connection's turn: a transaction takes it for its whole length. */
  private turn: Promise<unknown> = Promise.resolve();
  private failure: Error | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on("message", (reply: WorkerReply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      waiter.resolve(reply);
    });
    const fail = (err: Error) => {
      this.failure = err;
      for (const w of this.pending.values()) w.reject(err);
      this.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the chat log's thread exited (${code})`)));
  }

  static async start(dataDir: string): Promise<PGliteThread> {
    const [entry, extra] = workerEntry();
    const worker = new Worker(entry, { ...extra, workerData: { dataDir } });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      // A thread that ends before it is ready (an unreadable data folder) must not leave start-up hanging.
      const onExit = (code: number) => reject(new Error(`the chat log's thread exited (${code}) before it was ready`));
      worker.once("error", onError);
      worker.once("exit", onExit);
      worker.once("message", () => {
        worker.off("error", onError);
        worker.off("exit", onExit);
        resolve();
      });
    });
    return new PGliteThread(worker);
  }

  query<T>(sql: string, params: unknown[] = [], options?: QueryOptions): Promise<QueryResult<T>> {
    return this.inTurn(() => this.run<T>(sql, params, options));
  }

  exec(sql: string): Promise<QueryResult<unknown>[]> {
    return this.inTurn(() => this.runExec(sql));
  }

  transaction<T>(fn: (tx: ThreadTransaction) => Promise<T>): Promise<T> {
    return this.inTurn(async () => {
      await this.run("BEGIN", []);
      let ended = false;
      const tx: ThreadTransaction = {
        query: (sql, params = [], options) => this.run(sql, params, options),
        exec: (sql) => this.runExec(sql),
        rollback: async () => {
          ended = true;
          await this.run("ROLLBACK", []);
        },
        get closed() {
          return ended;
        },
      };
      try {
        const result = await fn(tx);
        if (!ended) {
          ended = true;
          await this.run("COMMIT", []);
        }
        return result;
      } catch (err) {
        if (!ended) {
          ended = true;
          await this.run("ROLLBACK", []).catch(() => {});
        }
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    await this.inTurn(() => this.send({ id: 0, op: "close" })).catch(() => {});
    await this.worker.terminate();
  }

  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const run = this.turn.then(work, work);
    this.turn = run.catch(() => {});
    return run;
  }

  private async run<T>(sql: string, params: unknown[], options?: QueryOptions): Promise<QueryResult<T>> {
    const own = options?.parsers;
    const textTypes = own === undefined ? [] : Object.keys(own).map(Number);
    const reply = await this.send({ id: 0, op: "query", sql, params, textTypes });
    if (!reply.ok) throw toError(reply.error);
    const { fields } = reply;
    // The caller's own parsers get the text of their types, as PGlite would have given it to them.
    const parsed =
      own === undefined
        ? reply.rows
        : reply.rows.map((row) =>
            row.map((v, i) => {
              const type = (fields[i] as { dataTypeID: number }).dataTypeID;
              const parse = own[type];
              return v === null || parse === undefined
                ? v
                : (parse as (x: string, t: number) => unknown)(v as string, type);
            }),
          );
    const rows =
      options?.rowMode === "array"
        ? (parsed as T[])
        : parsed.map((row) => Object.fromEntries(fields.map((f, i) => [f.name, row[i]])) as T);
    return { rows, fields, affectedRows: reply.affectedRows };
  }

  private async runExec(sql: string): Promise<QueryResult<unknown>[]> {
    const reply = await this.send({ id: 0, op: "exec", sql });
    if (!reply.ok) throw toError(reply.error);
    return [];
  }

  private send(request: WorkerRequest): Promise<WorkerReply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<WorkerReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id });
    });
  }
}

/** A database error comes back as a DatabaseError (callers read its code), anything else as an Error. */
function toError(data: Record<string, unknown> & { message: string; database: boolean }): Error {
  const { message, database, name: _name, length: _length, ...fields } = data;
  const err = database ? new messages.DatabaseError(message, 0, "error") : new Error(message);
  Object.assign(err, fields);
  return err;
}

/**
 * The compiled worker next to this module; or, when the TypeScript sources run (the tests, through
 * tsx), a bootstrap that registers tsx in the worker first: loader hooks are not inherited by threads.
 */
function workerEntry(): [URL | string, { eval?: boolean }] {
  const js = new URL("./pglite-worker.js", import.meta.url);
  if (existsSync(fileURLToPath(js))) return [js, {}];
  const ts = new URL("./pglite-worker.ts", import.meta.url).href;
  const tsx = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(ts)}); });`;
  return [bootstrap, { eval: true }];
}
