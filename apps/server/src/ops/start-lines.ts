import { SEED_SEND_PATH, SEED_SOCKET_PATH } from "@chatrelay/protocol";
import type { Logger } from "pino";
import { DOCS_PATH, OPENAPI_PATH } from "../transport/openapi.js";

/** The console's page (served by the console routes). */
export const CONSOLE_PATH = "/console";

/** Where a browser on this machine reaches a listen address: a wildcard one through loopback. */
export function browseBase(listenUrl: string): string {
  const url = new URL(listenUrl);
  if (url.hostname === "0.0.0.0" || url.hostname === "[::]") url.hostname = "localhost";
  return url.origin;
}

/** Start-up lines for a newcomer: one address each, in the message so any log format shows it. */
export function logWhereToStart(logger: Logger, listenUrl: string): void {
  const base = browseBase(listenUrl);
  logger.info(`console: ${base}${CONSOLE_PATH}`);
  logger.info(`API reference: ${base}${DOCS_PATH}`);
  logger.info(`OpenAPI document: ${base}${OPENAPI_PATH}`);
  logger.info(`API: ${base}/v1/rooms/:roomId/... (seed surface: ${SEED_SEND_PATH}, ${SEED_SOCKET_PATH})`);
}
