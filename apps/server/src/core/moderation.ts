import { ErrorCode } from "@chatrelay/protocol";
import type { Logger } from "pino";
import { uuidv7 } from "./ids.js";
import type { ChatMessage, ModerationEventData, ModerationEventKind } from "./message.js";
import { checkChange } from "./moderation-rules.js";
import type { AuditEntry, ModerationChange, RoomModerationState } from "./moderation-state.js";
import type { ChatLog, Gate, ModerationStore } from "./ports.js";
import { RelayError } from "./relay-error.js";

/** Who asks: the token's user and the rooms its moderator claim names. */
export interface ModerationActor {
  userId: number;
  modRooms: readonly number[];
}

/** Omit over each member of the union (a plain Omit would merge the members). */
type Without<C, K extends PropertyKey> = C extends ModerationChange ? Omit<C, K> : never;

/** A change as a transport hands it over: the actor comes from the token, never from the request. */
export type ModerationRequest = Without<ModerationChange, "actorId">;

/** A change as a presenter socket frame carries it: the room is the socket's. */
export type ModerationCommand = Without<ModerationChange, "actorId" | "roomId">;

export interface ModerationOutcome {
  action: ModerationChange["action"];
  /** The moderation event as the log committed it (its seq orders it with the chat). */
  event: ChatMessage;
  /** The room's state after the change. */
  state: RoomModerationState;
}

export type ModerationRole = "presenter" | "moderator" | "none";

/** What the service needs of the chat log: the event append and a lookup of one entry by seq. */
export type ModerationLog = Pick<ChatLog, "appendEvent" | "since">;

export interface ModerationServiceOptions {
  /** The global MAX_TEXT_LENGTH (a room's own limit stays within it). */
  globalMaxTextLength: number;
}

/**
 * Moderation actions: check the input, authorise the actor against the room's state, apply the
 * change durably (store, with its audit row), mirror it into the gate so the hot path enforces it
 * at once, then log the moderation event (its own seq, in order with the chat) and publish it.
 * Imports no adapter: the store, gate, log and publish function are handed in.
 */
export class ModerationService {
  constructor(
    private readonly store: ModerationStore,
    private readonly gate: Pick<Gate, "syncRoom">,
    private readonly log: ModerationLog,
    /** Puts a committed event on the room's bus channel, as the relay does with messages. */
    private readonly publish: (event: ChatMessage) => void,
    private readonly logger: Logger,
    private readonly options: ModerationServiceOptions,
  ) {}

  async act(actor: ModerationActor, request: ModerationRequest): Promise<ModerationOutcome> {
    // Bad input first: a 400 reads and changes nothing.
    const change = checkChange(
      { ...request, actorId: actor.userId } as ModerationChange,
      this.options.globalMaxTextLength,
    );
    const current = await this.load(change.roomId);
    authorize(actor, change, current);
    const target = change.action === "delete" ? await this.findMessage(change.roomId, change.targetSeq) : undefined;

    const state = await storeCall(() => this.store.apply(change));
    try {
      await this.gate.syncRoom(state);
    } catch (err) {
      // The gate reloads a room whose mirror is stale within its own bound; the change is durable already.
      this.logger.warn({ err, roomId: change.roomId, version: state.version }, "could not mirror a moderation change");
    }

    const { kind, data } = eventOf(change, state, target);
    let event: ChatMessage;
    try {
      event = await this.log.appendEvent({
        id: uuidv7(),
        roomId: change.roomId,
        actorId: actor.userId,
        kind,
        event: data,
      });
    } catch (err) {
      const saved = change.action === "delete" || change.action === "clear" ? "" : " the change itself was saved;";
      throw new RelayError(
        ErrorCode.ServiceUnavailable,
        `chat log unavailable: the moderation event was not logged;${saved} repeat the request`,
        err,
        2,
      );
    }
    this.publish(event);
    this.logger.info(
      { roomId: change.roomId, actorId: actor.userId, action: change.action, seq: event.seq, version: state.version },
      "moderation action",
    );
    return { action: change.action, event, state };
  }

  /** The room's state for a reader: settings and moderators to any token, the rest to its moderators. */
  async view(actor: ModerationActor, roomId: number, part: "public" | "private"): Promise<RoomModerationState> {
    const state = await this.load(roomId);
    if (part === "private" && roleOf(actor, roomId, state) === "none") throw forbidden();
    return state;
  }

