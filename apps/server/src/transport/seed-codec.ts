import type { SeedGoneFrame, SeedModerationFrame, SeedReadyFrame, SeedSendChattingFrame } from "@chatrelay/protocol";
import { type ChatMessage, isEvent } from "../core/message.js";
import { type DecodedFrame, field, invalid, isInvalid, parseObject, readSeq, readToken } from "./client-frame.js";
import { seedClock } from "./error-replies.js";
import type { FrameCodec, ReadyInfo } from "./frame-codec.js";
import { toEventView } from "./v1-codec.js";

/** The seed's frames: `{"id": ...}` objects and the bare text "ping". */
export const seedCodec: FrameCodec = {
  surface: "seed",

  decode(text: string): DecodedFrame {
    if (text === "ping") return { kind: "ping" };
    const frame = parseObject(text);
    if (isInvalid(frame)) return frame;
    const id = field(frame, "id");
    if (typeof id !== "string") return invalid("frame id must be a string");
    switch (id) {
      case "start": {
        const token = readToken(field(frame, "token"));
        const rawLastSeq = field(frame, "lastSeq");
        const lastSeq = readSeq(rawLastSeq);
        if (rawLastSeq !== undefined && lastSeq === undefined) {
          return invalid("lastSeq must be a non-negative integer");
        }
        const ready = field(frame, "ready");
        if (ready !== undefined && typeof ready !== "boolean") return invalid("ready must be true or false");
        const events = field(frame, "events");
        if (events !== undefined && typeof events !== "boolean") return invalid("events must be true or false");
        const gone = field(frame, "gone");
        if (gone !== undefined && typeof gone !== "boolean") return invalid("gone must be true or false");
        return {
          kind: "start",
          token,
          lastSeq,
          wantsReady: ready === true,
          wantsEvents: events === true,
          wantsGone: gone === true,
        };
      }
      case "stop":
        return { kind: "stop" };
      case "ack": {
        const seq = readSeq(field(frame, "seq"));
        return seq === undefined ? invalid("ack needs a non-negative integer seq") : { kind: "ack", seq };
      }
      default:
        // The seed answered "Invalid message with id <id>"; we never repeat what the client sent.
        return invalid("Invalid message: unknown id");
    }
  },

  message(m: ChatMessage, wantsEvents: boolean): string | undefined {
    if (isEvent(m)) {
      // A seed client that did not opt in must never see a frame it cannot parse.
      if (!wantsEvents) return undefined;
      const { id, ...view } = toEventView(m);
      const event: SeedModerationFrame = { id: "moderation", eventId: id, ...view };
      return JSON.stringify(event);
    }
    const frame: SeedSendChattingFrame = {
      id: "sendChatting",
      nickname: m.nickname,
      message: m.text,
      time: seedClock(m.sentAt),
      seq: m.seq,
      messageId: m.id,
      senderId: m.senderId,
      userType: m.userType,
      sentAt: m.sentAt.toISOString(),
    };
    return JSON.stringify(frame);
  },

  gone(fromSeq: number, toSeq: number, wantsGone: boolean): string | undefined {
    // A seed client that did not opt in must never see a frame it cannot parse.
    if (!wantsGone) return undefined;
    const frame: SeedGoneFrame = { id: "gone", fromSeq, toSeq };
    return JSON.stringify(frame);
  },

  pong: () => "pong",

  error: (_code, message) => JSON.stringify({ id: "error", message }),

  ready(info: ReadyInfo): string {
    const frame: SeedReadyFrame = { id: "ready", ...info };
    return JSON.stringify(frame);
  },

  tokenRejected: (_reason, message) => JSON.stringify({ id: "tokenException", response: "reject", message }),

  // The seed has no refresh: its clients reconnect with a new token.
  authenticated: undefined,
};
