import pino, { type DestinationStream } from "pino";
import pretty from "pino-pretty";

/** How the node writes its log to stdout: JSON lines, or lines for a person at a terminal. */
export type LogFormat = "json" | "pretty";

/**
 * LOG_FORMAT wins; unset, a terminal gets readable lines and anything else (a pipe, a file, a
 * log shipper, the tests) the JSON lines it parses.
 */
export function chooseLogFormat(setting: LogFormat | undefined, stdoutIsTty: boolean): LogFormat {
  return setting ?? (stdoutIsTty ? "pretty" : "json");
}

/** stdout in the chosen format. */
export function logDestination(format: LogFormat, stdoutIsTty: boolean): DestinationStream {
  if (format === "json") {
    // Asynchronous: a synchronous write per request line costs more than the request itself.
    // Flushed on shutdown; pino flushes what it can on a crash.
    return pino.destination({ dest: 1, sync: false });
  }
  return pretty({
    destination: 1,
    // A person reads these as they come: a crash's last lines must not wait in a buffer.
    sync: true,
    // Colours only for a terminal: forced pretty output into a file or pipe stays plain text.
    colorize: stdoutIsTty,
    singleLine: true,
    translateTime: "SYS:HH:MM:ss.l",
    // One node per terminal: its name on every line is noise (JSON lines keep it).
    ignore: "pid,hostname,node",
  });
}
