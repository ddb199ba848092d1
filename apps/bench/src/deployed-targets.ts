/**
 * Issue #11's targets (the deployed shape), each a ratio or a bound within one run. A missed
 * target is reported, never a failure of the run; "-" means the run did not measure it.
 */
import type { TargetCheck } from "./report.js";
import type { LoadScenarioResult, PhaseResult } from "./scenarios/load.js";

/** The open-loop rate the latency target names. */
export const LATENCY_TARGET_RATE = 2000;

const n0 = (x: number | undefined) => (x === undefined ? "-" : Math.round(x).toLocaleString("en-US"));
const ms = (x: number | undefined) => (x === undefined ? "-" : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function phaseOf(load: LoadScenarioResult[], id: string, mode: PhaseResult["phase"]): PhaseResult | undefined {
  return load.find((r) => r.id === id)?.phases.find((p) => p.phase === mode);
}

/** `num`'s closed-loop msgs/s over `den`'s, with each one's CPU per delivered message. */
function throughputRatio(load: LoadScenarioResult[], target: string, goal: number, num: string, den: string) {
  const a = phaseOf(load, num, "closed");
  const b = phaseOf(load, den, "closed");
  const goalText = `>= ${goal}x`;
  if (!a || !b || b.okPerSec === 0) return { target, goal: goalText, value: "not measured", met: null };
  const ratio = a.okPerSec / b.okPerSec;
  return {
    target,
    goal: goalText,
    value: `${ratio.toFixed(2)}x (${n0(a.okPerSec)} vs ${n0(b.okPerSec)} msgs/s; CPU ${n0(a.cpuPerMessage?.systemUs)} vs ${n0(b.cpuPerMessage?.systemUs)} µs/msg)`,
    met: ratio >= goal,
  };
}

export function deployedShapeTargets(load: LoadScenarioResult[]): TargetCheck[] {
  const checks: TargetCheck[] = [
    throughputRatio(load, "spread2 msgs/s vs Socket.IO peer", 2, "spread2", "peer"),
    throughputRatio(load, "spread2 msgs/s vs naive-log peer", 3, "spread2", "peer-naive-log"),
  ];

  const latency = `spread2 p99 end to end, open loop at ${n0(LATENCY_TARGET_RATE)} msgs/s`;
  const open = phaseOf(load, "spread2", "open");
  if (!open?.e2e) checks.push({ target: latency, goal: "<= 5 ms", value: "not measured", met: null });
  else {
    const atRate = open.offeredRate === LATENCY_TARGET_RATE;
    checks.push({
      target: latency,
      goal: "<= 5 ms",
      value: `${ms(open.e2e.p99)} ms at ${n0(open.offeredRate ?? undefined)} msgs/s${atRate ? "" : " (not the target's rate)"}; CPU ${n0(open.cpuPerMessage?.systemUs)} µs/msg`,
      met: atRate ? open.e2e.p99 <= 5 : null,
    });
  }

  const probeTarget = "probe: one sequential sender, 1 node on PostgreSQL, p50 per durable post (2xx)";
  const probe = phaseOf(load, "probe", "sequential");
  checks.push(
    probe?.http
      ? {
          target: probeTarget,
          goal: "<= 1 ms",
          value: `${ms(probe.http.p50)} ms (p99 ${ms(probe.http.p99)}; e2e p50 ${ms(probe.e2e?.p50)}, p99 ${ms(probe.e2e?.p99)} ms; ${n0(probe.http.count)} posts; CPU ${n0(probe.cpuPerMessage?.systemUs)} µs/msg)`,
          met: probe.http.p50 <= 1,
        }
      : { target: probeTarget, goal: "<= 1 ms", value: "not measured", met: null },
  );

  checks.push(
    throughputRatio(
      load,
      "spread3-nginx msgs/s vs spread2 (a node must not cost throughput)",
      1,
      "spread3-nginx",
      "spread2",
    ),
    // spread3, not spread3-nginx: same three nodes and the same direct spread, so only the room count differs.
    throughputRatio(load, "hot-room msgs/s vs spread3 (100 rooms, 3 nodes, direct)", 0.8, "hot-room", "spread3"),
    throughputRatio(load, "(a) embedded msgs/s vs HTTP ceiling", 0.5, "a", "ceiling"),
  );
  return checks;
}
