import type { Target } from "../targets.js";

const WANTED = [
  "chatrelay_log_batch_rows_sum",
  "chatrelay_log_batch_rows_count",
  "chatrelay_log_commit_seconds_sum",
  "chatrelay_publish_seconds_sum",
  "chatrelay_publish_seconds_count",
  "chatrelay_relayed_frames_total",
  "chatrelay_bus_received_total",
] as const;
/** NaN: the node does not export that metric (an older server). */
type Sample = Record<(typeof WANTED)[number], number>;

/** What a chatrelay node's own /metrics say about one phase: group-commit batches and bus publishes. */
export interface NodePhaseMetrics {
  batches: number;
  meanBatchRows: number | null;
  meanCommitMs: number | null;
  publishes: number;
  meanPublishMs: number | null;
  framesRelayed: number;
  /** Payloads the node received on its room subscriptions (chatrelay_bus_received_total); null if not exported. */
  busReceived: number | null;
}

async function scrape(port: number): Promise<Sample | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    const sample = {} as Sample;
    for (const name of WANTED) {
      // Every series of the metric, summed (a counter may carry labels).
      const series = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([0-9.eE+-]+)`, "gm"))];
      sample[name] =
        series.length === 0
          ? name === "chatrelay_bus_received_total"
            ? Number.NaN
            : 0
          : series.reduce((s, m) => s + Number(m[1]), 0);
    }
    return sample;
  } catch {
    return undefined;
  }
}

/** Snapshot of every chatrelay node among `targets`; `diff()` turns two of them into per-phase figures. */
export async function snapshotNodes(targets: Target[]): Promise<Map<string, Sample>> {
  const out = new Map<string, Sample>();
  await Promise.all(
    targets
      .filter((t) => t.chatrelay)
      .map(async (t) => {
        const s = await scrape(t.opsPort ?? t.port);
        if (s) out.set(t.name, s);
      }),
  );
  return out;
}

export function diffNodes(before: Map<string, Sample>, after: Map<string, Sample>): Record<string, NodePhaseMetrics> {
  const out: Record<string, NodePhaseMetrics> = {};
  for (const [name, a] of after) {
    const b = before.get(name);
    if (!b) continue;
    const d = (k: (typeof WANTED)[number]) => a[k] - b[k];
    const batches = d("chatrelay_log_batch_rows_count");
    const publishes = d("chatrelay_publish_seconds_count");
    const r = (x: number) => Math.round(x * 1000) / 1000;
    out[name] = {
      batches,
      meanBatchRows: batches > 0 ? r(d("chatrelay_log_batch_rows_sum") / batches) : null,
      meanCommitMs: batches > 0 ? r((d("chatrelay_log_commit_seconds_sum") / batches) * 1000) : null,
      publishes,
      meanPublishMs: publishes > 0 ? r((d("chatrelay_publish_seconds_sum") / publishes) * 1000) : null,
      framesRelayed: d("chatrelay_relayed_frames_total"),
      busReceived: Number.isNaN(d("chatrelay_bus_received_total")) ? null : d("chatrelay_bus_received_total"),
    };
  }
  return out;
}
