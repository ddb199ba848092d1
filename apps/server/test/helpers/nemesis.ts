import { performance } from "node:perf_hooks";
import pg from "pg";
import type { History, LogRow, PresenterConnection } from "./history.js";
import { NemesisCluster } from "./nemesis-cluster.js";
import { PresenterClient } from "./nemesis-presenter.js";
import { Prng } from "./nemesis-prng.js";
import { Senders } from "./nemesis-senders.js";
import { mintToken } from "./tokens.js";

// A Jepsen-style run: three chatrelay nodes on a private Redis and PostgreSQL, viewers posting to
// random nodes, one presenter per room that reconnects and takes over, and a nemesis that kills
// and pauses things on a seeded schedule. It returns the recorded history for the checker.

export const NODES = 3;
export const PRESENCE_TTL_MS = 2500;
/** Long enough that a room stays postable while its presenter comes back from any fault. */
const GRACE_WINDOW_MS = 30_000;
const SENDERS = 4;
/** Per post: the chance that a room's presenter then takes over on purpose / loses its socket. */
const TAKEOVER_CHANCE = 0.03;
const DROP_CHANCE = 0.015;
/** Heal phase: every 2xx'd message must reach its room's presenter within this. */
const HEAL_TIMEOUT_MS = 60_000;

export type Fault = "kill-node" | "pause-node" | "kill-redis" | "kill-postgres";
const FAULTS: Fault[] = ["kill-node", "pause-node", "kill-redis", "kill-postgres"];

export interface NemesisOptions {
  seed: number;
  /** Logical posts in all. */
  ops: number;
  rooms?: number;
  /** Progress lines (the nemesis' own timeline). */
  log?: (line: string) => void;
}

export interface NemesisResult {
  history: History;
  faults: { fault: Fault; node?: string; at: number }[];
  takeovers: number;
  drops: number;
  /** Set when the heal phase timed out (the checker then says what is missing). */
  healError?: string;
  durationMs: number;
  t0: number;
}

/** The fault schedule: every kind once (in a seeded order), then seeded extras; one per `OPS_PER_FAULT` posts. */
const OPS_PER_FAULT = 80;
export function faultSchedule(rng: Prng, ops: number): Fault[] {
  const count = Math.max(FAULTS.length, Math.floor(ops / OPS_PER_FAULT));
  const schedule = rng.shuffle(FAULTS);
  while (schedule.length < count) schedule.push(rng.pick(FAULTS));
  return schedule;
}

