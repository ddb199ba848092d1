import { ErrorCode } from "@chatrelay/protocol";
import type { FastifyRequest } from "fastify";
import type { TokenVerifier } from "../auth/token-verifier.js";
import { RelayError } from "../core/relay-error.js";
import { bearerAuthentication } from "./authenticate.js";

/**
 * The operator routes' onRequest hook: a valid token first (401 otherwise), then the operator role
 * (OPERATOR_ROLE; 403 otherwise), before the path, query or body is looked at.
 */
export function operatorAuthentication(verifyToken: TokenVerifier): (request: FastifyRequest) => Promise<void> {
  const authenticate = bearerAuthentication(verifyToken);
  return async (request) => {
    await authenticate(request);
    if (request.principal?.operator !== true) {
      throw new RelayError(ErrorCode.Forbidden, "this route needs an operator token (OPERATOR_ROLE)");
    }
  };
}
