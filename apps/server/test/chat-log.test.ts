import pg from "pg";
import t from "tap";
import { createTestDatabase } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { NodeProcess } from "./helpers/processes.js";
import { connectPresenter, pgliteDir, readLog, readyOf } from "./helpers/races-nodes.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// Ordering, idempotency and durability, on both chat log targets: embedded PGlite and a real PostgreSQL.
const pgDb = await createTestDatabase();
t.teardown(() => pgDb.drop());

for (const [target, env] of [
  ["PGlite", {}],
  ["PostgreSQL", { DATABASE_URL: pgDb.url }],
] as const) {
  t.test(target, async (t) => {
    const server: TestServer = await startTestServer(env);
    t.teardown(() => server.shutdown());

    async function presenter(room: number, query = ""): Promise<TestSocket> {
      const token = await mintToken({ user_idx: room });
      const s = new TestSocket(`${server.ws}/v1/rooms/${room}/presenter?access_token=${token}${query}`);
      await s.open();
      await s.next((f) => f.type === "ready", "ready");
      return s;
    }
    const post = (room: number, token: string, body: object) =>
      request<Record<string, unknown>>(`${server.http}/v1/rooms/${room}/messages`, {
        headers: { authorization: `Bearer ${token}` },
        body,
      });

    t.test("50 concurrent senders: gapless seqs, presenter receives them in seq order, all in the log", async (t) => {
      const room = 501;
      const socket = await presenter(room);
      const senders = await Promise.all(Array.from({ length: 50 }, (_, i) => mintToken({ user_idx: 1000 + i })));
      const PER_SENDER = 6;
      const results = await Promise.all(
        senders.map(async (token, i) => {
          const seqs: number[] = [];
          for (let k = 0; k < PER_SENDER; k++) {
            const res = await post(room, token, { text: `s${i}-m${k}` });
            t.equal(res.status, 201);
            seqs.push(res.body.seq as number);
          }
          return seqs;
        }),
      );
      const total = 50 * PER_SENDER;
      const all = results.flat().sort((a, b) => a - b);
      t.same(
        all,
        Array.from({ length: total }, (_, i) => i + 1),
        "every seq 1..N handed out exactly once",
      );
      for (const seqs of results) {
        t.ok(
          seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number)),
          "one sender's sequential posts get increasing seqs",
        );
      }
      await socket.until(() => socket.json().filter((f) => f.type === "message").length >= total, `${total} frames`);
      const received = socket
        .json()
        .filter((f) => f.type === "message")
        .map((f) => f.seq as number);
      t.same(
        received,
        Array.from({ length: total }, (_, i) => i + 1),
        "presenter got 1..N in order, no duplicate",
      );
      const logged = await server.relay.history(room, undefined, 1000);
      t.equal(logged.length, total, "every 2xx message is in the log");
      socket.close(1000);
    });

    t.test("idempotent sends: a retry with the same clientMsgId returns the first result", async (t) => {
      const room = 502;
      const socket = await presenter(room);
      const token = await mintToken({ user_idx: 1100 });
      const first = await post(room, token, { text: "once", clientMsgId: "c-1" });
      t.equal(first.status, 201);
      const retry = await post(room, token, { text: "once", clientMsgId: "c-1" });
      t.equal(retry.status, 201);
      t.same(retry.body, first.body, "same id, seq and sentAt");
      t.equal(retry.headers.get("idempotent-replayed"), "true");
      // Concurrent retries (same node) also collapse into one message.
      const burst = await Promise.all(
        Array.from({ length: 8 }, () => post(room, token, { text: "burst", clientMsgId: "c-2" })),
      );
      t.equal(new Set(burst.map((r) => r.body.id)).size, 1, "8 concurrent retries -> one message");
      // Another sender may reuse the same client id: it is scoped per sender.
      const other = await post(room, await mintToken({ user_idx: 1101 }), { text: "mine", clientMsgId: "c-1" });
      t.equal(other.status, 201);
      t.not(other.body.id, first.body.id);
      // Same id, different text: a client bug, refused.
      const conflict = await post(room, token, { text: "different", clientMsgId: "c-1" });
      t.equal(conflict.status, 422);
      t.equal(conflict.body.code, "idempotency_conflict");
      const logged = await server.relay.history(room, undefined, 100);
      t.same(
        logged.map((m) => m.text),
        ["mine", "burst", "once"],
        "three messages in the log",
      );
      await socket.until(() => socket.json().filter((f) => f.type === "message").length === 3, "3 frames");
      // After the room went off air, a retry still gets its first result instead of "not live".
      socket.send({ type: "stop" });
      await socket.waitClose();
      const late = await post(room, token, { text: "once", clientMsgId: "c-1" });
      t.equal(late.status, 201);
      t.equal(late.body.id, first.body.id);
      const fresh = await post(room, token, { text: "new", clientMsgId: "c-9" });
      t.equal(fresh.status, 409, "a new message to the off-air room is refused");
    });

    t.test("group commit: concurrent posts share batches, and each answer comes after its own commit", async (t) => {
      const room = 504;
      const socket = await presenter(room);
      const batchesBefore = await logBatches();
      const viewer = await mintToken({ user_idx: 1300 });
      const reader = target === "PostgreSQL" ? new pg.Client({ connectionString: pgDb.url }) : undefined;
      await reader?.connect();
      t.teardown(() => reader?.end());
      const visibleOnAnswer = await Promise.all(
        Array.from({ length: 60 }, async (_, i) => {
          const res = await post(room, viewer, { text: `g${i}` });
          t.equal(res.status, 201);
          if (!reader) return true;
          // Read through another session the moment the 2xx arrives: committed means visible.
          const rows = await reader.query("SELECT 1 FROM chat_message WHERE id = $1", [res.body.id]);
          return rows.rowCount === 1;
        }),
      );
      t.ok(visibleOnAnswer.every(Boolean), "every answered message is already committed");
      const batchesAfter = await logBatches();
      t.equal(batchesAfter.rows - batchesBefore.rows, 60, "60 rows written");
      t.ok(
        batchesAfter.batches - batchesBefore.batches < 60,
        `in ${batchesAfter.batches - batchesBefore.batches} batches: requests shared INSERTs and commits`,
      );
      socket.close(1000);
    });

    /** Rows and batches the log writer committed so far, from the node's own metrics. */
    async function logBatches(): Promise<{ rows: number; batches: number }> {
      const text = (await request(`${server.ops}/metrics`)).text;
      const rows = Number(/^chatrelay_log_batch_rows_sum (\d+)/m.exec(text)?.[1] ?? Number.NaN);
      const batches = Number(/^chatrelay_log_batch_rows_count (\d+)/m.exec(text)?.[1] ?? Number.NaN);
      return { rows, batches };
    }

    t.test("a 2xx message survives a SIGKILL of the node: read back by another process", async (t) => {
      const room = 503;
      const dir = pgliteDir();
      t.teardown(dir.remove);
      const nodeEnv: Record<string, string> =
        target === "PostgreSQL" ? { DATABASE_URL: pgDb.url } : { PGLITE_DATA_DIR: dir.path };
      const node = await NodeProcess.start(`durable-${target}`, nodeEnv);
      t.teardown(() => node.kill("SIGKILL"));
      await readyOf(await connectPresenter(node, room));
      const res = await request<Record<string, unknown>>(`${node.http}/v1/rooms/${room}/messages`, {
        headers: { authorization: `Bearer ${await mintToken({ user_idx: 1200 })}` },
        body: { text: "durable" },
      });
      t.equal(res.status, 201);
      // At once: no shutdown hook, no flush; only what was committed before the answer survives.
      await node.kill("SIGKILL");
      if (target === "PostgreSQL") {
        const c = new pg.Client({ connectionString: pgDb.url });
        await c.connect();
        t.teardown(() => c.end());
        const rows = await c.query("SELECT seq, text, sender_id FROM chat_message WHERE id = $1", [res.body.id]);
        t.same(
          rows.rows,
          [{ seq: String(res.body.seq), text: "durable", sender_id: "1200" }],
          "read by a fresh connection",
        );
      } else {
        const again = await NodeProcess.start(`durable-${target}-again`, nodeEnv);
        t.teardown(() => again.kill("SIGKILL"));
        t.same(
          (await readLog(again, room)).map((m) => [m.id, m.seq, m.text]),
          [[res.body.id, res.body.seq, "durable"]],
          "read by a node restarted on the same folder",
        );
      }
    });
  });
}
