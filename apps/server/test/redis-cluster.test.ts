import { Cluster } from "ioredis";
import t from "tap";
import { encodeBusEvent } from "../src/adapters/bus-codec.js";
import { FORGERY_REJECTS, forgeries } from "./helpers/bus-forgeries.js";
import { lastSeqOf } from "./helpers/chat-load.js";
import { messages, openPresenter } from "./helpers/cluster.js";
import { request } from "./helpers/http.js";
import type { NodeProcess } from "./helpers/processes.js";
import { busReceived, roomsByMaster, startRelayOnCluster } from "./helpers/redis-cluster-relay.js";
import { mintToken } from "./helpers/tokens.js";
import { pollUntil } from "./helpers/wait.js";
import type { TestSocket } from "./helpers/ws-client.js";

// Three chatrelay processes on a real 3-master, 3-replica Redis Cluster (sharded pub/sub) and PostgreSQL.
// debug: the forged takeover notice is seen being checked and ignored ("takeover notice not backed by presence").
const relay = await startRelayOnCluster({ GRACE_WINDOW_MS: "20000", LOG_LEVEL: "debug" });
t.teardown(() => relay.stop());
const { redis, nodes } = relay;
const [a, b] = nodes as [NodeProcess, NodeProcess, NodeProcess];
const viewers = await Promise.all([61, 62, 63].map((id) => mintToken({ user_idx: id })));

async function postTo(
  node: NodeProcess,
  room: number,
  token: string,
  text: string,
): Promise<{ status: number; seq: number; id: string }> {
  const res = await request<Record<string, unknown>>(`${node.http}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${token}` },
    body: { text, clientMsgId: `${room}-${text}` },
  });
  return { status: res.status, seq: res.body?.seq as number, id: res.body?.id as string };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

t.test("posts anywhere reach presenters on every node, rooms on every shard, in order and gapless", async (t) => {
  const spread = await roomsByMaster(redis, 2, 1401);
  const rooms = [...spread.values()].flat();
  t.equal(rooms.length, 6, "two rooms per master");
  // Interleaved so each node holds rooms of more than one shard and each shard feeds more than one node.
  const holder = (i: number) => nodes[i % nodes.length] as NodeProcess;
  const presenters = await Promise.all(rooms.map((room, i) => openPresenter(holder(i).ws, room)));
  t.teardown(() => {
    for (const p of presenters) p.terminate();
  });
  const perRoom = 20;
  const answers = await Promise.all(
    rooms.flatMap((room) =>
      range(1, perRoom).map((k) => postTo(nodes[k % 3] as NodeProcess, room, viewers[k % 3] as string, `m${k}`)),
    ),
  );
  t.same(
    answers.filter((r) => r.status !== 201),
    [],
    "every post answered 201",
  );
  for (const [i, room] of rooms.entries()) {
    const p = presenters[i] as TestSocket;
    await p.until(() => messages(p).length >= perRoom, `${perRoom} frames in room ${room}`);
    t.same(
      messages(p).map((m) => m.seq),
      range(1, perRoom),
      `room ${room} (presenter on ${holder(i).name}): every seq once, in order`,
    );
  }

  // A presenter drops and reconnects through another node with its lastSeq: the gap is replayed, then live.
  const room = rooms[0] as number;
  const first = presenters[0] as TestSocket;
  const resumeFrom = lastSeqOf(first);
  first.terminate();
  await a.waitFor((l) => l.msg === "presenter detached" && l.roomId === room, "the room to go into grace on node-a");
  for (const k of range(1, 5))
    t.equal(
      (await postTo(nodes[k % 3] as NodeProcess, room, viewers[0] as string, `gap${k}`)).status,
      201,
      `gap${k} accepted while the presenter is away (grace)`,
    );
  const second = await openPresenter(b.ws, room, resumeFrom);
  presenters.push(second);
  for (const k of range(1, 5))
    t.equal(
      (await postTo(nodes[k % 3] as NodeProcess, room, viewers[1] as string, `live${k}`)).status,
      201,
      `live${k} accepted`,
    );
  await second.until(() => lastSeqOf(second) >= perRoom + 10, "the replay and the live messages");
  t.same(
    messages(second).map((m) => [m.seq, m.text]),
    [...range(1, 5).map((k) => [perRoom + k, `gap${k}`]), ...range(1, 5).map((k) => [perRoom + 5 + k, `live${k}`])],
    "resumed on node-b: the five posted during the drop, then the live ones, in order",
  );
  for (const p of presenters) p.close(1000);
});

