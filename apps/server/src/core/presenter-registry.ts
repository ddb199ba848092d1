import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { CloseCode, CloseReason, ErrorCode } from "@chatrelay/protocol";
import type { Logger } from "pino";
import { failpoints } from "../ops/failpoints.js";
import type { ChatMessage } from "./message.js";
import type { Bus, BusEvent, ChatLog, Presence, PresenceRecord } from "./ports.js";
import {
  type Holding,
  PresenterSession,
  type PresenterSink,
  type SessionEvents,
  type SessionOptions,
} from "./presenter-session.js";
import type { RelayMetrics } from "./relay.js";
import { RelayError } from "./relay-error.js";
import { runSpread } from "./spread.js";

export interface RegistryOptions {
  nodeId: string;
  gapFillMs: number;
  sendBufferBytes: number;
  presenceTtlMs: number;
  resumeDefault: "live" | "acked";
  /** After a bus outage, presenters are re-announced at random moments within this window (default 0: at once). */
  resyncSpreadMs?: number;
  /** Most presenters re-announced and caught up at once during a resync (default 8). */
  resyncConcurrency?: number;
}

export interface AttachOptions {
  /** Last seq the presenter saw; the session replays everything after it. */
  lastSeq?: number | undefined;
  /** Called once the session holds the room, before the first (replayed or live) message. */
  onStart?: (info: { connId: string; tail: number; resumeFrom: number | null }) => void;
}

/**
 * This node's presenter sessions and their life in the cluster: attach
 * (subscribe, claim, takeover), detach, acks, the heartbeat (renew,
 * reconcile with the log), takeover notices, resync after a bus outage, drain.
 */
export class PresenterRegistry {
  /** "attached" (roomId, connId) once a presenter session delivers; "detached" (roomId, connId) when it ends. */
  readonly events = new EventEmitter();
  private readonly sessions = new Map<number, PresenterSession>();
  /** Attaches in progress per room: the room's subscription must outlive the session being replaced. */
  private readonly attaching = new Map<number, number>();
  private heartbeat: NodeJS.Timeout | undefined;
  private draining = false;
  /** Sessions a resync has yet to re-announce: the heartbeat must not take their missing key for a takeover. */
  private readonly awaitingResync = new Set<PresenterSession>();
  /** A resync pass is running; a reconnect meanwhile asks for one more pass after it. */
  private resyncing = false;
  private resyncAgain = false;
  /** Sessions the next resync pass re-announces and catches up. */
  private readonly pendingResync = new Set<PresenterSession>();
  /** Sessions whose takeover notice is being checked against presence: messages held meanwhile, another notice seen. */
  private readonly confirmingTakeover = new WeakMap<PresenterSession, { again: boolean; held: ChatMessage[] }>();

  constructor(
    private readonly log: ChatLog,
    private readonly bus: Bus,
    private readonly presence: Presence,
    private readonly options: RegistryOptions,
    private readonly logger: Logger,
    private readonly metrics: RelayMetrics,
  ) {
    this.sessionOptions = {
      gapFillMs: options.gapFillMs,
      sendBufferBytes: options.sendBufferBytes,
      pageSize: 500,
      maxPending: 10_000,
    };
    bus.onResync((roomIds) => void this.resync(roomIds));
  }

  // Shared by every session of this node (one object, not a set of closures per idle presenter).
  private readonly sessionOptions: SessionOptions;
  private readonly sessionEvents: SessionEvents = {
    onDelivered: () => this.metrics.delivered(),
    onSlowConsumer: (s) => {
      this.logger.warn({ roomId: s.roomId, connId: s.connId }, "presenter too slow: send buffer full, closing");
      void this.dropSession(s, CloseCode.SlowConsumer, CloseReason.slowConsumer, "grace");
    },
    onError: (s, err) => this.logger.error({ err, roomId: s.roomId }, "presenter delivery failed"),
    holds: (s) => this.holds(s),
    onReplaced: (s) => {
      this.logger.info({ roomId: s.roomId, connId: s.connId }, "presenter replaced (found by the log fence)");
      void this.dropSession(s, CloseCode.Replaced, CloseReason.replaced, "keep");
    },
  };

  start(): void {
    const every = Math.max(200, Math.floor(this.options.presenceTtlMs / 3));
    this.heartbeat = setInterval(() => void this.renewAll(), every);
    this.heartbeat.unref();
  }

