import { Writable } from "node:stream";
import { Redis } from "ioredis";
import pino from "pino";
import t, { type Test } from "tap";
import { encodeBusEvent } from "../src/adapters/bus-codec.js";
import { connectRedis } from "../src/adapters/redis.js";
import { loadConfig } from "../src/config.js";
import { emptyRoomState } from "../src/core/moderation-state.js";
import type { BusEvent } from "../src/core/ports.js";
import { Metrics } from "../src/ops/metrics.js";
import { startServer } from "../src/server.js";
import { FORGERY_REJECTS, forgeries } from "./helpers/bus-forgeries.js";
import { messages, openPresenter, post } from "./helpers/cluster.js";
import { NodeProcess } from "./helpers/processes.js";
import { PrivateRedis } from "./helpers/redis-server.js";
import { testEnv } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";
import { outputEnded } from "./helpers/wait.js";

// Redis with a password and an ACL user, end to end; and forged payloads published straight onto a
// room's channel, which must reach no presenter and disconnect none. A private redis-server.
const ADMIN_PASSWORD = "admin-6f1c0e9b2d7a4c38";
const RELAY_PASSWORD = "relay-p@ss:w/rd%41";
const PREFIX = "h3:";
// The least an ACL user needs (docs/operations.md): its own keys and channels, the commands the
// adapters send, and the ones their Lua scripts call.
const RELAY_ACL = [
  "relay",
  "on",
  `>${RELAY_PASSWORD}`,
  "resetkeys",
  `~${PREFIX}*`,
  "resetchannels",
  `&${PREFIX}*`,
  "-@all",
  "+@connection",
  "+info",
  "+get",
  "+set",
  "+del",
  "+hget",
  "+hmget",
  "+hset",
  "+pexpire",
  "+time",
  "+publish",
  "+subscribe",
  "+unsubscribe",
  "+evalsha",
  "+eval",
  "+script|load",
];
const redis = await PrivateRedis.start(["--requirepass", ADMIN_PASSWORD, "--user", ...RELAY_ACL]);
t.teardown(() => redis.stop());
const viewer = await mintToken({ user_idx: 77 });

/** A logger whose lines the test can wait for. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n")) if (line) lines.push(JSON.parse(line));
      for (const w of waiters.splice(0)) w();
      done();
    },
  });
  const logger = pino({ level: "debug" }, stream);
  const waitFor = (match: (l: Record<string, unknown>) => boolean, what: string, ms = 10_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no log line: ${what}`)), ms);
      const check = () => {
        const hit = lines.find(match);
        if (hit) {
          clearTimeout(timer);
          resolve(hit);
        } else waiters.push(check);
      };
      check();
    });
  return { logger, lines, waitFor };
}

async function startNode(env: Record<string, string>) {
  const { logger, lines, waitFor } = capturingLogger();
  const server = await startServer(loadConfig(testEnv({ REDIS_KEY_PREFIX: PREFIX, ...env })), logger);
  const http = server.url.replace("[::1]", "127.0.0.1");
  return { server, http, ws: http.replace(/^http/, "ws"), lines, waitFor };
}

/** A presenter on the node receives a viewer's post: the node reached Redis and relays. */
async function relays(t: Test, node: Awaited<ReturnType<typeof startNode>>, room: number): Promise<void> {
  const presenter = await openPresenter(node.ws, room);
  t.teardown(() => presenter.close(1000));
  const res = await post(node.http, room, viewer, `relayed in ${room}`);
  t.equal(res.status, 201, "post accepted", { body: res.body });
  await presenter.next((f) => f.text === `relayed in ${room}`, "relayed message");
}

t.test("requirepass: the password in REDIS_URL works for both connections", async (t) => {
  const node = await startNode({ REDIS_URL: redis.urlWith(ADMIN_PASSWORD) });
  t.teardown(() => node.server.shutdown());
  await relays(t, node, 901);
});

t.test("ACL user: user and password in REDIS_URL (percent-encoded), least privilege", async (t) => {
  const node = await startNode({ REDIS_URL: redis.urlWith(RELAY_PASSWORD, "relay") });
  t.teardown(() => node.server.shutdown());
  await relays(t, node, 902);
  // Resume from the log: the ack and presence scripts run under the ACL too.
  const presenter = await openPresenter(node.ws, 902, 0);
  await presenter.next((f) => f.text === "relayed in 902", "replayed");
  presenter.close(1000);
  const admin = new Redis(redis.urlWith(ADMIN_PASSWORD));
  t.teardown(() => admin.disconnect());
  t.same(await admin.call("ACL", "LOG"), [], "Redis denied the relay user nothing");
});

t.test("REDIS_USERNAME / REDIS_PASSWORD override the URL's credentials", async (t) => {
  const node = await startNode({
    REDIS_URL: redis.urlWith("stale-password", "nobody"),
    REDIS_USERNAME: "relay",
    REDIS_PASSWORD: RELAY_PASSWORD,
  });
  t.teardown(() => node.server.shutdown());
  await relays(t, node, 903);
});

