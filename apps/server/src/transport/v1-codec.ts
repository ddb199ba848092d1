import {
  type ChatMessageView,
  type ModerationEventView,
  SocketErrorCode,
  type V1ServerFrame,
} from "@chatrelay/protocol";
import { type ChatMessage, isEvent, type ModerationEventKind } from "../core/message.js";
import { type DecodedFrame, field, invalid, isInvalid, parseObject, readSeq, readToken } from "./client-frame.js";
import type { FrameCodec, ReadyInfo } from "./frame-codec.js";
import { decodeModerate } from "./moderate-frame.js";

/** The v1 presenter socket's frames: `{"type": ...}` objects both ways. */
export const v1Codec: FrameCodec = {
  surface: "v1",

  decode(text: string): DecodedFrame {
    const frame = parseObject(text);
    if (isInvalid(frame)) return frame;
    const type = field(frame, "type");
    if (typeof type !== "string") return invalid("frame type must be a string");
    switch (type) {
      case "ping":
        return { kind: "ping" };
      case "stop":
        return { kind: "stop" };
      case "ack": {
        const seq = readSeq(field(frame, "seq"));
        return seq === undefined ? invalid("ack needs a non-negative integer seq") : { kind: "ack", seq };
      }
      case "auth": {
        const token = readToken(field(frame, "token"));
        return token === undefined ? invalid("auth needs a token") : { kind: "auth", token };
      }
      case "moderate":
        return decodeModerate(frame);
      default:
        return invalid("unknown frame type");
    }
  },

  // v1 clients always get moderation events (the `moderation` frame type is part of v1).
  message: (m: ChatMessage) =>
    isEvent(m) ? frame({ type: "moderation", ...toEventView(m) }) : JSON.stringify({ type: "message", ...toView(m) }),

  // v1 clients always get it (the `gone` frame is part of v1).
  gone: (fromSeq: number, toSeq: number) => frame({ type: "gone", fromSeq, toSeq }),

  pong: () => '{"type":"pong"}',

  error: (code, message) => frame({ type: "error", code, message }),

  ready: (info: ReadyInfo) => frame({ type: "ready", ...info }),

  tokenRejected: (reason, message) =>
    frame({
      type: "error",
      code: reason === "expired" ? SocketErrorCode.TokenExpired : SocketErrorCode.TokenRefused,
      message,
    }),

  authenticated: (expiresAt: Date) => frame({ type: "authenticated", expiresAt: expiresAt.toISOString() }),

  moderated: (action, seq) => frame({ type: "moderated", action, seq }),
};

function frame(body: V1ServerFrame): string {
  return JSON.stringify(body);
}

export function toView(m: ChatMessage): ChatMessageView {
  return {
    id: m.id,
    roomId: m.roomId,
    seq: m.seq,
    senderId: m.senderId,
    nickname: m.nickname,
    userType: m.userType,
    text: m.text,
    sentAt: m.sentAt.toISOString(),
  };
}

/** A moderation event as the `moderation` frame shows it (`by`: the acting presenter or moderator). */
export function toEventView(m: ChatMessage): ModerationEventView {
  return {
    id: m.id,
    roomId: m.roomId,
    seq: m.seq,
    action: m.kind as ModerationEventKind,
    by: m.senderId,
    sentAt: m.sentAt.toISOString(),
    data: m.event ?? {},
  };
}

/**
 * One history entry: a message (a deleted one keeps its entry, marked, with its text only when
 * `showDeleted`), or a moderation event (`kind` and `data`; read with `?kinds=all`).
 */
export function toHistoryView(m: ChatMessage, showDeleted: boolean): ChatMessageView {
  const view = toView(m);
  if (isEvent(m)) {
    view.kind = m.kind as ModerationEventKind;
    view.data = m.event ?? {};
    return view;
  }
  view.kind = "message";
  if (m.deletedBy !== undefined) {
    view.deleted = true;
    view.deletedBy = m.deletedBy;
    if (!showDeleted) view.text = "";
  }
  return view;
}
