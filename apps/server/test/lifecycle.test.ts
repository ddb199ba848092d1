import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { request } from "./helpers/http.js";
import { NodeProcess } from "./helpers/processes.js";
import { mintToken } from "./helpers/tokens.js";
import { outputEnded } from "./helpers/wait.js";
import { TestSocket } from "./helpers/ws-client.js";

// The real process: start-up checks, the embedded log on disk, and graceful shutdown.
const dataDir = mkdtempSync(join(tmpdir(), "chatrelay-pglite-"));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

t.test("a wrong configuration stops start-up with one clear message per value", async (t) => {
  const node = NodeProcess.spawn("bad-config", { LOG_LEVEL: "loud", MAX_TEXT_LENGTH: "-3" });
  const exit = await node.exited();
  await outputEnded(node.child);
  t.equal(exit.code, 78, "EX_CONFIG");
  const stderr = node.stderr();
  t.match(stderr, /LOG_LEVEL=loud/);
  t.match(stderr, /MAX_TEXT_LENGTH=-3/);
});

t.test(
  "SIGTERM: presenter sockets closed with 1012, pending writes flushed, exit 0; PGlite keeps the log",
  async (t) => {
    const env = { PGLITE_DATA_DIR: dataDir };
    const node = await NodeProcess.start("embedded", env);
    const token = await mintToken({ user_idx: 601 });
    const presenter = new TestSocket(`${node.ws}/v1/rooms/601/presenter?access_token=${token}`);
    await presenter.open();
    await presenter.next((f) => f.type === "ready", "ready");
    const viewer = await mintToken({ user_idx: 61 });
    const posts = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        request<Record<string, unknown>>(`${node.http}/v1/rooms/601/messages`, {
          headers: { authorization: `Bearer ${viewer}` },
          body: { text: `m${i}` },
        }),
      ),
    );
    t.ok(
      posts.every((p) => p.status === 201),
      "all accepted",
    );
    const exit = node.kill("SIGTERM");
    const closed = await presenter.waitClose();
    t.equal(closed.code, 1012, "service restart: reconnect elsewhere");
    t.same(await exit, { code: 0, signal: null }, "clean exit");

    // The same data folder after a restart: history is there and seqs continue.
    const again = await NodeProcess.start("embedded-again", env);
    t.teardown(() => again.kill("SIGKILL"));
    const history = await request<{ items: { seq: number }[] }>(`${again.http}/v1/rooms/601/messages?limit=100`, {
      headers: { authorization: `Bearer ${viewer}` },
    });
    t.equal(history.body.items.length, 20, "the log survived the restart");
    const p2 = new TestSocket(`${again.ws}/v1/rooms/601/presenter?access_token=${token}`);
    await p2.open();
    const ready = await p2.next((f) => f.type === "ready", "ready");
    t.equal(ready.lastSeq, 20);
    const next = await request<Record<string, unknown>>(`${again.http}/v1/rooms/601/messages`, {
      headers: { authorization: `Bearer ${viewer}` },
      body: { text: "after restart" },
    });
    t.equal(next.body.seq, 21, "seq continues, never repeats");
    p2.close(1000);
  },
);
