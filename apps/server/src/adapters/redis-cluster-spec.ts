/** Where a Redis Cluster is: its seed nodes (any few; the client learns the rest) and how to log in. */
export interface RedisClusterSpec {
  nodes: { host: string; port: number }[];
  tls: boolean;
  username: string | undefined;
  password: string | undefined;
}

const MAX_SEED_NODES = 64;

/**
 * Reads `host:port,host:port` (REDIS_CLUSTER_NODES) or
 * `redis+cluster://[user:password@]host:port,host:port[/]` (REDIS_URL; `rediss+cluster://` for TLS).
 * Returns a problem in our words (never the value itself: it may hold a password) when it is wrong.
 */
export function parseClusterSpec(raw: string, name: string): RedisClusterSpec | string {
  let rest = raw.trim();
  let tls = false;
  let username: string | undefined;
  let password: string | undefined;
  const scheme = /^([a-z+]+):\/\//i.exec(rest);
  if (scheme) {
    const protocol = (scheme[1] ?? "").toLowerCase();
    if (protocol !== "redis+cluster" && protocol !== "rediss+cluster") {
      return `${name} must use redis+cluster:// or rediss+cluster:// for a cluster`;
    }
    tls = protocol === "rediss+cluster";
    rest = rest.slice(scheme[0].length).replace(/\/$/, "");
    const at = rest.lastIndexOf("@");
    if (at !== -1) {
      const credentials = rest.slice(0, at);
      rest = rest.slice(at + 1);
      const colon = credentials.indexOf(":");
      try {
        username = decodeURIComponent(colon === -1 ? credentials : credentials.slice(0, colon)) || undefined;
        password = colon === -1 ? undefined : decodeURIComponent(credentials.slice(colon + 1));
      } catch {
        return `${name} has badly encoded credentials`;
      }
    }
    if (rest.includes("/") || rest.includes("?")) return `${name} must not carry a path or options after the nodes`;
  }
  const entries = rest.split(",").map((e) => e.trim());
  if (entries.length > MAX_SEED_NODES) return `${name} lists more than ${MAX_SEED_NODES} nodes`;
  const nodes: RedisClusterSpec["nodes"] = [];
  for (const [i, entry] of entries.entries()) {
    // host:port, [v6]:port
    const match = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+):(\d{1,5})$/i.exec(entry);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) return `${name} entry ${i + 1} is not host:port`;
    nodes.push({ host: (match[1] ?? "").replace(/^\[|\]$/g, ""), port });
  }
  return { nodes, tls, username, password };
}