  /** Whether the actor moderates the room (its presenter, a listed moderator, or by token claim). */
  async moderates(actor: ModerationActor, roomId: number): Promise<boolean> {
    return roleOf(actor, roomId, await this.load(roomId)) !== "none";
  }

  /** The room's audit trail, newest first (its presenter and moderators only). */
  async audit(
    actor: ModerationActor,
    roomId: number,
    before: number | undefined,
    limit: number,
  ): Promise<AuditEntry[]> {
    const state = await this.load(roomId);
    if (roleOf(actor, roomId, state) === "none") throw forbidden();
    return storeCall(() => this.store.audit(roomId, before, limit));
  }

  private load(roomId: number): Promise<RoomModerationState> {
    return storeCall(() => this.store.loadRoom(roomId));
  }

  /** A `delete` must name a chat message of this room (not an event, not another room's seq). */
  private async findMessage(roomId: number, seq: number): Promise<ChatMessage> {
    let found: ChatMessage[];
    try {
      found = await this.log.since(roomId, seq - 1, 1);
    } catch (err) {
      throw new RelayError(ErrorCode.ServiceUnavailable, "chat log unavailable; try again shortly", err, 2);
    }
    const entry = found[0];
    if (entry === undefined || entry.seq !== seq || entry.kind !== "message") {
      throw new RelayError(ErrorCode.NotFound, "the room has no message with this seq");
    }
    return entry;
  }
}

/** The actor's standing in a room: its presenter, a moderator (appointed or by token claim), or neither. */
export function roleOf(actor: ModerationActor, roomId: number, state: RoomModerationState): ModerationRole {
  if (actor.userId === roomId) return "presenter";
  if (state.moderators.includes(actor.userId) || actor.modRooms.includes(roomId)) return "moderator";
  return "none";
}

/**
 * The presenter may do everything; a moderator everything but appointing or removing
 * moderators, and never bans or times out the presenter or another moderator.
 */
function authorize(actor: ModerationActor, change: ModerationChange, state: RoomModerationState): void {
  const role = roleOf(actor, change.roomId, state);
  if (role === "none") throw forbidden();
  switch (change.action) {
    case "moderator_add":
    case "moderator_remove":
      if (role !== "presenter")
        throw new RelayError(ErrorCode.Forbidden, "only the room's presenter appoints or removes moderators");
      if (change.userId === change.roomId)
        throw new RelayError(ErrorCode.InvalidBody, "the presenter moderates their own room already");
      return;
    case "ban":
    case "timeout":
      if (change.userId === change.roomId) {
        if (role === "presenter")
          throw new RelayError(ErrorCode.InvalidBody, "the presenter cannot ban or time out themselves");
        throw new RelayError(ErrorCode.Forbidden, "a moderator cannot ban or time out the room's presenter");
      }
      if (role === "moderator" && state.moderators.includes(change.userId)) {
        throw new RelayError(ErrorCode.Forbidden, "a moderator cannot ban or time out another moderator");
      }
      return;
    default:
      return;
  }
}

/** The log event of a change: its kind and its (flat, small) data, as the frames show it. */
function eventOf(
  change: ModerationChange,
  state: RoomModerationState,
  target: ChatMessage | undefined,
): { kind: ModerationEventKind; data: ModerationEventData } {
  switch (change.action) {
    case "settings": {
      const { slowModeS, moderatorsOnly, maxTextLength } = state.settings;
      return { kind: "settings", data: { slowModeS, moderatorsOnly, maxTextLength } };
    }
    case "moderator_add":
    case "moderator_remove":
    case "ban":
    case "unban":
      return { kind: change.action, data: { userId: change.userId } };
    case "timeout": {
      const until = state.restrictions.find((r) => r.userId === change.userId)?.untilMs;
      return {
        kind: "timeout",
        data: { userId: change.userId, until: new Date(until ?? Date.now() + change.durationS * 1000).toISOString() },
      };
    }
    case "terms_add":
    case "terms_remove":
      return { kind: "terms", data: { count: state.blockedTerms.length } };
    case "delete":
      return { kind: "delete", data: { targetSeq: change.targetSeq, targetId: target?.id ?? null } };
    case "clear":
      return { kind: "clear", data: {} };
  }
}

/** A store failure that is not our own refusal: 503, try again. */
async function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof RelayError) throw err;
    throw new RelayError(ErrorCode.ServiceUnavailable, "moderation store unavailable; try again shortly", err, 2);
  }
}

function forbidden(): RelayError {
  return new RelayError(ErrorCode.Forbidden, "only the room's presenter or a moderator may do this");
}