  /**
   * Makes this connection the room's presenter, cluster-wide: subscribe,
   * claim presence (newer epoch), tell older holders to let go, then start
   * delivery from the resume point or from now.
   */
  async attachPresenter(roomId: number, sink: PresenterSink, options: AttachOptions = {}): Promise<PresenterSession> {
    if (this.draining) throw new RelayError(ErrorCode.ServiceUnavailable, "node is draining; connect to another node");
    this.attaching.set(roomId, (this.attaching.get(roomId) ?? 0) + 1);
    let session: PresenterSession | undefined;
    try {
      const connId = randomUUID();
      await this.bus.subscribe(roomId, (event) => this.onBusEvent(roomId, event));
      const epoch = await this.presence.claim(roomId, { nodeId: this.options.nodeId, connId });
      session = new PresenterSession(roomId, connId, epoch, sink, this.log, this.sessionOptions, this.sessionEvents);
      const current = this.sessions.get(roomId);
      if (current) void this.dropSession(current, CloseCode.Replaced, CloseReason.replaced, "keep");
      this.sessions.set(roomId, session);
      this.metrics.presenters(1);
      if (failpoints.enabled) await failpoints.hit("attach.after-claim");
      await this.bus.publish(roomId, { kind: "takeover", connId, epoch });
      if (failpoints.enabled) await failpoints.hit("attach.before-tail");

      const lastSeq = options.lastSeq ?? (await this.defaultResume(roomId));
      // Read the log's tail only after the takeover notice is out: anything committed later reaches us on the bus.
      // The same statement records our epoch with the room, where a Redis that loses its data cannot lose it.
      const { tail, epoch: newest } = await this.log.claimRoom(roomId, epoch);
      // Two attaches at once: the older claim must not say `ready` (and deliver) after the newer one.
      // Checked last: a claim after this check publishes its notice on the channel we listen to.
      if (newest > epoch || (await this.holds(session)) !== "yes") {
        void this.dropSession(session, CloseCode.Replaced, CloseReason.replaced, "keep");
        throw new RelayError(ErrorCode.ServiceUnavailable, "a newer presenter connection took the room meanwhile");
      }
      options.onStart?.({ connId, tail, resumeFrom: lastSeq ?? null });
      if (lastSeq === undefined) await session.start(tail + 1, false);
      else await session.start(Math.min(lastSeq, tail) + 1, true);
      this.logger.info({ roomId, connId, epoch, resumeFrom: lastSeq ?? null, tail }, "presenter attached");
      this.events.emit("attached", roomId, connId);
      return session;
    } catch (err) {
      if (session) void this.dropSession(session, CloseCode.TryAgainLater, "could not attach; try again", "keep");
      throw err instanceof RelayError
        ? err
        : new RelayError(ErrorCode.ServiceUnavailable, "could not register the presenter; try again shortly", err);
    } finally {
      const left = (this.attaching.get(roomId) ?? 1) - 1;
      if (left === 0) this.attaching.delete(roomId);
      else this.attaching.set(roomId, left);
    }
  }

  /**
   * Where a presenter that sent no lastSeq resumes: live only, or (RESUME_DEFAULT=acked) after the room's
   * last acknowledged seq. A room whose presenter never acknowledged anything resumes live: replaying
   * the whole log to a client that does not ack (every seed client) is never what it wants.
   */
  private async defaultResume(roomId: number): Promise<number | undefined> {
    if (this.options.resumeDefault !== "acked") return undefined;
    const acked = await this.presence.ackedSeq(roomId);
    return acked > 0 ? acked : undefined;
  }

  /** The presenter's socket closed: "stop" ends the broadcast, "grace" keeps the room accepting posts for a while. */
  detachPresenter(session: PresenterSession, mode: "stop" | "grace"): void {
    session.markClosed();
    void this.forget(session, mode);
  }

  ack(session: PresenterSession, seq: number): void {
    session.ack(seq);
  }

  /** Drain: close every presenter socket with 1012 and leave their rooms in grace for a reconnect elsewhere. */
  async drain(): Promise<void> {
    this.draining = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.flushAcks();
    const all = [...this.sessions.values()];
    await Promise.all(
      all.map((s) => this.dropSession(s, CloseCode.ServiceRestart, CloseReason.serviceRestart, "grace")),
    );
  }

  /**
   * Does presence still name this session's connection? "unknown" while Redis cannot answer or a
   * resync has yet to put its record back (a lost key is then not a takeover).
   */
  private async holds(session: PresenterSession): Promise<Holding> {
    if (this.awaitingResync.has(session)) return "unknown";
    try {
      const holder = await this.presence.get(session.roomId);
      if (this.awaitingResync.has(session)) return "unknown";
      return holder?.connId === session.connId ? "yes" : "no";
    } catch (err) {
      this.logger.warn({ err, roomId: session.roomId }, "could not read presence to fence a catch-up");
      return "unknown";
    }
  }

