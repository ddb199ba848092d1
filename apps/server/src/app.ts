import { randomUUID } from "node:crypto";
import { ErrorCode, SEED_SEND_PATH, SEED_SOCKET_PATH } from "@chatrelay/protocol";
import websocket from "@fastify/websocket";
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { Logger } from "pino";
import type { GatewayTrust } from "./auth/gateway-trust.js";
import type { TokenVerifier } from "./auth/token-verifier.js";
import type { Database } from "./chatlog/database.js";
import { RoomStatsReader } from "./chatlog/room-stats.js";
import { UserErasure } from "./chatlog/user-erasure.js";
import type { Config } from "./config.js";
import type { ModerationRequest, ModerationService } from "./core/moderation.js";
import type { ChatLog } from "./core/ports.js";
import type { Relay } from "./core/relay.js";
import { RelayError } from "./core/relay-error.js";
import { failpoints } from "./ops/failpoints.js";
import type { Metrics } from "./ops/metrics.js";
import { consoleRoutes } from "./transport/console-routes.js";
import { eraseRoutes } from "./transport/erase-routes.js";
import { problem, seedError, seedStatusOf, statusOf } from "./transport/error-replies.js";
import { exportRoutes } from "./transport/export-routes.js";
import { failpointRoutes } from "./transport/failpoint-routes.js";
import { moderationRoutes } from "./transport/moderation-routes.js";
import { registerApiDocs } from "./transport/openapi.js";
import { opsRoutes, type ReadinessCheck } from "./transport/ops-routes.js";
import { PresenterSockets } from "./transport/presenter-sockets.js";
import { retentionRoutes } from "./transport/retention-routes.js";
import { roomStatusRoutes } from "./transport/room-status-routes.js";
import { seedRoutes } from "./transport/seed-routes.js";
import { statsRoutes } from "./transport/stats-routes.js";
import { v1Routes } from "./transport/v1-routes.js";

export interface AppDeps {
  config: Config;
  logger: Logger;
  relay: Relay;
  moderation: ModerationService;
  verifyToken: TokenVerifier;
  gatewayTrust: GatewayTrust;
  metrics: Metrics;
  readiness: ReadinessCheck[];
  /** The chat log's store, for the operator routes that read it directly (export, statistics). */
  db: Database;
  /** The node's chat log: erasure events go through its group commit (issue #13 erase). */
  chatLog: ChatLog;
}

declare module "fastify" {
  interface FastifyRequest {
    /** Set by handlers so the access log line carries them. */
    logContext?: { roomId?: number; seq?: number; msgId?: string; userId?: number };
  }
}

