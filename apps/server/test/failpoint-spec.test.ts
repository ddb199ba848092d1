import t from "tap";
import {
  FAILPOINT_NAMES,
  FailpointError,
  Failpoints,
  parseFailAction,
  parseFailpointSpec,
} from "../src/ops/failpoints.js";

t.test("actions: the grammar is strict and never echoes the input", async (t) => {
  t.same(parseFailAction("pause"), { task: { kind: "pause" }, remaining: undefined });
  t.same(parseFailAction(" 3*drop "), { task: { kind: "drop" }, remaining: 3 });
  t.same(parseFailAction("sleep(250)"), { task: { kind: "sleep", ms: 250 }, remaining: undefined });
  t.equal(parseFailAction("off"), null);
  for (const bad of [
    "",
    "0*drop",
    "-1*drop",
    "crash()",
    "sleep(0)",
    "sleep(1e3)",
    "pause;crash",
    "1*",
    "PAUSE",
    "sleep(9999999)",
  ]) {
    t.equal(parseFailAction(bad), undefined, `refused: ${JSON.stringify(bad)}`);
  }
});

t.test("specs: presets, unknown names and bad actions are refused in our own words", async (t) => {
  t.same(parseFailpointSpec("on"), { presets: [] });
  const ok = parseFailpointSpec("post.before-publish=1*drop; log.before-batch=pause;");
  t.same(ok, {
    presets: [
      ["post.before-publish", { task: { kind: "drop" }, remaining: 1 }],
      ["log.before-batch", { task: { kind: "pause" }, remaining: undefined }],
    ],
  });
  const marker = "ZQXJmarker";
  for (const bad of [`${marker}=pause`, `post.before-publish=${marker}`, marker, "x".repeat(2000)]) {
    const parsed = parseFailpointSpec(bad);
    t.ok("problem" in parsed, "refused");
    if ("problem" in parsed) t.notMatch(parsed.problem, marker, "the input is not echoed");
  }
});

t.test("hits: N* counts down, drop and error act, off releases paused hits", async (t) => {
  const fp = new Failpoints();
  const seen: string[] = [];
  fp.enable([["post.before-publish", { task: { kind: "drop" }, remaining: 2 }]], (name, task) =>
    seen.push(`${name}:${task}`),
  );
  t.equal(await fp.hit("post.before-publish"), "drop");
  t.equal(await fp.hit("post.before-publish"), "drop");
  t.equal(await fp.hit("post.before-publish"), undefined, "off after two hits");
  t.same(fp.list(), {});

  fp.set("attach.after-claim", { task: { kind: "error" }, remaining: undefined });
  await t.rejects(fp.hit("attach.after-claim"), FailpointError);

  fp.set("log.before-batch", { task: { kind: "pause" }, remaining: undefined });
  let released = false;
  const paused = fp.hit("log.before-batch").then(() => {
    released = true;
  });
  await Promise.resolve();
  t.equal(fp.pausedAt("log.before-batch"), 1, "the hit waits");
  t.equal(released, false);
  fp.set("log.before-batch", null);
  await paused;
  t.equal(released, true, "setting the point again lets it go on");
  t.equal(fp.pausedAt("log.before-batch"), 0);
  t.same(seen, [
    "post.before-publish:drop",
    "post.before-publish:drop",
    "attach.after-claim:error",
    "log.before-batch:pause",
  ]);
  t.equal(new Set(FAILPOINT_NAMES).size, FAILPOINT_NAMES.length);
});
