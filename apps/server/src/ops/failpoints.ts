/**
 * Failpoints: named places on the message path where a test injects a fault
 * (a crash, a pause, a lost step, an error, a delay) to force a race instead
 * of hoping for it, as etcd's gofail and TiKV's fail-rs do.
 *
 * Off unless the node starts with CHATRELAY_FAILPOINTS set ("on", or presets
 * such as "post.before-publish=1*drop;log.before-batch=pause"); refused with
 * NODE_ENV=production. When on, the ops listener serves PUT /failpoints/:name.
 * Code on the path checks `failpoints.enabled` first: one boolean when off.
 */

export const FAILPOINT_NAMES = [
  /** A group-commit batch is about to be written (nothing of it is committed yet). */
  "log.before-batch",
  /** A batch's append statement committed on PostgreSQL; "drop" loses its answer (the writer must find out). */
  "log.after-append",
  /** A post is committed and not yet published on the bus, nor answered. */
  "post.before-publish",
  /** A presenter's claim is in presence; the takeover notice is not published yet. */
  "attach.after-claim",
  /** The takeover notice is out; the log's tail is not read yet (nor `ready` sent). */
  "attach.before-tail",
  /** The bus is back after an outage; this node has not re-asserted its presenters yet. */
  "resync.before-reassert",
] as const;

export type FailpointName = (typeof FAILPOINT_NAMES)[number];

/**
 * What a hit does: `pause` (until the failpoint is set again), `crash` (SIGKILL
 * this process), `drop` (the caller skips its step), `error` (the step throws),
 * `sleep(ms)`; `N*` in front acts on the next N hits only, then turns off.
 */
export type FailTask = { kind: "pause" | "crash" | "drop" | "error" } | { kind: "sleep"; ms: number };

export interface FailAction {
  task: FailTask;
  /** Hits left before the point turns off by itself; undefined: every hit. */
  remaining: number | undefined;
}

export class FailpointError extends Error {
  constructor(readonly failpoint: FailpointName) {
    super(`failpoint ${failpoint}`);
    this.name = "FailpointError";
  }
}

const MAX_SPEC_CHARS = 1024;
const ACTION = /^(?:([1-9]\d{0,5})\*)?(pause|crash|drop|error|sleep\(([1-9]\d{0,5})\))$/;

/** Parses one action ("off" gives null); undefined when it is not one. Never echoes the input. */
export function parseFailAction(text: string): FailAction | null | undefined {
  const s = text.trim();
  if (s === "off") return null;
  const m = ACTION.exec(s);
  if (!m) return undefined;
  const remaining = m[1] === undefined ? undefined : Number(m[1]);
  const word = m[2] as string;
  const task: FailTask = word.startsWith("sleep")
    ? { kind: "sleep", ms: Number(m[3]) }
    : { kind: word as "pause" | "crash" | "drop" | "error" };
  return { task, remaining };
}

export function isFailpointName(name: string): name is FailpointName {
  return (FAILPOINT_NAMES as readonly string[]).includes(name);
}

/**
 * Parses CHATRELAY_FAILPOINTS: "on", or "name=action" pairs separated by ";".
 * Returns the presets or a problem (which names only our own words).
 */
export function parseFailpointSpec(
  spec: string,
): { presets: [FailpointName, FailAction | null][] } | { problem: string } {
  if (spec.length > MAX_SPEC_CHARS) return { problem: `CHATRELAY_FAILPOINTS is longer than ${MAX_SPEC_CHARS} chars` };
  if (spec.trim() === "on") return { presets: [] };
  const presets: [FailpointName, FailAction | null][] = [];
  for (const part of spec.split(";")) {
    if (part.trim() === "") continue;
    const eq = part.indexOf("=");
    const name = part.slice(0, Math.max(eq, 0)).trim();
    if (eq < 0 || !isFailpointName(name)) {
      return { problem: `CHATRELAY_FAILPOINTS names an unknown failpoint (known: ${FAILPOINT_NAMES.join(", ")})` };
    }
    const action = parseFailAction(part.slice(eq + 1));
    if (action === undefined) {
      return {
        problem: `CHATRELAY_FAILPOINTS has an invalid action for ${name} (off, pause, crash, drop, error, sleep(ms), N*...)`,
      };
    }
    presets.push([name, action]);
  }
  return { presets };
}

type Notify = (name: FailpointName, task: FailTask["kind"]) => void;

/** The process' failpoints (one registry, like fail-rs: the points live deep in modules that share no object). */
export class Failpoints {
  /** True once configured: code on the path checks this before anything else. */
  enabled = false;
  private readonly actions = new Map<FailpointName, FailAction>();
  private readonly paused = new Map<FailpointName, (() => void)[]>();
  private notify: Notify = () => {};

  /** Turns the registry on with its presets; `notify` is told of every hit (the node logs it). */
  enable(presets: [FailpointName, FailAction | null][], notify: Notify): void {
    this.enabled = true;
    this.notify = notify;
    for (const [name, action] of presets) this.set(name, action);
  }

  /** Sets (or with null clears) a failpoint; hits paused on it go on. */
  set(name: FailpointName, action: FailAction | null): void {
    if (action === null) this.actions.delete(name);
    else this.actions.set(name, { ...action });
    for (const wake of this.paused.get(name)?.splice(0) ?? []) wake();
  }

  /** Currently set failpoints, as "name" -> task kind (for GET /failpoints). */
  list(): Record<string, string> {
    return Object.fromEntries([...this.actions].map(([n, a]) => [n, a.task.kind]));
  }

  /** Hits paused on `name` right now. */
  pausedAt(name: FailpointName): number {
    return this.paused.get(name)?.length ?? 0;
  }

  /**
   * Evaluates a failpoint: resolves "drop" when the caller must skip its step,
   * undefined to go on; rejects with FailpointError for `error`.
   */
  async hit(name: FailpointName): Promise<"drop" | undefined> {
    const action = this.actions.get(name);
    if (action === undefined) return undefined;
    if (action.remaining !== undefined && --action.remaining <= 0) this.actions.delete(name);
    const { task } = action;
    this.notify(name, task.kind);
    switch (task.kind) {
      case "crash":
        // The point of a crash test: no flush, no shutdown hook, nothing after this line.
        process.kill(process.pid, "SIGKILL");
        return new Promise<never>(() => {});
      case "pause":
        await new Promise<void>((resolve) => {
          const list = this.paused.get(name) ?? [];
          list.push(resolve);
          this.paused.set(name, list);
        });
        return undefined;
      case "sleep":
        await new Promise((resolve) => setTimeout(resolve, task.ms));
        return undefined;
      case "drop":
        return "drop";
      case "error":
        throw new FailpointError(name);
    }
  }
}

export const failpoints = new Failpoints();
