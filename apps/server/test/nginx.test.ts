import { createServer, type Socket } from "node:net";
import t from "tap";
import { createTestDatabase, REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { nginxConfigTest, startNginx } from "./helpers/nginx.js";
import { type NginxCluster, startNginxCluster } from "./helpers/nginx-cluster.js";
import { freePort, type NodeProcess } from "./helpers/processes.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// Three real nodes on the real PostgreSQL and Redis, behind the real nginx
// running the project's own deploy/nginx config: what `docker compose up
// --scale chat=3` runs, minus Docker.

const POSTS = 30;
const CONCURRENCY = 4;

const db = await createTestDatabase();
const prefix = uniqueRedisPrefix();
const sockets: TestSocket[] = [];
let cluster: NginxCluster | undefined;

let cleaned: Promise<void> | undefined;
const cleanup = () => {
  cleaned ??= (async () => {
    for (const s of sockets) s.terminate();
    await cluster?.stop();
    await db.drop();
  })();
  return cleaned;
};
t.teardown(cleanup);

// Set up before the first subtest (tap ends the root test once its queue is
// empty); a failed start still stops whatever did start.
try {
  cluster = await startNginxCluster(["n1", "n2", "n3"], { DATABASE_URL: db.url, REDIS_URL, REDIS_KEY_PREFIX: prefix });
} catch (err) {
  await cleanup();
  throw err;
}
const { nodes, proxy: via } = cluster;
const upstreamPorts = nodes.map((n) => n.port);

/** This node's `chatrelay_posts_total{outcome="accepted"}`, read from the node itself (not through nginx). */
async function acceptedPosts(node: NodeProcess): Promise<number> {
  const res = await request(`${node.ops}/metrics`);
  const m = /^chatrelay_posts_total\{outcome="accepted"\} (\d+)$/m.exec(res.text);
  return m ? Number(m[1]) : 0;
}

t.test("nginx -t accepts the project's config rendered for loopback upstreams", async (t) => {
  const result = await nginxConfigTest(upstreamPorts);
  t.ok(result.ok, result.output);
  t.match(result.output, /test is successful/);
});

t.test("/healthz through nginx is 200 and the request id reaches the node", async (t) => {
  const res = await request(`${via.http}/healthz`, { headers: { "x-request-id": "nginx-test-healthz" } });
  t.equal(res.status, 200, res.text);
  t.equal((res.body as { status?: string }).status, "ok");
  t.equal(res.headers.get("x-request-id"), "nginx-test-healthz", "the node used the caller's X-Request-Id");
  // Anything but a plain token (log injection, oversized) is replaced by nginx's own id.
  const odd = await request(`${via.http}/healthz`, { headers: { "x-request-id": 'a b"c' } });
  t.match(odd.headers.get("x-request-id"), /^[0-9a-f]{32}$/, "an unsafe X-Request-Id is replaced by nginx's");
});

t.test("the ops endpoints are not reachable through nginx, only on each node's ops listener", async (t) => {
  for (const path of ["/metrics", "/readyz", "/metrics/", "/readyz?x=1"]) {
    const res = await request(`${via.http}${path}`);
    t.equal(res.status, 404, `${path} through nginx`);
    t.notMatch(res.text, /chatrelay_posts_total|"checks"/, `${path} leaks nothing`);
  }
  const node = nodes[0] as NodeProcess;
  t.equal((await request(`${node.ops}/readyz`)).status, 200, "readiness on the node's ops listener");
  t.equal((await request(`${node.http}/readyz`)).status, 404, "not on the node's public port");
});

t.test("a presenter socket through nginx gets every accepted post once, in seq order, from any node", async (t) => {
  const roomId = 700_000 + Math.floor(Math.random() * 100_000);
  const presenterToken = await mintToken({ user_idx: roomId, nickname: "presenter" });
  const socket = new TestSocket(`${via.ws}/v1/rooms/${roomId}/presenter?access_token=${presenterToken}`);
  sockets.push(socket);
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready frame through nginx");
  const holder = await Promise.any(
    nodes.map(async (n) => {
      await n.waitFor((l) => l.msg === "presenter attached" && l.roomId === roomId, "presenter attached");
      return n;
    }),
  );

  const viewerTokens = await Promise.all([1, 2, 3].map((i) => mintToken({ user_idx: i, nickname: `viewer${i}` })));
  const before = await Promise.all(nodes.map(acceptedPosts));
  const accepted: { text: string; seq: number }[] = [];
  const refused: string[] = [];
  let next = 0;
  // A few posts in flight at once, so least_conn has a choice to make.
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < POSTS) {
        const i = next++;
        const text = `through nginx #${i}`;
        const res = await request<{ seq: number }>(`${via.http}/v1/rooms/${roomId}/messages`, {
          headers: {
            authorization: `Bearer ${viewerTokens[i % viewerTokens.length]}`,
            "x-request-id": `nginx-post-${i}`,
          },
          body: { text },
        });
        if (res.status >= 200 && res.status < 300) accepted.push({ text, seq: res.body.seq });
        else refused.push(`#${i}: ${res.status} ${res.text}`);
      }
    }),
  );
  t.same(refused, [], "no post refused while the presenter is live");

  const messages = () => socket.json<{ type: string; seq: number; text: string }>().filter((f) => f.type === "message");
  await socket.until(() => messages().length >= accepted.length, `${accepted.length} message frames`);
  const got = messages();
  const seqs = got.map((f) => f.seq);
  t.ok(
    seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number)),
    `frames arrive in strictly increasing seq order (no duplicate): ${seqs.join(",")}`,
  );
  t.same(
    seqs,
    accepted.map((a) => a.seq).sort((a, b) => a - b),
    "exactly the accepted seqs reach the presenter",
  );
  const textBySeq = new Map(accepted.map((a) => [a.seq, a.text]));
  t.ok(
    got.every((f) => textBySeq.get(f.seq) === f.text),
    "each frame carries the text its post was accepted with",
  );

  const after = await Promise.all(nodes.map(acceptedPosts));
  const perNode = after.map((n, i) => n - (before[i] as number));
  t.equal(
    perNode.reduce((a, b) => a + b, 0),
    accepted.length,
    `every accepted post counted once across nodes (${perNode.join("/")})`,
  );
  t.ok(perNode.filter((n) => n > 0).length >= 2, `posts spread over more than one node: ${perNode.join("/")}`);
  const holderIndex = nodes.indexOf(holder);
  t.ok(
    perNode.some((n, i) => i !== holderIndex && n > 0),
    `posts taken by nodes without the socket (holder ${holder.name}) reached it through Redis`,
  );

  // X-Request-Id passes through nginx: every post's access line on the nodes carries ours.
  // A node logs the line after it answers: wait for each node's share (its accepted count) first.
  const isPostLine = (l: Record<string, unknown>) =>
    l.msg === "request" && l.method === "POST" && l.path === `/v1/rooms/${roomId}/messages`;
  await Promise.all(
    nodes.map((n, i) =>
      n.waitFor(
        () => n.lines.filter(isPostLine).length >= (perNode[i] as number),
        `${perNode[i]} access lines on ${n.name}`,
      ),
    ),
  );
  const postLines = nodes.flatMap((n) => n.lines.filter(isPostLine));
  t.equal(postLines.length, POSTS, "one access line per post across the nodes");
  t.ok(
    postLines.every((l) => typeof l.reqId === "string" && l.reqId.startsWith("nginx-post-")),
    "the nodes logged the caller's X-Request-Id",
  );
});

