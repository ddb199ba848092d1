import { createServer } from "node:net";
import t from "tap";
import { freePort, NodeProcess } from "./helpers/processes.js";

// The test helpers pick a free port, then the node binds it: in between, another process (an
// outgoing connection's ephemeral port) can take it. The helper then starts the node on another port
// instead of failing the test that wanted a node.

t.test("a port taken between pick and bind: the node starts on the next one", async (t) => {
  const squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen(0, "127.0.0.1", resolve));
  t.teardown(() => squatter.close());
  const taken = (squatter.address() as { port: number }).port;
  const picked: number[] = [];
  const node = await NodeProcess.start("ports", {}, 30_000, async () => {
    const port = picked.length === 0 ? taken : await freePort();
    picked.push(port);
    return port;
  });
  t.teardown(() => node.kill("SIGKILL"));
  t.equal(picked.length, 2, "a second port was picked");
  t.equal(node.port, picked[1], "and the node listens there");
  t.notOk(
    node.lines.some((l) => String(l.stderr ?? "").includes("EADDRINUSE")),
    "the new process had no clash",
  );
});

t.test("any other start-up failure is not retried", async (t) => {
  let picks = 0;
  await t.rejects(
    NodeProcess.start("bad-config", { PORT_IS_IGNORED: "1", JWT_SECRET: "short" }, 30_000, async () => {
      picks++;
      return freePort();
    }),
    /exited/,
  );
  t.equal(picks, 1, "one attempt");
});
