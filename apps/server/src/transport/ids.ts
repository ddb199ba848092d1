/** A positive id from a path, query or header: digits only, and within the safe-integer range (never rounded). */
export function parseId(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^[1-9]\d{0,15}$/.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A sequence number from a query: 0 or a positive safe integer. */
export function parseSeq(raw: string | undefined): number | undefined {
  return raw === "0" ? 0 : parseId(raw);
}
