// The compose files, checked without a Docker engine (none runs on the development machines or in
// CI): each parses; deploy/compose.redis-cluster.yml, merged over docker-compose.yml the way
// Compose merges, forms a 3-master/3-replica cluster that the chat replicas can reach, and the
// chat environment it produces is one the server's own configuration loader accepts.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { parseDocument } from "yaml";
import { loadConfig } from "../src/config.js";

const REPO_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const BASE = "docker-compose.yml";
const CLUSTER = "deploy/compose.redis-cluster.yml";

/** What `.env` would hold: the required secrets, nothing else (every other variable at its default). */
const ENV: Record<string, string> = {
  REDIS_PASSWORD: randomBytes(32).toString("hex"),
  POSTGRES_PASSWORD: randomBytes(32).toString("hex"),
};

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

/** Compose's interpolation: `$$`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`. */
function interpolate(value: Json, env: Record<string, string>): Json {
  if (typeof value === "string") {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g, (whole, name, op, arg) => {
      if (whole === "$$") return "$";
      const v = env[name as string];
      const empty = v === undefined || (op?.startsWith(":") && v === "");
      if (op?.endsWith("?") && empty) throw new Error(`required variable ${name}: ${arg}`);
      if (op?.endsWith("-") && empty) return arg as string;
      return v ?? "";
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)]));
  }
  return value;
}

interface Loaded {
  value: Obj;
  /** Dotted paths of the nodes tagged !override / !reset. */
  tagged: Map<string, string>;
}

function load(file: string): Loaded {
  const doc = parseDocument(readFileSync(join(REPO_DIR, file), "utf8"), { merge: true, logLevel: "silent" });
  if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
  const unknownTags = doc.warnings.filter((w) => !/!override|!reset/.test(w.message));
  if (unknownTags.length > 0) throw new Error(`${file}: ${unknownTags.map((w) => w.message).join("; ")}`);
  const tagged = new Map<string, string>();
  const walk = (node: unknown, path: string[]) => {
    if (node === null || typeof node !== "object") return;
    const n = node as { tag?: string; items?: unknown[]; key?: unknown; value?: unknown };
    if (n.tag === "!override" || n.tag === "!reset") tagged.set(path.join("."), n.tag);
    for (const item of n.items ?? []) {
      const pair = item as { key?: { value?: unknown }; value?: unknown };
      if (pair && "key" in pair) walk(pair.value, [...path, String(pair.key?.value)]);
      else walk(item, path);
    }
  };
  walk(doc.contents, []);
  return { value: doc.toJS({ maxAliasCount: 100 }) as Obj, tagged };
}

const isObj = (v: Json | undefined): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Compose's merge (docs.docker.com/reference/compose-file/merge): mappings merge key by key,
 * sequences append, `command`/`entrypoint`/`healthcheck.test` are replaced, and a node tagged
 * `!override` replaces what it overrides (`!reset` removes it).
 */
function merge(base: Json | undefined, over: Json, path: string[], tagged: Map<string, string>): Json | undefined {
  const tag = tagged.get(path.join("."));
  if (tag === "!reset") return undefined;
  if (tag === "!override") return over;
  const last = path.at(-1);
  if (last === "command" || last === "entrypoint" || path.slice(-2).join(".") === "healthcheck.test") return over;
  if (Array.isArray(base) && Array.isArray(over)) return [...base, ...over];
  if (isObj(base) && isObj(over)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(over)) {
      const merged = merge(base[k], v, [...path, k], tagged);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
    return out;
  }
  return over;
}

const obj = (v: Json | undefined, what: string): Obj => {
  if (!isObj(v)) throw new Error(`${what} is not a mapping`);
  return v;
};
const list = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);
/** `--flag value` in a command list. */
const flag = (command: Json[], name: string) => command[command.indexOf(name) + 1];

t.test("every compose file parses as YAML with no unknown tag", async (t) => {
  for (const file of [BASE, "docker-compose.test.yml", CLUSTER]) {
    const { value } = load(file);
    t.ok(isObj(value.services), `${file} has services`);
  }
});

