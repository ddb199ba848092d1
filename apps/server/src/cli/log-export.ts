import { once } from "node:events";
import { createWriteStream, renameSync, rmSync, statSync } from "node:fs";
import type { Writable } from "node:stream";
import type { Database } from "../chatlog/database.js";
import { countExportRows, exportChunks } from "../chatlog/export-cursor.js";
import { ExportParamError, type ExportRequest, parseExportParams } from "../chatlog/export-range.js";
import { encoderFor } from "../transport/export-format.js";
import { parseId } from "../transport/ids.js";
import { commandArgs } from "./command-args.js";
import { CliError, ExitCode, usageError } from "./exit-codes.js";
import { Progress } from "./progress.js";

const HELP = `usage: chatrelay log export --room N [--from ISO] [--to ISO] [--after-seq N] [--to-seq N]
                            [--format ndjson|csv] [--out FILE]

Writes one room's log in seq order (messages, moderation events, deleted and erased messages as
tombstones), the same rows as GET /v1/rooms/:roomId/export. Progress goes to stderr.
  --room N         the room id (required)
  --from ISO       rows committed at or after this time (2026-11-26, 2026-11-26T09:30:00Z, ...+09:00)
  --to ISO         rows committed before this time (exclusive)
  --after-seq N    rows with a seq above N: resume an interrupted export with the last seq written
  --to-seq N       rows up to seq N (inclusive)
  --format F       ndjson (default) or csv
  --out FILE       write to FILE (default: stdout). A new export is written to FILE.partial and renamed
                   to FILE when complete; with --after-seq an existing FILE is appended to (a CSV
                   header is written only into an empty file).
Exit codes: 0 done, 1 failed part-way (resume with --after-seq), 2 bad arguments, 69 store unreachable.`;

/** `chatrelay log export`: the export route's rows and cursor, written to stdout or a file. */
export async function runExport(db: Database, args: string[]): Promise<number> {
  const parsed = commandArgs(
    args,
    {
      room: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      "after-seq": { type: "string" },
      "to-seq": { type: "string" },
      format: { type: "string" },
      out: { type: "string" },
    },
    HELP,
  );
  if (parsed === undefined) return ExitCode.ok;
  const values = parsed as Record<string, string | boolean | undefined>;
  const str = (name: string) => values[name] as string | undefined;
  const roomId = parseId(str("room"));
  if (roomId === undefined) throw usageError("--room must be a positive integer");
  let request: ExportRequest;
  try {
    request = parseExportParams({
      from: str("from"),
      to: str("to"),
      afterSeq: str("after-seq"),
      toSeq: str("to-seq"),
      format: str("format"),
    });
  } catch (err) {
    if (err instanceof ExportParamError) throw usageError(`--${optionName(err.message)}`);
    throw err;
  }
  const out = str("out");
  if (out === "") throw usageError("--out must name a file");
  const encoder = encoderFor(request.format);
  const appending = out !== undefined && str("after-seq") !== undefined && fileSize(out) !== undefined;
  const target =
    out === undefined
      ? { stream: process.stdout as Writable, path: undefined }
      : { stream: createWriteStream(appending ? out : `${out}.partial`, { flags: appending ? "a" : "w" }), path: out };

  const total = await countExportRows(db, roomId, request.range);
  const progress = new Progress(`export room ${roomId}`, total);
  let lastSeq: number | undefined;
  try {
    let prefix = appending && (fileSize(out as string) ?? 0) > 0 ? "" : encoder.header;
    for await (const chunk of exportChunks(db, roomId, request.range, encoder.lineSql)) {
      await write(target.stream, [prefix, ...chunk.parts]);
      prefix = "";
      lastSeq = chunk.lastSeq;
      progress.add(chunk.rows);
    }
    if (prefix !== "") await write(target.stream, [prefix]);
    if (target.path !== undefined) {
      target.stream.end();
      await once(target.stream, "close");
      if (!appending) renameSync(`${target.path}.partial`, target.path);
    }
  } catch (err) {
    if (target.path !== undefined) {
      target.stream.destroy();
      if (!appending && lastSeq === undefined) rmSync(`${target.path}.partial`, { force: true });
    }
    const resume =
      lastSeq === undefined
        ? "nothing was written"
        : `the last seq written is ${lastSeq}: resume with --after-seq ${lastSeq}${target.path === undefined ? "" : ` (the rows so far are in ${appending ? target.path : `${target.path}.partial`})`}`;
    throw new CliError(`the export failed part-way (${messageOf(err)}); ${resume}`, ExitCode.failed);
  }
  progress.finish();
  return ExitCode.ok;
}

/** Writes a chunk's parts, then waits for 'drain' when the stream's buffer is full (a slow pipe holds the cursor back). */
async function write(stream: Writable, parts: string[]): Promise<void> {
  let room = true;
  for (const part of parts) if (part !== "") room = stream.write(part);
  if (room) return;
  const waiting = new AbortController();
  const { signal } = waiting;
  try {
    await Promise.race([
      once(stream, "drain", { signal }),
      once(stream, "error", { signal }).then(([err]) => {
        throw err;
      }),
      once(stream, "close", { signal }).then(() => {
        throw new Error("the output was closed");
      }),
    ]);
  } finally {
    // The listeners that did not fire go too: one wait per full buffer must not pile them up.
    waiting.abort();
  }
}

function fileSize(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

/** The shared parser names the route's parameters (afterSeq); the CLI's options are --after-seq. */
function optionName(message: string): string {
  const named = message
    .replace(/^afterSeq/, "after-seq")
    .replace(/^toSeq/, "to-seq")
    .replace(" afterSeq", " --after-seq")
    .replace(/than to$/, "than --to");
  return named;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
