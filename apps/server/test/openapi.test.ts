import { problemSchema, SEED_SEND_PATH, SEED_SOCKET_PATH, SeedHeader } from "@chatrelay/protocol";
import { compileErrors, validate } from "@readme/openapi-parser";
import t from "tap";
import { CONSOLE_PATH } from "../src/ops/start-lines.js";
import { DOCS_PATH, OPENAPI_PATH, type RouteEntry, routesOf } from "../src/transport/openapi.js";
import { startTestServer } from "./helpers/server.js";

// The public port's OpenAPI document and its reference page, fetched over HTTP from a real node.
const server = await startTestServer();
t.teardown(() => server.shutdown());

type Operation = {
  summary?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string; required?: boolean }[];
  requestBody?: { content: Record<string, unknown> };
  responses: Record<string, { content?: Record<string, { schema: { $ref?: string; properties?: object } }> }>;
};
type Doc = {
  openapi: string;
  info: { description: string };
  tags: { name: string; description?: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { properties: object }>; securitySchemes: Record<string, unknown> };
};

const res = await fetch(`${server.http}${OPENAPI_PATH}`);
const doc = (await res.json()) as Doc;

/** Pages for a browser (the document, its reference page, the console): not part of the API. */
const PAGES = [OPENAPI_PATH, DOCS_PATH, CONSOLE_PATH];
const isPage = (url: string) => PAGES.some((page) => url === page || url.startsWith(`${page}/`));
const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

/** The validator dereferences in place: it gets a copy. */
const validateCopy = (document: unknown) => validate(structuredClone(document) as Parameters<typeof validate>[0]);

/** What a registered route lacks in the document: its operation, a summary, a known tag. */
function undocumented(routes: readonly RouteEntry[], document: Doc): string[] {
  const tagNames = new Set(document.tags.map((tag) => tag.name));
  const problems: string[] = [];
  for (const { method, url } of routes) {
    if (method === "HEAD" || isPage(url)) continue;
    const operation = document.paths[toOpenApiPath(url)]?.[method.toLowerCase()];
    if (operation === undefined) problems.push(`${method} ${url}: not in the document`);
    else if (!operation.summary) problems.push(`${method} ${url}: no summary`);
    else if (!operation.tags?.length || !operation.tags.every((tag) => tagNames.has(tag)))
      problems.push(`${method} ${url}: no tag, or one the document does not list`);
  }
  return problems;
}

t.test("/openapi.json is a valid OpenAPI 3.1 document", async (t) => {
  t.equal(res.status, 200);
  t.match(res.headers.get("content-type"), /^application\/json/);
  t.equal(doc.openapi, "3.1.0");
  const result = await validateCopy(doc);
  t.ok(result.valid, result.valid ? "valid" : compileErrors(result));

  // The validator really checks 3.1 documents: a broken copy is refused.
  const broken = { ...doc, paths: { ...doc.paths, "/healthz": { get: { responses: "none" } } } };
  t.notOk((await validateCopy(broken)).valid, "a 3.1 document with a malformed operation is refused");
});

t.test("every route the node registers is documented", async (t) => {
  const routes = routesOf(server.app);
  const urls = new Set(routes.map((r) => r.url));
  for (const url of ["/healthz", SEED_SEND_PATH, SEED_SOCKET_PATH, "/v1/rooms/:roomId/messages", DOCS_PATH]) {
    t.ok(urls.has(url), `the route list has ${url}`);
  }
  t.same(undocumented(routes, doc), [], "each route has an operation with a summary and a listed tag");

  // The check bites: a route the document does not know is reported.
  const extra = [...routes, { method: "GET", url: "/v1/rooms/:roomId/undocumented" }];
  t.same(undocumented(extra, doc), [
    ...undocumented(routes, doc),
    "GET /v1/rooms/:roomId/undocumented: not in the document",
  ]);

  // And the other way round: no operation without a route behind it.
  const registered = new Set(routes.map((r) => `${r.method.toLowerCase()} ${toOpenApiPath(r.url)}`));
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const method of Object.keys(operations)) t.ok(registered.has(`${method} ${path}`), `${method} ${path}`);
  }
  for (const hidden of [OPENAPI_PATH, DOCS_PATH, "/readyz", "/metrics", "/failpoints"]) {
    t.notOk(hidden in doc.paths, `${hidden} is not in the document`);
  }
});

