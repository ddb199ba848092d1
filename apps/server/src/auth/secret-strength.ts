// Refuses shared secrets that are placeholders or too regular to be random, so a
// copied .env.example or a "test1234..." never guards a real deployment.
// Messages name the problem, never the secret (they end up in logs).

/** The server's built-in HS256 secret: used only when JWT_SECRET is unset outside production. */
export const DEV_JWT_SECRET = "chatrelay-dev-secret-change-me";

/** Whole values shipped in examples and docs (compared case-insensitively). */
const KNOWN_PLACEHOLDERS = new Set([
  "change-me-to-at-least-32-random-characters",
  "change-me-gateway-secret",
  "change-me",
  DEV_JWT_SECRET,
]);

/** Words that mark a value someone was supposed to replace. */
const PLACEHOLDER_WORDS =
  /change[-_ .]?(me|it|this)|replace[-_ .]?(me|this)|placeholder|example|your[-_ .]?(own[-_ .]?)?(secret|key|jwt|token|password)|secret[-_ .]?here|fill[-_ .]?me/i;

const HOW_TO = "generate one, e.g. `openssl rand -hex 32`";

/**
 * Why `secret` is unfit as a shared secret of at least `minLength` characters,
 * or undefined when it is acceptable. Checks: the development secret, known
 * placeholders and placeholder words; length; variety (fewer than
 * min(10, length/4) distinct characters, one character making up more than
 * half of it, or one short pattern repeated). A random hex or base64 value of
 * the minimum length passes these with overwhelming probability.
 */
export function secretWeakness(secret: string, minLength: number): string | undefined {
  const lower = secret.toLowerCase();
  if (lower === DEV_JWT_SECRET) {
    return "is the built-in development secret: leave it unset to use that secret outside production, or set a real one";
  }
  if (KNOWN_PLACEHOLDERS.has(lower) || PLACEHOLDER_WORDS.test(secret)) {
    return `looks like a placeholder (from .env.example or the docs): ${HOW_TO}`;
  }
  if (secret.length < minLength) return `must be at least ${minLength} characters`;
  if (lowVariety(secret)) return `has too little variety to be random: ${HOW_TO}`;
  return undefined;
}

function lowVariety(secret: string): boolean {
  const counts = new Map<string, number>();
  for (const ch of secret) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  const length = secret.length;
  if (counts.size < Math.min(10, Math.floor(length / 4))) return true;
  if (Math.max(...counts.values()) * 2 > length) return true;
  return smallestPeriod(secret) * 2 <= length;
}

/** Length of the shortest prefix whose repetition spells `s` ("abcabca" -> 3), via the KMP failure function. */
export function smallestPeriod(s: string): number {
  const fail = new Array<number>(s.length).fill(0);
  let k = 0;
  for (let i = 1; i < s.length; i++) {
    while (k > 0 && s[i] !== s[k]) k = fail[k - 1] ?? 0;
    if (s[i] === s[k]) k++;
    fail[i] = k;
  }
  return s.length - (fail[s.length - 1] ?? 0);
}
