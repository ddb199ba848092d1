import { CloseCode, SEED_SEND_PATH, SEED_SOCKET_PATH } from "@chatrelay/protocol";
import { ApiTag } from "./api-doc.js";

/**
 * The prose of the OpenAPI document: what its operations cannot say (WebSocket frames, close
 * codes, the ops listener). docs/protocol.md is the full reference; these texts follow it.
 */

const CLOSE_CODES: [number, string][] = [
  [CloseCode.Normal, "broadcast stopped: do not reconnect"],
  [CloseCode.InvalidPayload, "a text frame that is not valid UTF-8"],
  [CloseCode.PolicyViolation, "too many malformed frames (`WS_BAD_FRAME_LIMIT` within `WS_BAD_FRAME_WINDOW_MS`)"],
  [CloseCode.MessageTooBig, "a frame larger than `WS_MAX_FRAME_BYTES`"],
  [CloseCode.InternalError, "server error on this socket: reconnect with back-off and resume"],
  [CloseCode.ServiceRestart, "the node is draining: reconnect (to any node) and resume"],
  [CloseCode.TryAgainLater, "the presenter could not be registered or its token checked now: retry with back-off"],
  [CloseCode.Replaced, "a newer connection for the room took over: do not reconnect"],
  [CloseCode.SlowConsumer, "the send buffer passed `SEND_BUFFER_BYTES`: reconnect and resume"],
  [CloseCode.Unauthorized, "token refused or expired: get a new token, reconnect"],
  [CloseCode.HandshakeTimeout, "no start frame in time (seed)"],
];

const closeCodes = CLOSE_CODES.map(([code, meaning]) => `- \`${code}\` ${meaning}`).join("\n");

export const API_DESCRIPTION = `A chat relay for live streaming: viewers post chat over HTTP, every message is committed to the
chat log, then delivered in order to the one WebSocket of the room's presenter.

Two surfaces share one relay: the **seed** surface (the original chatting server's contract,
unchanged: \`POST ${SEED_SEND_PATH}\` and the \`${SEED_SOCKET_PATH}\` socket) and the **v1** surface
(rooms by id, bearer JWTs, \`application/problem+json\` errors with a stable \`code\`).

**WebSockets.** The two presenter sockets are GET routes that upgrade; their frames are JSON text
frames, described under the tags *${ApiTag.seed}* and *${ApiTag.presenter}*. A plain GET without an
upgrade answers \`426\`.

**Delivery.** Per room, frames arrive in \`seq\` order (gapless; messages and moderation events share
it), at least once across reconnects: remember the last \`seq\` processed, reconnect with it
(v1 \`?lastSeq=\`, seed \`"lastSeq"\` in the start frame) and drop frames whose \`seq\` is not above it.
Reconnect with back-off on every close but \`1000\` and \`4001\`.

Close codes:
${closeCodes}

**Errors** never echo what a client sent: their texts are the server's own words.

**Not in this document:** the ops listener (\`OPS_HOST:OPS_PORT\`, never the public port) serves
\`GET /healthz\`, \`GET /readyz\` (every store answers) and \`GET /metrics\` (Prometheus), and with
\`CHATRELAY_FAILPOINTS\` (tests only) \`/failpoints\`. Full reference: docs/protocol.md.`;

const SEED_SOCKET_TEXT = `The original server's contract, unchanged (extensions are opt-in).

\`GET ${SEED_SOCKET_PATH}\` (WebSocket), client → server:
- \`{"id":"start","token":"<JWT>"}\` first, within \`HANDSHAKE_TIMEOUT_MS\` (else close \`${CloseCode.HandshakeTimeout}\`);
  claim \`user_idx\` = presenter = room. Extensions: \`"lastSeq": N\` resumes after seq N, \`"ready": true\`
  asks for a \`ready\` frame, \`"events": true\` asks for \`moderation\` frames.
- \`ping\` (plain text, answered \`pong\`), \`{"id":"ack","seq":N}\` (cumulative), \`{"id":"stop"}\` (ends the broadcast, close \`1000\`).

Server → client:
- \`{"id":"ready","roomId","connId","lastSeq","resumeFrom"}\` only when asked for.
- \`{"id":"sendChatting","nickname","message","time":"HH:mm","seq","messageId","senderId","userType","sentAt"}\` one per chat.
- \`{"id":"moderation","eventId","roomId","seq","action","by","sentAt","data"}\` only with \`"events": true\`.
- \`{"id":"tokenException","response":"reject","message"}\` token refused or expired, then close \`${CloseCode.Unauthorized}\`.
- \`{"id":"error","message"}\` a malformed or unknown frame; the socket stays open.

\`POST ${SEED_SEND_PATH}\` is called by the API gateway, which sets the \`x-forward-*\` headers; errors use
the seed's shape \`{"timestamp","status","message","path"}\`.`;

const PRESENTER_SOCKET_TEXT = `\`GET /v1/rooms/{roomId}/presenter?lastSeq=N\` (WebSocket): the token is checked before the upgrade
(\`401\`/\`403\`/\`503\` problem+json instead of a socket). One presenter per room, cluster-wide.

Server → client:
- \`{"type":"ready","roomId","connId","lastSeq","resumeFrom"}\` first.
- \`{"type":"message","id","roomId","seq","senderId","nickname","userType","text","sentAt"}\`.
- \`{"type":"moderation","id","roomId","seq","action","by","sentAt","data"}\` in seq order with the messages.
- \`{"type":"pong"}\`; \`{"type":"authenticated","expiresAt"}\` (answer to \`auth\`); \`{"type":"moderated","action","seq"}\` (answer to \`moderate\`).
- \`{"type":"error","code","message"}\`: \`invalid_frame\` (socket stays open), \`token_refused\`, \`token_expired\` (then close \`${CloseCode.Unauthorized}\`), \`service_unavailable\`.

Client → server: \`{"type":"ping"}\`, \`{"type":"ack","seq":N}\` (cumulative), \`{"type":"stop"}\`,
\`{"type":"auth","token":"<fresh JWT>"}\` before the current token expires, and
\`{"type":"moderate","action":"ban","userId":7}\` (the moderation actions of the REST routes).`;

export const API_TAGS = [
  { name: ApiTag.seed, description: SEED_SOCKET_TEXT },
  { name: ApiTag.messages, description: "Post chat messages and read a room's history (v1)." },
  { name: ApiTag.presenter, description: PRESENTER_SOCKET_TEXT },
  {
    name: ApiTag.moderation,
    description:
      "Room settings, moderators, bans and timeouts, blocked terms, deletion and audit. Every change is a moderation event with its own `seq`, delivered to the presenter in order with the chat.",
  },
  {
    name: ApiTag.logManagement,
    description:
      "The chat log for operators (a token whose role claim holds `OPERATOR_ROLE`; any other token gets `403`): export, erasing a user, statistics. The same work is available from the CLI, `chatrelay log ...`.",
  },
  { name: ApiTag.health, description: "Liveness on the public port (readiness and metrics: ops listener only)." },
];
