/**
 * The HTTP ceiling: the same route, body and JSON schemas as chatrelay's
 * `POST /v1/rooms/:roomId/messages`, answered 201 with the same result shape,
 * without authentication, relaying or logging. What fastify alone costs.
 */
import { randomUUID } from "node:crypto";
import {
  type PostMessageBody,
  postMessageBodySchema,
  postMessageResultSchema,
  roomParamsSchema,
} from "@chatrelay/protocol";
import Fastify from "fastify";
import { announceListening, exitWithParent } from "./child-util.js";

const app = Fastify({ logger: false, bodyLimit: 16_384 });
const seqs = new Map<number, number>();

app.post<{ Params: { roomId: string }; Body: PostMessageBody }>(
  "/v1/rooms/:roomId/messages",
  { schema: { params: roomParamsSchema, body: postMessageBodySchema, response: { 201: postMessageResultSchema } } },
  async (request, reply) => {
    const roomId = Number(request.params.roomId);
    const seq = (seqs.get(roomId) ?? 0) + 1;
    seqs.set(roomId, seq);
    return reply.code(201).send({ id: randomUUID(), roomId, seq, sentAt: new Date().toISOString() });
  },
);

await app.listen({ port: 0, host: "127.0.0.1" });
exitWithParent(() => app.close());
announceListening((app.server.address() as { port: number }).port);
