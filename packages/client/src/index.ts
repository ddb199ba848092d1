export type {
  ChatMessageView,
  HistoryPage,
  ModerationEventView,
  PostMessageResult,
  RoomStatus,
} from "@chatrelay/protocol";
export { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
export type { FetchLike, WebSocketConstructor, WebSocketLike } from "./platform.js";
export {
  type CloseInfo,
  type ConnectionState,
  PresenterClient,
  type PresenterClientOptions,
  type PresenterEvents,
  type ReadyInfo,
} from "./presenter.js";
export { ChatSender, type ChatSenderOptions, parseRetryAfter, type SendOptions, type SendOutcome } from "./sender.js";
export { type TokenSource, tokenExpiry } from "./token.js";
