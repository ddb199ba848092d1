import t from "tap";
import { NodeProcess } from "./helpers/processes.js";

// The failpoint control route is a test tool: absent unless asked for, refused in production,
// strict about what it accepts, and never echoing what it was sent.
const plain = await NodeProcess.start("fp-off", {});
t.teardown(() => plain.kill("SIGKILL"));
const armed = await NodeProcess.start("fp-on", { CHATRELAY_FAILPOINTS: "on" });
t.teardown(() => armed.kill("SIGKILL"));

function put(node: NodeProcess, name: string, body: string, contentType = "text/plain"): Promise<Response> {
  return fetch(`${node.ops}/failpoints/${name}`, { method: "PUT", headers: { "content-type": contentType }, body });
}

t.test("not served without CHATRELAY_FAILPOINTS", async (t) => {
  t.equal((await put(plain, "log.before-batch", "pause")).status, 404, "PUT on the ops port: 404");
  t.equal((await fetch(`${plain.ops}/failpoints`)).status, 404, "GET on the ops port: 404");
  t.equal((await put(armed, "log.before-batch", "off")).status, 204, "the same request works on an armed node");
});

t.test("not served on the public port, even when armed", async (t) => {
  t.equal((await put({ ops: armed.http } as NodeProcess, "log.before-batch", "pause")).status, 404);
});

t.test("an unknown failpoint is 404, without echoing the name", async (t) => {
  const name = "no.such-point-31337";
  const res = await put(armed, name, "pause");
  t.equal(res.status, 404);
  t.notMatch(await res.text(), /31337/, "the name is not echoed");
});

t.test("invalid or hostile actions are refused with 400, never echoed", async (t) => {
  const hostile = [
    "",
    "explode",
    "pause;crash",
    "0*pause",
    "-1*pause",
    "1000000*pause",
    "sleep(0)",
    "sleep(1e9)",
    "sleep(-5)",
    "1*1*pause",
    "<script>alert(31337)</script>",
    "pause\u0000crash",
    "__proto__",
  ];
  for (const body of hostile) {
    const res = await put(armed, "post.before-publish", body);
    const text = await res.text();
    t.equal(res.status, 400, `${JSON.stringify(body)}: 400`);
    if (body.length > 2) t.notOk(text.includes(body), `${JSON.stringify(body)}: not echoed`);
  }
  const json = await put(armed, "post.before-publish", JSON.stringify({ action: "pause" }), "application/json");
  t.equal(json.status, 400, "a JSON body is not an action");
  t.notMatch(await json.text(), /action/, "not echoed");
  const long = await put(armed, "post.before-publish", `pause${" ".repeat(100)}31337`);
  t.ok(long.status === 400 || long.status === 413, `an oversized body is refused (${long.status})`);
  t.notMatch(await long.text(), /31337/, "not echoed");
  t.same(await (await fetch(`${armed.ops}/failpoints`)).json(), {}, "nothing was set by any of them");
});

t.test("valid actions are set and listed; off clears them", async (t) => {
  for (const action of ["pause", "crash", "drop", "error", "sleep(5)", "3*drop", " 2*sleep(10) "]) {
    t.equal((await put(armed, "attach.before-tail", action)).status, 204, `${JSON.stringify(action)}: 204`);
  }
  t.same(await (await fetch(`${armed.ops}/failpoints`)).json(), { "attach.before-tail": "sleep" });
  t.equal((await put(armed, "attach.before-tail", "off")).status, 204);
  t.same(await (await fetch(`${armed.ops}/failpoints`)).json(), {}, "cleared");
});

t.test("NODE_ENV=production with CHATRELAY_FAILPOINTS refuses to start", async (t) => {
  const node = NodeProcess.spawn("fp-prod", { NODE_ENV: "production", CHATRELAY_FAILPOINTS: "on" });
  const exit = await node.exited();
  t.equal(exit.code, 78, "exit code 78 (EX_CONFIG)");
  t.match(node.stderr(), /CHATRELAY_FAILPOINTS.*production/, "the reason is on stderr");
});

t.test("an invalid CHATRELAY_FAILPOINTS refuses to start, without echoing it", async (t) => {
  for (const spec of ["log.before-batch=explode31337", "nope31337=pause", "log.before-batch", "x".repeat(2000)]) {
    const node = NodeProcess.spawn("fp-bad", { CHATRELAY_FAILPOINTS: spec });
    const exit = await node.exited();
    t.equal(exit.code, 78, `${spec.slice(0, 40)}: exit code 78`);
    t.match(node.stderr(), /CHATRELAY_FAILPOINTS/, "the reason is on stderr");
    t.notMatch(node.stderr(), /31337|xxxxxxxx/, "the spec is not echoed");
  }
  const presets = NodeProcess.spawn("fp-presets", {
    CHATRELAY_FAILPOINTS: "post.before-publish=1*drop; log.before-batch=sleep(5)",
  });
  t.teardown(() => presets.kill("SIGKILL"));
  await presets.waitFor((l) => l.msg === "chatrelay listening", "listening with presets");
  t.same(
    await (await fetch(`${presets.ops}/failpoints`)).json(),
    { "post.before-publish": "drop", "log.before-batch": "sleep" },
    "a valid spec of presets starts with them set",
  );
});
