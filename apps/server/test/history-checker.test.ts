import t from "tap";
import {
  assertHistory,
  checkHistory,
  type History,
  type PostAttempt,
  type PresenterConnection,
  type Property,
} from "./helpers/history.js";

// The history checker can fail: a valid synthetic history passes, and each kind of violation,
// planted into a copy of it, is reported first, with the room's surrounding history.

const ID = (seq: number) => `00000000-0000-7000-8000-${String(seq).padStart(12, "0")}`;

function ok(seq: number, text: string, start: number, node = "node-a", clientMsgId = `c-${text}`): PostAttempt {
  return {
    room: 1,
    text,
    clientMsgId,
    sender: 7,
    node,
    start,
    end: start + 5,
    outcome: { kind: "ok", status: 201, seq, id: ID(seq) },
  };
}

/**
 * Room 1: five messages. Connection #0 (live from 0) gets 1..3 and drops; #1 resumes from 3 and gets 4, 5.
 * Also: a post refused 409, one refused 503 then retried to 201 (seq 5), and one with no answer that never committed.
 */
function validHistory(): History {
  const posts: PostAttempt[] = [
    ok(1, "m1", 100),
    ok(2, "m2", 110),
    ok(3, "m3", 120),
    { ...ok(0, "refused", 125), outcome: { kind: "refused", status: 409 } },
    ok(4, "m4", 140, "node-b"),
    { ...ok(0, "m5", 150), outcome: { kind: "unavailable", status: 503 } },
    ok(5, "m5", 160, "node-c"),
    { ...ok(0, "lost", 165), outcome: { kind: "indeterminate", error: "ECONNRESET" } },
  ];
  const frame = (seq: number, at: number) => ({ seq, id: ID(seq), text: `m${seq}`, at });
  const connections: PresenterConnection[] = [
    {
      room: 1,
      index: 0,
      node: "node-a",
      openedAt: 50,
      ready: { lastSeq: 0, resumeFrom: 0, connId: "c0", at: 60 },
      messages: [frame(1, 106), frame(2, 116), frame(3, 126)],
      closed: { code: 1006, at: 130 },
    },
    {
      room: 1,
      index: 1,
      node: "node-b",
      openedAt: 131,
      ready: { lastSeq: 3, resumeFrom: 3, connId: "c1", at: 135 },
      messages: [frame(4, 146), frame(5, 166)],
    },
  ];
  const log = [1, 2, 3, 4, 5].map((seq) => ({
    room: 1,
    seq,
    id: ID(seq),
    text: `m${seq}`,
    clientMsgId: `c-m${seq}`,
    sender: 7,
  }));
  return { posts, connections, log };
}

t.test("a valid history passes", async (t) => {
  const h = validHistory();
  t.same(checkHistory(h), []);
  t.doesNotThrow(() => assertHistory(h));
});

/** Plants one fault into a fresh copy of the valid history and expects it to be reported first. */
function expectViolation(
  name: string,
  property: Property,
  plant: (h: History) => void,
  mentions: RegExp,
  visibleAt?: RegExp,
  /** Where two properties see the same fault at the same moment: the one the checker lists first. */
  reportedFirst: Property = property,
): void {
  t.test(name, async (t) => {
    const h = validHistory();
    plant(h);
    const found = checkHistory(h);
    t.ok(found.length > 0, "reported");
    t.equal(found[0]?.property, reportedFirst, "as the first violation");
    t.ok(
      found.some((v) => v.property === property),
      `${property} is among the violations`,
    );
    let message = "";
    try {
      assertHistory(h);
    } catch (err) {
      message = (err as Error).message;
    }
    t.match(message, new RegExp(`^${reportedFirst} violated in room 1`), "the message names the property");
    const violation = found.find((v) => v.property === property);
    t.match(violation?.detail, mentions, "and what went wrong");
    t.match(message, /history of room 1 around it:/, "with the history around it");
    t.match(
      message,
      /presenter sockets of room 1 up to it:\n\s+0 ms {2}open {3}conn #0 \(node-a\)/,
      "and its sockets' life cycle",
    );
    t.match(message, /violation visible here/);
    if (visibleAt) t.match(message, visibleAt, "the surrounding events are listed");
  });
}

const conn = (h: History, i: number) => h.connections[i] as PresenterConnection;

expectViolation(
  "a 2xx'd message missing from the log",
  "acked-in-log",
  (h) => {
    h.log = h.log.filter((r) => r.seq !== 4);
    conn(h, 1).messages = conn(h, 1).messages.filter((m) => m.seq !== 4);
    conn(h, 1).ready = { lastSeq: 4, resumeFrom: 4, connId: "c1", at: 135 };
  },
  /answered 201 seq 4 .* but the log has no seq 4/,
  /post {3}c-m4 "m4" <- node-b 201 seq 4/,
);

