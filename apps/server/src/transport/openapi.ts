import { ErrorCode, problemSchema, SEED_SEND_PATH, SEED_SOCKET_PATH } from "@chatrelay/protocol";
import swagger, { type FastifyDynamicSwaggerOptions, type SwaggerTransform } from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";
import { ApiTag, SchemaName, SecurityScheme, schemaRef, seedErrorBodySchema } from "./api-doc.js";
import { API_DESCRIPTION, API_TAGS } from "./api-doc-text.js";
import { seedStatusOf, statusOf } from "./error-replies.js";

export const OPENAPI_PATH = "/openapi.json";
export const DOCS_PATH = "/docs";

/**
 * Everything from the node itself: no CDN, no validator badge, no framing by other sites. (The one
 * inline style swagger-ui tries, in the Swagger logo that the page's own logo replaces, is blocked.)
 */
const DOCS_CSP = [
  "default-src 'self'",
  "base-uri 'self'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  "style-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'self'",
].join("; ");

/** The v1 error body as the document shows it: protocol's problemSchema, with the codes listed. */
const problemDoc = {
  ...problemSchema,
  required: [...problemSchema.required],
  description:
    "RFC 9457 problem details; clients switch on `code`. `instance` names the route, never the request's URL.",
  properties: { ...problemSchema.properties, code: { type: "string" as const, enum: Object.values(ErrorCode) } },
};

export interface RouteEntry {
  method: string;
  url: string;
}

const registered = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Every route added to `app` after registerApiDocs (tests check each is in the document). */
export function routesOf(app: FastifyInstance): readonly RouteEntry[] {
  return registered.get(app) ?? [];
}

/**
 * The OpenAPI 3.1 document (built from the routes' own schemas) at GET /openapi.json and its
 * reference page at GET /docs. Register before the routes: both collect them as they are added.
 */
export async function registerApiDocs(app: FastifyInstance): Promise<void> {
  const routes: RouteEntry[] = [];
  registered.set(app, routes);
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
  });

  const swaggerOptions: FastifyDynamicSwaggerOptions = {
    openapi: {
      openapi: "3.1.0",
      info: { title: "chatrelay", version: "1", description: API_DESCRIPTION },
      tags: API_TAGS,
      components: {
        schemas: {
          [SchemaName.problem]: problemDoc,
          [SchemaName.seedError]: { ...seedErrorBodySchema, required: [...seedErrorBodySchema.required] },
        },
        securitySchemes: {
          [SecurityScheme.bearer]: {
            type: "http",
            scheme: "bearer",
            bearerFormat: "JWT",
            description: "A JWT with the user id in `user_idx` (or a numeric `sub`).",
          },
          [SecurityScheme.accessToken]: {
            type: "apiKey",
            in: "query",
            name: "access_token",
            description: "The same JWT in the query (browsers' WebSocket API cannot set headers); prefer the header.",
          },
          [SecurityScheme.gatewaySecret]: {
            type: "apiKey",
            in: "header",
            name: "x-gateway-secret",
            description:
              "`GATEWAY_SECRET`, added by the API gateway; without it, only `TRUSTED_PROXIES` peers are trusted.",
          },
        },
      },
    },
    transform: documentRoute,
  };
  await app.register(swagger, swaggerOptions);
  await app.register(swaggerUi, {
    routePrefix: DOCS_PATH,
    staticCSP: DOCS_CSP,
    theme: { title: "chatrelay API" },
    uiConfig: { docExpansion: "list", defaultModelsExpandDepth: 0 },
  });
  app.get(OPENAPI_PATH, { schema: { hide: true } }, async () => app.swagger());
}

const HEALTHZ_DOC = {
  summary: "Liveness",
  description: "Answers while the process runs. Readiness (`/readyz`) is on the ops listener only.",
  tags: [ApiTag.health],
  response: {
    200: { type: "object", required: ["status"], properties: { status: { type: "string", enum: ["ok"] } } },
  },
};

const SUCCESS: Record<string, string> = { 200: "OK", 201: "Created: committed to the chat log" };

/**
 * Adds to a route's entry in the document what its validated schema must not carry: error bodies
 * under their real media type, WebSocket upgrades, `/healthz`'s text, the route's `config.apiDoc`.
 * Returns copies; the route's own schema is never changed.
 */
const documentRoute: SwaggerTransform = ({ schema, url, route }) => {
  const own = url === "/healthz" ? { ...schema, ...HEALTHZ_DOC } : { ...schema };
  const { response: extraResponses, ...extra } = route.config?.apiDoc ?? {};
  const seed = url === SEED_SEND_PATH || url === SEED_SOCKET_PATH;
  const given: Record<string, unknown> = { ...(own.response as object | undefined), ...extraResponses };
  if (typeof route.wsHandler === "function") {
    given[101] = {
      type: "null",
      description: "Switching Protocols: the socket is open; its frames are under the tag.",
    };
    given[426] = { description: "A plain GET without a WebSocket upgrade." };
  }
  const response: Record<string, unknown> = {};
  for (const [status, entry] of Object.entries(given)) response[status] = documentResponse(status, entry, seed);
  response.default = errorResponse(otherErrors(Object.keys(given), seed), seed);
  return { schema: { ...own, ...extra, response }, url };
};

function documentResponse(status: string, entry: unknown, seed: boolean): unknown {
  const given = entry as { description?: string; content?: unknown; type?: unknown };
  if (Number(status) >= 400) return errorResponse(given.description ?? codesOf(Number(status), seed), seed);
  if (given.content !== undefined || given.type === "null") return entry;
  return {
    description: given.description ?? SUCCESS[status] ?? "OK",
    content: { "application/json": { schema: entry } },
  };
}

function errorResponse(description: string, seed: boolean): unknown {
  return seed
    ? { description, content: { "application/json": { schema: schemaRef(SchemaName.seedError) } } }
    : { description, content: { "application/problem+json": { schema: schemaRef(SchemaName.problem) } } };
}

/** The error codes answered with `status` (the seed's body has no code: its statuses only). */
function codesOf(status: number, seed: boolean): string {
  if (seed) return "Refused (the seed's error shape).";
  const codes = Object.values(ErrorCode).filter((code) => statusOf(code) === status);
  return codes.length === 0 ? "Refused." : `Refused: ${codes.map((c) => `\`${c}\``).join(", ")}.`;
}

/** The `default` response: every error status the route's own list leaves out, with its codes. */
function otherErrors(listed: string[], seed: boolean): string {
  const byStatus = new Map<number, string[]>();
  for (const code of Object.values(ErrorCode)) {
    const status = seed ? seedStatusOf(code) : statusOf(code);
    if (listed.includes(String(status))) continue;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const lines = [...byStatus.entries()]
    .sort(([a], [b]) => a - b)
    .map(([status, codes]) => (seed ? `${status}` : `${status} ${codes.map((c) => `\`${c}\``).join(", ")}`));
  return `Other errors this server answers with (not every route can): ${lines.join("; ")}.`;
}
