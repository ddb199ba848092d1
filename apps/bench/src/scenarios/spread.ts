/**
 * The deployed shape (issue #11): posts spread by a balancer over every node, presenters on
 * every node. Directly (the generator picks a node at random per post, as a random balancer
 * would) or through nginx (deploy/nginx/nginx.conf, least_conn, for both posts and presenters).
 */
import type { BenchConfig } from "../config.js";
import { startNginx } from "../targets.js";
import {
  type Deployment,
  pgAndRedis,
  relayPresenters,
  spreadPresenters,
  startNode,
  type Teardown,
} from "./deploy-kit.js";

/** `count` nodes on one PostgreSQL database and one Redis prefix. */
async function nodes(
  label: string,
  count: number,
  config: BenchConfig,
  down: Teardown,
  env: Record<string, string> = {},
) {
  const services = await pgAndRedis(label, down);
  const started = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      startNode(`${label}-node-${i + 1}`, { ...services.env, ...env }, config, down),
    ),
  );
  return { db: services.db, nodes: started };
}

/** Posts spread over `count` nodes, presenters spread over them too (room i on node i mod count). */
export async function deploySpread(
  label: string,
  count: number,
  config: BenchConfig,
  down: Teardown,
): Promise<Deployment> {
  const { db, nodes: all } = await nodes(label, count, config, down);
  return {
    postBases: all.map((n) => `http://127.0.0.1:${n.port}`),
    targets: all,
    delivers: true,
    openPresenters: spreadPresenters(all.map((n) => n.port)),
    db,
  };
}

/** `count` nodes behind nginx: posts and presenter sockets both through it (as scenario d). */
export async function deploySpreadNginx(
  label: string,
  count: number,
  config: BenchConfig,
  down: Teardown,
): Promise<Deployment> {
  const { db, nodes: all } = await nodes(label, count, config, down, { TRUSTED_PROXIES: "127.0.0.1" });
  const nginx = await startNginx(all.map((n) => n.port));
  down.push(() => nginx.proc.stop(5000));
  return {
    postBases: [`http://127.0.0.1:${nginx.port}`],
    targets: [...all, nginx],
    delivers: true,
    openPresenters: relayPresenters(nginx.port),
    db,
  };
}

/** The room every post of the hot-room scenario goes to. */
export const HOT_ROOM = 1;

/** Every post to one room, spread over `count` nodes directly; the room's one presenter on the first node. */
export async function deployHotRoom(
  label: string,
  count: number,
  config: BenchConfig,
  down: Teardown,
): Promise<Deployment> {
  const { db, nodes: all } = await nodes(label, count, config, down);
  const first = all[0];
  if (!first) throw new Error("hot room: no node");
  return {
    postBases: all.map((n) => `http://127.0.0.1:${n.port}`),
    targets: all,
    delivers: true,
    openPresenters: relayPresenters(first.port),
    db,
    rooms: [HOT_ROOM],
  };
}
