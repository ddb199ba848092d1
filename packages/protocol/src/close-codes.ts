/**
 * WebSocket close codes the server uses on presenter sockets. 1000-1015 are
 * the RFC 6455 codes; 4000-4999 are ours and stable.
 */
export const CloseCode = {
  /** The presenter stopped broadcasting (or the client closed normally). */
  Normal: 1000,
  /** The node is shutting down; reconnect (to any node). */
  GoingAway: 1001,
  /** Policy violation: non-JSON, binary or otherwise malformed frames after repeated errors. */
  PolicyViolation: 1008,
  /** A frame exceeded the configured size limit. */
  MessageTooBig: 1009,
  /** The server could not register the presenter (store unavailable): retry with back-off. */
  TryAgainLater: 1013,
  /** The node restarts or drains; reconnect (to any node) and resume. */
  ServiceRestart: 1012,
  /** A newer presenter connection for the same room took over (on any node). Do not reconnect automatically. */
  Replaced: 4001,
  /** The presenter did not read fast enough: its send buffer hit the limit. Reconnect and resume from the last seq. */
  SlowConsumer: 4002,
  /** The token was missing, invalid, expired, or does not own the room. */
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
} as const;
