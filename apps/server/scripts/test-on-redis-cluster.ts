/**
 * Runs every test that uses the shared Redis again on a real Redis Cluster (3 masters, 3 replicas,
 * started here from redis-server binaries and removed afterwards): the nodes get
 * REDIS_URL=redis+cluster://..., so the sharded bus, the cluster presence and the sharded gate carry
 * the same scenarios the single Redis does. Usage: `pnpm test:redis-cluster [test files...]`.
 *
 * Left out by design: tests of one Redis' own failure modes (they start a private redis-server and
 * restart it) and the tests that start their own Redis Cluster anyway.
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { RedisClusterProcesses } from "../test/helpers/redis-cluster.js";

const SERVER_DIR = join(import.meta.dirname, "..");
const TEST_DIR = join(SERVER_DIR, "test");

/** Files that use the shared Redis (REDIS_URL from helpers/databases) and do not start a cluster of their own. */
function redisBackedTests(): string[] {
  return readdirSync(TEST_DIR)
    .filter((f) => f.endsWith(".test.ts"))
    .filter((f) => {
      const text = readFileSync(join(TEST_DIR, f), "utf8");
      return (
        /\bREDIS_URL\b/.test(text) && text.includes("helpers/databases.js") && !text.includes("RedisClusterProcesses")
      );
    })
    .map((f) => join("test", f));
}

const files = process.argv.length > 2 ? process.argv.slice(2) : redisBackedTests();
const cluster = await RedisClusterProcesses.start();
const url = `redis+cluster://${cluster.spec}`;
console.log(`Redis Cluster up (${cluster.spec}); running ${files.length} test files on it`);
let code = 1;
try {
  code = await new Promise<number>((resolve) => {
    const tap = spawn("npx", ["tap", ...files], {
      cwd: SERVER_DIR,
      stdio: "inherit",
      env: { ...process.env, TEST_REDIS_URL: url },
    });
    tap.on("exit", (status) => resolve(status ?? 1));
  });
} finally {
  await cluster.stop();
}
process.exit(code);
