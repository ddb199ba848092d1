import { performance } from "node:perf_hooks";
import pg from "pg";
import t, { type Test } from "tap";
import { openDatabase } from "../src/chatlog/database.js";
import { applyMigrations } from "../src/chatlog/migrate.js";
import { PrismaChatLog } from "../src/chatlog/prisma-chat-log.js";
import { uuidv7 } from "../src/core/ids.js";
import { type HttpResult, request } from "./helpers/http.js";
import { PrivatePostgres, withPgClient } from "./helpers/postgres-server.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// Back-pressure to the chat log, against a private PostgreSQL server that the tests stall (SIGSTOP),
// crash (SIGKILL) and restart: bounded queue, commit deadline, and never a 503 for a row that commits.
const COMMIT_TIMEOUT_MS = 1000;
const QUEUE_MAX = 20;
const BATCH_MAX = 5;
const IN_FLIGHT = 2;
const ENV = {
  LOG_COMMIT_TIMEOUT_MS: String(COMMIT_TIMEOUT_MS),
  LOG_QUEUE_MAX: String(QUEUE_MAX),
  LOG_BATCH_MAX: String(BATCH_MAX),
  LOG_BATCHES_IN_FLIGHT: String(IN_FLIGHT),
  DB_CONNECT_TIMEOUT_MS: "1000",
  // Longer than the commit deadline: the in-doubt test holds a COMMIT past the deadline.
  DB_STATEMENT_TIMEOUT_MS: "8000",
};

const server = await PrivatePostgres.start();
t.teardown(() => server.destroy());
const DB = "chatrelay";
const DB_URL = await server.createDatabase(DB);
const withClient = <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => withPgClient(DB_URL, fn);

/** Polls a condition (bounded): for states only the database can show. */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Resolves when no other session is connected to the chat log's database (every transaction has ended). */
function quiet(): Promise<void> {
  return until(
    () =>
      withClient(async (c) => {
        const r = await c.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
          [DB],
        );
        return r.rows[0].n === 0;
      }),
    "every other session of the database to end",
  );
}

/** Of these texts, the ones that are in the log. */
function logged(texts: string[]): Promise<Set<string>> {
  return withClient(async (c) => {
    const r = await c.query<{ text: string }>("SELECT text FROM chat_message WHERE text = ANY($1::text[])", [texts]);
    return new Set(r.rows.map((row) => row.text));
  });
}

interface Node {
  presenter: TestSocket;
  post(text: string): Promise<HttpResult<Record<string, unknown>>>;
  /** Closes the presenter and shuts the node down (its writer and pools close their connections). */
  stop(): Promise<void>;
}

/** A chatrelay node on the private database with a presenter connected to `room`. */
async function startNode(t: Test, room: number): Promise<Node> {
  const http: TestServer = await startTestServer({ DATABASE_URL: DB_URL, ...ENV });
  let stopping: Promise<void> | undefined;
  const presenter = new TestSocket(
    `${http.ws}/v1/rooms/${room}/presenter?access_token=${await mintToken({ user_idx: room })}`,
  );
  const stop = () => {
    stopping ??= (async () => {
      presenter.close(1000);
      await http.shutdown();
    })();
    return stopping;
  };
  t.teardown(stop);
  await presenter.open();
  await presenter.next((f) => f.type === "ready", "ready");
  const viewer = await mintToken({ user_idx: room + 1 });
  return {
    presenter,
    stop,
    post: (text) =>
      request(`${http.http}/v1/rooms/${room}/messages`, {
        headers: { authorization: `Bearer ${viewer}` },
        body: { text, clientMsgId: text },
      }),
  };
}

/**
 * A deferred trigger runs inside a batch's commit: for texts starting "hold-" it waits on an
 * advisory lock the test holds, so a batch can be held in flight, its commit sent.
 */
function installHoldTrigger(): Promise<unknown> {
  return withClient((c) =>
    c.query(`
      CREATE OR REPLACE FUNCTION test_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.text LIKE 'hold-%' THEN PERFORM pg_advisory_xact_lock_shared(4242); END IF;
        RETURN NULL;
      END $$;
      DROP TRIGGER IF EXISTS test_hold_commit ON chat_message;
      CREATE CONSTRAINT TRIGGER test_hold_commit AFTER INSERT ON chat_message
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_hold_commit();`),
  );
}

/** The test's holder of the advisory lock that hold- texts wait on. */
async function holdCommits(): Promise<pg.Client> {
  const holder = new pg.Client({ connectionString: DB_URL });
  holder.on("error", () => {});
  await holder.connect();
  await holder.query("SELECT pg_advisory_lock(4242)");
  return holder;
}

type Outcome = "created" | "busy" | "deadline" | "other";
function outcome(res: HttpResult<Record<string, unknown>>): Outcome {
  if (res.status === 201) return "created";
  if (res.status !== 503) return "other";
  const detail = String(res.body.detail);
  if (detail.includes("busy")) return "busy";
  if (detail.includes("in time")) return "deadline";
  return "other";
}