export async function runNemesis(options: NemesisOptions): Promise<NemesisResult> {
  const t0 = performance.now();
  const log = (line: string) => options.log?.(`${String(Math.round(performance.now() - t0)).padStart(7)} ms  ${line}`);
  const rng = new Prng(options.seed);
  const schedule = faultSchedule(rng.fork(1), options.ops);
  const nemesisRng = rng.fork(2);
  const roomIds = Array.from({ length: options.rooms ?? 3 }, (_, i) => 7001 + i);

  const cluster = await NemesisCluster.start(NODES, {
    PRESENCE_TTL_MS: String(PRESENCE_TTL_MS),
    GRACE_WINDOW_MS: String(GRACE_WINDOW_MS),
    // Short database deadlines: a dead PostgreSQL costs a quick 503, not a stuck sender.
    LOG_COMMIT_TIMEOUT_MS: "2000",
    DB_CONNECT_TIMEOUT_MS: "1000",
    DB_STATEMENT_TIMEOUT_MS: "3000",
  });
  const connections: PresenterConnection[] = [];
  const presenters: PresenterClient[] = [];
  const faults: NemesisResult["faults"] = [];
  let takeovers = 0;
  let drops = 0;
  try {
    log(`cluster up: ${cluster.nodes.map((n) => n.name).join(", ")}; schedule ${schedule.join(", ")}`);
    const running = () => cluster.running();
    for (const [i, room] of roomIds.entries()) {
      const token = await mintToken({ user_idx: room, nickname: `host${room}` });
      presenters.push(new PresenterClient(room, token, running, rng.fork(100 + i), connections));
    }
    for (const p of presenters) p.start();
    await Promise.all(presenters.map((p) => p.until(() => p.connected, "the first ready", 30_000)));
    log("presenters ready");

    const senderList = await Promise.all(
      Array.from({ length: SENDERS }, async (_, i) => ({
        id: 5001 + i,
        token: await mintToken({ user_idx: 5001 + i, nickname: `viewer${i}` }),
        rng: rng.fork(200 + i),
      })),
    );
    const senders = new Senders(senderList, roomIds, options.ops, running, (r) => {
      if (r.chance(TAKEOVER_CHANCE)) {
        takeovers++;
        r.pick(presenters).takeover();
      }
      if (r.chance(DROP_CHANCE)) {
        drops++;
        r.pick(presenters).drop();
      }
    });
    const workload = senders.run();
    // Awaited after the schedule; a sender failing meanwhile must not be an unhandled rejection.
    workload.catch(() => {});

    // The nemesis hands the posts out in parts: a quiet phase of 2 parts, then a fault held for 1 part,
    // healed while the next quiet phase runs. Counting posts (not time) keeps every fault under traffic.
    const part = Math.max(1, Math.floor(options.ops / (3 * schedule.length + 2)));
    let allowed = 0;
    const advance = (n: number) => {
      allowed += n;
      senders.allow(allowed);
      return senders.untilCompleted(allowed);
    };
    await advance(2 * part);
    for (const fault of schedule) {
      const at = performance.now();
      let heal: () => Promise<unknown>;
      switch (fault) {
        case "kill-node": {
          const slot = nemesisRng.int(0, NODES - 1);
          const node = await cluster.killNode(slot);
          faults.push({ fault, node: node.name, at });
          log(`SIGKILL ${node.name}`);
          heal = async () => {
            const again = await cluster.restartNode(slot);
            log(`restarted as ${again.name} on port ${again.port}`);
          };
          break;
        }
        case "pause-node": {
          const slot = nemesisRng.int(0, NODES - 1);
          const node = cluster.pauseNode(slot);
          faults.push({ fault, node: node.name, at });
          log(`SIGSTOP ${node.name}`);
          heal = async () => {
            cluster.resumeNode(slot);
            log(`SIGCONT ${node.name}`);
          };
          break;
        }
        case "kill-redis": {
          await cluster.killRedis();
          faults.push({ fault, at });
          log("SIGKILL redis");
          heal = async () => {
            await cluster.restartRedis();
            log("redis restarted (empty)");
          };
          break;
        }
        case "kill-postgres": {
          await cluster.killPostgres();
          faults.push({ fault, at });
          log("SIGKILL postgres");
          heal = async () => {
            await cluster.restartPostgres();
            log("postgres restarted");
          };
          break;
        }
      }
      await advance(part);
      if (fault === "pause-node") {
        // Past the presence TTL: its rooms' presence expires while it is stopped (the fault's length, not a wait for an event).
        const left = at + PRESENCE_TTL_MS + 1000 - performance.now();
        if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
      }
      await Promise.all([heal(), advance(2 * part)]);
    }
    senders.allow(options.ops);
    await workload;
    log(`workload done: ${senders.attempts.length} attempts for ${options.ops} posts`);

    // Heal: everything up, and every 2xx'd message at its room's presenter.
    await cluster.heal();
    let healError: string | undefined;
    const acked = new Map<number, Set<number>>(roomIds.map((r) => [r, new Set<number>()]));
    for (const a of senders.attempts) if (a.outcome.kind === "ok") acked.get(a.room)?.add(a.outcome.seq);
    try {
      await Promise.all(
        presenters.map((p) => {
          const want = [...(acked.get(p.room) ?? [])];
          return p.until(
            () => want.every((s) => p.delivered.has(s)),
            `all ${want.length} 2xx'd messages (missing: ${want.filter((s) => !p.delivered.has(s)).slice(0, 10)})`,
            HEAL_TIMEOUT_MS,
          );
        }),
      );
      log("healed: every 2xx'd message delivered");
    } catch (err) {
      healError = (err as Error).message;
      log(`heal failed: ${healError}`);
    }
    for (const p of presenters) p.stop();
    const history: History = { posts: senders.attempts, connections, log: await readLog(cluster.databaseUrl) };
    return { history, faults, takeovers, drops, healError, durationMs: performance.now() - t0, t0 };
  } finally {
    for (const p of presenters) p.stop();
    await cluster.stop();
  }
}

/** The chat log's messages, read from PostgreSQL directly. */
async function readLog(url: string): Promise<LogRow[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const r = await client.query<{
      room_id: string;
      seq: string;
      id: string;
      text: string;
      client_msg_id: string | null;
      sender_id: string;
    }>(
      "SELECT room_id, seq, id, text, client_msg_id, sender_id FROM chat_message WHERE kind = 'message' ORDER BY room_id, seq",
    );
    return r.rows.map((row) => ({
      room: Number(row.room_id),
      seq: Number(row.seq),
      id: row.id,
      text: row.text,
      clientMsgId: row.client_msg_id,
      sender: Number(row.sender_id),
    }));
  } finally {
    await client.end();
  }
}
