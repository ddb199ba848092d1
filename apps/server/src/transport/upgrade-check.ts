import { ErrorCode } from "@chatrelay/protocol";
import type { FastifyRequest } from "fastify";
import { RelayError } from "../core/relay-error.js";

// A Sec-WebSocket-Key is 16 random bytes in base64 (RFC 6455 4.1).
const WS_KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/**
 * An upgrade request the WebSocket library would refuse with a plain-text
 * 400 is refused here first, in the surface's own error shape. Requests
 * without an Upgrade header pass (the route answers them 426).
 */
export async function checkUpgrade(request: FastifyRequest): Promise<void> {
  const { upgrade } = request.headers;
  if (upgrade === undefined) return;
  const key = request.headers["sec-websocket-key"];
  const version = request.headers["sec-websocket-version"];
  const valid =
    upgrade.toLowerCase() === "websocket" &&
    typeof key === "string" &&
    WS_KEY.test(key) &&
    (version === "13" || version === "8");
  if (!valid) throw new RelayError(ErrorCode.InvalidRequest, "not a valid WebSocket upgrade request (RFC 6455)");
}