/** Checks the rule against the log itself: every 201 is there, nothing refused is. */
async function assertLogMatches(t: Test, answers: Map<string, HttpResult<Record<string, unknown>>>) {
  const present = await logged([...answers.keys()]);
  const refusedButLogged = [...answers].filter(([text, r]) => r.status !== 201 && present.has(text)).map(([x]) => x);
  const createdButMissing = [...answers].filter(([text, r]) => r.status === 201 && !present.has(text)).map(([x]) => x);
  t.same(refusedButLogged, [], "no post that got an error is in the log");
  t.same(createdButMissing, [], "every 201 post is in the log");
}

t.test(
  "a stalled database: 503 with Retry-After at the deadline, a bounded queue, the batch in flight gets the truth",
  async (t) => {
    const node = await startNode(t, 710);
    await installHoldTrigger();
    const answers = new Map<string, HttpResult<Record<string, unknown>>>();
    const post = async (text: string) => {
      const res = await node.post(text);
      answers.set(text, res);
      return res;
    };
    t.equal((await post("stall-before")).status, 201);

    // One batch in flight when the database stalls: its commit is sent (held inside it by the test).
    const holder = await holdCommits();
    let inFlightSettled = false;
    const inFlight = post("hold-in-flight").finally(() => {
      inFlightSettled = true;
    });
    await until(() => committing(), "the writer to wait inside its commit");
    server.pause();
    const started = performance.now();
    const first = await post("stall-first");
    const waited = performance.now() - started;
    t.equal(first.status, 503, "refused while the database answers nothing");
    t.equal(outcome(first), "deadline", "because its commit deadline passed");
    t.equal(first.headers.get("retry-after"), "2", "with Retry-After");
    t.ok(
      // Not before the deadline; after it, generously (a loaded 2-core machine), yet well before
      // DB_STATEMENT_TIMEOUT_MS (8 s), the other clock that could have ended the wait.
      waited >= COMMIT_TIMEOUT_MS - 50 && waited < COMMIT_TIMEOUT_MS + 5000,
      `answered at its deadline (${Math.round(waited)} ms)`,
    );

    // A flood bigger than the queue: what does not fit is refused at once, before any deadline passes.
    const FLOOD = 60;
    const order: Outcome[] = [];
    const flood = await Promise.all(
      Array.from({ length: FLOOD }, async (_, i) => {
        const res = await post(`stall-flood-${i}`);
        order.push(outcome(res));
        return res;
      }),
    );
    const busy = flood.filter((r) => outcome(r) === "busy");
    t.ok(
      flood.every((r) => r.status === 503),
      "every flood post refused while stalled",
    );
    t.ok(
      busy.length >= FLOOD - QUEUE_MAX - IN_FLIGHT * BATCH_MAX,
      `at most ${QUEUE_MAX} queued + ${IN_FLIGHT * BATCH_MAX} in flight: ${busy.length} refused as busy`,
    );
    t.ok(
      busy.every((r) => r.headers.get("retry-after") === "1"),
      "busy refusals carry Retry-After: 1",
    );
    t.ok(order.lastIndexOf("busy") < order.indexOf("deadline"), "the busy refusals came before any deadline refusal");
    t.same([...new Set(order)].sort(), ["busy", "deadline"], "the others waited for their deadline");

    t.notOk(inFlightSettled, "the batch in flight is not refused: its commit was sent, its outcome is not known yet");
    server.resume();
    await holder.query("SELECT pg_advisory_unlock(4242)");
    t.equal((await inFlight).status, 201, "once the database answers, the batch in flight gets the truth: 201");
    await holder.end();
    const after = await post("stall-after");
    t.equal(after.status, 201, "posts succeed again once the database answers");
    await node.presenter.until(
      () => node.presenter.json().some((f) => f.type === "message" && f.text === "stall-after"),
      "the presenter got the post after the stall",
    );

    await node.stop();
    await quiet();
    await assertLogMatches(t, answers);
  },
);

