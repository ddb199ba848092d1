/**
 * The Socket.IO peer doing chatrelay's job the way a typical Socket.IO app
 * would. PEER_ROLE=ingest: the same HTTP post route (same JSON schemas, the
 * same HS256 bearer check with jose) that stamps a per-room seq and does
 * `io.to(room).emit(...)`. PEER_ROLE=edge: where presenters connect (token
 * in the handshake, one room each). The Redis adapter carries the emit from
 * ingest to edge. No chat log: nothing is made durable.
 *
 * With PEER_LOG_DATABASE_URL (ingest only) it is the naive chat log: each
 * message is one awaited `INSERT` into `chat_message` through a `pg` pool
 * (PEER_LOG_POOL connections, default 10, pg's own default) before the emit
 * and the answer, so a 201 means the row is committed. The room's seq is
 * stamped after the INSERT returns, so emits leave in seq order although
 * INSERTs of one room finish in any order; the row itself carries no seq.
 */
import { randomUUID } from "node:crypto";
import {
  type PostMessageBody,
  postMessageBodySchema,
  postMessageResultSchema,
  roomParamsSchema,
} from "@chatrelay/protocol";
import { createAdapter } from "@socket.io/redis-adapter";
import Fastify from "fastify";
import { Redis } from "ioredis";
import { jwtVerify } from "jose";
import pg from "pg";
import { Server } from "socket.io";
import { announceListening, exitWithParent, requireEnv } from "./child-util.js";

const role = requireEnv("PEER_ROLE");
const redisUrl = requireEnv("REDIS_URL");
const prefix = requireEnv("REDIS_KEY_PREFIX");
const key = new TextEncoder().encode(requireEnv("JWT_SECRET"));

async function verify(token: string | undefined): Promise<{ userId: number; nickname: string }> {
  if (token === undefined) throw new Error("missing token");
  const { payload } = await jwtVerify(token, key, { algorithms: ["HS256"] });
  const userId = payload.user_idx;
  if (typeof userId !== "number" || !Number.isSafeInteger(userId) || userId <= 0) throw new Error("no user_idx");
  return { userId, nickname: typeof payload.nickname === "string" ? payload.nickname : `user-${userId}` };
}

const pub = new Redis(redisUrl, { lazyConnect: true });
const sub = new Redis(redisUrl, { lazyConnect: true });
await Promise.all([pub.connect(), sub.connect()]);

const app = Fastify({ logger: false, bodyLimit: 16_384 });
const io = new Server(app.server, {
  transports: ["websocket"],
  serveClient: false,
  adapter: createAdapter(pub, sub, { key: `${prefix}socket.io` }),
});
// Commands run in order on the subscriber connection: once this answers, the adapter's own psubscribe is active.
await sub.psubscribe(`${prefix}socket.io-barrier`);

/** The naive chat log's pool and table, when PEER_LOG_DATABASE_URL is set. */
async function openNaiveLog(url: string): Promise<pg.Pool> {
  const pool = new pg.Pool({ connectionString: url, max: Number(process.env.PEER_LOG_POOL ?? 10) });
  await pool.query(`CREATE TABLE IF NOT EXISTS chat_message (
    id uuid PRIMARY KEY,
    room_id integer NOT NULL,
    sender_id integer NOT NULL,
    nickname text NOT NULL,
    user_type text NOT NULL,
    text text NOT NULL,
    sent_at timestamptz NOT NULL
  )`);
  // What a chat app reads its history by.
  await pool.query("CREATE INDEX IF NOT EXISTS chat_message_room_sent_at ON chat_message (room_id, sent_at)");
  return pool;
}

const logUrl = process.env.PEER_LOG_DATABASE_URL;
const naiveLog = role === "ingest" && logUrl ? await openNaiveLog(logUrl) : undefined;
const INSERT_MESSAGE =
  "INSERT INTO chat_message (id, room_id, sender_id, nickname, user_type, text, sent_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

if (role === "ingest") {
  const seqs = new Map<number, number>();
  app.post<{ Params: { roomId: string }; Body: PostMessageBody }>(
    "/v1/rooms/:roomId/messages",
    { schema: { params: roomParamsSchema, body: postMessageBodySchema, response: { 201: postMessageResultSchema } } },
    async (request, reply) => {
      const auth = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? "")?.[1];
      let sender: { userId: number; nickname: string };
      try {
        sender = await verify(auth);
      } catch {
        return reply.code(401).send({ error: "unauthorized" });
      }
      const text = request.body.text.trim();
      if (text.length === 0) return reply.code(400).send({ error: "text must not be empty" });
      const roomId = Number(request.params.roomId);
      const id = randomUUID();
      const sentAt = new Date().toISOString();
      if (naiveLog) {
        try {
          await naiveLog.query(INSERT_MESSAGE, [id, roomId, sender.userId, sender.nickname, "viewer", text, sentAt]);
        } catch {
          return reply.code(503).send({ error: "chat log unavailable" });
        }
      }
      const seq = (seqs.get(roomId) ?? 0) + 1;
      seqs.set(roomId, seq);
      const message = {
        id,
        roomId,
        seq,
        senderId: sender.userId,
        nickname: sender.nickname,
        userType: "viewer",
        text,
        sentAt,
      };
      io.to(`room:${roomId}`).emit("message", message);
      return reply.code(201).send({ id: message.id, roomId, seq, sentAt: message.sentAt });
    },
  );
} else if (role === "edge") {
  io.use((socket, next) => {
    const room = Number(socket.handshake.query.room);
    verify(socket.handshake.auth.token as string | undefined).then(
      (p) => (p.userId === room ? next() : next(new Error("only the room's presenter may join"))),
      () => next(new Error("invalid token")),
    );
  });
  io.on("connection", (socket) => {
    const room = Number(socket.handshake.query.room);
    void socket.join(`room:${room}`);
    socket.emit("ready", { roomId: room, lastSeq: 0 });
  });
} else {
  process.stderr.write(`PEER_ROLE must be ingest or edge, not ${role}\n`);
  process.exit(2);
}

await app.listen({ port: 0, host: "127.0.0.1" });
exitWithParent(async () => {
  io.disconnectSockets(true);
  await app.close();
  pub.disconnect();
  sub.disconnect();
  await naiveLog?.end();
});
announceListening((app.server.address() as { port: number }).port);