/** Builds the HTTP and WebSocket server over one relay core. */
export async function buildApp(deps: AppDeps): Promise<{ app: FastifyInstance; sockets: PresenterSockets }> {
  const { config } = deps;
  const app = Fastify({
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.limits.bodyLimitBytes,
    // A caller's (or the balancer's) request id is kept only when it is a plain token; it is echoed and logged.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Fastify's own refusals (a URL that does not decode, ...) in our shape, without the URL.
    frameworkErrors: (_err, _request, reply) => {
      const body = problem(ErrorCode.InvalidRequest, "the request URL is malformed");
      (reply as FastifyReply).code(400).type("application/problem+json").send(body);
    },
    // Behind a balancer, X-Forwarded-For from these addresses names the client (per-address limits).
    trustProxy: config.trustProxy.length > 0 ? config.trustProxy : false,
    return503OnClosing: true,
    forceCloseConnections: "idle",
    // Slow or silent clients cannot hold connections: a connection that sends nothing is cut after the
    // headers timeout, a request whose body trickles gets 408, an idle keep-alive connection is closed.
    // Checked every second (Node's default is every 30 s).
    connectionTimeout: config.http.headersTimeoutMs,
    requestTimeout: config.http.requestTimeoutMs,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    http: {
      headersTimeout: Math.min(config.http.headersTimeoutMs, config.http.requestTimeoutMs),
      connectionsCheckingInterval: Math.min(1000, config.http.headersTimeoutMs),
    },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });

  // JSON only: a text/plain body would otherwise reach the schema as a string.
  app.removeContentTypeParser("text/plain");

  app.addHook("onRequest", (request, reply, done) => {
    reply.header("x-request-id", request.id);
    done();
  });
  // One access line per request, with room and seq; never the query string (it may carry a token) nor the text.
  app.addHook("onResponse", (request, reply, done) => {
    request.log.info(
      {
        method: request.method,
        path: pathOf(request),
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 100) / 100,
        ...request.logContext,
      },
      "request",
    );
    done();
  });

  app.setErrorHandler((err: FastifyError | RelayError, request, reply) => {
    const { code, detail } = classify(err, request);
    const status = statusOf(code);
    // Back-pressure (store down, queue full) is expected under faults: one warn line, not a stack per refusal.
    if (status === 503) request.log.warn({ code, reason: detail }, "request refused: service unavailable");
    else if (status >= 500) request.log.error({ err }, "request failed");
    const retryAfter = err instanceof RelayError ? err.retryAfterSeconds : undefined;
    if (status === 503 || status === 429 || retryAfter !== undefined)
      reply.header("retry-after", String(retryAfter ?? 1));
    if (isPost(request)) deps.metrics.post(code);
    const route = request.routeOptions.url;
    if (route === SEED_SEND_PATH || route === SEED_SOCKET_PATH) {
      const seedStatus = seedStatusOf(code);
      return reply.code(seedStatus).send(seedError(seedStatus, detail, route));
    }
    // `instance` names the route, never the client's own path (it carries client input).
    return reply
      .code(status)
      .type("application/problem+json")
      .send(problem(code, detail, route));
  });
  app.setNotFoundHandler((_request, reply) => {
    reply.code(404).type("application/problem+json").send(problem(ErrorCode.NotFound, "no route matches this request"));
  });
  // `Expect` other than 100-continue: Node would answer 417 with no body.
  app.server.on("checkExpectation", (_req, res) => {
    res.writeHead(417, { "content-type": "application/problem+json", connection: "close" });
    res.end(
      JSON.stringify({ ...problem(ErrorCode.InvalidHeaders, "the Expect header is not supported"), status: 417 }),
    );
  });

  await app.register(websocket, {
    // autoPong off: pongs to a client's pings are written by the frame loop, inside the send-buffer bound.
    options: {
      maxPayload: config.limits.wsMaxFrameBytes,
      perMessageDeflate: false,
      clientTracking: true,
      autoPong: false,
    },
  });
  // Before any route: the OpenAPI document and the route list collect routes as they are added.
  await registerApiDocs(app as unknown as FastifyInstance);
  const sockets = new PresenterSockets(
    {
      relay: deps.relay,
      verifyToken: deps.verifyToken,
      presenterRoles: config.jwt.presenterRoles,
      sendBufferBytes: config.limits.sendBufferBytes,
      badFrameLimit: config.badFrames.limit,
      badFrameWindowMs: config.badFrames.windowMs,
      pendingStarts: { count: 0 },
      moderate: async (principal, roomId, change) => {
        const actor = { userId: principal.userId, modRooms: principal.modRooms };
        const done = await deps.moderation.act(actor, { ...change, roomId } as ModerationRequest);
        return { action: done.action, seq: done.event.seq };
      },
      log: deps.logger,
    },
    config.wsPingIntervalMs,
  );
  app.get("/healthz", async () => ({ status: "ok" }));
  await app.register(seedRoutes, {
    relay: deps.relay,
    gatewayTrust: deps.gatewayTrust,
    sockets,
    metrics: deps.metrics,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    maxPendingStarts: config.maxPendingStarts,
    trustsProxies: config.trustProxy.length > 0,
  });
  await app.register(v1Routes, {
    relay: deps.relay,
    verifyToken: deps.verifyToken,
    sockets,
    metrics: deps.metrics,
    historyMaxLimit: config.limits.historyMaxLimit,
    presenterRoles: config.jwt.presenterRoles,
    // Deleted text in history: the room's presenter and moderators (stored or by claim).
    canSeeDeleted: (principal, roomId) => deps.moderation.moderates(principal, roomId),
  });
  await app.register(moderationRoutes, { moderation: deps.moderation, verifyToken: deps.verifyToken });
  await app.register(roomStatusRoutes, { relay: deps.relay, verifyToken: deps.verifyToken });
  await app.register(retentionRoutes, { db: deps.db, policy: deps.config.retention, verifyToken: deps.verifyToken });
  await app.register(exportRoutes, { db: deps.db, verifyToken: deps.verifyToken });
  const erasure = new UserErasure(deps.db, deps.chatLog, (event) => deps.relay.publish(event));
  await app.register(eraseRoutes, { erasure, verifyToken: deps.verifyToken });
  await app.register(statsRoutes, { stats: new RoomStatsReader(deps.db), verifyToken: deps.verifyToken });
  await app.register(consoleRoutes);
  return { app: app as unknown as FastifyInstance, sockets };
}

/** The ops listener: liveness, readiness and metrics, on their own port so the load balancer never serves them. */
export async function buildOpsApp(deps: AppDeps, isDraining: () => boolean): Promise<FastifyInstance> {
  const ops = Fastify({
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true }),
    connectionTimeout: deps.config.http.headersTimeoutMs,
    requestTimeout: deps.config.http.requestTimeoutMs,
  });
  await ops.register(opsRoutes, { metrics: deps.metrics, readiness: deps.readiness, isDraining });
  if (deps.config.failpoints !== undefined) await ops.register(failpointRoutes, { failpoints });
  return ops as unknown as FastifyInstance;
}

/** The two chat posts: their outcomes are counted in chatrelay_posts_total. */
function isPost(request: FastifyRequest): boolean {
  if (request.method !== "POST") return false;
  const route = request.routeOptions.url;
  return route === SEED_SEND_PATH || route === "/v1/rooms/:roomId/messages";
}

function pathOf(request: FastifyRequest): string {
  const q = request.url.indexOf("?");
  return q === -1 ? request.url : request.url.slice(0, q);
}

/** What a request id from outside may look like (as nginx's map in deploy/nginx/nginx.conf). */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Maps any error to a stable code and a message safe to show the client. */
function classify(err: FastifyError | RelayError, request: FastifyRequest): { code: ErrorCode; detail: string } {
  if (err instanceof RelayError) return { code: err.code, detail: err.message };
  const e = err as FastifyError;
  if (e.validation) {
    const where = e.validationContext;
    const code =
      where === "params"
        ? ErrorCode.InvalidRoom
        : where === "querystring"
          ? ErrorCode.InvalidCursor
          : ErrorCode.InvalidBody;
    return { code, detail: `${where ?? "request"}${e.message.replace(/^(body|params|querystring)/, "")}` };
  }
  switch (e.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return { code: ErrorCode.InvalidJson, detail: "request body is not valid JSON" };
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return {
        code: ErrorCode.BodyTooLarge,
        detail: `request body is larger than ${request.server.initialConfig.bodyLimit} bytes`,
      };
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return { code: ErrorCode.UnsupportedMediaType, detail: "send the body as application/json" };
  }
  if (e.statusCode === 400 && e instanceof SyntaxError) {
    return { code: ErrorCode.InvalidJson, detail: "request body is not valid JSON" };
  }
  if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) {
    return { code: ErrorCode.InvalidBody, detail: e.message };
  }
  return { code: ErrorCode.Internal, detail: "internal error" };
}
