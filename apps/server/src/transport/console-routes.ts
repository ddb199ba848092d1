import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ErrorCode } from "@chatrelay/protocol";
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import { problem } from "./error-replies.js";

/** One file the console serves, read once at start-up. */
interface Asset {
  body: Buffer;
  type: string;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".svg": "image/svg+xml",
};

/**
 * The browser resolves the console's bare imports with an import map: no bundler, no CDN; the
 * console and the SDK are served as the ES modules `pnpm build` wrote.
 */
const IMPORT_MAP = JSON.stringify({
  imports: {
    "@chatrelay/client": "/console/lib/client/index.js",
    "@chatrelay/protocol": "/console/lib/protocol/index.js",
  },
});

/** Where the built files are: the workspace packages the server depends on. */
function packageDirs(): { consoleDir: string; clientDist: string; protocolDist: string } {
  const resolved = (specifier: string) => fileURLToPath(import.meta.resolve(specifier));
  return {
    consoleDir: dirname(resolved("@chatrelay/console/package.json")),
    clientDist: dirname(resolved("@chatrelay/client")),
    protocolDist: dirname(resolved("@chatrelay/protocol")),
  };
}

/** Every servable file, by its path under /console/: a fixed set, so no request path ever reaches the file system. */
function loadAssets(): Map<string, Asset> {
  const { consoleDir, clientDist, protocolDist } = packageDirs();
  const assets = new Map<string, Asset>();
  const add = (prefix: string, dir: string, extensions: string[]) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const ext = extensions.find((e) => name.endsWith(e));
      if (ext === undefined) continue;
      assets.set(`${prefix}${name}`, { body: readFileSync(join(dir, name)), type: TYPES[ext] as string });
    }
  };
  add("", join(consoleDir, "public"), [".html", ".css", ".svg"]);
  add("app/", join(consoleDir, "dist"), [".js"]);
  add("lib/client/", clientDist, [".js"]);
  add("lib/protocol/", protocolDist, [".js"]);
  const page = assets.get("index.html");
  if (page !== undefined) {
    const html = page.body
      .toString("utf8")
      .replace("<!--importmap-->", `<script type="importmap">${IMPORT_MAP}</script>`);
    assets.set("index.html", { body: Buffer.from(html), type: page.type });
  }
  return assets;
}

/**
 * Only this origin's scripts and the import map (by its hash); connections (fetch and the
 * presenter's WebSocket) to this origin only; never framed.
 */
const CSP = [
  "default-src 'none'",
  `script-src 'self' 'sha256-${createHash("sha256").update(IMPORT_MAP).digest("base64")}'`,
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The web console at /console (packages/console), built on @chatrelay/client. */
export const consoleRoutes: FastifyPluginAsync = async (app) => {
  const assets = loadAssets();
  const serve = (reply: FastifyReply, path: string) => {
    const asset = assets.get(path === "" ? "index.html" : path);
    if (asset === undefined) {
      const detail = assets.size === 0 ? "the console is not built: run pnpm build" : "no console file at this path";
      return reply.code(404).type("application/problem+json").send(problem(ErrorCode.NotFound, detail));
    }
    return reply
      .header("content-security-policy", CSP)
      .header("x-content-type-options", "nosniff")
      .header("referrer-policy", "no-referrer")
      .header("cache-control", "no-cache")
      .type(asset.type)
      .send(asset.body);
  };
  // Static files: kept out of the API document (`hide` is @fastify/swagger's keyword).
  const hidden = { schema: { hide: true } };
  app.get("/console", hidden, (_request, reply) => reply.redirect("/console/", 302));
  app.get<{ Params: { "*": string } }>("/console/*", hidden, (request, reply) => serve(reply, request.params["*"]));
};
