import { ErrorCode, problemSchema, type RoomStatus, roomParamsSchema, roomStatusSchema } from "@chatrelay/protocol";
import type { FastifyPluginAsync } from "fastify";
import type { TokenVerifier } from "../auth/token-verifier.js";
import type { Relay } from "../core/relay.js";
import { RelayError } from "../core/relay-error.js";
import { ApiTag, BEARER_SECURITY } from "./api-doc.js";
import { bearerAuthentication } from "./authenticate.js";
import { parseId } from "./ids.js";

interface RoomStatusRoutesOptions {
  relay: Relay;
  verifyToken: TokenVerifier;
}

/** `GET /v1/rooms/:roomId/status`: any valid token; what the console's room view and operators look at. */
export const roomStatusRoutes: FastifyPluginAsync<RoomStatusRoutesOptions> = async (app, opts) => {
  app.get<{ Params: { roomId: string } }>(
    "/v1/rooms/:roomId/status",
    {
      schema: {
        summary: "Read a room's status",
        description: "Any valid token: live, grace or offline, the node holding its presenter, its last seq.",
        tags: [ApiTag.messages],
        security: BEARER_SECURITY,
        params: roomParamsSchema,
        response: { 200: roomStatusSchema, 400: problemSchema, 401: problemSchema, 503: problemSchema },
      },
      onRequest: bearerAuthentication(opts.verifyToken),
    },
    async (request): Promise<RoomStatus> => {
      const roomId = parseId(request.params.roomId);
      if (roomId === undefined) throw new RelayError(ErrorCode.InvalidRoom, "room id must be a positive integer");
      request.logContext = { roomId };
      try {
        return { roomId, ...(await opts.relay.roomStatus(roomId)) };
      } catch (err) {
        throw new RelayError(
          ErrorCode.ServiceUnavailable,
          "the room's status cannot be read now; try again shortly",
          err,
          2,
        );
      }
    },
  );
};
