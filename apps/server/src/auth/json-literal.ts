// JSON.parse silently rounds numbers past 2^53 and long fractions ("42.0000000000000001" -> 42).
// To refuse such a user id instead of acting on a different one, read the literal as written.

/**
 * The source text of the value of `key` in a top-level JSON object (the last
 * one, as JSON.parse keeps), or undefined. `json` must already be known to be
 * valid JSON (the verifier parsed it); this only walks it.
 */
export function topLevelLiteral(json: string, key: string): string | undefined {
  let found: string | undefined;
  let i = skipSpace(json, 0);
  if (json[i] !== "{") return undefined;
  i = skipSpace(json, i + 1);
  while (json[i] === '"') {
    const keyEnd = endOfString(json, i);
    const name: unknown = JSON.parse(json.slice(i, keyEnd));
    i = skipSpace(json, skipSpace(json, keyEnd) + 1); // past the ':'
    const valueEnd = endOfValue(json, i);
    if (name === key) found = json.slice(i, valueEnd);
    i = skipSpace(json, valueEnd);
    if (json[i] !== ",") break;
    i = skipSpace(json, i + 1);
  }
  return found;
}

function skipSpace(json: string, i: number): number {
  while (i < json.length && " \t\n\r".includes(json.charAt(i))) i++;
  return i;
}

/** Index just past the string literal starting at `start` (a '"'). */
function endOfString(json: string, start: number): number {
  let i = start + 1;
  while (i < json.length && json[i] !== '"') i += json[i] === "\\" ? 2 : 1;
  return i + 1;
}

/** Index just past the value starting at `start`. */
function endOfValue(json: string, start: number): number {
  const first = json[start];
  if (first === '"') return endOfString(json, start);
  if (first === "{" || first === "[") {
    let depth = 0;
    let i = start;
    while (i < json.length) {
      const ch = json[i];
      if (ch === '"') {
        i = endOfString(json, i);
        continue;
      }
      if (ch === "{" || ch === "[") depth++;
      else if (ch === "}" || ch === "]") depth--;
      i++;
      if (depth === 0) return i;
    }
    return i;
  }
  let i = start;
  while (i < json.length && !",}] \t\n\r".includes(json.charAt(i))) i++;
  return i;
}
