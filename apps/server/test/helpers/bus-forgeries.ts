// Forged bus payloads: what anyone who can publish on Redis could put on a room's channel.

/** Payloads an attacker with PUBLISH rights could send on room `room`'s channel. */
export function forgeries(room: number): { name: string; payload: string }[] {
  const message = {
    id: "0190a7c2-7b1e-7c3a-9f00-123456789abc",
    roomId: room,
    seq: 1,
    senderId: 66,
    nickname: "mallory",
    userType: "presenter",
    text: "FORGED",
    sentAt: new Date().toISOString(),
  };
  return [
    { name: "garbage", payload: "\u0000\u00ff}{ not json" },
    { name: "wrong room", payload: JSON.stringify({ kind: "message", message: { ...message, roomId: room + 1 } }) },
    { name: "string seq", payload: JSON.stringify({ kind: "message", message: { ...message, seq: "1" } }) },
    {
      name: "control characters",
      payload: JSON.stringify({ kind: "message", message: { ...message, text: "\u0007" } }),
    },
    { name: "5000-deep nesting", payload: `${"[".repeat(5000)}${"]".repeat(5000)}` },
    { name: "unknown kind", payload: JSON.stringify({ kind: "shutdown", message }) },
    {
      name: "prototype pollution",
      payload: `{"__proto__":{"kind":"takeover","connId":"x","epoch":1},"constructor":{"prototype":{"polluted":1}}}`,
    },
  ];
}

/** What the bus counts for one delivery of forgeries(), by reason (chatrelay_bus_rejected_total). */
export const FORGERY_REJECTS = { json: 1, room: 1, field: 2, size: 1, kind: 2 };