t.test("the Redis Cluster override over docker-compose.yml", async (t) => {
  const base = load(BASE);
  const over = load(CLUSTER);
  const merged = obj(interpolate(merge(base.value, over.value, [], over.tagged) ?? null, ENV), "merged file");
  const services = obj(merged.services, "services");

  t.test("needs the same secrets as docker-compose.yml", async (t) => {
    t.throws(() => interpolate(over.value, {}), /REDIS_PASSWORD/);
  });

  t.test("the single Redis is not started", async (t) => {
    t.same(obj(services.redis, "redis").profiles, ["single-redis"]);
  });

  const subnet = obj(obj(merged.networks, "networks")["redis-cluster"], "redis-cluster network");
  const ipam = obj(list(obj(subnet.ipam, "ipam").config)[0], "ipam config");
  const prefix = String(ipam.subnet).replace(/\.0\/24$/, "");
  const nodeNames = Object.keys(services).filter((s) => /^redis-node-\d+$/.test(s));
  const addresses: string[] = [];

  t.test("six cluster nodes with fixed addresses outside the dynamic range, each with a volume", async (t) => {
    t.equal(nodeNames.length, 6);
    t.match(String(ipam.ip_range), new RegExp(`^${prefix.replace(/\./g, "\\.")}\\.128/25$`));
    for (const name of nodeNames) {
      const s = obj(services[name], name);
      const command = list(s.command);
      t.equal(s.image, "redis:7", `${name} image`);
      t.equal(flag(command, "--cluster-enabled"), "yes", `${name} cluster mode`);
      t.equal(flag(command, "--cluster-config-file"), "nodes.conf", `${name} nodes.conf in /data`);
      t.equal(flag(command, "--requirepass"), ENV.REDIS_PASSWORD, `${name} password`);
      t.equal(flag(command, "--masterauth"), ENV.REDIS_PASSWORD, `${name} replicas authenticate`);
      const ip = String(obj(obj(s.networks, `${name} networks`)["redis-cluster"], `${name} network`).ipv4_address);
      const last = Number(ip.slice(prefix.length + 1));
      t.ok(ip.startsWith(`${prefix}.`) && last > 1 && last < 128, `${name} address ${ip} in the static half`);
      addresses.push(`${ip}:6379`);
      t.ok(
        list(s.volumes).some((v) => String(v).endsWith(":/data")),
        `${name} keeps /data`,
      );
      t.ok(obj(merged.volumes, "volumes")[name] !== undefined, `volume ${name} declared`);
      t.same(list(obj(s.healthcheck, `${name} healthcheck`).test)[0], "CMD-SHELL");
    }
    t.equal(new Set(addresses).size, 6, "addresses differ");
  });

  t.test("the init service creates 3 masters with one replica each, after every node is healthy", async (t) => {
    const init = obj(services["redis-cluster-init"], "redis-cluster-init");
    const env = obj(init.environment, "init environment");
    t.same(String(env.CLUSTER_NODES).split(" ").sort(), [...addresses].sort());
    t.equal(env.FIRST_NODE, addresses[0]?.replace(/:6379$/, ""));
    t.equal(env.REDISCLI_AUTH, ENV.REDIS_PASSWORD);
    const script = String(list(init.command).at(-1));
    t.match(script, /redis-cli --cluster create \$CLUSTER_NODES --cluster-replicas 1 --cluster-yes/);
    // The shell script (after Compose's `$$` -> `$`) is valid sh.
    execFileSync("sh", ["-n", "-c", script]);
    const deps = obj(init.depends_on, "init depends_on");
    t.same(Object.keys(deps).sort(), [...nodeNames].sort());
    for (const d of Object.values(deps)) t.equal(obj(d, "dependency").condition, "service_healthy");
    t.same(init.networks, ["redis-cluster"]);
  });

  t.test("chat replicas reach the cluster and start after it formed", async (t) => {
    const chat = obj(services.chat, "chat");
    const env = obj(chat.environment, "chat environment");
    t.same(String(env.REDIS_CLUSTER_NODES).split(",").sort(), [...addresses].sort());
    t.equal(env.REDIS_URL, "");
    t.same(chat.networks, ["default", "redis-cluster"]);
    t.equal(over.tagged.get("services.chat.depends_on"), "!override");
    t.same(chat.depends_on, {
      "redis-cluster-init": { condition: "service_completed_successfully" },
      postgres: { condition: "service_healthy" },
    });
    // nginx and postgres stay on the default network, which the chat replicas keep.
    for (const other of ["nginx", "postgres"]) t.notOk(obj(services[other], other).networks, `${other} on default`);
  });

  t.test("the server accepts the chat environment, and the cluster fails over within the presence TTL", async (t) => {
    const chat = obj(services.chat, "chat");
    const env = Object.fromEntries(
      Object.entries(obj(chat.environment, "chat environment")).map(([k, v]) => [k, String(v ?? "")]),
    );
    const config = loadConfig({ ...env, JWT_SECRET: randomBytes(32).toString("hex") });
    t.equal(config.redisUrl, undefined);
    t.same(config.redisCluster?.nodes.map((n) => `${n.host}:${n.port}`).sort(), [...addresses].sort());
    t.equal(config.redisPassword, ENV.REDIS_PASSWORD, "the cluster is reached with REDIS_PASSWORD");
    // A failover takes about cluster-node-timeout plus 1-2 s; a presence key is renewed every TTL/3.
    const nodeTimeout = Number(flag(list(obj(services["redis-node-1"], "node").command), "--cluster-node-timeout"));
    t.ok(nodeTimeout * 3 <= config.presence.ttlMs, `node timeout ${nodeTimeout} ms <= TTL/3`);
  });
});
