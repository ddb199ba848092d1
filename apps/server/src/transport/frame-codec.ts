import type { ModerationAction } from "@chatrelay/protocol";
import type { ChatMessage } from "../core/message.js";
import type { DecodedFrame } from "./client-frame.js";

export interface ReadyInfo {
  roomId: number;
  connId: string;
  /** The room's last committed seq when the session started. */
  lastSeq: number;
  /** The lastSeq the session resumes after (as sent, or the stored ack), or null for live only. */
  resumeFrom: number | null;
}

/**
 * One presenter surface's wire format: decodes client frames into commands
 * and encodes what the server sends. The frame loop (PresenterConnection) is
 * shared; only this differs between the seed and v1 sockets.
 */
export interface FrameCodec {
  readonly surface: "seed" | "v1";
  /** Never throws, whatever the text. */
  decode(text: string): DecodedFrame;
  /**
   * One log entry as a frame: a chat message, or a moderation event. Undefined: this connection
   * gets no frame for it (a seed client that did not opt in to events with `"events": true`).
   */
  message(m: ChatMessage, wantsEvents: boolean): string | undefined;
  /**
   * Retention removed seqs fromSeq..toSeq: the `gone` frame. Undefined: this connection gets none
   * (a seed client that did not opt in with `"gone": true`).
   */
  gone(fromSeq: number, toSeq: number, wantsGone: boolean): string | undefined;
  pong(): string;
  /** `message` is always our own text. */
  error(code: string, message: string): string;
  ready(info: ReadyInfo): string;
  /** Sent before closing with 4003: the token was refused, or expired while the socket was open. */
  tokenRejected(reason: "expired" | "refused", message: string): string;
  /** Answer to a token refresh; undefined when the surface has none. */
  authenticated: ((expiresAt: Date) => string) | undefined;
  /** Answer to an applied `moderate` frame; absent when the surface has no moderation frames. */
  moderated?: (action: ModerationAction, seq: number) => string;
}
