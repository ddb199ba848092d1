import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { NodeProcess } from "./helpers/processes.js";
import { outputEnded } from "./helpers/wait.js";

// A fatal error must never be silent: pino logs it with its stack, flushed, and the process exits non-zero.
t.test("an uncaught exception is logged at fatal with its stack before the node exits 1", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "chatrelay-crash-"));
  const preload = join(dir, "inject-crash.mjs");
  // Test-only preload: SIGUSR2 throws from a timer, outside any handler, once the node is running.
  writeFileSync(
    preload,
    'process.on("SIGUSR2", () => setImmediate(() => { throw new Error("injected crash for the test"); }));\n',
  );
  const node = await NodeProcess.start("crash", { NODE_OPTIONS: `--import=${preload}` });
  node.child.kill("SIGUSR2");
  const exit = await node.exited();
  await outputEnded(node.child);
  t.equal(exit.code, 1, "exit status 1");
  const fatal = node.lines.find((l) => l.level === 60);
  t.ok(fatal, `a fatal line was logged: ${node.tail()}`);
  const err = (fatal?.err ?? {}) as { message?: string; stack?: string };
  t.equal(err.message, "injected crash for the test");
  t.match(err.stack, /inject-crash\.mjs/, "with its stack");
});
