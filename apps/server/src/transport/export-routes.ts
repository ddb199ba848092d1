import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { ErrorCode, exportQuerySchema, problemSchema, roomParamsSchema } from "@chatrelay/protocol";
import type { FastifyPluginAsync } from "fastify";
import type { TokenVerifier } from "../auth/token-verifier.js";
import type { Database } from "../chatlog/database.js";
import { EXPORT_CHUNK_ROWS, type ExportChunk, exportChunks } from "../chatlog/export-cursor.js";
import { ExportParamError, type ExportParams, type ExportRequest, parseExportParams } from "../chatlog/export-range.js";
import { RelayError } from "../core/relay-error.js";
import { ApiTag, BEARER_SECURITY } from "./api-doc.js";
import { encoderFor, exportFileName } from "./export-format.js";
import { parseId } from "./ids.js";
import { operatorAuthentication } from "./operator-auth.js";

interface ExportRoutesOptions {
  db: Database;
  verifyToken: TokenVerifier;
  /** Rows per chunk read and written at once. @default EXPORT_CHUNK_ROWS */
  chunkRows?: number;
  /** How long a client may read nothing (its socket buffer full) before the export is cut. */
  stallTimeoutMs?: number;
}

/** Exports running at once on one node (each holds a PostgreSQL connection); more get 503. */
export const MAX_CONCURRENT_EXPORTS = 4;
const STALL_TIMEOUT_MS = 60_000;

type Params = { roomId: string };

/**
 * `GET /v1/rooms/:roomId/export`: a room's log as NDJSON or CSV, streamed in seq order with
 * constant memory (chatlog/export-cursor.ts). A chunk's lines are one string, written once;
 * when the socket's buffer is full the next chunk is not read until 'drain'. A client that goes
 * away (or reads nothing for `stallTimeoutMs`) ends the export and releases its connection. An
 * error after the headers cuts the response without its last chunk, so the client sees a
 * truncated transfer and resumes with `afterSeq` = the last seq it received.
 */
export const exportRoutes: FastifyPluginAsync<ExportRoutesOptions> = async (app, opts) => {
  const chunkRows = opts.chunkRows ?? EXPORT_CHUNK_ROWS;
  const stallMs = opts.stallTimeoutMs ?? STALL_TIMEOUT_MS;
  const running = new Set<ServerResponse>();
  // A draining node cuts its exports (clients resume elsewhere) rather than waiting for them.
  app.addHook("preClose", async () => {
    for (const res of running) res.destroy();
  });

  app.get<{ Params: Params; Querystring: ExportParams }>(
    "/v1/rooms/:roomId/export",
    {
      schema: {
        summary: "Export a room's log",
        description:
          "Operator token only. Streams the room's messages and moderation events in seq order for a time range (`from` inclusive, `to` exclusive, on the commit time) and/or a seq range (`afterSeq` exclusive, `toSeq` inclusive), as NDJSON (default) or CSV (header row, RFC 4180, cells a spreadsheet would evaluate prefixed with `'`). Every row: seq, id, sentAt, kind, senderId, nickname, userType, text, deleted, deletedBy, data (events' data). Deleted and erased messages are tombstones: `deleted` true, text empty, `deletedBy`. An empty range is an empty body (CSV: the header). The end of the range is not known up front: a transfer that breaks off (no final chunk) resumes with `afterSeq` = the last seq received. PostgreSQL: one snapshot per export.",
        tags: [ApiTag.logManagement],
        security: BEARER_SECURITY,
        params: roomParamsSchema,
        querystring: exportQuerySchema,
        response: { 400: problemSchema, 401: problemSchema, 403: problemSchema, 503: problemSchema },
      },
      config: {
        apiDoc: {
          response: {
            200: {
              description:
                "The rows, streamed (chunked). `Content-Disposition: attachment; filename=room-<id>-<start>-<end>.<ndjson|csv>`.",
              content: {
                "application/x-ndjson": { schema: { type: "string", description: "One JSON object per line." } },
                "text/csv": { schema: { type: "string", description: "CRLF lines; the first is the header row." } },
              },
            },
          },
        },
      },
      onRequest: operatorAuthentication(opts.verifyToken),
      // A HEAD would run the whole export for nothing.
      exposeHeadRoute: false,
    },
    async (request, reply) => {
      const roomId = parseId(request.params.roomId);
      if (roomId === undefined) throw new RelayError(ErrorCode.InvalidRoom, "room id must be a positive integer");
      request.logContext = { roomId };
      let parsed: ExportRequest;
      try {
        parsed = parseExportParams(request.query);
      } catch (err) {
        if (err instanceof ExportParamError) throw new RelayError(ErrorCode.InvalidCursor, err.message);
        throw err;
      }
      if (running.size >= MAX_CONCURRENT_EXPORTS) {
        throw new RelayError(
          ErrorCode.ServiceUnavailable,
          `this node runs ${MAX_CONCURRENT_EXPORTS} exports already; try again later`,
          undefined,
          10,
        );
      }
      const res = reply.raw;
      running.add(res);
      const encoder = encoderFor(parsed.format);
      const chunks = exportChunks(opts.db, roomId, parsed.range, encoder.lineSql, chunkRows);
      try {
        // The first chunk before the headers: a store that cannot be read is a 503, not an empty 200.
        let first: IteratorResult<ExportChunk>;
        try {
          first = await chunks.next();
        } catch (err) {
          throw new RelayError(
            ErrorCode.ServiceUnavailable,
            "the chat log cannot be read now; try again shortly",
            err,
            2,
          );
        }
        reply.hijack();
        res.writeHead(200, {
          ...(reply.getHeaders() as OutgoingHttpHeaders),
          "content-type": encoder.contentType,
          "content-disposition": `attachment; filename="${exportFileName(roomId, parsed.range, parsed.format)}"`,
          "cache-control": "no-store",
          "x-content-type-options": "nosniff",
        });
        const outcome = await streamRows(res, first, chunks, encoder.header, stallMs);
        if (outcome.error !== undefined) {
          request.log.error({ err: outcome.error, roomId, rows: outcome.rows }, "export failed after its headers");
        } else if (outcome.end !== "done") {
          request.log.info({ roomId, rows: outcome.rows, end: outcome.end }, "export ended early");
        }
      } finally {
        running.delete(res);
        // Ends the cursor's transaction and closes its connection, however the export ended.
        await chunks.return(undefined);
      }
    },
  );
};

