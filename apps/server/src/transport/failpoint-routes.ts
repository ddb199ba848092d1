import type { FastifyPluginAsync } from "fastify";
import { type Failpoints, isFailpointName, parseFailAction } from "../ops/failpoints.js";

const MAX_ACTION_BYTES = 64;

/**
 * Test-only control of the failpoints, on the ops listener, registered only
 * when the node started with CHATRELAY_FAILPOINTS: GET /failpoints lists the
 * set ones; PUT /failpoints/:name with a text body ("pause", "1*crash", "off")
 * sets one and lets hits paused on it go on.
 */
export const failpointRoutes: FastifyPluginAsync<{ failpoints: Failpoints }> = async (app, { failpoints }) => {
  app.get("/failpoints", async () => failpoints.list());

  app.put<{ Params: { name: string } }>(
    "/failpoints/:name",
    { bodyLimit: MAX_ACTION_BYTES },
    async (request, reply) => {
      const { name } = request.params;
      if (!isFailpointName(name)) return reply.code(404).send({ error: "unknown failpoint" });
      const body = request.body;
      const action = typeof body === "string" ? parseFailAction(body) : undefined;
      if (action === undefined) {
        return reply
          .code(400)
          .send({ error: "body must be text/plain: off, pause, crash, drop, error, sleep(ms), optionally N* first" });
      }
      failpoints.set(name, action);
      return reply.code(204).send();
    },
  );
};
