/**
 * Every rate limit on, each far above what the generator can reach (a burst of a million, then
 * 33,333 posts/s): the gate runs all of its GCRA checks on every post and never refuses one.
 */
export const LIMITS_NEVER_REACHED: Record<string, string> = {
  RATE_LIMIT_ROOM: "1000000/30s",
  RATE_LIMIT_ROOM_PRIVILEGED: "1000000/30s",
  RATE_LIMIT_SENDER: "1000000/30s",
  RATE_LIMIT_ADDRESS_POSTS: "1000000/30s",
  RATE_LIMIT_ADDRESS_SOCKETS: "1000000/30s",
};

/** The server's per-room default for viewers (RATE_LIMIT_ROOM): what the flood's spammer runs into. */
export const DEFAULT_ROOM_LIMIT = { count: 20, windowS: 30 };

/**
 * The server's default limits, written out (the bench starts nodes with every limit off), except the
 * per-address ones: the load generator is one address for everybody, so they would measure the generator.
 */
export const DEFAULT_LIMITS_ONE_ADDRESS: Record<string, string> = {
  RATE_LIMIT_ROOM: `${DEFAULT_ROOM_LIMIT.count}/${DEFAULT_ROOM_LIMIT.windowS}s`,
  RATE_LIMIT_ROOM_PRIVILEGED: "100/30s",
  RATE_LIMIT_SENDER: "60/30s",
  RATE_LIMIT_ADDRESS_POSTS: "off",
  RATE_LIMIT_ADDRESS_SOCKETS: "off",
};

import { mintToken } from "../util/services.js";

/** Blocked terms of every room in (c) + limits: word terms and substring terms the bench's texts never contain. */
export const NEVER_MATCHED_TERMS = [
  ...Array.from({ length: 80 }, (_, i) => `blockedword${i}`),
  ...Array.from({ length: 20 }, (_, i) => `*blockedpart${i}*`),
];

/**
 * Gives every room the blocked terms above, as its presenter, through the v1 route: from then on each
 * post runs the room's term matcher (and the room's moderation version is no longer 0). Call it before
 * the presenters connect: the change is a `terms` event in each room's log, which they would receive.
 */
export async function blockTerms(
  baseUrl: string,
  rooms: number[],
  presenterToken: (room: number) => Promise<string>,
): Promise<string> {
  const body = JSON.stringify({ terms: NEVER_MATCHED_TERMS });
  for (const room of rooms) {
    const res = await fetch(`${baseUrl}/v1/rooms/${room}/blocked-terms`, {
      method: "POST",
      headers: { authorization: `Bearer ${await presenterToken(room)}`, "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(10_000),
    });
    const answer = await res.text();
    if (res.status !== 200)
      throw new Error(`blocked terms of room ${room}: HTTP ${res.status} ${answer.slice(0, 200)}`);
  }
  return `blocked terms: ${NEVER_MATCHED_TERMS.length} per room (80 word terms, 20 substring terms), never matched`;
}

/** Proves the terms are in force: in the first and the last room a post with one is refused (400 text_blocked). */
export async function checkTermsBlock(baseUrl: string, rooms: number[]): Promise<void> {
  const token = await mintToken(1_999_999, "term-check");
  for (const [room, text] of [
    [rooms[0], "a blockedword7 here"],
    [rooms[rooms.length - 1], "inside xblockedpart3y"],
  ] as const) {
    const res = await fetch(`${baseUrl}/v1/rooms/${room}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ text }),
      signal: AbortSignal.timeout(10_000),
    });
    const answer = await res.text();
    if (res.status !== 400 || !answer.includes("text_blocked")) {
      throw new Error(`room ${room}: a blocked term was not refused (HTTP ${res.status} ${answer.slice(0, 200)})`);
    }
  }
}
