import { type ChatMessageView, SocketErrorCode, type V1ServerFrame } from "@chatrelay/protocol";
import type { ChatMessage } from "../core/message.js";
import { type DecodedFrame, field, invalid, isInvalid, parseObject, readSeq, readToken } from "./client-frame.js";
import type { FrameCodec, ReadyInfo } from "./frame-codec.js";

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
      default:
        return invalid("unknown frame type");
    }
  },

  message: (m: ChatMessage) => JSON.stringify({ type: "message", ...toView(m) }),

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
