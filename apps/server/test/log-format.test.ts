import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import t from "tap";
import { ConfigError, loadConfig } from "../src/config.js";
import { chooseLogFormat } from "../src/ops/log-format.js";
import { browseBase } from "../src/ops/start-lines.js";
import { freePort, NodeProcess, SERVER_MAIN } from "./helpers/processes.js";
import { RATE_LIMITS_OFF, TEST_JWT_SECRET } from "./helpers/tokens.js";
import { outputEnded, within } from "./helpers/wait.js";

// JSON lines for pipes (what NodeProcess and log shippers parse), readable lines for a person.

const ANSI = /\x1b\[[0-9;]*m/g;

t.test("the format: LOG_FORMAT wins, else a terminal gets pretty lines", async (t) => {
  t.equal(chooseLogFormat(undefined, true), "pretty");
  t.equal(chooseLogFormat(undefined, false), "json");
  t.equal(chooseLogFormat("json", true), "json");
  t.equal(chooseLogFormat("pretty", false), "pretty");

  t.equal(loadConfig({}).logFormat, undefined, "unset: detected at start-up");
  t.equal(loadConfig({ LOG_FORMAT: "pretty" }).logFormat, "pretty");
  t.equal(loadConfig({ LOG_FORMAT: " json " }).logFormat, "json", "trimmed like every variable");
  const err = t.throws(() => loadConfig({ LOG_FORMAT: "xml" })) as ConfigError;
  t.type(err, ConfigError);
  t.match(err.problems.join("\n"), /LOG_FORMAT must be "json" or "pretty"/);
  t.notMatch(err.problems.join("\n"), /xml/, "the value is not repeated");
});

t.test("browse addresses: a wildcard listen address is reached through localhost", async (t) => {
  t.equal(browseBase("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
  t.equal(browseBase("http://0.0.0.0:8080"), "http://localhost:8080");
  t.equal(browseBase("http://[::]:8080"), "http://localhost:8080");
  t.equal(browseBase("http://[::1]:8080"), "http://[::1]:8080");
});

t.test("default on a pipe: JSON lines, the listening line as before, where to start", async (t) => {
  const node = await NodeProcess.start("json-node", { LOG_FORMAT: "" });
  t.teardown(() => node.kill());
  const listening = node.lines.find((l) => l.msg === "chatrelay listening");
  t.match(listening, {
    level: 30,
    node: "json-node",
    url: node.http,
    opsUrl: /^http:/,
    chatlog: "pglite",
    bus: "memory",
  });
  const guide = `API reference: ${node.http}/docs`;
  await node.waitFor((l) => l.msg === guide, "the docs line");
  for (const msg of [`console: ${node.http}/console`, `OpenAPI document: ${node.http}/openapi.json`]) {
    t.ok(
      node.lines.some((l) => l.msg === msg),
      msg,
    );
  }
  t.equal((await node.kill("SIGTERM")).code, 0);
  await outputEnded(node.child);
  const stdout = node.lines.filter((l) => !("stderr" in l));
  t.ok(stdout.length > 5);
  t.ok(
    stdout.every((l) => typeof l.level === "number" && typeof l.time === "number"),
    "every stdout line is a JSON log line",
  );
});

t.test("LOG_FORMAT=pretty on a pipe: plain human lines", async (t) => {
  const port = await freePort();
  const node = NodeProcess.spawn("pretty-node", { LOG_FORMAT: "pretty" }, port);
  t.teardown(() => node.kill());
  const docs = `API reference: http://127.0.0.1:${port}/docs`;
  await node.waitFor((l) => typeof l.msg === "string" && l.msg.includes(docs), "the docs line", 30_000);
  t.equal((await node.kill("SIGTERM")).code, 0);
  await outputEnded(node.child);
  const text = node.lines.map((l) => (typeof l.msg === "string" ? l.msg : "")).join("\n");
  // NodeProcess keeps a line it cannot parse as JSON as { msg: line }: no other key.
  t.ok(
    node.lines.filter((l) => !("stderr" in l)).every((l) => Object.keys(l).join() === "msg"),
    "no JSON line",
  );
  t.match(text, /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO: chatrelay listening \{"url":/m, "time, level, message");
  t.match(text, /INFO: OpenAPI document: http:\/\/127\.0\.0\.1:\d+\/openapi\.json/);
  t.match(text, /INFO: stopped$/m);
  t.notMatch(text, ANSI, "no colours outside a terminal");
});

t.test("on a terminal (a pseudo-terminal from script(1)): pretty by default; Ctrl-C stops it", async (t) => {
  const port = await freePort();
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...RATE_LIMITS_OFF,
    JWT_SECRET: TEST_JWT_SECRET,
    PGLITE_DATA_DIR: "memory://",
    LOG_LEVEL: "info",
    HOST: "127.0.0.1",
    PORT: String(port),
    OPS_PORT: "0",
  };
  delete env.LOG_FORMAT;
  // -e: script exits with the node's status; -f: output as it comes. The terminal turns \n into \r\n.
  // exec: script runs the command through $SHELL, and a shell left waiting would take the SIGINT too
  // (dash, CI's /bin/sh, does not exec a lone command on its own) and exit with 130 whatever the node does.
  const command = `exec '${process.execPath}' '${SERVER_MAIN}'`;
  const child = spawn("script", ["-q", "-e", "-f", "-c", command, "/dev/null"], { env, stdio: "pipe" });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  await within(
    textAppears(child, () => output, `:${port}/docs`),
    30_000,
    "the docs line on the terminal",
  );
  const exited = once(child, "exit");
  child.stdin.write("\x03"); // Ctrl-C: the terminal sends SIGINT to the node
  const [code] = await within(exited, 20_000, "the node to stop on Ctrl-C");
  t.equal(code, 0, "a clean stop");

  t.match(output, ANSI, "coloured: it is a terminal");
  const lines = output.replace(ANSI, "").split(/\r?\n/);
  t.ok(
    lines.some((l) => /^\[[\d:.]+\] INFO: chatrelay listening \{"url":"http:\/\/127\.0\.0\.1:\d+","opsUrl"/.test(l)),
    "the listening line, readable",
  );
  t.ok(
    lines.some((l) => l.endsWith(`INFO: API reference: http://127.0.0.1:${port}/docs`)),
    "where the docs are",
  );
  t.notOk(
    lines.some((l) => l.startsWith("{")),
    "no JSON line",
  );
  t.ok(
    lines.some((l) => l.endsWith("INFO: stopped")),
    "drained and stopped",
  );
});

/** Resolves once the child's output (as `read` returns it) contains `text`; rejects if it exits first. */
function textAppears(child: ChildProcess, read: () => string, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!read().includes(text)) return;
      child.stdout?.off("data", check);
      child.off("exit", onExit);
      resolve();
    };
    const onExit = (code: number | null) => reject(new Error(`exited (${code}) before "${text}": ${read()}`));
    child.stdout?.on("data", check);
    child.once("exit", onExit);
    check();
  });
}
