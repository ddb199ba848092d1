import t from "tap";
import { checkHistory, describeViolation } from "./helpers/history.js";
import { type Fault, runNemesis } from "./helpers/nemesis.js";

// The nemesis run (bounded, for CI): a seeded random workload against three real nodes while
// nodes, Redis and PostgreSQL are killed and restarted and a node is paused past the presence
// TTL; then the whole history is checked against the guarantees. Replay a failure with
// NEMESIS_SEED=<seed> NEMESIS_OPS=<ops> npx tap test/nemesis.test.ts
const seed = Number(process.env.NEMESIS_SEED ?? 1010);
const ops = Number(process.env.NEMESIS_OPS ?? 400);
// One run takes about a minute here; the bound is generous for a loaded 2-core machine.
t.setTimeout(240_000);
t.comment(`nemesis seed ${seed}, ${ops} posts (replay: NEMESIS_SEED=${seed} NEMESIS_OPS=${ops})`);

t.test("the history of a run under faults satisfies every guarantee", async (t) => {
  const lines: string[] = [];
  const result = await runNemesis({ seed, ops, log: (line) => lines.push(line) });
  const { history } = result;
  t.comment(`nemesis timeline:\n${lines.join("\n")}`);

  const outcomes = new Map<string, number>();
  for (const a of history.posts) {
    const key = a.outcome.kind === "indeterminate" ? a.outcome.error : String(a.outcome.status);
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }
  t.comment(
    `${history.posts.length} attempts (${[...outcomes].map(([k, n]) => `${k}: ${n}`).join(", ")}), ` +
      `${history.log.length} log rows, ${history.connections.length} presenter sockets, ` +
      `${result.takeovers} takeovers, ${result.drops} drops, ${Math.round(result.durationMs)} ms`,
  );

  const [first, ...rest] = checkHistory(history);
  if (first) t.fail(`${describeViolation(history, first)}\n(${rest.length} more; seed ${seed}, ${ops} posts)`);
  else t.pass("every property holds over the whole history");
  t.equal(result.healError, undefined, "after healing, every 2xx'd message reached its presenter");

  // The run exercised what it claims to: otherwise a pass proves little.
  const kinds = new Set<Fault>(result.faults.map((f) => f.fault));
  t.same([...kinds].sort(), ["kill-node", "kill-postgres", "kill-redis", "pause-node"], "every kind of fault ran");
  const acked = history.posts.filter((a) => a.outcome.kind === "ok").length;
  t.ok(acked >= ops / 2, `${acked} posts answered 2xx`);
  t.ok(
    history.posts.some((a) => a.outcome.kind !== "ok"),
    "some attempts failed (the faults bit)",
  );
  t.ok(history.connections.length > 3, "presenters reconnected");
  // The fence was under test: some socket was replaced (4001) by a newer one of its room.
  const replaced = history.connections.filter((c) => c.closed?.code === 4001).length;
  t.comment(`${replaced} presenter sockets replaced (4001)`);
  t.ok(replaced > 0, "some presenter sockets were replaced by a takeover");
  t.equal(outcomes.get("status 500") ?? 0, 0, "no 500 answers");
});
