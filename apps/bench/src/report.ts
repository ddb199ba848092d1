import type { DensityResult } from "./scenarios/density.js";
import type { FloodResult } from "./scenarios/flood.js";
import type { LoadScenarioResult, PhaseResult } from "./scenarios/load.js";
import type { LogWriterResult } from "./scenarios/logwriter.js";

export interface TargetCheck {
  target: string;
  goal: string;
  value: string;
  /** null: not measured in this run. */
  met: boolean | null;
}

function table(headers: string[], rows: string[][], alignLeft = 1): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (cells: string[]) =>
    `| ${cells.map((c, i) => (i < alignLeft ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(" | ")} |`;
  const sep = `|${widths.map((w, i) => (i < alignLeft ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [fmt(headers), sep, ...rows.map(fmt)].join("\n");
}

const n0 = (x: number | null | undefined) =>
  x === null || x === undefined ? "-" : Math.round(x).toLocaleString("en-US");
const ms = (x: number | null | undefined) =>
  x === null || x === undefined ? "-" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
const pct = (x: number | null | undefined) => (x === null || x === undefined ? "-" : `${Math.round(x)}%`);
const kb = (bytes: number) => `${(bytes / 1024).toFixed(2)} KB`;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** One row per measured phase (warm-up left out; it is in the JSON). */
export function loadTable(results: LoadScenarioResult[]): string {
  const rows: string[][] = [];
  for (const r of results) {
    for (const p of r.phases) {
      if (p.phase === "warmup") continue;
      const server = Object.values(p.cpu.targets).reduce((a, b) => a + b, 0);
      rows.push([
        r.title,
        p.phase === "closed"
          ? `closed ${p.concurrency}${p.rounds && p.rounds.length > 1 ? ` (median of ${p.rounds.length})` : ""}`
          : p.phase === "sequential"
            ? `sequential, ${n0(p.issued)} posts`
            : `open ${n0(p.offeredRate)}/s`,
        n0(p.okPerSec),
        r.delivers ? n0(p.deliveredPerSec) : "-",
        ms(p.http?.p50),
        ms(p.http?.p99),
        ms(p.e2e?.p50),
        ms(p.e2e?.p99),
        ms(p.e2e?.p999),
        n0(p.cpuPerMessage?.systemUs),
        n0(p.cpuPerMessage?.generatorUs),
        r.delivers ? `${p.lost}/${p.duplicates}/${p.orderViolations}` : "-",
        String(p.failed),
        pct(p.cpu.generator),
        pct(server),
        pct(p.cpu.postgres),
        pct(p.cpu.redis),
        pct(p.cpu.others),
      ]);
    }
  }
  return table(
    [
      "scenario",
      "load",
      "2xx/s",
      "delivered/s",
      "http p50 ms",
      "http p99 ms",
      "e2e p50 ms",
      "e2e p99 ms",
      "e2e p99.9 ms",
      "CPU µs/msg",
      "gen µs/msg",
      "lost/dup/order",
      "failed",
      "gen CPU",
      "server CPU",
      "pg CPU",
      "redis CPU",
      "other CPU",
    ],
    rows,
    2,
  );
}

/** Each closed-loop round's 2xx/s, in the order they ran (interleaved with the paired scenario). */
export function roundsLine(results: LoadScenarioResult[]): string {
  const parts = results
    .map((r) => {
      const c = r.phases.find((p) => p.phase === "closed");
      return c?.rounds ? `${r.id} ${c.rounds.map(n0).join(" / ")}` : undefined;
    })
    .filter((x) => x !== undefined);
  return `closed-loop rounds, 2xx/s: ${parts.join("; ")}`;
}

/**
 * Per-process CPU of each measured phase (also per delivered message: PostgreSQL, Redis and the
 * generator as rows of their own), and each chatrelay node's own group-commit and publish figures.
 */
export function cpuTable(results: LoadScenarioResult[]): string {
  const rows: string[][] = [];
  for (const r of results) {
    for (const p of r.phases) {
      if (p.phase === "warmup") continue;
      const perMsg = p.cpuPerMessage?.processUs ?? {};
      for (const [name, cpu] of Object.entries(p.cpu.targets)) {
        const m = p.nodes[name];
        rows.push([
          r.id,
          p.phase,
          name,
          pct(cpu),
          n0(perMsg[name]),
          m ? n0(m.batches / p.seconds) : "-",
          m ? ms(m.meanBatchRows) : "-",
          m ? ms(m.meanCommitMs) : "-",
          m ? ms(m.meanPublishMs) : "-",
        ]);
      }
      const shared: [string, number, number | undefined][] = [
        ["postgres (all)", p.cpu.postgres, perMsg.postgres],
        ["redis (all)", p.cpu.redis, perMsg.redis],
        ["generator", p.cpu.generator, p.cpuPerMessage?.generatorUs],
      ];
      for (const [name, cpu, us] of shared) rows.push([r.id, p.phase, name, pct(cpu), n0(us), "-", "-", "-", "-"]);
    }
  }
  return table(
    ["scenario", "phase", "process", "CPU", "µs/msg", "log batches/s", "rows/batch", "commit ms", "publish ms"],
    rows,
    3,
  );
}

export function densityTable(d: DensityResult): string {
  return table(
    ["idle presenter sockets", "value"],
    [
      ["sockets (one room each)", n0(d.sockets)],
      ["time to open all", `${d.openSeconds} s`],
      ["node RSS baseline -> loaded", `${mb(d.baselineRssBytes)} -> ${mb(d.loadedRssBytes)}`],
      ["RSS per socket above baseline", kb(d.rssPerSocketBytes)],
      ["RSS slope over 5 opening steps", `${kb(d.rssSlopeBytes)} per socket`],
      [
        `RSS per socket from ${n0(d.steps[1]?.sockets ?? 0)} to ${n0(d.sockets)} sockets`,
        `${kb(d.rssMarginalBytes)} per socket`,
      ],
      ["settled RSS at each step", d.steps.map((p) => `${n0(p.sockets)}: ${mb(p.rssBytes)}`).join(", ")],
      ["V8 heap used per socket (after a full GC)", d.heapPerSocketBytes === null ? "-" : kb(d.heapPerSocketBytes)],
      [
        `node CPU while idle (${d.idleSeconds} s, ping every ${d.pingIntervalMs} ms)`,
        `${d.idleCpu.targets["density-node"] ?? 0}% of one core`,
      ],
      ["bench (client) RSS holding the sockets", mb(d.clientRssBytes)],
    ],
  );
}

export function logWriterTable(l: LogWriterResult): string {
  return table(
    ["log writer (PrismaChatLog -> PostgreSQL)", "value"],
    [
      [
        "concurrent appends / LOG_BATCH_MAX / batches in flight / rooms",
        `${l.concurrency} / ${l.maxBatch} / ${l.batchesInFlight} / ${l.rooms}`,
      ],
      ["rows/s committed", n0(l.rowsPerSec)],
      [
        "commit wait p50 / p99 / max",
        `${ms(l.commitWaitMs.p50)} / ${ms(l.commitWaitMs.p99)} / ${ms(l.commitWaitMs.max)} ms`,
      ],
      ["batches, mean size, mean batch time", `${l.batches}, ${n0(l.meanBatch)}, ${ms(l.meanBatchMs)} ms`],
      ["writer process CPU / PostgreSQL CPU", `${pct(l.cpu.targets.logwriter)} / ${pct(l.cpu.postgres)}`],
      ["rows in table, seqs gapless", `${n0(l.table?.rows)}, ${l.table?.gapless ? "yes" : "NO"}`],
    ],
  );
}

/** The flood: normal senders with and without a spammer, and what the limits let through. */
export function floodTable(f: FloodResult): string {
  const lat = (s: FloodResult["baseline"]) =>
    `http ${ms(s.http?.p50)} / ${ms(s.http?.p99)}, e2e ${ms(s.e2e?.p50)} / ${ms(s.e2e?.p99)} / ${ms(s.e2e?.p999)} ms; ${n0(s.okPerSec)} 2xx/s, ${s.failed} failed`;
  const cpu = (c: FloodResult["cpu"]["baseline"]) =>
    `${Object.entries(c.targets)
      .map(([name, v]) => `${name} ${pct(v)}`)
      .join(
        ", ",
      )}, pg ${pct(c.postgres)}, redis ${pct(c.redis)}, generator ${pct(c.generator)}, other ${pct(c.others)}`;
  const limits = Object.entries(f.limits)
    .map(([k, v]) => `${k.replace("RATE_LIMIT_", "").toLowerCase()} ${v}`)
    .join(", ");
  return table(
    ["flood: cluster path (c), default limits", "value"],
    [
      ["limits", limits],
      [
        "load",
        `${f.normalSenders} normal senders, ${f.normalRate} posts/s together (open loop, ${f.rooms} rooms); spammer ${n0(f.spamRate)} posts/s into room ${f.spam.room} (own process); ${f.warmupSeconds > 0 ? `${f.warmupSeconds} s warm-up with the flood, then ` : ""}${f.rounds} x (${f.phaseSeconds} s without, ${f.phaseSeconds} s with the flood)`,
      ],
      ["normal senders, no flood: p50 / p99 (/ p99.9)", lat(f.baseline)],
      ["normal senders, flood: p50 / p99 (/ p99.9)", lat(f.flooded)],
      [
        "normal e2e p99 per round, no flood / flood",
        `${f.baseline.roundE2eP99.map(ms).join(", ")} / ${f.flooded.roundE2eP99.map(ms).join(", ")} ms`,
      ],
      [
        "flood / no flood p99 (e2e, http)",
        `${f.e2eP99Ratio === null ? "-" : f.e2eP99Ratio.toFixed(2)}x, ${f.httpP99Ratio === null ? "-" : f.httpP99Ratio.toFixed(2)}x`,
      ],
      [
        "spammer: offered, 2xx, 429, other",
        `${n0(f.spam.offered)}, ${n0(f.spam.ok)}, ${n0(f.spam.refused429)}, ${n0(Object.values(f.spam.otherFailures).reduce((a, b) => a + b, 0))}`,
      ],
      [
        `spammer 2xx per flood phase${f.warmupSeconds > 0 ? ", warm-up first" : ""} (GCRA allows)`,
        `${f.spam.okPerPhase.join(", ")} (<= ${f.spam.allowedPerPhase})`,
      ],
      [
        `spam received by the presenter over ${f.spam.spanSeconds} s (GCRA allows)`,
        `${n0(f.spam.delivered)} (<= ${n0(f.spam.allowedOverSpan)}); spam rows in the log ${n0(f.durability?.spamRows)}`,
      ],
      ["CPU, no flood", cpu(f.cpu.baseline)],
      ["CPU, flood", cpu(f.cpu.flooded)],
    ],
  );
}

function closed(r: LoadScenarioResult | undefined): PhaseResult | undefined {
  return r?.phases.find((p) => p.phase === "closed");
}
function open(r: LoadScenarioResult | undefined): PhaseResult | undefined {
  return r?.phases.find((p) => p.phase === "open");
}

/** The issue's targets, each checked against figures of this one run. */
export function checkTargets(
  load: LoadScenarioResult[],
  density: DensityResult | undefined,
  logWriter: LogWriterResult | undefined,
  flood?: FloodResult,
): TargetCheck[] {
  const byId = (id: string) => load.find((r) => r.id === id);
  const checks: TargetCheck[] = [];
  const ratio = (target: string, goal: number, num: string, den: string) => {
    const a = closed(byId(num))?.okPerSec;
    const b = closed(byId(den))?.okPerSec;
    checks.push(
      a === undefined || b === undefined || b === 0
        ? { target, goal: `>= ${goal}x`, value: "not measured", met: null }
        : {
            target,
            goal: `>= ${goal}x`,
            value: `${(a / b).toFixed(2)}x (${n0(a)} vs ${n0(b)} msgs/s)`,
            met: a / b >= goal,
          },
    );
  };
  ratio("(c) cluster path msgs/s vs Socket.IO peer", 2, "c", "peer");
  ratio("(a) embedded msgs/s vs HTTP ceiling", 0.6, "a", "ceiling");
  ratio("(c) with every rate limit on (never reached) vs (c) without", 0.9, "c-limits", "c");
  checks.push(...floodTargets(flood));
  for (const id of ["a", "c"]) {
    const p = open(byId(id));
    checks.push(
      p?.e2e
        ? {
            target: `(${id}) p99 end-to-end latency at half the max rate`,
            goal: "<= 10 ms",
            value: `${ms(p.e2e.p99)} ms at ${n0(p.offeredRate)} msgs/s`,
            met: p.e2e.p99 <= 10,
          }
        : {
            target: `(${id}) p99 end-to-end latency at half the max rate`,
            goal: "<= 10 ms",
            value: "not measured",
            met: null,
          },
    );
  }
  checks.push(
    density
      ? {
          target: `RSS per idle presenter socket at ${n0(density.sockets)}`,
          goal: "<= 8 KB",
          value: `${kb(density.rssPerSocketForTarget)} (larger of: above baseline ${kb(density.rssPerSocketBytes)}, from ${n0(density.steps[1]?.sockets ?? 0)} to ${n0(density.sockets)} ${kb(density.rssMarginalBytes)})`,
          met: density.rssPerSocketForTarget <= 8 * 1024,
        }
      : { target: "RSS per idle presenter socket", goal: "<= 8 KB", value: "not measured", met: null },
  );
  checks.push(
    logWriter
      ? {
          target: "log writer rows/s into PostgreSQL",
          goal: ">= 50,000",
          value: `${n0(logWriter.rowsPerSec)} (p99 commit wait ${ms(logWriter.commitWaitMs.p99)} ms)`,
          met: logWriter.rowsPerSec >= 50_000,
        }
      : { target: "log writer rows/s into PostgreSQL", goal: ">= 50,000", value: "not measured", met: null },
  );
  const durable = load.filter((r) => r.durability);
  if (durable.length > 0) {
    const bad = durable.filter((r) => !r.durability?.ok);
    checks.push({
      target: "every 2xx durable (rows in chat_message >= 2xx answers)",
      goal: "all",
      value: durable.map((r) => `(${r.id}) ${n0(r.durability?.rows)} rows / ${n0(r.durability?.acked)} 2xx`).join(", "),
      met: bad.length === 0,
    });
  }
  return checks;
}

function floodTargets(f: FloodResult | undefined): TargetCheck[] {
  const p99 = "flood: normal senders' e2e p99 with the flood vs without";
  const spam = "flood: the spammer's messages at the presenter";
  if (!f?.baseline.e2e || !f.flooded.e2e || f.e2eP99Ratio === null) {
    return [
      { target: p99, goal: "<= 1.20x", value: "not measured", met: null },
      { target: spam, goal: "<= the limit", value: "not measured", met: null },
    ];
  }
  return [
    {
      target: p99,
      goal: "<= 1.20x",
      value: `${f.e2eP99Ratio.toFixed(2)}x (${ms(f.flooded.e2e.p99)} vs ${ms(f.baseline.e2e.p99)} ms; ${n0(f.spamRate)} spam posts/s, ${n0(f.spam.refused429)} answered 429)`,
      met: f.e2eP99Ratio <= 1.2,
    },
    {
      target: spam,
      goal: "<= the limit",
      value: `${n0(f.spam.delivered)} over ${f.spam.spanSeconds} s (${f.limits.RATE_LIMIT_ROOM} allows ${f.spam.allowedOverSpan}); per phase ${f.spam.okPerPhase.join(", ")} (allows ${f.spam.allowedPerPhase})`,
      met: f.spam.delivered <= f.spam.allowedOverSpan && f.spam.okPerPhase.every((n) => n <= f.spam.allowedPerPhase),
    },
  ];
}

export function targetsTable(checks: TargetCheck[]): string {
  return table(
    ["target", "goal", "this run", "met"],
    checks.map((c) => [c.target, c.goal, c.value, c.met === null ? "-" : c.met ? "yes" : "NO"]),
    3,
  );
}
