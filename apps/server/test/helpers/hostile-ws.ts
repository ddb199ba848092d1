import { describeFrame, type HostileFrame, type Surface } from "./hostile-frames.js";
import { containsMarker } from "./hostile-json.js";
import { type HostileNode, openV1Presenter } from "./hostile-node.js";
import { mintToken } from "./tokens.js";
import { TestSocket } from "./ws-client.js";

export const pingFrame = (surface: Surface): string => (surface === "v1" ? '{"type":"ping"}' : "ping");

export function isPong(surface: Surface, frame: string): boolean {
  return surface === "v1" ? frame === '{"type":"pong"}' || parsesAs(frame, { type: "pong" }) : frame === "pong";
}

function parsesAs(frame: string, expected: Record<string, unknown>): boolean {
  try {
    const v = JSON.parse(frame) as Record<string, unknown>;
    return (
      Object.keys(expected).every((k) => v[k] === expected[k]) && Object.keys(v).length === Object.keys(expected).length
    );
  } catch {
    return false;
  }
}

/**
 * Why `frame` is not an error frame in our words, or undefined when it is:
 * v1 `{"type":"error","code":"invalid_frame","message"}`, seed
 * `{"id":"error","message"}`, nothing else, and never the marker.
 */
export function errorFrameProblem(surface: Surface, frame: string): string | undefined {
  if (containsMarker(frame)) return `reply echoes client input: ${frame.slice(0, 300)}`;
  let v: unknown;
  try {
    v = JSON.parse(frame);
  } catch {
    return `reply is not JSON: ${frame.slice(0, 300)}`;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return `reply is not an object: ${frame.slice(0, 300)}`;
  const f = v as Record<string, unknown>;
  const keys = Object.keys(f).sort().join(",");
  if (surface === "v1") {
    if (keys !== "code,message,type" || f.type !== "error" || f.code !== "invalid_frame") {
      return `not a v1 invalid_frame error frame: ${frame.slice(0, 300)}`;
    }
  } else if (keys !== "id,message" || f.id !== "error") {
    return `not a seed error frame: ${frame.slice(0, 300)}`;
  }
  if (typeof f.message !== "string" || f.message.length === 0 || f.message.length > 200) {
    return `error message is not a short text of ours: ${frame.slice(0, 300)}`;
  }
  return undefined;
}

export function sendFrame(socket: TestSocket, frame: HostileFrame): void {
  // ws sends a Buffer with { binary: false } as a text frame without checking its UTF-8.
  socket.ws.send(frame.data, { binary: frame.binary });
}

/**
 * Sends one bad frame, then a valid ping; the replies in between must be
 * exactly one error frame in our words, then the pong, and the socket must
 * stay open. Throws, with what happened, otherwise.
 */
export async function probeBadFrame(socket: TestSocket, surface: Surface, frame: HostileFrame): Promise<void> {
  const from = socket.frames.length;
  sendFrame(socket, frame);
  socket.ws.send(pingFrame(surface));
  const pongIndex = () => socket.frames.findIndex((f, i) => i >= from && isPong(surface, f));
  await socket.until(
    () => pongIndex() !== -1 || socket.closed !== undefined,
    `an answer to ${describeFrame(frame)}`,
    5000,
  );
  const replies = socket.frames.slice(from);
  const shown = replies.map((r) => r.slice(0, 200)).join(" | ");
  if (socket.closed !== undefined) {
    throw new Error(
      `${describeFrame(frame)}: socket closed ${JSON.stringify(socket.closed)} instead of answering an error frame; replies: ${shown}`,
    );
  }
  const before = replies.slice(0, pongIndex() - from);
  if (before.length !== 1) {
    throw new Error(
      `${describeFrame(frame)}: expected exactly one error frame before the pong, got ${before.length}: ${shown}`,
    );
  }
  const problem = errorFrameProblem(surface, before[0] as string);
  if (problem) throw new Error(`${describeFrame(frame)}: ${problem}`);
}

/**
 * Presenter sockets for bad-frame probes, each used for at most `budget` bad
 * frames (the bad-frame limit) and then replaced by a socket of a new room.
 * "started": a v1 socket past ready, or a seed socket past its start frame;
 * "unstarted": a seed socket that never sent a start frame.
 */
export class ProbeSockets {
  readonly all: TestSocket[] = [];
  private current: TestSocket | undefined;
  private used = 0;

  constructor(
    private readonly node: HostileNode,
    readonly surface: Surface,
    private readonly phase: "started" | "unstarted",
    private nextRoom: number,
    private readonly budget: number,
  ) {}

  async take(): Promise<TestSocket> {
    if (this.current === undefined || this.current.closed !== undefined || this.used >= this.budget) {
      this.current?.close(1000);
      this.current = await this.open();
      this.all.push(this.current);
      this.used = 0;
    }
    this.used++;
    return this.current;
  }

  close(): void {
    this.current?.close(1000);
    this.current = undefined;
  }

  private async open(): Promise<TestSocket> {
    const room = this.nextRoom++;
    if (this.surface === "v1") return openV1Presenter(this.node, room);
    const socket = new TestSocket(`${this.node.ws}/chatting`);
    await socket.open();
    if (this.phase === "started") {
      socket.send({ id: "start", token: await mintToken({ user_idx: room, nickname: `p${room}` }) });
    }
    // A ping round trip: the socket (and a start frame) went through the server's frame loop.
    socket.send("ping");
    await socket.until(() => socket.frames.includes("pong") || socket.closed !== undefined, "pong after opening");
    if (socket.closed)
      throw new Error(`seed socket of room ${room} closed on opening: ${JSON.stringify(socket.closed)}`);
    // Probes look only at frames after this point.
    return socket;
  }
}

/** Every frame and close reason any of `sockets` received that echoes client input. */
export function echoes(sockets: TestSocket[]): string[] {
  const found: string[] = [];
  for (const s of sockets) {
    for (const f of s.frames) if (containsMarker(f)) found.push(f.slice(0, 200));
    if (containsMarker(s.closed?.reason)) found.push(`close reason: ${s.closed?.reason}`);
  }
  return found;
}
