import { performance } from "node:perf_hooks";
import t, { type Test } from "tap";
import { lastSeqOf } from "./helpers/chat-load.js";
import { messages, openPresenter } from "./helpers/cluster.js";
import { createTestDatabase, REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";
import { NodeProcess } from "./helpers/processes.js";
import { type PostRecord, PostTraffic } from "./helpers/store-traffic.js";
import type { TestSocket } from "./helpers/ws-client.js";

// A resume replays the log in pages of 500 rows. Here the presenter is away (grace) while 1,230
// messages are posted, then resumes with lastSeq: the replay crosses two page seams, and live posts
// race with it. Every message after lastSeq must arrive exactly once, in order, without a gap.
// Catches: a replay that stops after its first page, a row lost or repeated at a seam (an off-by-one
// in the "since" cursor), a live message dropped or doubled at the replay/live seam, and the edge of
// a replay that is an exact multiple of the page size.

const PAGE = 500;
const SEEN_LIVE = 20;
const WHILE_AWAY = 1230;
const DURING_REPLAY = 30;
// Long enough to post everything while the presenter is away; nothing here waits for it to expire.
const GRACE_MS = 300_000;
// The two other paths that read the log would mask a pager that stops early: a gap fill (set off by
// a live message beyond the replay) and the heartbeat's reconcile with the log's tail. Both are put
// far beyond the test's waits, so only the replay itself can deliver the rows.
const ISOLATE_REPLAY = { GAP_FILL_MS: "60000", PRESENCE_TTL_MS: "600000" };
const DELIVERY_WAIT_MS = 30_000;

interface Setup {
  /** Where the posts go and the first presenter connects. */
  postNode: NodeProcess;
  /** Where the presenter resumes. */
  resumeNode: NodeProcess;
}

/** seq -> id of every post answered 201. */
function committed(posts: PostRecord[]): Map<number, string> {
  return new Map(posts.filter((p) => p.status === 201).map((p) => [p.seq as number, p.id as string]));
}

/** The connection received exactly the seqs after `after` up to `last`, each once, in order, with the right ids. */
async function assertExactlyAfter(
  t: Test,
  socket: TestSocket,
  after: number,
  last: number,
  ids: Map<number, string>,
  what: string,
): Promise<void> {
  await socket.until(() => lastSeqOf(socket) >= last, `${what}: seq ${last}`, DELIVERY_WAIT_MS);
  const got = messages(socket);
  const expected = Array.from({ length: last - after }, (_, i) => after + 1 + i);
  t.same(
    got.map((m) => m.seq),
    expected,
    `${what}: seqs ${after + 1}..${last} (${expected.length}), each once, in order, no gap`,
  );
  const wrong = got.filter((m) => ids.get(m.seq) !== m.id).map((m) => m.seq);
  t.same(wrong, [], `${what}: each carries the id its post was answered with`);
}

async function replayAcrossPages(t: Test, { postNode, resumeNode }: Setup, room: number): Promise<void> {
  const traffic = await PostTraffic.create(postNode.http, room, { senders: 8 });
  const first = await openPresenter(postNode.ws, room);
  t.teardown(() => first.terminate());
  await traffic.sendMany(SEEN_LIVE);
  await first.until(() => lastSeqOf(first) >= SEEN_LIVE, "the first presenter got the live posts");
  const lastSeen = lastSeqOf(first);
  t.equal(lastSeen, SEEN_LIVE, "the first presenter got every live post");

  // The socket drops without a close frame: the room stays live (grace) and posts are logged.
  first.terminate();
  await first.waitClose();
  const postingStarted = performance.now();
  const away = await traffic.sendMany(WHILE_AWAY);
  t.comment(`${WHILE_AWAY} posts in ${Math.round(performance.now() - postingStarted)} ms`);
  t.same(
    away.filter((p) => p.status !== 201).map((p) => p.status),
    [],
    `all ${WHILE_AWAY} posts made while the presenter was away were accepted`,
  );
  const tail = SEEN_LIVE + WHILE_AWAY;

  // Resume after lastSeen: pages of 500, 500 and 230+. Posts go on while the presenter attaches and
  // replays: those committed before its tail read come through the replay, the later ones on the bus.
  const replayStarted = performance.now();
  const racing = traffic.sendMany(DURING_REPLAY);
  const second = await openPresenter(resumeNode.ws, room, lastSeen);
  t.teardown(() => second.terminate());
  const ready = second.json().find((f) => f.type === "ready");
  t.equal(ready?.resumeFrom, lastSeen, "ready: resumes after the seq sent");
  t.ok(Number(ready?.lastSeq) >= tail, `ready: the room's last seq (${ready?.lastSeq})`);
  const live = await racing;
  t.same(
    live.filter((p) => p.status !== 201).map((p) => p.status),
    [],
    "posts made during the attach and replay accepted",
  );
  const end = tail + DURING_REPLAY;
  const ids = committed(traffic.posts);
  t.equal(ids.size, end, `${end} messages committed`);
  t.ok(end - lastSeen > 2 * PAGE, `the replay spans more than two pages (${end - lastSeen} rows)`);
  await assertExactlyAfter(t, second, lastSeen, end, ids, "resume across page seams");
  t.comment(`replay of ${end - lastSeen} rows delivered in ${Math.round(performance.now() - replayStarted)} ms`);

  // A replay of exactly two full pages: the reader must not stop early nor read a row twice at the end.
  second.terminate();
  await second.waitClose();
  const from = end - 2 * PAGE;
  const third = await openPresenter(resumeNode.ws, room, from);
  t.teardown(() => third.terminate());
  await assertExactlyAfter(t, third, from, end, ids, "resume of exactly two pages");
  // Anything more would arrive right behind the replay: one more post shows the stream is live and exact.
  const next = await traffic.send();
  t.equal(next.status, 201, "a post after the replay is accepted");
  await assertExactlyAfter(t, third, from, end + 1, committed(traffic.posts), "then live");
  third.close(1000);
}

t.test("PGlite, one node: a replay longer than two pages", async (t) => {
  const node = await NodeProcess.start("replay-pglite", { GRACE_WINDOW_MS: String(GRACE_MS), ...ISOLATE_REPLAY });
  t.teardown(() => node.kill("SIGKILL"));
  await replayAcrossPages(t, { postNode: node, resumeNode: node }, 1201);
});

t.test("PostgreSQL and Redis, two nodes: posts on one, resume on the other", async (t) => {
  const db = await createTestDatabase();
  t.teardown(() => db.drop());
  const env = {
    DATABASE_URL: db.url,
    REDIS_URL,
    REDIS_KEY_PREFIX: uniqueRedisPrefix(),
    GRACE_WINDOW_MS: String(GRACE_MS),
    ...ISOLATE_REPLAY,
  };
  const [a, b] = await Promise.all([NodeProcess.start("replay-a", env), NodeProcess.start("replay-b", env)]);
  // Registered after the database's drop: teardowns run last-in first-out, so the nodes go first.
  t.teardown(() => Promise.all([a.kill("SIGKILL"), b.kill("SIGKILL")]));
  await replayAcrossPages(t, { postNode: a, resumeNode: b }, 1202);
});
