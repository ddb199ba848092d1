/** Shared by the helper servers the bench starts as child processes. */

/** Exit when the bench that started us goes away (its end of our stdin closes). */
export function exitWithParent(onExit: () => Promise<void> | void): void {
  process.stdin.resume();
  process.stdin.on("end", () => void Promise.resolve(onExit()).finally(() => process.exit(0)));
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => void Promise.resolve(onExit()).finally(() => process.exit(0)));
  }
}

/** The one line the bench waits for. */
export function announceListening(port: number): void {
  process.stdout.write(`${JSON.stringify({ msg: "bench server listening", port })}\n`);
}

export function requireEnv(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === "") {
    process.stderr.write(`missing ${name}\n`);
    process.exit(2);
  }
  return v;
}
