// The nemesis soak: the CI nemesis run (test/nemesis.test.ts) with more posts and several seeds,
// for whoever changes the message path. Usage: pnpm soak [seed...]
// Env: SOAK_OPS (posts per run, default 1500), SOAK_SEEDS (how many random seeds when none given, default 4).
// Exit code 0 when every run's history satisfies every guarantee, 1 otherwise (the first violation is printed).
import { randomInt } from "node:crypto";
import { checkHistory, describeViolation } from "../test/helpers/history.js";
import { runNemesis } from "../test/helpers/nemesis.js";

const ops = Number(process.env.SOAK_OPS ?? 1500);
const given = process.argv.slice(2).map(Number);
const seeds =
  given.length > 0 ? given : Array.from({ length: Number(process.env.SOAK_SEEDS ?? 4) }, () => randomInt(1, 2 ** 31));
let failed = 0;
for (const seed of seeds) {
  const replay = `NEMESIS_SEED=${seed} NEMESIS_OPS=${ops}`;
  process.stdout.write(`soak: seed ${seed}, ${ops} posts (replay: ${replay} npx tap test/nemesis.test.ts)\n`);
  const result = await runNemesis({ seed, ops, log: (line) => process.stdout.write(`  ${line}\n`) });
  const violations = checkHistory(result.history);
  const acked = result.history.posts.filter((a) => a.outcome.kind === "ok").length;
  const summary = `${acked} 2xx of ${result.history.posts.length} attempts, ${result.history.connections.length} sockets, ${Math.round(result.durationMs / 1000)} s`;
  const first = violations[0];
  if (first || result.healError) {
    failed++;
    process.stdout.write(`FAIL seed ${seed} (${summary})\n`);
    if (result.healError) process.stdout.write(`  heal: ${result.healError}\n`);
    if (first) process.stdout.write(`${describeViolation(result.history, first)}\n(${violations.length} violations)\n`);
  } else process.stdout.write(`ok   seed ${seed} (${summary})\n`);
}
process.stdout.write(`soak: ${seeds.length - failed} of ${seeds.length} runs passed\n`);
process.exit(failed === 0 ? 0 : 1);
