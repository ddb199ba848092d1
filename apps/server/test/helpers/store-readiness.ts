export interface Readiness {
  status: number;
  body: { status?: string; checks?: Record<string, string> };
}

/** One GET /readyz on a node's ops listener (status 0 when it did not answer within 5 s). */
export async function readiness(opsUrl: string): Promise<Readiness> {
  try {
    const res = await fetch(`${opsUrl}/readyz`, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as Readiness["body"] };
  } catch {
    return { status: 0, body: {} };
  }
}

/**
 * Polls /readyz (short interval, bounded) until it answers `status`: readiness follows a store's
 * state, which only polling can observe. Returns the answer that matched.
 */
export async function waitForReadiness(opsUrl: string, status: number, timeoutMs = 30_000): Promise<Readiness> {
  const end = Date.now() + timeoutMs;
  let last: Readiness = { status: 0, body: {} };
  while (Date.now() < end) {
    last = await readiness(opsUrl);
    if (last.status === status) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`/readyz did not answer ${status} within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}