t.test("commit already sent: the answer waits for the truth, past the deadline", async (t) => {
  const room = 720;
  const node = await startNode(t, room);
  await installHoldTrigger();
  const answers = new Map<string, HttpResult<Record<string, unknown>>>();
  const post = async (text: string) => {
    const res = await node.post(text);
    answers.set(text, res);
    return res;
  };

  await t.test("the database answers in the end: 201", async (t) => {
    const holder = await holdCommits();
    t.teardown(() => holder.end());
    const settled = new Set<string>();
    const track = (text: string) => post(text).finally(() => settled.add(text));
    const held = track("hold-resumed");
    await until(() => committing(), "the writer to wait inside its commit");
    // The second writer's batch, to the same room, is sent too and waits for the held batch's room lock.
    const behind = track("behind-the-lock");
    await until(() => waitingOnRoomLock(), "the second writer to wait for the room's lock");
    // Both writers busy: the next post waits in the queue and never gets its commit sent.
    const queued = await post("queued-refused");
    t.equal(outcome(queued), "deadline", "a post whose commit was never sent is refused at its deadline");
    t.same([...settled], [], "both batches whose commits were sent are still waiting, past their deadlines");
    await holder.query("SELECT pg_advisory_unlock(4242)");
    const [first, second] = await Promise.all([held, behind]);
    t.equal(first.status, 201, "the held post gets 201 once its commit answers");
    t.equal(second.status, 201, "and so does the one behind its lock");
    t.equal(Number(second.body.seq), Number(first.body.seq) + 1, "in the order their batches took the room's lock");
  });

  await t.test("the database dies during the commit: refused only once it is back and shows nothing", async (t) => {
    await holdCommits(); // its connection dies with the server
    let settledAt: number | undefined;
    const held = post("hold-killed").finally(() => {
      settledAt = performance.now();
    });
    await until(() => committing(), "the writer to wait inside its commit");
    await server.kill();
    const restartedAt = performance.now();
    t.equal(settledAt, undefined, "no answer while the database is down");
    await server.restart();
    const res = await held;
    t.equal(res.status, 503, "the transaction did not commit: refused");
    t.ok((settledAt ?? 0) > restartedAt, "only after the database came back and answered");
    t.equal(res.headers.get("retry-after"), "2");
    t.equal((await post("after-restart")).status, 201, "and posts succeed again");
  });

  await node.stop();
  await quiet();
  await withClient((c) => c.query("DROP TRIGGER test_hold_commit ON chat_message"));
  await assertLogMatches(t, answers);
});

t.test("a killed database: 503 at once, and posts succeed again after its restart", async (t) => {
  const node = await startNode(t, 730);
  const answers = new Map<string, HttpResult<Record<string, unknown>>>();
  const post = async (text: string) => {
    const res = await node.post(text);
    answers.set(text, res);
    return res;
  };
  t.equal((await post("killed-before")).status, 201);
  await server.kill();
  const started = performance.now();
  const down = await post("killed-down");
  t.equal(down.status, 503, "refused while the database is down");
  t.ok(down.headers.get("retry-after"), "with Retry-After");
  const took = Math.round(performance.now() - started);
  t.equal(
    outcome(down),
    "other",
    `refused for the refused connection, not at the commit deadline: ${down.body.detail}`,
  );
  // A post held until the database returned would never be answered here; the bound is generous.
  t.ok(took < COMMIT_TIMEOUT_MS + 5000, `answered while the database is down (${took} ms)`);
  await server.restart();
  t.equal((await post("killed-after")).status, 201, "accepted again after the restart");
  await node.presenter.until(
    () => node.presenter.json().some((f) => f.type === "message" && f.text === "killed-after"),
    "the presenter got the post after the restart",
  );
  await node.stop();
  await quiet();
  await assertLogMatches(t, answers);
});

t.test("a read storm holding every read connection does not starve appends", async (t) => {
  const db = await openDatabase({
    databaseUrl: DB_URL,
    pgliteDataDir: "memory://",
    poolSize: 2,
    statementTimeoutMs: 10_000,
    connectTimeoutMs: 500,
  });
  await applyMigrations(db);
  const log = new PrismaChatLog(db, 100, undefined, 2, { maxQueued: 1000, deadlineMs: 5000 });
  t.teardown(() => log.close());
  const holder = new pg.Client({ connectionString: DB_URL });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query("SELECT pg_advisory_lock(4343)");
  // Slow reads: each waits on the lock the test holds, occupying a read connection
  // (a Prisma query runs once something subscribes to it: .then).
  const slow = Array.from({ length: 2 }, () =>
    db.prisma.$queryRawUnsafe("SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared(4343)) held").then(() => {}),
  );
  await until(
    () =>
      withClient(async (c) => {
        const r = await c.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'chatrelay-reader' AND wait_event = 'advisory'",
        );
        return r.rows[0].n === 2;
      }),
    "both read connections to be busy",
  );
  await t.rejects(log.history(740, undefined, 10), /timeout/, "a read finds no free read connection");
  const room = 740;
  const appended = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      log.append({
        id: uuidv7(),
        roomId: room,
        senderId: 9,
        nickname: "n",
        userType: "viewer",
        text: `storm-${i}`,
        clientMsgId: undefined,
      }),
    ),
  );
  t.same(
    appended.map((a) => a.message.seq).sort((a, b) => a - b),
    Array.from({ length: 30 }, (_, i) => i + 1),
    "appends commit while every read connection is held",
  );
  await holder.query("SELECT pg_advisory_unlock(4343)");
  await Promise.all(slow);
  t.equal((await log.history(room, undefined, 50)).length, 30, "reads work again once the storm ends");
});

/** Whether a writer session is waiting on the test's advisory lock inside its commit (the trigger runs there). */
function committing(): Promise<boolean> {
  return withClient(async (c) => {
    const r = await c.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'chatrelay-writer' AND wait_event = 'advisory'",
      [DB],
    );
    return r.rows[0].n > 0;
  });
}

/** Whether a writer session is waiting for another transaction (the held batch's room row). */
function waitingOnRoomLock(): Promise<boolean> {
  return withClient(async (c) => {
    const r = await c.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'chatrelay-writer' AND wait_event_type = 'Lock'",
      [DB],
    );
    return r.rows[0].n > 0;
  });
}