/** An upstream that reads a whole request, then drops the connection without answering: a node dying mid-request. */
async function startDroppingUpstream(): Promise<{ port: number; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const open = new Set<Socket>();
  const server = createServer((socket) => {
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    let head = "";
    socket.on("data", (chunk) => {
      head += chunk.toString("latin1");
      if (head.includes("\r\n\r\n")) {
        requests.push(head.slice(0, head.indexOf("\r\n")));
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

t.test("nginx retries connection failures and GETs, never a POST a node may have processed", async (t) => {
  const node = nodes[0] as NodeProcess;
  const dropping = await startDroppingUpstream();
  const refusing = await freePort(); // nothing listens there: a replica that is gone
  const lb = await startNginx([refusing, dropping.port, node.port]);
  t.teardown(async () => {
    await lb.stop();
    await dropping.close();
  });
  const roomPath = (i: number) => `/v1/rooms/${650_000 + i}/messages`;
  const token = await mintToken({ user_idx: 1, nickname: "viewer" });

  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) {
    // No presenter in these rooms: a post that reaches the node answers 409 room_not_live.
    const res = await request(`${lb.http}${roomPath(i)}`, {
      headers: { authorization: `Bearer ${token}`, "x-request-id": `retry-probe-${i}` },
      body: { text: `retry probe ${i}` },
    });
    statuses.push(res.status);
  }
  const dropped = dropping.requests.filter((r) => r.startsWith("POST ")).length;
  t.ok(dropped >= 1, `some posts were sent to the dropping upstream (${dropped})`);
  // Had nginx sent a dropped post again, the node's 409 would have replaced the 502.
  t.equal(statuses.filter((s) => s === 502).length, dropped, `each dropped post answers 502: ${statuses.join(",")}`);
  // The node logs after it answers: wait for the line of every post it answered.
  const isProbe = (l: Record<string, unknown>) => l.msg === "request" && String(l.reqId).startsWith("retry-probe-");
  await Promise.all(
    statuses.map((s, i) =>
      s === 409 ? node.waitFor((l) => isProbe(l) && l.reqId === `retry-probe-${i}`, `post #${i}`) : undefined,
    ),
  );
  t.equal(node.lines.filter(isProbe).length, 6 - dropped, "only the posts not dropped reached the node");
  t.ok(
    statuses.every((s) => s === 409 || s === 502),
    "the refusing replica cost no post (its connection failure was retried on another)",
  );

  for (let i = 0; i < 6; i++) {
    const res = await request(`${lb.http}/healthz`);
    t.equal(res.status, 200, `GET #${i} succeeds, retried past the dropping and refusing upstreams`);
  }
});
