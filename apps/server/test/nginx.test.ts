import t from "tap";
import { createTestDatabase, REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { nginxConfigTest, type RunningNginx, startNginx } from "./helpers/nginx.js";
import { NodeProcess } from "./helpers/processes.js";
import { mintToken } from "./helpers/tokens.js";
import { TestSocket } from "./helpers/ws-client.js";

// Three real nodes on the real PostgreSQL and Redis, behind the real nginx
// running the project's own deploy/nginx config: what `docker compose up
// --scale chat=3` runs, minus Docker.

const POSTS = 30;
const CONCURRENCY = 4;

const db = await createTestDatabase();
const prefix = uniqueRedisPrefix();
const nodes: NodeProcess[] = [];
let proxy: RunningNginx | undefined;
const sockets: TestSocket[] = [];

t.teardown(async () => {
  for (const s of sockets) s.terminate();
  await proxy?.stop();
  await Promise.allSettled(nodes.map((n) => n.kill("SIGKILL")));
  await db.drop();
});

await Promise.all(
  ["n1", "n2", "n3"].map(async (name) => {
    const node = await NodeProcess.start(name, {
      DATABASE_URL: db.url,
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
    });
    nodes.push(node);
  }),
);
const upstreamPorts = nodes.map((n) => n.port);
// Set up before the first subtest: tap ends the root test once its queue is empty.
proxy = await startNginx(upstreamPorts);
const via = proxy;

/** This node's `chatrelay_posts_total{outcome="accepted"}`, read from the node itself (not through nginx). */
async function acceptedPosts(node: NodeProcess): Promise<number> {
  const res = await request(`${node.http}/metrics`);
  const m = /^chatrelay_posts_total\{outcome="accepted"\} (\d+)$/m.exec(res.text);
  return m ? Number(m[1]) : 0;
}

t.test("nginx -t accepts the project's config rendered for loopback upstreams", async (t) => {
  const result = await nginxConfigTest(upstreamPorts);
  t.ok(result.ok, result.output);
  t.match(result.output, /test is successful/);
});

t.test("/readyz through nginx is 200 and the request id reaches the node", async (t) => {
  const res = await request(`${via.http}/readyz`, { headers: { "x-request-id": "nginx-test-readyz" } });
  t.equal(res.status, 200, res.text);
  t.equal((res.body as { status?: string }).status, "ready");
  t.equal(res.headers.get("x-request-id"), "nginx-test-readyz", "the node used the caller's X-Request-Id");
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
  const postLines = nodes.flatMap((n) =>
    n.lines.filter((l) => l.msg === "request" && l.method === "POST" && l.path === `/v1/rooms/${roomId}/messages`),
  );
  t.equal(postLines.length, POSTS, "one access line per post across the nodes");
  t.ok(
    postLines.every((l) => typeof l.reqId === "string" && l.reqId.startsWith("nginx-post-")),
    "the nodes logged the caller's X-Request-Id",
  );
});
