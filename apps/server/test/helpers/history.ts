// A history checker for the chat relay (Jepsen style): given everything a randomized run recorded
// (every post attempt with its outcome, every presenter connection with its frames, and the final
// chat log), it checks the delivery guarantees as properties and reports the first violation with
// the history around it. Pure: no I/O, no clock; times are whatever the recorder used (ms).

/** How one HTTP attempt of a post ended. */
export type PostOutcome =
  | { kind: "ok"; status: number; seq: number; id: string }
  /** 4xx (room not live, bad input, ...) */
  | { kind: "refused"; status: number }
  | { kind: "unavailable"; status: number }
  /** No answer: network error or timeout (a killed or stopped node). The post may or may not be in the log. */
  | { kind: "indeterminate"; error: string };

/** One HTTP attempt; retries of one clientMsgId are separate attempts with the same text. */
export interface PostAttempt {
  room: number;
  /** Unique per logical post (shared by its retries). */
  text: string;
  clientMsgId: string;
  sender: number;
  node: string;
  start: number;
  end: number;
  outcome: PostOutcome;
}

export interface ReadyFrame {
  lastSeq: number;
  resumeFrom: number | null;
  connId: string;
  at: number;
}

export interface ReceivedMessage {
  seq: number;
  id: string;
  text: string;
  at: number;
}

/** One presenter socket as the client saw it (frames after a client-side terminate are not recorded). */
export interface PresenterConnection {
  room: number;
  /** The client's own index for this socket (order of opening). */
  index: number;
  node: string;
  openedAt: number;
  ready?: ReadyFrame;
  messages: ReceivedMessage[];
  /** A message frame that came before `ready` (itself a violation). */
  early?: ReceivedMessage[];
  closed?: { code: number; at: number };
}

export interface LogRow {
  room: number;
  seq: number;
  id: string;
  text: string;
  clientMsgId: string | null;
  sender: number;
}

export interface History {
  posts: PostAttempt[];
  connections: PresenterConnection[];
  log: LogRow[];
}

export type Property =
  | "acked-in-log"
  | "acked-delivered"
  | "connection-order"
  | "fence"
  | "refused-absent"
  | "client-msg-id"
  | "delivered-matches-log"
  | "log-gapless";

export interface Violation {
  property: Property;
  room: number;
  /** When it became visible (for ordering and for the history window). */
  at: number;
  detail: string;
}

const opKey = (a: { room: number; sender: number; clientMsgId: string }) => `${a.room}|${a.sender}|${a.clientMsgId}`;

/** The history's first moment: every time in a report is shown relative to it. */
function origin(h: History): number {
  return Math.min(...h.posts.map((p) => p.start), ...h.connections.map((c) => c.openedAt));
}