  private onBusEvent(roomId: number, event: BusEvent): void {
    const session = this.sessions.get(roomId);
    if (!session) return;
    // Back from a bus outage, not yet re-asserted: a newer connection may hold the room and its
    // notice was lost with the connection. The resync catches up from the log once it knows.
    if (this.awaitingResync.has(session)) return;
    if (event.kind === "message") {
      const confirming = this.confirmingTakeover.get(session);
      // Until a takeover notice is settled, what the new holder gets must not reach this one too.
      if (confirming === undefined) session.offer(event.message);
      else if (confirming.held.length < MAX_HELD_WHILE_CONFIRMING) confirming.held.push(event.message);
      // (Past the bound, the session's gap fill reads the rest from the log.)
    } else if (event.epoch > session.epoch) {
      void this.confirmTakeover(session);
    }
  }

  /**
   * A takeover notice alone never cuts a presenter: anyone who can publish on the bus could send
   * one. The new holder claims presence before it publishes the notice, so presence must name
   * another connection (or none: the newer one already left). A failed lookup keeps the session
   * but not what was held meanwhile: the fenced catch-up reads it from the log once presence answers.
   */
  private async confirmTakeover(session: PresenterSession): Promise<void> {
    const running = this.confirmingTakeover.get(session);
    if (running) {
      // One lookup at a time per session; a notice arriving meanwhile asks for one more.
      running.again = true;
      return;
    }
    const state = { again: false, held: [] as ChatMessage[] };
    this.confirmingTakeover.set(session, state);
    let holder: PresenceRecord | null | undefined;
    try {
      do {
        state.again = false;
        holder = await this.presence.get(session.roomId);
      } while (state.again && holder?.connId === session.connId);
    } catch (err) {
      holder = undefined;
      this.logger.warn({ err, roomId: session.roomId }, "could not confirm a takeover notice; the heartbeat decides");
    } finally {
      this.confirmingTakeover.delete(session);
    }
    if (this.sessions.get(session.roomId) !== session) return;
    if (holder?.connId === session.connId) {
      this.logger.debug({ roomId: session.roomId, connId: session.connId }, "takeover notice not backed by presence");
      for (const message of state.held) session.offer(message);
      return;
    }
    if (holder === undefined || this.awaitingResync.has(session)) {
      void session.catchUp();
      return;
    }
    this.logger.info(
      { roomId: session.roomId, connId: session.connId, by: holder?.connId ?? null },
      "presenter replaced on another node",
    );
    void this.dropSession(session, CloseCode.Replaced, CloseReason.replaced, "keep");
  }

  private async dropSession(
    session: PresenterSession,
    code: number,
    reason: string,
    presence: "grace" | "stop" | "keep",
  ): Promise<void> {
    session.close(code, reason);
    await this.forget(session, presence);
  }

  private async forget(session: PresenterSession, mode: "grace" | "stop" | "keep"): Promise<void> {
    if (this.sessions.get(session.roomId) !== session) return;
    this.sessions.delete(session.roomId);
    this.metrics.presenters(-1);
    this.events.emit("detached", session.roomId, session.connId);
    try {
      if (session.ackDirty) await this.presence.recordAck(session.roomId, session.lastAcked);
      if (mode !== "keep") await this.presence.release(session.roomId, session.connId, mode);
      if (!this.sessions.has(session.roomId) && !this.attaching.has(session.roomId)) {
        await this.bus.unsubscribe(session.roomId);
      }
      this.logger.info({ roomId: session.roomId, connId: session.connId, presence: mode }, "presenter detached");
    } catch (err) {
      this.logger.warn({ err, roomId: session.roomId }, "could not release presence; it expires by its TTL");
    }
  }

  private async renewAll(): Promise<void> {
    await this.flushAcks();
    await this.reconcile();
    await Promise.all(
      [...this.sessions.values()].map(async (s) => {
        try {
          // A key lost with Redis' restart is the pending resync's to put back, not a takeover.
          if ((await this.presence.renew(s.roomId, s.connId)) || this.awaitingResync.has(s)) return;
          // Nobody holds the room: the key ran out while this node could not renew it (a shard failing
          // over, a partition), not a takeover, which leaves the new holder's record. Re-assert it,
          // fenced like a resync: a newer claim since (in the log or in presence) still wins.
          const holder = await this.presence.get(s.roomId);
          if (this.awaitingResync.has(s) || holder?.connId === s.connId) return;
          if (holder === null) {
            this.logger.warn({ roomId: s.roomId, connId: s.connId }, "presence key lost while held: re-asserting");
            void this.resync([s.roomId]);
            return;
          }
          await this.dropSession(s, CloseCode.Replaced, CloseReason.replaced, "keep");
        } catch (err) {
          this.logger.warn({ err, roomId: s.roomId }, "presence heartbeat failed");
        }
      }),
    );
  }

