import { SeedHeader } from "@chatrelay/protocol";
import type {} from "@fastify/swagger"; // its FastifySchema keywords: summary, description, tags, security

/**
 * What the route files add to their options for the OpenAPI document (transport/openapi.ts).
 * Only descriptive keywords: nothing here is validated or changes how a route answers.
 */

/** The document's tags, in the order the reference page lists them (texts in api-doc-text.ts). */
export const ApiTag = {
  seed: "seed",
  messages: "messages",
  presenter: "presenter socket",
  moderation: "moderation",
  logManagement: "log management",
  health: "health",
} as const;

/** Security scheme names (components.securitySchemes in openapi.ts). */
export const SecurityScheme = {
  bearer: "bearerAuth",
  accessToken: "accessTokenQuery",
  gatewaySecret: "gatewaySecret",
} as const;

/** Named schemas (components.schemas in openapi.ts) and a reference to one. */
export const SchemaName = { problem: "Problem", seedError: "SeedError" } as const;
export const schemaRef = (name: (typeof SchemaName)[keyof typeof SchemaName]) => ({
  $ref: `#/components/schemas/${name}`,
});

/** Alternatives: any one entry satisfies a route; `{}` is "no credential". */
type Security = ReadonlyArray<Record<string, readonly string[]>>;

/** Every v1 route: a bearer JWT in `Authorization`, or the same token as `?access_token=`. */
export const BEARER_SECURITY: Security = [{ [SecurityScheme.bearer]: [] }, { [SecurityScheme.accessToken]: [] }];

/** The seed send: the gateway's shared secret, or no credential when the peer is a trusted proxy. */
export const GATEWAY_SECURITY: Security = [{ [SecurityScheme.gatewaySecret]: [] }, {}];

/** Schema keywords for the document only, merged in by openapi.ts's transform (never validated). */
export interface ApiDocExtras {
  headers?: Record<string, unknown>;
  response?: Record<string, unknown>;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** Documentation the route's own schema must not carry (it would change validation or serialization). */
    apiDoc?: ApiDocExtras;
  }
}

/** The seed's error body (`SeedErrorBody`): also the 202 that asks a presenter to reconnect. */
export const seedErrorBodySchema = {
  type: "object",
  required: ["timestamp", "status", "message", "path"],
  properties: {
    timestamp: { type: "string", description: "`yyyy-MM-dd HH:mm:ss`, the server's local time" },
    status: { type: "integer" },
    message: { type: "string", description: "The server's own words; nothing the client sent." },
    path: { type: "string", description: "The route, never the request's own URL." },
  },
} as const;

/**
 * The seed send's gateway headers: documented here, checked by the handler itself (its own
 * error messages, in the seed's error shape), so they are not in the route's validated schema.
 */
export const seedSendDoc: ApiDocExtras = {
  headers: {
    type: "object",
    required: [SeedHeader.userIdx, SeedHeader.email, SeedHeader.nickname],
    properties: {
      [SeedHeader.userIdx]: {
        type: "string",
        pattern: "^[1-9][0-9]{0,15}$",
        description: "The sender's user id, set by the API gateway (`x-forward-userIdx`); at most 2^53 - 1.",
      },
      [SeedHeader.email]: { type: "string", description: "The sender's e-mail, set by the API gateway." },
      [SeedHeader.nickname]: {
        type: "string",
        description: "The sender's display name, URL-encoded UTF-8 (`%EC%95%A8...`), set by the API gateway.",
      },
    },
  },
  response: {
    200: { type: "null", description: "Committed to the chat log; empty body." },
    202: {
      description:
        'The room\'s own presenter chatted while its socket is reconnecting: the message is kept and delivered on resume; `message` is "reconnect your session".',
      content: { "application/json": { schema: schemaRef(SchemaName.seedError) } },
    },
    400: {
      description:
        "Missing or invalid gateway headers, `presenterIdx` null for a viewer, malformed JSON, a refused text, or the room is not live (`not broadcasting: the presenter is not connected`).",
    },
    401: { description: "The request did not come through the configured API gateway." },
  },
};
