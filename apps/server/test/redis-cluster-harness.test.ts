import calculateSlot from "cluster-key-slot";
import { Redis } from "ioredis";
import t from "tap";
import { RedisClusterProcesses } from "./helpers/redis-cluster.js";

// The Redis Cluster harness itself, against real redis-server processes: the other cluster tests trust it.
const cluster = await RedisClusterProcesses.start();
t.teardown(() => cluster.stop());

/** A plain client to one node (no cluster redirects): what that node itself holds. */
function direct(port: number): Redis {
  const r = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1 });
  r.on("error", () => {});
  return r;
}

t.test("3 masters + 3 replicas, every slot covered, spec lists every node", async (t) => {
  t.equal(cluster.nodes.length, 6);
  t.equal(new Set(cluster.nodes.map((n) => n.id)).size, 6, "distinct node ids");
  t.equal((await cluster.masters()).length, 3);
  t.equal(cluster.spec.split(",").length, 6);
  t.match(cluster.spec, /^127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){5}$/);
  const r = direct(cluster.nodes[0]?.port as number);
  t.teardown(() => r.disconnect());
  const info = (await r.call("CLUSTER", "INFO")) as string;
  t.match(info, /cluster_state:ok/);
  t.match(info, /cluster_slots_ok:16384/);
});

t.test("slotOf agrees with CLUSTER KEYSLOT, hash tags included, and with ioredis for chatrelay's keys", async (t) => {
  const r = direct(cluster.nodes[0]?.port as number);
  t.teardown(() => r.disconnect());
  const chatrelayKeys = ["chat:{701}", "presence:{701}", "p:ack:{42}:x", "{701}", "room", "", "é{ü}"];
  const edgeKeys = ["a{}b", "x{y}z{w}", "{}{701}", "{{x}}", "}{x}", "{"];
  for (const key of [...chatrelayKeys, ...edgeKeys])
    t.equal(cluster.slotOf(key), Number(await r.call("CLUSTER", "KEYSLOT", key)), `"${key}"`);
  // ioredis (and the sharded bus) route by `cluster-key-slot`: for the keys chatrelay builds it must agree.
  for (const key of chatrelayKeys) t.equal(calculateSlot(key), cluster.slotOf(key), `ioredis agrees on "${key}"`);
  t.equal(cluster.slotOf("chat:{701}"), cluster.slotOf("presence:{701}"), "same tag, same slot");
});

t.test("migrateSlot moves a slot with its keys to another master", async (t) => {
  const key = "harness:{migrate}";
  const slot = cluster.slotOf(key);
  const from = await cluster.masterOf(key);
  const client = new Redis.Cluster([{ host: "127.0.0.1", port: from.port }]);
  client.on("error", () => {});
  t.teardown(() => client.disconnect());
  await client.set(key, "v1");
  const to = (await cluster.masters()).find((m) => m.id !== from.id);
  if (!to) throw new Error("no other master");
  await cluster.migrateSlot(slot, to);
  t.equal((await cluster.masterOf(slot)).id, to.id, "the slot's owner is the target");
  const target = direct(to.port);
  const source = direct(from.port);
  t.teardown(() => {
    target.disconnect();
    source.disconnect();
  });
  t.equal(await target.get(key), "v1", "the key now lives on the target");
  t.equal(Number(await source.call("CLUSTER", "COUNTKEYSINSLOT", slot)), 0, "nothing left on the source");
  t.equal(await client.get(key), "v1", "a cluster client follows the move");
});

t.test("killMasterOf SIGKILLs the owner and a replica takes the slot over", async (t) => {
  const key = "harness:{failover}";
  const slot = cluster.slotOf(key);
  const before = await cluster.masterOf(slot);
  const r = direct(before.port);
  t.teardown(() => r.disconnect());
  await r.set(key, "kept");
  t.equal(await r.call("WAIT", "1", "5000"), 1, "replicated before the kill");
  const started = Date.now();
  const { killed, promoted } = await cluster.killMasterOf(key);
  t.comment(`failover took ${Date.now() - started} ms`);
  t.equal(killed.id, before.id);
  t.not(promoted.id, killed.id);
  t.equal((await cluster.masterOf(slot)).id, promoted.id);
  t.notOk(
    cluster.live.some((n) => n.id === killed.id),
    "the killed node is no longer live",
  );
  t.notOk(cluster.spec.includes(`:${killed.port}`), "spec leaves the dead node out");
  t.equal((await cluster.masters()).length, 3, "still three masters serving slots");
  const p = direct(promoted.port);
  t.teardown(() => p.disconnect());
  t.equal(await p.get(key), "kept", "the promoted replica has the data");
});

t.test("a missing binary is a clear error", async (t) => {
  await t.rejects(RedisClusterProcesses.start({ redisServer: "/nonexistent/redis-server" }), {
    message: /install it: apt-get install -y redis-server/,
  });
});