/** Every violation found, earliest first. */
export function checkHistory(h: History): Violation[] {
  const found: Violation[] = [];
  const t0 = origin(h);
  const ms = (at: number) => `${Math.round(at - t0)} ms`;
  const logByRoom = new Map<number, Map<number, LogRow>>();
  for (const row of h.log) {
    const rows = logByRoom.get(row.room) ?? new Map<number, LogRow>();
    logByRoom.set(row.room, rows);
    rows.set(row.seq, row);
  }
  const delivered = new Map<number, Map<number, ReceivedMessage>>();
  for (const c of h.connections) {
    const seen = delivered.get(c.room) ?? new Map<number, ReceivedMessage>();
    delivered.set(c.room, seen);
    for (const m of [...(c.early ?? []), ...c.messages]) if (!seen.has(m.seq)) seen.set(m.seq, m);
  }
  const end = Math.max(0, ...h.posts.map((p) => p.end), ...h.connections.map((c) => c.closed?.at ?? c.openedAt));

  // Acknowledged posts: durable with what the answer said, and delivered.
  for (const p of h.posts) {
    if (p.outcome.kind !== "ok") continue;
    const { seq, id } = p.outcome;
    const row = logByRoom.get(p.room)?.get(seq);
    if (!row || row.id !== id || row.text !== p.text)
      found.push({
        property: "acked-in-log",
        room: p.room,
        at: p.end,
        detail: `post "${p.text}" (${p.clientMsgId}) was answered ${p.outcome.status} seq ${seq} id ${id}, but the log has ${row ? `seq ${seq} = id ${row.id} "${row.text}"` : `no seq ${seq}`}`,
      });
    if (!delivered.get(p.room)?.has(seq))
      found.push({
        property: "acked-delivered",
        room: p.room,
        at: p.end,
        detail: `post "${p.text}" answered ${p.outcome.status} seq ${seq} never reached any presenter connection of room ${p.room}`,
      });
  }

  // Per connection: ready first, then seqs from its start point on, strictly increasing, no gap.
  for (const c of h.connections) {
    const first = c.early?.[0];
    if (first)
      found.push({
        property: "connection-order",
        room: c.room,
        at: first.at,
        detail: `connection #${c.index} (${c.node}) got message seq ${first.seq} before its ready frame`,
      });
    if (!c.ready) continue;
    let expected = (c.ready.resumeFrom ?? c.ready.lastSeq) + 1;
    for (const m of c.messages) {
      if (m.seq !== expected) {
        found.push({
          property: "connection-order",
          room: c.room,
          at: m.at,
          detail: `connection #${c.index} (${c.node}, ready lastSeq ${c.ready.lastSeq} resumeFrom ${c.ready.resumeFrom}) expected seq ${expected}, got ${m.seq} (${m.seq < expected ? "a repeat or out of order" : `a gap of ${m.seq - expected}`})`,
        });
        break;
      }
      expected++;
    }
  }

  // The fence: nothing beyond a newer connection's ready.lastSeq reaches an older connection.
  const ready = h.connections.filter((c) => c.ready);
  for (const older of ready) {
    for (const newer of ready) {
      if (newer === older || newer.room !== older.room) continue;
      const o = older.ready as ReadyFrame;
      const n = newer.ready as ReadyFrame;
      if (n.at <= o.at) continue;
      const leak = older.messages.find((m) => m.seq > n.lastSeq);
      if (leak)
        found.push({
          property: "fence",
          room: older.room,
          at: Math.max(leak.at, n.at),
          detail: `connection #${older.index} (${older.node}, ready at ${ms(o.at)}) received seq ${leak.seq} at ${ms(leak.at)}, but the newer connection #${newer.index} (${newer.node}) was ready at ${ms(n.at)} with lastSeq ${n.lastSeq}: the message reached a replaced connection`,
        });
    }
  }

  // Logical posts (one clientMsgId): refused everywhere => absent; one row; all answers agree.
  const ops = new Map<string, PostAttempt[]>();
  for (const p of h.posts) {
    const list = ops.get(opKey(p));
    if (list) list.push(p);
    else ops.set(opKey(p), [p]);
  }
  const rowsByOp = new Map<string, LogRow[]>();
  for (const row of h.log) {
    if (row.clientMsgId === null) continue;
    const k = opKey({ room: row.room, sender: row.sender, clientMsgId: row.clientMsgId });
    const list = rowsByOp.get(k);
    if (list) list.push(row);
    else rowsByOp.set(k, [row]);
  }
  const deliveredTexts = new Map<string, ReceivedMessage>();
  for (const seen of delivered.values()) for (const m of seen.values()) deliveredTexts.set(m.text, m);
  for (const [k, attempts] of ops) {
    const last = attempts.reduce((a, b) => (b.end > a.end ? b : a));
    const rows = rowsByOp.get(k) ?? [];
    const text = attempts[0]?.text ?? "";
    const room = last.room;
    if (attempts.every((a) => a.outcome.kind === "refused" || a.outcome.kind === "unavailable")) {
      const answers = attempts.map((a) => ("status" in a.outcome ? a.outcome.status : 0)).join(", ");
      const textRow = h.log.find((r) => r.text === text);
      if (rows.length > 0 || textRow)
        found.push({
          property: "refused-absent",
          room,
          at: last.end,
          detail: `post "${text}" (${last.clientMsgId}) was refused on every attempt (${answers}) but is in the log as seq ${(rows[0] ?? textRow)?.seq}`,
        });
      const got = deliveredTexts.get(text);
      if (got)
        found.push({
          property: "refused-absent",
          room,
          at: got.at,
          detail: `post "${text}" (${last.clientMsgId}) was refused on every attempt (${answers}) but was delivered as seq ${got.seq}`,
        });
    }
    if (rows.length > 1)
      found.push({
        property: "client-msg-id",
        room,
        at: last.end,
        detail: `clientMsgId ${last.clientMsgId} of sender ${last.sender} maps to ${rows.length} log rows: seqs ${rows.map((r) => r.seq).join(", ")}`,
      });
    const oks = attempts.filter((a) => a.outcome.kind === "ok");
    const answers = new Set(oks.map((a) => (a.outcome.kind === "ok" ? `${a.outcome.seq}/${a.outcome.id}` : "")));
    if (answers.size > 1)
      found.push({
        property: "client-msg-id",
        room,
        at: Math.max(...oks.map((a) => a.end)),
        detail: `clientMsgId ${last.clientMsgId} of sender ${last.sender} got different 2xx answers: ${[...answers].join(" vs ")}`,
      });
  }

  // What was delivered is what the log holds.
  for (const c of h.connections) {
    for (const m of [...(c.early ?? []), ...c.messages]) {
      const row = logByRoom.get(c.room)?.get(m.seq);
      if (!row || row.id !== m.id || row.text !== m.text) {
        found.push({
          property: "delivered-matches-log",
          room: c.room,
          at: m.at,
          detail: `connection #${c.index} (${c.node}) received seq ${m.seq} = id ${m.id} "${m.text}", but the log has ${row ? `id ${row.id} "${row.text}"` : `no seq ${m.seq}`}`,
        });
        break;
      }
    }
  }

  // The log's seqs are 1..n per room (a rolled-back batch rolls its counter back).
  for (const [room, rows] of logByRoom) {
    const seqs = [...rows.keys()].sort((a, b) => a - b);
    const hole = seqs.findIndex((s, i) => s !== i + 1);
    if (hole !== -1)
      found.push({
        property: "log-gapless",
        room,
        at: end,
        detail: `room ${room}'s log has seq ${seqs[hole]} at position ${hole + 1}: a gap (seqs ${seqs.slice(Math.max(0, hole - 2), hole + 2).join(", ")})`,
      });
  }

  return found.sort((a, b) => a.at - b.at);
}

