/** A token string, or a function that gives a current one (called on every connect and refresh). */
export type TokenSource = string | (() => string | Promise<string>);

export async function currentToken(source: TokenSource): Promise<string> {
  return typeof source === "string" ? source : await source();
}

/**
 * The `exp` of a JWT in epoch milliseconds, read without verifying (the
 * server verifies; the client only needs to know when to refresh), or
 * undefined when the token has none or is not a JWT.
 */
export function tokenExpiry(token: string): number | undefined {
  const payload = token.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const json = JSON.parse(decodeBase64Url(payload)) as { exp?: unknown };
    return typeof json.exp === "number" && Number.isFinite(json.exp) ? json.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** base64url to a UTF-8 string with the language alone (atob, Buffer and TextDecoder are host APIs). */
function decodeBase64Url(input: string): string {
  const bytes: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of input) {
    const index = ALPHABET.indexOf(ch);
    if (index === -1) throw new Error("not base64url");
    value = (value << 6) | index;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >> bits) & 0xff);
    }
  }
  return decodeURIComponent(bytes.map((b) => `%${b.toString(16).padStart(2, "0")}`).join(""));
}
