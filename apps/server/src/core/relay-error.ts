import type { ErrorCode } from "@chatrelay/protocol";

/** A refusal the relay core decided; transports translate it to their surface's shape. */
export class RelayError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    override readonly cause?: unknown,
    /** For 503 and 429: when the client may try again (the `Retry-After` header). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = "RelayError";
  }
}