t.test("wrong or missing credentials: start-up fails with exit 1, a clear reason, no password", async (t) => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ["wrong password in the URL", { REDIS_URL: redis.urlWith("wrong-Secret-4711") }, /WRONGPASS/],
    [
      "wrong REDIS_PASSWORD",
      { REDIS_URL: redis.url, REDIS_USERNAME: "relay", REDIS_PASSWORD: "wrong-Secret-4711" },
      /WRONGPASS/,
    ],
    ["no password at all", { REDIS_URL: redis.url }, /NOAUTH/],
  ];
  for (const [name, env, reason] of cases) {
    const node = NodeProcess.spawn("h3-auth", { ...env, REDIS_KEY_PREFIX: PREFIX });
    const exit = await node.exited();
    await outputEnded(node.child);
    const stderr = node.stderr();
    t.equal(exit.code, 1, `${name}: exit code 1`);
    t.match(stderr, /cannot start: cannot connect to Redis at REDIS_URL/, `${name}: says what failed`);
    t.match(stderr, reason, `${name}: says why`);
    t.match(
      stderr,
      /check the user and password: REDIS_URL, REDIS_USERNAME, REDIS_PASSWORD/,
      `${name}: says what to fix`,
    );
    const everything = JSON.stringify(node.lines);
    t.notMatch(everything, /wrong-Secret-4711/, `${name}: the password is not printed`);
    t.notMatch(everything, new RegExp(ADMIN_PASSWORD), `${name}: nor the admin's`);
  }
});

t.test("forged payloads on a room's channel: nothing delivered, nobody cut, a real post still arrives", async (t) => {
  const node = await startNode({ REDIS_URL: redis.urlWith(ADMIN_PASSWORD) });
  t.teardown(() => node.server.shutdown());
  const room = 904;
  const presenter = await openPresenter(node.ws, room);
  t.teardown(() => presenter.close(1000));
  const forger = new Redis(redis.urlWith(ADMIN_PASSWORD));
  t.teardown(() => forger.disconnect());
  const channel = `${PREFIX}room:{${room}}`;

  for (const f of forgeries(room)) t.equal(await forger.publish(channel, f.payload), 1, `${f.name}: published`);
  // A well-formed takeover with the largest epoch there is: presence still names the presenter.
  const takeover: BusEvent = { kind: "takeover", connId: "c0ffee00-0000-4000-8000-000000000000", epoch: 2 ** 53 - 1 };
  t.equal(await forger.publish(channel, encodeBusEvent(takeover)), 1);

  await node.waitFor((l) => l.msg === "takeover notice not backed by presence", "the notice checked and ignored");
  const warned = await node.waitFor((l) => l.msg === "dropping invalid bus payload", "a rejection warning");
  t.equal(
    node.lines.filter((l) => l.msg === "dropping invalid bus payload").length,
    1,
    "one warning for the whole burst (rate limited)",
  );
  t.notMatch(JSON.stringify(node.lines), /FORGED|mallory|not json/, "no forged content in the log");
  t.match(warned, { reason: String, channel });

  const res = await post(node.http, room, viewer, "the real one");
  t.equal(res.status, 201);
  await presenter.next((f) => f.text === "the real one", "the real post");
  t.equal(presenter.closed, undefined, "the presenter stays connected");
  t.same(
    messages(presenter).map((m) => [m.seq, m.text]),
    [[1, "the real one"]],
    "nothing forged was delivered",
  );
});

t.test("the bus drops and counts each forgery, and delivers what follows (chatrelay_bus_rejected_total)", async (t) => {
  const metrics = new Metrics();
  const { logger } = capturingLogger();
  const config = loadConfig(testEnv({ REDIS_URL: redis.urlWith(ADMIN_PASSWORD), REDIS_KEY_PREFIX: PREFIX }));
  const { bus } = await connectRedis(config, logger, metrics, async (roomId) => emptyRoomState(roomId));
  t.teardown(() => bus.close());
  const room = 905;
  const got: BusEvent[] = [];
  let arrived: () => void = () => {};
  const last = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  await bus.subscribe(room, (event) => {
    got.push(event);
    if (event.kind === "takeover" && event.connId === "end-marker") arrived();
  });
  const forger = new Redis(redis.urlWith(ADMIN_PASSWORD));
  t.teardown(() => forger.disconnect());
  const channel = `${PREFIX}room:{${room}}`;
  for (const f of forgeries(room)) await forger.publish(channel, f.payload);
  // Same connection, so Redis delivers it after every forgery.
  await forger.publish(channel, encodeBusEvent({ kind: "takeover", connId: "end-marker", epoch: 1 }));
  const timeout = setTimeout(() => arrived(), 10_000);
  await last;
  clearTimeout(timeout);
  t.same(got, [{ kind: "takeover", connId: "end-marker", epoch: 1 }], "only the valid event reached the handler");
  const counts = Object.fromEntries(
    (await metrics.registry.getSingleMetric("chatrelay_bus_rejected_total")?.get())?.values.map((v) => [
      v.labels.reason,
      v.value,
    ]) ?? [],
  );
  t.same(counts, FORGERY_REJECTS, "one count per forgery, by reason");
});
