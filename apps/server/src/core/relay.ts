import type { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { ChatMessage } from "./message.js";
import { Policy } from "./policy.js";
import type { Bus, ChatLog, Gate, HistoryOptions, Presence } from "./ports.js";
import { PostPath, type SendInput, type SendResult } from "./post-path.js";
import { type AttachOptions, PresenterRegistry, type RegistryOptions } from "./presenter-registry.js";
import type { PresenterSession, PresenterSink } from "./presenter-session.js";

export type { SendInput, SendResult } from "./post-path.js";
export type { AttachOptions } from "./presenter-registry.js";

export interface RelayOptions extends RegistryOptions {
  maxTextLength: number;
}

/** Counters the relay reports; the ops layer turns them into Prometheus metrics. */
export interface RelayMetrics {
  post(outcome: string): void;
  delivered(): void;
  presenters(delta: number): void;
  publishSeconds(seconds: number): void;
}

/**
 * The relay core, as the transports see it: the post path (policy, chat
 * log, bus) and this node's presenter registry. Never imports an adapter.
 */
export class Relay {
  private readonly posts: PostPath;
  private readonly registry: PresenterRegistry;

  constructor(
    private readonly log: ChatLog,
    bus: Bus,
    private readonly presence: Presence,
    private readonly gate: Gate,
    options: RelayOptions,
    logger: Logger,
    metrics: RelayMetrics,
  ) {
    this.posts = new PostPath(log, bus, new Policy(gate), options.maxTextLength, logger, metrics);
    this.registry = new PresenterRegistry(log, bus, presence, options, logger, metrics);
  }

  /** "attached" (roomId, connId), "detached" (roomId, connId), "resynced" (the rooms named, or undefined: all). */
  get events(): EventEmitter {
    return this.registry.events;
  }

  start(): void {
    this.registry.start();
  }

  send(input: SendInput): Promise<SendResult> {
    return this.posts.send(input);
  }

  /** Newest first, seq < before (moderation events too with `options.events`). */
  history(roomId: number, before: number | undefined, limit: number, options?: HistoryOptions): Promise<ChatMessage[]> {
    return this.posts.history(roomId, before, limit, options);
  }

  /** The room's lowest retained seq (retention prunes below it); null when it holds no entry. */
  async retainedFrom(roomId: number): Promise<number | null> {
    return (await this.log.retainedRange(roomId)).from;
  }

  /** Whether a room is on air, on which node, and its newest seq (for the console and operators). */
  async roomStatus(
    roomId: number,
  ): Promise<{ state: "live" | "grace" | "offline"; presenterNode: string | null; lastSeq: number }> {
    const [record, lastSeq] = await Promise.all([this.presence.get(roomId), this.log.lastSeq(roomId)]);
    return record === null
      ? { state: "offline", presenterNode: null, lastSeq }
      : { state: record.state, presenterNode: record.nodeId, lastSeq };
  }

  /** Puts a committed entry (a message or a moderation event) on its room's bus channel. */
  publish(message: ChatMessage): void {
    this.posts.publish(message);
  }

  /** Counts a presenter-socket open from an address against its limit. */
  admitSocket(address: string): Promise<{ ok: boolean; retryAfterMs: number }> {
    return this.gate.admitSocket(address);
  }

  attachPresenter(roomId: number, sink: PresenterSink, options: AttachOptions = {}): Promise<PresenterSession> {
    return this.registry.attachPresenter(roomId, sink, options);
  }

  detachPresenter(session: PresenterSession, mode: "stop" | "grace"): void {
    this.registry.detachPresenter(session, mode);
  }

  ack(session: PresenterSession, seq: number): void {
    this.registry.ack(session, seq);
  }

  drain(): Promise<void> {
    return this.registry.drain();
  }
}
