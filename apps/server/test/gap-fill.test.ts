import t from "tap";
import { messages, post } from "./helpers/cluster.js";
import { createTestDatabase, REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";
import type { NodeProcess } from "./helpers/processes.js";
import { connectPresenter, readyOf, startFailpointNodes, untilSeq } from "./helpers/races-nodes.js";
import { mintToken } from "./helpers/tokens.js";

// Gap fill on its own: a lost publish followed by another message is read from the log within
// GAP_FILL_MS. The heartbeat's reconcile, which would also deliver it, runs every 200 s here
// (PRESENCE_TTL_MS), so only gap fill can deliver the lost message within the test's wait.
const db = await createTestDatabase();
t.teardown(() => db.drop());
const [sender, holder] = (await startFailpointNodes("gap-", 2, {
  DATABASE_URL: db.url,
  REDIS_URL,
  REDIS_KEY_PREFIX: uniqueRedisPrefix(),
  PRESENCE_TTL_MS: "600000",
  GAP_FILL_MS: "100",
})) as [NodeProcess, NodeProcess];
t.teardown(() => Promise.all([sender.kill("SIGKILL"), holder.kill("SIGKILL")]));

t.test("a lost publish followed by another message: both delivered in order, the first from the log", async (t) => {
  const room = 951;
  const presenter = await connectPresenter(holder, room);
  await readyOf(presenter);
  const viewer = await mintToken({ user_idx: 9511 });

  await sender.failpoint("post.before-publish", "1*drop");
  const lost = await post(sender.http, room, viewer, "lost on the bus");
  t.equal(lost.status, 201, "the post whose publish is lost is answered 201");
  await sender.failpointHit("post.before-publish");
  const next = await post(sender.http, room, viewer, "published");
  t.equal(next.status, 201);

  await untilSeq(presenter, 2, "both messages", 10_000);
  t.same(
    messages(presenter).map((m) => [m.seq, m.text]),
    [
      [1, "lost on the bus"],
      [2, "published"],
    ],
    "in seq order, the lost one first",
  );
  t.notOk(
    holder.lines.some((l) => l.msg === "catching up a missed publish"),
    "the heartbeat's reconcile did not run (gap fill delivered it)",
  );

  // The session goes on live after the fill.
  const after = await post(sender.http, room, viewer, "live again");
  await untilSeq(presenter, after.body.seq as number, "the next live message");
  t.same(
    messages(presenter).map((m) => m.seq),
    [1, 2, 3],
  );
  presenter.close(1000);
});
