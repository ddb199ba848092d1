import { readFileSync } from "node:fs";
import { basename } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Share of samples outside JavaScript: idle, GC, native program. */
  idlePct: number;
  gcPct: number;
  programPct: number;
  topFunctions: SelfTime[];
  /** Self time by package (node_modules/<pkg>), node internals, or the project's own files. */
  byModule: { module: string; ms: number; pct: number }[];
}

/** Where a call frame's code lives: a package name, "node:internal", or a project path. */
function moduleOf(url: string): string {
  if (url === "") return "(native)";
  const nm = url.lastIndexOf("/node_modules/");
  if (nm !== -1) {
    const rest = url.slice(nm + "/node_modules/".length).split("/");
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  if (url.startsWith("node:")) return "node:internal";
  const m = /\/(apps|packages)\/([^/]+)\/(?:dist|src)\/(.*)$/.exec(url);
  if (m) return `${m[1]}/${m[2]}/${m[3]}`;
  return url;
}

/** Self time per function of a V8 .cpuprofile (what `node --cpu-prof` writes). */
export function summarizeProfile(path: string, top = 15, label = basename(path)): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0) {
    // A sample's time is the delta to the next sample.
    for (let i = 0; i < samples.length; i++) {
      const id = samples[i] as number;
      const dt = deltas[i + 1] ?? 0;
      selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
    }
  } else {
    const per =
      (profile.endTime - profile.startTime) /
      Math.max(
        1,
        profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0),
      );
    for (const n of profile.nodes) selfUs.set(n.id, (n.hitCount ?? 0) * per);
  }
  let total = 0;
  for (const v of selfUs.values()) total += v;
  const fn = new Map<string, SelfTime>();
  const mod = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  let program = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") idle += us;
    else if (functionName === "(garbage collector)") gc += us;
    else if (functionName === "(program)") program += us;
    const name = functionName || "(anonymous)";
    const where = url ? `${moduleOf(url)}:${lineNumber + 1}` : "";
    const key = `${name}@${where}`;
    const e = fn.get(key) ?? { name, where, ms: 0, pct: 0 };
    e.ms += us / 1000;
    fn.set(key, e);
    if (!functionName.startsWith("(")) mod.set(moduleOf(url), (mod.get(moduleOf(url)) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((us / Math.max(1, total)) * 1000) / 10;
  const busy = Math.max(1, total - idle);
  return {
    file: label,
    totalMs: Math.round(total / 1000),
    idlePct: pct(idle),
    gcPct: pct(gc),
    programPct: pct(program),
    topFunctions: [...fn.values()]
      .filter((e) => e.name !== "(idle)")
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map((e) => ({ ...e, ms: Math.round(e.ms), pct: Math.round(((e.ms * 1000) / busy) * 1000) / 10 })),
    byModule: [...mod.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([module, us]) => ({ module, ms: Math.round(us / 1000), pct: Math.round((us / busy) * 1000) / 10 })),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const lines = [
    `${s.file}: ${s.totalMs} ms sampled, idle ${s.idlePct}%, GC ${s.gcPct}%, (program) ${s.programPct}%; shares below are of busy time`,
    "  top self time:",
    ...s.topFunctions.map((f) => `    ${f.pct.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`),
    "  by module:",
    ...s.byModule.map((m) => `    ${m.pct.toFixed(1).padStart(5)}%  ${m.module}`),
  ];
  return lines.join("\n");
}

// `tsx src/profile.ts <file.cpuprofile>...` prints the summaries.
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const file of process.argv.slice(2)) process.stdout.write(`${formatProfile(summarizeProfile(file))}\n\n`);
}
