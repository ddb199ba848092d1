import { ErrorCode } from "@chatrelay/protocol";
import type { FastifyRequest } from "fastify";
import { AuthError, bearerToken, type Principal, type TokenVerifier } from "../auth/token-verifier.js";
import { RelayError } from "../core/relay-error.js";

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** Seconds a client should wait after a 503 caused by an unreachable key source (JWKS). */
const KEYS_RETRY_AFTER_S = 5;

/**
 * The v1 routes' onRequest hook: the bearer token (header, or `access_token` in the query) is
 * checked first, before the body is read or anything else is validated; sets `request.principal`.
 */
export function bearerAuthentication(verifyToken: TokenVerifier): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    const query = request.query as Record<string, unknown> | undefined;
    const fromQuery = query !== undefined && Object.hasOwn(query, "access_token") ? query.access_token : undefined;
    const token = bearerToken(request.headers.authorization) ?? (typeof fromQuery === "string" ? fromQuery : undefined);
    if (token === undefined) throw new RelayError(ErrorCode.Unauthorized, "missing bearer token");
    try {
      request.principal = await verifyToken(token);
    } catch (err) {
      if (err instanceof AuthError && err.unavailable) {
        throw new RelayError(
          ErrorCode.ServiceUnavailable,
          "the token could not be checked now; try again shortly",
          err,
          KEYS_RETRY_AFTER_S,
        );
      }
      throw new RelayError(ErrorCode.Unauthorized, err instanceof AuthError ? err.message : "invalid token");
    }
  };
}
