import { ErrorCode, type UserType } from "@chatrelay/protocol";
import type { Logger } from "pino";
import { failpoints } from "../ops/failpoints.js";
import { uuidv7 } from "./ids.js";
import type { ChatMessage } from "./message.js";
import type { Policy } from "./policy.js";
import type { Bus, ChatLog, HistoryOptions, PresenceState } from "./ports.js";
import type { RelayMetrics } from "./relay.js";
import { RelayError } from "./relay-error.js";
import { checkText, cleanNickname } from "./text.js";

export interface SendInput {
  roomId: number;
  senderId: number;
  nickname: string;
  userType: UserType;
  text: string;
  clientMsgId?: string | undefined;
  /** The client's address, for the per-address limit. */
  address?: string | undefined;
  /** The sender's token lists this room in its moderator claim. */
  moderatorByClaim?: boolean | undefined;
}

export interface SendResult {
  message: ChatMessage;
  /** A retry of an earlier send with the same client message id. */
  duplicate: boolean;
  /** "grace": the presenter is reconnecting; the message waits for the resume. */
  presence: PresenceState;
}

/** The post path: text rules -> policy (one gate round trip) -> chat log (seq, commit) -> bus. */
export class PostPath {
  constructor(
    private readonly log: ChatLog,
    private readonly bus: Bus,
    private readonly policy: Policy,
    private readonly maxTextLength: number,
    private readonly logger: Logger,
    private readonly metrics: RelayMetrics,
  ) {}

  async send(input: SendInput): Promise<SendResult> {
    const checked = checkText(input.text, this.maxTextLength);
    if (!checked.ok) throw new RelayError(checked.code, checked.detail);

    const { presence } = await this.policy.admit(
      {
        roomId: input.roomId,
        senderId: input.senderId,
        address: input.address,
        moderatorByClaim: input.moderatorByClaim ?? false,
      },
      checked.text,
    );
    if (presence === null) {
      // A retry of a message that was accepted before the room went off air still gets its first result.
      const earlier = input.clientMsgId === undefined ? undefined : await this.findEarlier(input);
      if (earlier) {
        if (earlier.text !== checked.text) throw idempotencyConflict();
        return { message: earlier, duplicate: true, presence: "live" };
      }
      // Redis came back empty: the room may be live on a node that has not re-announced it yet.
      if (this.policy.presenceRebuilding()) {
        throw new RelayError(
          ErrorCode.ServiceUnavailable,
          "presence is being rebuilt after a Redis restart; try again shortly",
          undefined,
          1,
        );
      }
      throw new RelayError(ErrorCode.RoomNotLive, "the room is not live: its presenter is not connected");
    }

    let appended: Awaited<ReturnType<ChatLog["append"]>>;
    try {
      appended = await this.log.append({
        id: uuidv7(),
        roomId: input.roomId,
        senderId: input.senderId,
        nickname: cleanNickname(input.nickname, input.senderId),
        userType: input.userType,
        text: checked.text,
        clientMsgId: input.clientMsgId,
      });
    } catch (err) {
      throw chatLogUnavailable(err, "chat log unavailable; the message was not saved");
    }
    const { message, duplicate } = appended;
    if (duplicate && message.text !== checked.text) throw idempotencyConflict();
    // Not awaited: the command is on its way to the bus before the answer is; a publish that is
    // lost anyway (bus down, node killed) is caught up from the log by the delivering node.
    if (!duplicate && !(failpoints.enabled && (await failpoints.hit("post.before-publish")) === "drop")) {
      this.publish(message);
    }
    return { message, duplicate, presence: presence.state };
  }

  /** Newest first, seq < before (moderation events too with `options.events`). */
  async history(
    roomId: number,
    before: number | undefined,
    limit: number,
    options?: HistoryOptions,
  ): Promise<ChatMessage[]> {
    try {
      return await this.log.history(roomId, before, limit, options);
    } catch (err) {
      throw chatLogUnavailable(err, "chat log unavailable; try again shortly");
    }
  }

  /** Puts a committed entry (a message or a moderation event) on its room's bus channel. */
  publish(message: ChatMessage): void {
    const started = process.hrtime.bigint();
    this.bus.publish(message.roomId, { kind: "message", message }).then(
      () => this.metrics.publishSeconds(Number(process.hrtime.bigint() - started) / 1e9),
      (err: unknown) => {
        // Committed is committed: the delivering node reads it from the log (gap fill or reconcile).
        this.logger.warn({ err, roomId: message.roomId, seq: message.seq }, "publish failed after commit");
      },
    );
  }

  private async findEarlier(input: SendInput): Promise<ChatMessage | null> {
    try {
      return await this.log.findByClientMsgId(input.roomId, input.senderId, input.clientMsgId as string);
    } catch (err) {
      throw chatLogUnavailable(err, "chat log unavailable; try again shortly");
    }
  }
}
/**
 * A chat log failure as a 503 with Retry-After. The log's back-pressure
 * refusals (queue full, commit deadline) carry their own detail and delay;
 * the core reads them by shape, as it imports no adapter.
 */
function chatLogUnavailable(err: unknown, detail: string): RelayError {
  const refusal = err as { publicDetail?: unknown; retryAfterSeconds?: unknown } | null;
  const retryAfter = typeof refusal?.retryAfterSeconds === "number" ? refusal.retryAfterSeconds : 2;
  const own = typeof refusal?.publicDetail === "string" ? refusal.publicDetail : detail;
  return new RelayError(ErrorCode.ServiceUnavailable, own, err, retryAfter);
}

function idempotencyConflict(): RelayError {
  return new RelayError(ErrorCode.IdempotencyConflict, "clientMsgId was already used for a different text");
}
