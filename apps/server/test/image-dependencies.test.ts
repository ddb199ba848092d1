import { existsSync, readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join } from "node:path";
import t from "tap";
import { SERVER_MAIN } from "./helpers/processes.js";

// The image (deploy/Dockerfile) installs `dependencies` only (pnpm deploy --prod):
// a package the compiled server imports that is only a devDependency passes every
// test here and crashes the container at start with ERR_MODULE_NOT_FOUND.

const DIST = dirname(SERVER_MAIN);
const manifest = JSON.parse(readFileSync(join(dirname(DIST), "package.json"), "utf8")) as {
  dependencies?: Record<string, string>;
};

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? jsFiles(join(dir, e.name)) : e.name.endsWith(".js") ? [join(dir, e.name)] : [],
  );
}

/** Bare specifiers of static, side-effect and dynamic imports and re-exports. */
function importedPackages(source: string): string[] {
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  const names = new Set<string>();
  for (const pattern of patterns) {
    for (const [, spec = ""] of source.matchAll(pattern)) {
      if (spec.startsWith(".") || spec.startsWith("/") || spec.startsWith("node:")) continue;
      const parts = spec.split("/");
      const name = spec.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] as string);
      if (!builtinModules.includes(name)) names.add(name);
    }
  }
  return [...names];
}

t.test("every package the compiled server imports is a production dependency", async (t) => {
  t.ok(existsSync(DIST), `${DIST} exists (run \`pnpm -r run build\` first)`);
  const missing = new Map<string, string>();
  for (const file of jsFiles(DIST)) {
    for (const name of importedPackages(readFileSync(file, "utf8"))) {
      if (manifest.dependencies?.[name] === undefined && !missing.has(name)) missing.set(name, file);
    }
  }
  t.same(
    Object.fromEntries(missing),
    {},
    "imported by dist/ but not in apps/server/package.json `dependencies` (package: first file importing it)",
  );
});
