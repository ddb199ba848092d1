import { type HttpResult, request } from "./http.js";
import { NodeProcess } from "./processes.js";
import { mintToken } from "./tokens.js";
import { TestSocket } from "./ws-client.js";

/** Starts `count` nodes sharing one Redis and one PostgreSQL; stop them all with `stopAll`. */
export async function startCluster(count: number, env: Record<string, string>): Promise<NodeProcess[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) => NodeProcess.start(`node-${String.fromCharCode(97 + i)}`, env)),
  );
}

export async function stopAll(nodes: NodeProcess[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.kill("SIGKILL")));
}

export interface MessageFrame {
  type: "message";
  seq: number;
  id: string;
  text: string;
}

/** A v1 presenter socket to one node. */
export async function openPresenter(baseWs: string, room: number, lastSeq?: number): Promise<TestSocket> {
  const token = await mintToken({ user_idx: room, nickname: `host${room}` });
  const query = lastSeq === undefined ? "" : `&lastSeq=${lastSeq}`;
  const socket = new TestSocket(`${baseWs}/v1/rooms/${room}/presenter?access_token=${token}${query}`);
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready");
  return socket;
}

export function messages(socket: TestSocket): MessageFrame[] {
  return socket.json<MessageFrame>().filter((f) => f.type === "message");
}

export async function post(
  baseHttp: string,
  room: number,
  token: string,
  text: string,
): Promise<HttpResult<Record<string, unknown>>> {
  return request<Record<string, unknown>>(`${baseHttp}/v1/rooms/${room}/messages`, {
    headers: { authorization: `Bearer ${token}` },
    body: { text },
  });
}
