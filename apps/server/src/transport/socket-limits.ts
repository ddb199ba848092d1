import { ErrorCode } from "@chatrelay/protocol";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Relay } from "../core/relay.js";
import { RelayError } from "../core/relay-error.js";

/** Per-address limit on presenter-socket opens (RATE_LIMIT_ADDRESS_SOCKETS), before the token is even checked. */
export function limitSocketOpens(relay: Relay) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    let verdict: { ok: boolean; retryAfterMs: number };
    try {
      verdict = await relay.admitSocket(request.ip);
    } catch (err) {
      throw new RelayError(ErrorCode.ServiceUnavailable, "rate limiter unavailable; try again shortly", err, 1);
    }
    if (!verdict.ok) {
      const wait = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
      throw new RelayError(ErrorCode.RateLimited, "too many connections from this address; slow down", undefined, wait);
    }
  };
}