expectViolation(
  "a 2xx'd message in the log with another text",
  "acked-in-log",
  (h) => {
    const row = h.log[1];
    if (row) row.text = "other";
  },
  /the log has seq 2 = id .* "other"/,
);

expectViolation(
  "a 2xx'd message never delivered",
  "acked-delivered",
  (h) => {
    conn(h, 1).messages = [];
  },
  /post "m4" answered 201 seq 4 never reached any presenter connection/,
  /ready {2}conn #1 \(node-b\) lastSeq 3 resumeFrom 3/,
);

expectViolation(
  "a gap on one connection",
  "connection-order",
  (h) => {
    conn(h, 0).messages.splice(1, 1);
    conn(h, 1).messages.unshift({ seq: 2, id: ID(2), text: "m2", at: 140 });
    conn(h, 1).ready = { lastSeq: 3, resumeFrom: 1, connId: "c1", at: 135 };
  },
  /connection #0 \(node-a.*expected seq 2, got 3 \(a gap of 1\)/,
);

expectViolation(
  "a repeat on one connection",
  "connection-order",
  (h) => {
    conn(h, 0).messages.push({ seq: 2, id: ID(2), text: "m2", at: 128 });
  },
  /expected seq 4, got 2 \(a repeat or out of order\)/,
);

expectViolation(
  "a message before ready",
  "connection-order",
  (h) => {
    conn(h, 1).early = [{ seq: 3, id: ID(3), text: "m3", at: 133 }];
  },
  /got message seq 3 before its ready frame/,
);

expectViolation(
  "a replaced connection receives past the newer connection's ready.lastSeq",
  "fence",
  (h) => {
    const old = conn(h, 0);
    delete old.closed;
    old.messages.push({ seq: 4, id: ID(4), text: "m4", at: 147 });
  },
  /connection #0 \(node-a, ready at 10 ms\) received seq 4 at 97 ms, but the newer connection #1 \(node-b\) was ready at 85 ms with lastSeq 3/,
  /frame {2}conn #0 \(node-a\) seq 4 "m4"/,
);

expectViolation(
  "a post refused on every attempt is in the log",
  "refused-absent",
  (h) => {
    h.log.push({ room: 1, seq: 6, id: ID(6), text: "refused", clientMsgId: "c-refused", sender: 7 });
  },
  /post "refused" \(c-refused\) was refused on every attempt \(409\) but is in the log as seq 6/,
);

expectViolation(
  "a post refused on every attempt is delivered",
  "refused-absent",
  (h) => {
    h.log.push({ room: 1, seq: 6, id: ID(6), text: "x6", clientMsgId: null, sender: 7 });
    conn(h, 1).messages.push({ seq: 6, id: ID(6), text: "refused", at: 129 });
  },
  /was refused on every attempt \(409\) but was delivered as seq 6/,
);

expectViolation(
  "one clientMsgId, two log rows",
  "client-msg-id",
  (h) => {
    h.log.push({ room: 1, seq: 6, id: ID(6), text: "m5", clientMsgId: "c-m5", sender: 7 });
    conn(h, 1).messages.push({ seq: 6, id: ID(6), text: "m5", at: 167 });
  },
  /clientMsgId c-m5 of sender 7 maps to 2 log rows: seqs 5, 6/,
);

expectViolation(
  "one clientMsgId, two different 2xx answers",
  "client-msg-id",
  (h) => {
    h.posts.push({ ...ok(5, "m5", 170), outcome: { kind: "ok", status: 201, seq: 4, id: ID(4) } });
  },
  /got different 2xx answers: 5\/\S+5 vs 4\/\S+4/,
  /post {3}c-m5 "m5" <- node-a 201 seq 4/,
  // The second answer also contradicts the log: both are true, the log check comes first.
  "acked-in-log",
);

expectViolation(
  "a delivered frame that differs from the log",
  "delivered-matches-log",
  (h) => {
    const f = conn(h, 0).messages[0];
    if (f) f.text = "forged";
  },
  /connection #0 \(node-a\) received seq 1 = id .* "forged", but the log has id .* "m1"/,
);

expectViolation(
  "a gap in the log",
  "log-gapless",
  (h) => {
    h.log.push({ room: 1, seq: 7, id: ID(7), text: "x7", clientMsgId: null, sender: 7 });
  },
  /room 1's log has seq 7 at position 6: a gap/,
);