t.test("the seed send: gateway headers, gateway secret, the seed's error body", async (t) => {
  const send = doc.paths[SEED_SEND_PATH]?.post as Operation;
  const headers = (send.parameters ?? []).filter((p) => p.in === "header");
  t.same(
    headers.map((h) => [h.name, h.required]),
    [SeedHeader.userIdx, SeedHeader.email, SeedHeader.nickname].map((name) => [name, true]),
    "x-forward-useridx, x-forward-email, x-forward-nickname, all required",
  );
  t.same(send.security, [{ gatewaySecret: [] }, {}], "the gateway's secret, or a trusted proxy");
  t.ok(send.requestBody?.content["application/json"], "a JSON body");
  t.same(Object.keys(send.responses["200"] ?? {}), ["description"], "200 has an empty body");
  const seedError = "#/components/schemas/SeedError";
  for (const status of ["202", "400", "401", "default"]) {
    t.equal(send.responses[status]?.content?.["application/json"]?.schema.$ref, seedError, `${status}: seed shape`);
  }
  t.same(Object.keys(doc.components.schemas.SeedError?.properties ?? {}), ["timestamp", "status", "message", "path"]);
});

t.test("v1: bearer auth, bodies, params, 201 and problem+json errors", async (t) => {
  t.match(doc.components.securitySchemes.bearerAuth, { type: "http", scheme: "bearer" });
  t.match(doc.components.securitySchemes.accessTokenQuery, { type: "apiKey", in: "query", name: "access_token" });
  const post = doc.paths["/v1/rooms/{roomId}/messages"]?.post as Operation;
  t.same(post.security, [{ bearerAuth: [] }, { accessTokenQuery: [] }]);
  t.ok(post.requestBody?.content["application/json"], "a JSON body");
  t.ok(
    post.parameters?.some((p) => p.in === "path" && p.name === "roomId" && p.required),
    "roomId is a path parameter",
  );
  t.same(Object.keys(post.responses["201"]?.content?.["application/json"]?.schema.properties ?? {}), [
    "id",
    "roomId",
    "seq",
    "sentAt",
  ]);
  const history = doc.paths["/v1/rooms/{roomId}/messages"]?.get as Operation;
  const query = (history.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name);
  t.same(query.sort(), ["before", "includeDeleted", "kinds", "limit"], "query parameters (the token: security)");

  const problem = "#/components/schemas/Problem";
  for (const [path, operations] of Object.entries(doc.paths)) {
    if (!path.startsWith("/v1/")) continue;
    for (const [method, operation] of Object.entries(operations)) {
      t.ok(
        operation.security?.some((s) => "bearerAuth" in s),
        `${method} ${path}: bearer auth`,
      );
      for (const status of Object.keys(operation.responses).filter((s) => s === "default" || Number(s) >= 400)) {
        const schema = operation.responses[status]?.content?.["application/problem+json"]?.schema;
        t.equal(schema?.$ref, problem, `${method} ${path} ${status}: problem+json`);
      }
    }
  }
  t.same(
    Object.keys(doc.components.schemas.Problem?.properties ?? {}),
    Object.keys(problemSchema.properties),
    "the problem shape is protocol's",
  );
});

t.test("WebSocket frames and the ops listener are described in the text", async (t) => {
  for (const path of [SEED_SOCKET_PATH, "/v1/rooms/{roomId}/presenter"]) {
    t.ok(doc.paths[path]?.get?.responses["101"], `${path}: 101 Switching Protocols`);
  }
  const tagText = doc.tags.map((tag) => tag.description ?? "").join("\n");
  for (const frame of ['"id":"start"', '"id":"sendChatting"', '"type":"ready"', '"type":"message"', '"type":"ack"']) {
    t.ok(tagText.includes(frame), `the frame ${frame} is described`);
  }
  for (const words of ["/readyz", "/metrics", "ops listener", "4001", "lastSeq"]) {
    t.ok(doc.info.description.includes(words), `the description mentions ${words}`);
  }
});

t.test("/docs: an HTML page whose assets all come from the node", async (t) => {
  const page = await fetch(`${server.http}${DOCS_PATH}`);
  t.equal(page.status, 200);
  t.match(page.headers.get("content-type"), /^text\/html/);
  const csp = page.headers.get("content-security-policy") ?? "";
  t.match(csp, /default-src 'self'/, "a content security policy keeps the page on this origin");
  t.notMatch(csp, /https?:|\*/, "and names no other host");
  const html = await page.text();
  t.notMatch(html, /(https?:)?\/\/[a-z0-9]/i, "no URL of another host in the HTML");
  const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
  t.ok(assets.length >= 4, "the page loads its scripts and styles");
  for (const asset of assets) {
    const got = await fetch(new URL(asset, `${server.http}${DOCS_PATH}`));
    t.equal(got.status, 200, `${asset} is served by the node`);
    await got.arrayBuffer();
  }
  const init = await (await fetch(`${server.http}${DOCS_PATH}/static/swagger-initializer.js`)).text();
  t.match(init, /validatorUrl: null/, "no call to an online validator");
});