/** One line per recorded event of a room, in time order (for the report). */
export function timeline(h: History, room: number): { at: number; line: string }[] {
  const events: { at: number; line: string }[] = [];
  for (const p of h.posts) {
    if (p.room !== room) continue;
    const o = p.outcome;
    const answer =
      o.kind === "ok"
        ? `${o.status} seq ${o.seq}`
        : o.kind === "indeterminate"
          ? `no answer (${o.error})`
          : `${o.status}`;
    events.push({ at: p.start, line: `post   ${p.clientMsgId} "${p.text}" -> ${p.node} sent` });
    events.push({ at: p.end, line: `post   ${p.clientMsgId} "${p.text}" <- ${p.node} ${answer}` });
  }
  for (const c of h.connections) {
    if (c.room !== room) continue;
    const who = `conn #${c.index} (${c.node})`;
    events.push({ at: c.openedAt, line: `open   ${who}` });
    if (c.ready)
      events.push({
        at: c.ready.at,
        line: `ready  ${who} lastSeq ${c.ready.lastSeq} resumeFrom ${c.ready.resumeFrom} connId ${c.ready.connId}`,
      });
    for (const m of [...(c.early ?? []), ...c.messages])
      events.push({ at: m.at, line: `frame  ${who} seq ${m.seq} "${m.text}"` });
    if (c.closed) events.push({ at: c.closed.at, line: `close  ${who} code ${c.closed.code}` });
  }
  return events.sort((a, b) => a.at - b.at);
}

/** The violation and the room's history around it (`before` events up to it, `after` after it). */
export function describeViolation(h: History, v: Violation, before = 25, after = 10): string {
  const events = timeline(h, v.room);
  const t0 = origin(h);
  const cut = events.findIndex((e) => e.at > v.at);
  const split = cut === -1 ? events.length : cut;
  const fmt = (e: { at: number; line: string }) => `  ${String(Math.round(e.at - t0)).padStart(7)} ms  ${e.line}`;
  // Posts crowd the window: the room's socket life cycle up to the violation is listed on its own too.
  const sockets = events.slice(0, split).filter((e) => /^(open|ready|close)/.test(e.line));
  return [
    `${v.property} violated in room ${v.room} at ${Math.round(v.at - t0)} ms: ${v.detail}`,
    `presenter sockets of room ${v.room} up to it:`,
    ...sockets.slice(-12).map(fmt),
    `history of room ${v.room} around it:`,
    ...events.slice(Math.max(0, split - before), split).map(fmt),
    "  --------- violation visible here ---------",
    ...events.slice(split, split + after).map(fmt),
  ].join("\n");
}

/** Throws the first violation, described with its surrounding history; returns quietly when all properties hold. */
export function assertHistory(h: History): void {
  const [first, ...rest] = checkHistory(h);
  if (!first) return;
  throw new Error(
    `${describeViolation(h, first)}${rest.length > 0 ? `\n(and ${rest.length} more violation(s): ${[...new Set(rest.map((v) => v.property))].join(", ")})` : ""}`,
  );
}