t.test("each node receives bus traffic only for the rooms whose presenters it holds", async (t) => {
  const spread = await roomsByMaster(redis, 2, 1501);
  const perShard = [...spread.values()];
  // node-a holds a room of every shard, node-b two, node-c one: unequal loads make a wrong count visible.
  const held = new Map<NodeProcess, number[]>([
    [nodes[0] as NodeProcess, perShard.map((r) => r[0] as number)],
    [nodes[1] as NodeProcess, [perShard[0]?.[1] as number, perShard[1]?.[1] as number]],
    [nodes[2] as NodeProcess, [perShard[2]?.[1] as number]],
  ]);
  const baseline = await Promise.all(nodes.map(busReceived));
  const presenters = new Map<number, TestSocket>();
  for (const [node, rooms] of held) for (const room of rooms) presenters.set(room, await openPresenter(node.ws, room));
  t.teardown(() => {
    for (const p of presenters.values()) p.terminate();
  });
  // Each attach publishes one takeover notice on its room's channel, which only the holder receives.
  const settled = await Promise.all(
    nodes.map(async (node, i) => {
      const expected = (baseline[i] as number) + (held.get(node)?.length ?? 0);
      return pollUntil(
        async () => {
          const n = await busReceived(node);
          return n >= expected ? n : undefined;
        },
        `${node.name} to receive its rooms' takeover notices`,
        10_000,
      );
    }),
  );
  for (const [i, node] of nodes.entries())
    t.equal(
      (settled[i] as number) - (baseline[i] as number),
      held.get(node)?.length,
      `${node.name}: one takeover notice per room it holds`,
    );

  const perRoom = 10;
  const rooms = [...presenters.keys()];
  // Posts go to every node, including nodes that hold none of the room's presenters.
  const answers = await Promise.all(
    rooms.flatMap((room) =>
      range(1, perRoom).map((k) => postTo(nodes[k % 3] as NodeProcess, room, viewers[k % 3] as string, `burst${k}`)),
    ),
  );
  t.same(
    answers.filter((r) => r.status !== 201),
    [],
    "every post answered 201",
  );
  for (const [room, p] of presenters) {
    await p.until(() => messages(p).length >= perRoom, `${perRoom} frames in room ${room}`);
    t.same(
      messages(p).map((m) => m.seq),
      range(1, perRoom),
      `room ${room}: delivered once each, in order`,
    );
  }
  const after = await Promise.all(nodes.map(busReceived));
  let total = 0;
  for (const [i, node] of nodes.entries()) {
    const delta = (after[i] as number) - (settled[i] as number);
    total += delta;
    const own = (held.get(node)?.length ?? 0) * perRoom;
    t.equal(delta, own, `${node.name} received ${delta} bus messages: its own rooms' ${own}, nothing else`);
  }
  t.equal(total, rooms.length * perRoom, "cluster-wide: one bus message received per message delivered");
  for (const p of presenters.values()) p.close(1000);
});

t.test("readiness and metrics on the cluster", async (t) => {
  const ready = await request<Record<string, unknown>>(`${a.ops}/readyz`);
  t.equal(ready.status, 200, "ready");
  t.match(ready.body, { checks: { chatlog: "ok", redis: "ok" } });
  t.match(
    a.lines.find((l) => l.msg === "chatrelay listening"),
    { bus: "redis-cluster" },
    "started on the cluster",
  );
});

t.test(
  "forged SPUBLISHes on a live room's channel: dropped and counted by reason, nobody cut, a real post arrives",
  async (t) => {
    const room = 1801;
    const presenter = await openPresenter(b.ws, room);
    t.teardown(() => presenter.terminate());
    const before = rejectCounts((await request(`${b.ops}/metrics`)).text);
    const forger = new Cluster(
      redis.spec.split(",").map((hp) => ({ host: "127.0.0.1", port: Number(hp.split(":")[1]) })),
    );
    t.teardown(() => forger.disconnect());
    const channel = `${relay.keyPrefix}room:{${room}}`;
    for (const f of forgeries(room))
      t.equal(await forger.spublish(channel, f.payload), 1, `${f.name}: reached one subscriber`);
    // A well-formed takeover with the largest epoch: presence still names the presenter, so nobody is cut.
    await forger.spublish(
      channel,
      encodeBusEvent({ kind: "takeover", connId: "c0ffee00-0000-4000-8000-000000000000", epoch: 2 ** 53 - 1 }),
    );
    await b.waitFor((l) => l.msg === "takeover notice not backed by presence", "the notice checked and ignored");
    const after = await pollUntil(
      async () => {
        const counts = rejectCounts((await request(`${b.ops}/metrics`)).text);
        const delta = sorted(
          Object.fromEntries(
            Object.entries(counts)
              .map(([k, v]): [string, number] => [k, v - (before[k] ?? 0)])
              .filter(([, v]) => v > 0),
          ),
        );
        return JSON.stringify(delta) === JSON.stringify(sorted(FORGERY_REJECTS)) ? delta : undefined;
      },
      "every forgery counted on the presenter's node",
      10_000,
    );
    t.same(after, sorted(FORGERY_REJECTS), "one count per forgery, by reason");
    t.notMatch(JSON.stringify(b.lines), /FORGED|mallory|not json/, "no forged content in the node's log");

    t.equal((await postTo(a, room, viewers[0] as string, "the-real-one")).status, 201);
    await presenter.next((f) => f.text === "the-real-one", "the real post");
    t.equal(presenter.closed, undefined, "the presenter stays connected");
    t.same(
      messages(presenter).map((m) => [m.seq, m.text]),
      [[1, "the-real-one"]],
      "nothing forged was delivered",
    );
  },
);

function rejectCounts(metrics: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const m of metrics.matchAll(/^chatrelay_bus_rejected_total\{reason="(\w+)"\} (\d+)/gm)) {
    counts[m[1] as string] = Number(m[2]);
  }
  return counts;
}

function sorted(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).sort(([x], [y]) => x.localeCompare(y)));
}
