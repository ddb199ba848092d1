import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "./http.js";
import { NodeProcess } from "./processes.js";
import { mintToken, TEST_JWT_SECRET } from "./tokens.js";
import { TestSocket } from "./ws-client.js";

/** Rooms whose presenters stay connected through a whole test file: the node must keep serving them. */
export const CONTROL_V1_ROOM = 100;
export const CONTROL_SEED_ROOM = 101;
const CONTROL_SENDER = 77;

/**
 * A chatrelay node as its own OS process (a crash is the process exiting,
 * not a test runner dying), with two control presenters that must keep
 * working whatever other clients throw at the node.
 */
export class HostileNode {
  controlV1!: TestSocket;
  controlSeed!: TestSocket;
  private relayed = 0;

  private constructor(
    readonly node: NodeProcess,
    readonly gatewaySecret: string,
  ) {}

  /** Only the shared secret makes gateway headers trusted: loopback is not a trusted proxy here. */
  static async start(name: string, env: Record<string, string> = {}): Promise<HostileNode> {
    const gatewaySecret = randomBytes(18).toString("base64url");
    const node = await NodeProcess.start(name, {
      JWT_SECRET: TEST_JWT_SECRET,
      PGLITE_DATA_DIR: "memory://",
      GATEWAY_SECRET: gatewaySecret,
      TRUSTED_PROXIES: "",
      // "info": NodeProcess waits for the "listening" line.
      LOG_LEVEL: "info",
      ...env,
    });
    const hostile = new HostileNode(node, gatewaySecret);
    hostile.controlV1 = await openV1Presenter(node, CONTROL_V1_ROOM);
    hostile.controlSeed = await openSeedPresenter(hostile, CONTROL_SEED_ROOM);
    return hostile;
  }

  get http(): string {
    return this.node.http;
  }

  get ws(): string {
    return this.node.ws;
  }

  get port(): number {
    return this.node.port;
  }

  /** Resident set size of the node process, in bytes (from /proc). */
  rssBytes(): number {
    const pid = this.node.child.pid;
    if (pid === undefined) throw new Error("node has no pid");
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    if (!m?.[1]) throw new Error(`no VmRSS for pid ${pid}`);
    return Number(m[1]) * 1024;
  }

  /**
   * After an unexpected close: gives the process a moment to report its exit
   * (the exit event can trail the socket's close), so the failure is blamed
   * on the input that caused it. Resolves true when the process is gone.
   */
  async diedSoon(ms = 1500): Promise<boolean> {
    if (this.node.exit !== undefined) return true;
    return this.node.exited(ms).then(
      () => true,
      () => false,
    );
  }

  /** Throws (with the node's stderr) if the process is gone: the one thing no client may cause. */
  assertRunning(after: string): void {
    if (this.node.exit === undefined) return;
    throw new Error(
      `node process exited ${JSON.stringify(this.node.exit)} after ${after}; stderr:\n${this.node.stderr().slice(-4000)}\nlast lines:\n${this.node.tail(12)}`,
    );
  }

  seedHeaders(userIdx: number): Record<string, string> {
    return {
      "x-forward-userIdx": String(userIdx),
      "x-forward-email": "control@example.com",
      "x-forward-nickname": "control",
      "x-gateway-secret": this.gatewaySecret,
    };
  }

  /**
   * The node still serves: same process, /healthz 200, both control
   * presenter sockets open, and a normal chat reaches each of them.
   * Returns the problems found (empty when all is well).
   */
  async serving(after: string): Promise<string[]> {
    const problems: string[] = [];
    if (this.node.exit !== undefined) {
      problems.push(
        `node exited ${JSON.stringify(this.node.exit)} after ${after}; stderr:\n${this.node.stderr().slice(-4000)}`,
      );
      return problems;
    }
    const health = await request(`${this.http}/healthz`).catch((err: Error) => ({ status: 0, text: err.message }));
    if (health.status !== 200) problems.push(`/healthz answered ${health.status} ${health.text.slice(0, 200)}`);
    if (this.controlV1.closed) problems.push(`control v1 presenter closed: ${JSON.stringify(this.controlV1.closed)}`);
    if (this.controlSeed.closed)
      problems.push(`control seed presenter closed: ${JSON.stringify(this.controlSeed.closed)}`);
    if (problems.length > 0) return problems;

    const n = ++this.relayed;
    const v1Text = `control v1 #${n}`;
    const token = await mintToken({ user_idx: CONTROL_SENDER, nickname: "control" });
    const v1 = await request(`${this.http}/v1/rooms/${CONTROL_V1_ROOM}/messages`, {
      headers: { authorization: `Bearer ${token}` },
      body: { text: v1Text },
    });
    if (v1.status !== 201) problems.push(`v1 post to the control room answered ${v1.status} ${v1.text.slice(0, 200)}`);
    else
      await this.controlV1
        .next((f) => f.type === "message" && f.text === v1Text, `"${v1Text}" on the control v1 presenter`, 10_000)
        .catch((err: Error) => problems.push(err.message));

    const seedText = `control seed #${n}`;
    const seed = await request(`${this.http}/send/message`, {
      headers: this.seedHeaders(CONTROL_SENDER),
      body: { presenterIdx: CONTROL_SEED_ROOM, userType: "viewer", textMessage: seedText },
    });
    if (seed.status !== 200)
      problems.push(`seed post to the control room answered ${seed.status} ${seed.text.slice(0, 200)}`);
    else
      await this.controlSeed
        .next(
          (f) => f.id === "sendChatting" && f.message === seedText,
          `"${seedText}" on the control seed presenter`,
          10_000,
        )
        .catch((err: Error) => problems.push(err.message));
    return problems;
  }

  async stop(): Promise<void> {
    this.controlV1?.close(1000);
    this.controlSeed?.close(1000);
    await this.node.kill("SIGKILL");
  }
}

/** A v1 presenter socket of `room`, once the server said ready. */
export async function openV1Presenter(node: { ws: string }, room: number): Promise<TestSocket> {
  const token = await mintToken({ user_idx: room, nickname: `p${room}` });
  const socket = new TestSocket(`${node.ws}/v1/rooms/${room}/presenter?access_token=${token}`);
  await socket.open();
  await socket.next((f) => f.type === "ready", `ready on v1 room ${room}`);
  return socket;
}

/** A started seed presenter socket of `room`, once the server said ready (the opt-in `ready` extension). */
export async function openSeedPresenter(node: HostileNode, room: number): Promise<TestSocket> {
  const socket = new TestSocket(`${node.ws}/chatting`);
  await socket.open();
  socket.send({ id: "start", token: await mintToken({ user_idx: room, nickname: `p${room}` }), ready: true });
  await socket.next((f) => f.id === "ready", `ready on seed room ${room}`);
  return socket;
}