interface StreamOutcome {
  rows: number;
  end: "done" | "client-gone" | "stalled" | "failed";
  error?: unknown;
}

/** Writes chunk after chunk; reads the next only when the socket took the previous one. */
async function streamRows(
  res: ServerResponse,
  first: IteratorResult<ExportChunk>,
  chunks: AsyncGenerator<ExportChunk, void, undefined>,
  header: string,
  stallMs: number,
): Promise<StreamOutcome> {
  let gone = res.destroyed;
  const onClose = () => {
    gone = true;
  };
  res.once("close", onClose);
  let rows = 0;
  let prefix = header;
  let next = first;
  try {
    while (!next.done) {
      if (gone) return { rows, end: "client-gone" };
      // One writev for the chunk's parts (and the CSV header before the first).
      res.cork();
      if (prefix !== "") res.write(prefix);
      prefix = "";
      let room = true;
      for (const part of next.value.parts) room = res.write(part);
      res.uncork();
      rows += next.value.rows;
      if (!room) {
        const drained = await writable(res, stallMs);
        if (drained !== "drain") return { rows, end: drained === "close" ? "client-gone" : "stalled" };
      }
      next = await chunks.next();
    }
    if (gone) return { rows, end: "client-gone" };
    res.end(prefix);
    return { rows, end: "done" };
  } catch (err) {
    // After the headers: no problem body; cut the transfer so the client cannot take it for complete.
    res.destroy();
    return { rows, end: "failed", error: err };
  } finally {
    res.off("close", onClose);
  }
}

/** Resolves on 'drain', on 'close', or (destroying the response) when the client read nothing for `ms`. */
function writable(res: ServerResponse, ms: number): Promise<"drain" | "close" | "stalled"> {
  return new Promise((resolve) => {
    const done = (how: "drain" | "close" | "stalled") => {
      clearTimeout(timer);
      res.off("drain", onDrain);
      res.off("close", onClose);
      resolve(how);
    };
    const onDrain = () => done("drain");
    const onClose = () => done("close");
    const timer = setTimeout(() => {
      done("stalled");
      res.destroy();
    }, ms);
    res.once("drain", onDrain);
    res.once("close", onClose);
  });
}
