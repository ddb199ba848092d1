import { connect, type Socket } from "node:net";

/** One HTTP response as it came off the wire. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The whole response head and body, for "never the marker" checks. */
  wire: Buffer;
}

/**
 * An HTTP/1.1 request built byte by byte: any method, target, header bytes
 * and body, so nothing (not even fetch's own validation) stands between the
 * generated input and the server. `Content-Length` is added for a body
 * unless `headers` already frame it; `Connection: close` ends every exchange.
 */
export function buildRequest(
  method: string,
  target: string,
  headers: [string, string | Buffer][],
  body?: Buffer,
  frame = true,
): Buffer {
  const lines: Buffer[] = [Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n`, "latin1")];
  for (const [name, value] of headers) {
    lines.push(Buffer.from(`${name}: `, "latin1"), Buffer.isBuffer(value) ? value : Buffer.from(value, "latin1"));
    lines.push(Buffer.from("\r\n"));
  }
  if (frame) {
    if (body !== undefined) lines.push(Buffer.from(`Content-Length: ${body.length}\r\n`));
    lines.push(Buffer.from("Connection: close\r\n"));
  }
  lines.push(Buffer.from("\r\n"));
  if (body !== undefined) lines.push(body);
  return Buffer.concat(lines);
}

/**
 * Writes `bytes` on a fresh TCP connection and reads one final response
 * (1xx interim responses skipped). Resolves with status 0 when the server
 * closed without answering; rejects after `timeoutMs`.
 */
export function rawExchange(port: number, bytes: Buffer, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, "127.0.0.1");
    let data = Buffer.alloc(0);
    let done = false;
    const finish = (result: RawResponse | Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `no complete response within ${timeoutMs} ms; got ${JSON.stringify(data.toString("latin1").slice(0, 200))}`,
          ),
        ),
      timeoutMs,
    );
    socket.on("connect", () => socket.write(bytes));
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const parsed = parseResponse(data, false);
      if (parsed) finish(parsed);
    });
    socket.on("error", () => {});
    socket.on("close", () => finish(parseResponse(data, true) ?? emptyResponse(data)));
  });
}

function emptyResponse(wire: Buffer): RawResponse {
  return { status: 0, headers: {}, body: Buffer.alloc(0), wire };
}

/** The final response in `data` once it is complete (or, at end of stream, whatever arrived). */
export function parseResponse(data: Buffer, ended: boolean): RawResponse | undefined {
  let offset = 0;
  for (;;) {
    const headEnd = data.indexOf("\r\n\r\n", offset);
    if (headEnd === -1)
      return ended && data.length > 0 ? { ...emptyResponse(data), status: statusOf(data, offset) } : undefined;
    const head = data.subarray(offset, headEnd).toString("latin1").split("\r\n");
    const status = statusOf(data, offset);
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const bodyStart = headEnd + 4;
    if (status >= 100 && status < 200 && status !== 101) {
      offset = bodyStart;
      continue;
    }
    if (status === 101) return { status, headers, body: Buffer.alloc(0), wire: data };
    const length = headers["content-length"];
    if (length !== undefined && /^\d+$/.test(length)) {
      const end = bodyStart + Number(length);
      if (data.length < end) return ended ? { status, headers, body: data.subarray(bodyStart), wire: data } : undefined;
      return { status, headers, body: data.subarray(bodyStart, end), wire: data };
    }
    if (headers["transfer-encoding"]?.toLowerCase() === "chunked") {
      const body = dechunk(data.subarray(bodyStart));
      if (body === undefined)
        return ended ? { status, headers, body: data.subarray(bodyStart), wire: data } : undefined;
      return { status, headers, body, wire: data };
    }
    return ended ? { status, headers, body: data.subarray(bodyStart), wire: data } : undefined;
  }
}

function statusOf(data: Buffer, offset: number): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(data.subarray(offset, offset + 16).toString("latin1"));
  return m?.[1] ? Number(m[1]) : 0;
}

function dechunk(data: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf("\r\n", at);
    if (lineEnd === -1) return undefined;
    const size = Number.parseInt(data.subarray(at, lineEnd).toString("latin1"), 16);
    if (!Number.isFinite(size)) return undefined;
    if (size === 0) return Buffer.concat(parts);
    const start = lineEnd + 2;
    if (data.length < start + size + 2) return undefined;
    parts.push(data.subarray(start, start + size));
    at = start + size + 2;
  }
}
