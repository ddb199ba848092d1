import { type HttpResult, request } from "./http.js";
import { mintToken } from "./tokens.js";
import { TestSocket } from "./ws-client.js";

/** A token for a user, optionally with the moderator claim (`mod_rooms`, or any value for hostile cases). */
export function userToken(userId: number, modRooms?: unknown): Promise<string> {
  const claim = modRooms === undefined ? {} : ({ mod_rooms: modRooms } as object);
  return mintToken({ user_idx: userId, nickname: `user${userId}`, ...claim });
}

export type Json = Record<string, unknown>;

/** A v1 call as `who` (a user id, or a ready token; undefined: no token). */
export async function call(
  base: string,
  method: string,
  path: string,
  who: number | string | undefined,
  body?: object | string,
): Promise<HttpResult<Json>> {
  const headers: Record<string, string> = {};
  if (who !== undefined) headers.authorization = `Bearer ${typeof who === "number" ? await userToken(who) : who}`;
  if (typeof body === "string") headers["content-type"] = "application/json";
  return request<Json>(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
}

/** The room's presenter on the v1 socket, once `ready`. */
export async function openPresenter(ws: string, roomId: number): Promise<TestSocket> {
  const socket = new TestSocket(`${ws}/v1/rooms/${roomId}/presenter?access_token=${await userToken(roomId)}`);
  await socket.open();
  await socket.next((f) => f.type === "ready", "ready frame");
  return socket;
}

/** Everything a room's moderation state shows through the API, and its audit length (read as its presenter). */
export async function snapshot(base: string, roomId: number): Promise<Json> {
  const [settings, moderators, bans, terms, audit] = await Promise.all(
    ["settings", "moderators", "bans", "blocked-terms", "audit?limit=200"].map((p) =>
      call(base, "GET", `/v1/rooms/${roomId}/${p}`, roomId),
    ),
  );
  return {
    settings: settings?.body,
    moderators: moderators?.body,
    bans: bans?.body,
    terms: terms?.body,
    auditLength: (audit?.body.items as unknown[] | undefined)?.length,
  };
}