  /**
   * One read of the log's tails for every room held here: a session behind its room's tail missed a
   * publish (bus outage, a node killed between commit and publish) with no later message to reveal
   * the gap, and catches up now. Bounds such a delay to one heartbeat.
   */
  private async reconcile(): Promise<void> {
    if (this.sessions.size === 0) return;
    try {
      const tails = await this.log.lastSeqs([...this.sessions.keys()]);
      for (const s of this.sessions.values()) {
        const tail = tails.get(s.roomId);
        if (tail !== undefined && s.isBehind(tail)) {
          this.logger.info({ roomId: s.roomId, tail, next: s.expectedSeq }, "catching up a missed publish");
          void s.catchUp();
        }
      }
    } catch (err) {
      this.logger.warn({ err }, "reconcile with the chat log failed");
    }
  }

  private async flushAcks(): Promise<void> {
    await Promise.all(
      [...this.sessions.values()]
        .filter((s) => s.ackDirty)
        .map(async (s) => {
          s.ackDirty = false;
          await this.presence.recordAck(s.roomId, s.lastAcked).catch(() => {
            s.ackDirty = true;
          });
        }),
    );
  }

  /**
   * After the bus reconnects: re-announce presence and read what the bus may have dropped meanwhile.
   * Every node does this for every presenter at the same moment, so the work is spread over
   * `resyncSpreadMs`, a few sessions at a time, instead of one burst on Redis and the chat log.
   */
  private async resync(roomIds?: readonly number[]): Promise<void> {
    // At once, before any message of the restored subscription is handled (see onBusEvent).
    const due = this.resyncDue(roomIds);
    for (const s of due) {
      this.awaitingResync.add(s);
      this.pendingResync.add(s);
    }
    if (this.resyncing) {
      this.resyncAgain = true;
      return;
    }
    this.resyncing = true;
    let rooms = 0;
    try {
      do {
        this.resyncAgain = false;
        rooms += await this.resyncPass();
      } while (this.resyncAgain && !this.draining);
    } finally {
      this.resyncing = false;
    }
    this.logger.info({ rooms }, "presence re-announced after reconnect");
    this.events.emit("resynced", roomIds);
  }

  /** The sessions a resync covers: every one, or (a shard's subscriptions restored) those of the rooms named. */
  private resyncDue(roomIds: readonly number[] | undefined): PresenterSession[] {
    if (roomIds === undefined) return [...this.sessions.values()];
    const due: PresenterSession[] = [];
    for (const id of roomIds) {
      const s = this.sessions.get(id);
      if (s) due.push(s);
    }
    return due;
  }

  private async resyncPass(): Promise<number> {
    const sessions = [...this.pendingResync];
    this.pendingResync.clear();
    const options = { spreadMs: this.options.resyncSpreadMs ?? 0, concurrency: this.options.resyncConcurrency ?? 8 };
    await runSpread(sessions, options, async (s) => {
      try {
        // Gone meanwhile (replaced, closed, drained): nothing to re-announce.
        if (this.draining || this.sessions.get(s.roomId) !== s) return;
        if (failpoints.enabled) await failpoints.hit("resync.before-reassert");
        // Redis may have lost a newer claim with its data (restarted empty, perhaps twice): the log keeps
        // the newest epoch. Checked first; a claim after it overwrites our record, which reassert then sees.
        const ours =
          (await this.log.presenterEpoch(s.roomId)) <= s.epoch &&
          (await this.presence.reassert(s.roomId, {
            nodeId: this.options.nodeId,
            connId: s.connId,
            epoch: s.epoch,
            state: "live",
          }));
        this.awaitingResync.delete(s);
        if (!ours) await this.dropSession(s, CloseCode.Replaced, CloseReason.replaced, "keep");
        else await s.catchUp();
      } catch (err) {
        this.logger.warn({ err, roomId: s.roomId }, "resync failed");
      } finally {
        this.awaitingResync.delete(s);
      }
    });
    return sessions.length;
  }
}

/** Messages held for one session while a takeover notice is checked (one Redis round trip, normally). */
const MAX_HELD_WHILE_CONFIRMING = 10_000;
