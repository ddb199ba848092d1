/**
 * WebSocket close codes the server uses on presenter sockets. 1000-1015 are
 * the RFC 6455 codes; 4000-4999 are ours and stable.
 */
export const CloseCode = {
  /** The presenter stopped broadcasting (or the client closed normally). */
  Normal: 1000,
  /** A text frame that is not valid UTF-8 (sent by the WebSocket library itself). */
  InvalidPayload: 1007,
  /** Policy violation: too many malformed frames (binary, non-JSON, unknown) in a short window. */
  PolicyViolation: 1008,
  /** A frame exceeded the configured size limit. */
  MessageTooBig: 1009,
  /** An unexpected server error on this socket; reconnect with back-off and resume. */
  InternalError: 1011,
  /** The server could not register the presenter or check its token (store or key source unavailable): retry with back-off. */
  TryAgainLater: 1013,
  /** The node restarts or drains; reconnect (to any node) and resume. */
  ServiceRestart: 1012,
  /** A newer presenter connection for the same room took over (on any node). Do not reconnect automatically. */
  Replaced: 4001,
  /** The presenter did not read fast enough: its send buffer hit the limit. Reconnect and resume from the last seq. */
  SlowConsumer: 4002,
  /** The token was missing, invalid, expired (also while the socket is open), or does not own the room. */
  Unauthorized: 4003,
  /** The handshake did not complete in time. */
  HandshakeTimeout: 4004,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export const CloseReason = {
  replaced: "replaced by a newer presenter connection",
  slowConsumer: "send buffer limit reached; reconnect and resume from your last seq",
  unauthorized: "unauthorized",
  handshakeTimeout: "no start frame received in time",
  serviceRestart: "node is restarting; reconnect and resume",
  stopped: "broadcast stopped",
  tokenExpired: "token expired",
  badFrames: "too many malformed frames",
  internalError: "internal error",
  tryAgainLater: "try again later",
} as const;
