import { randomBytes } from "node:crypto";

/**
 * UUIDv7 (RFC 9562): a millisecond timestamp then random bits. Time-ordered
 * ids keep inserts into the chat log's id index append-mostly instead of
 * scattered over the whole B-tree.
 */
export function uuidv7(now = Date.now()): string {
  const b = nextRandom16();
  b.writeUIntBE(now, 0, 6);
  b[6] = ((b[6] as number) & 0x0f) | 0x70; // version 7
  b[8] = ((b[8] as number) & 0x3f) | 0x80; // RFC 9562 variant
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// One getrandom() call per 256 ids instead of one per id (the same trick as crypto.randomUUID's cache).
const POOL_IDS = 256;
let pool = Buffer.alloc(0);
let offset = 0;

function nextRandom16(): Buffer {
  if (offset + 16 > pool.length) {
    pool = randomBytes(16 * POOL_IDS);
    offset = 0;
  }
  // A copy: the caller writes into it.
  const out = Buffer.from(pool.subarray(offset, offset + 16));
  offset += 16;
  return out;
}
