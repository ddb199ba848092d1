// Mints a development JWT (HS256) for trying the server locally.
// Usage: pnpm dev-token <user_idx> [nickname] [--role <role>]... [--ttl <seconds>]
// Signs with JWT_SECRET as the server reads it (trimmed; empty or unset means the
// built-in development secret), and sets iss/aud from JWT_ISSUER/JWT_AUDIENCE.
// Exit codes: 0 token printed, 2 bad arguments, 78 an environment the server would refuse.
import { SignJWT } from "jose";
import { DEV_JWT_SECRET, secretWeakness } from "../src/auth/secret-strength.js";
import { DEFAULT_MAX_TOKEN_AGE_S } from "../src/auth/token-verifier.js";

const USAGE = "usage: pnpm dev-token <user_idx> [nickname] [--role <role>]... [--ttl <seconds>]";
/** The server's default JWT_MAX_TOKEN_AGE_S: a longer token would be refused by a default node. */
const MAX_TTL_S = DEFAULT_MAX_TOKEN_AGE_S;

function fail(code: number, message: string): never {
  process.stderr.write(`dev-token: ${message}\n`);
  process.exit(code);
}

interface Request {
  userIdx: string;
  nickname: string;
  roles: string[];
  ttlS: number;
}

function parseArgs(argv: string[]): Request {
  const positional: string[] = [];
  const roles: string[] = [];
  let ttl: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const [flag, inline] = arg.startsWith("--") ? splitFlag(arg) : [undefined, undefined];
    if (flag === undefined) {
      positional.push(arg);
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined || value === "") fail(2, `--${flag} needs a value\n${USAGE}`);
    if (flag === "role") roles.push(value);
    else if (flag === "ttl") ttl = value;
    else fail(2, `unknown option --${flag}\n${USAGE}`);
  }
  const [userIdx, nickname, ...extra] = positional;
  if (userIdx === undefined || !/^[1-9]\d{0,15}$/.test(userIdx) || !Number.isSafeInteger(Number(userIdx))) {
    fail(2, `<user_idx> must be a positive integer\n${USAGE}`);
  }
  if (extra.length > 0) fail(2, `unexpected argument(s) after the nickname\n${USAGE}`);
  let ttlS = MAX_TTL_S;
  if (ttl !== undefined) {
    if (!/^[1-9]\d{0,9}$/.test(ttl) || Number(ttl) > MAX_TTL_S) {
      fail(2, `--ttl must be a whole number of seconds from 1 to ${MAX_TTL_S}\n${USAGE}`);
    }
    ttlS = Number(ttl);
  }
  return { userIdx, nickname: nickname ?? `user-${userIdx}`, roles, ttlS };
}

function splitFlag(arg: string): [string, string | undefined] {
  const eq = arg.indexOf("=");
  return eq === -1 ? [arg.slice(2), undefined] : [arg.slice(2, eq), arg.slice(eq + 1)];
}

/** The signing secret exactly as the server would pick it, or a one-line reason it would not start. */
function signingSecret(env: NodeJS.ProcessEnv): string {
  const secret = env.JWT_SECRET?.trim() ?? "";
  if (env.JWT_JWKS_URL?.trim()) {
    fail(78, "JWT_JWKS_URL is set: the server verifies tokens with those keys, which dev-token cannot sign with");
  }
  if (secret === "") return DEV_JWT_SECRET;
  const problem = secretWeakness(secret, 32);
  if (problem !== undefined) fail(78, `JWT_SECRET ${problem} (the server refuses it too)`);
  return secret;
}

const request = parseArgs(process.argv.slice(2));
const secret = signingSecret(process.env);
try {
  const issuer = process.env.JWT_ISSUER?.trim();
  const audience = process.env.JWT_AUDIENCE?.trim();
  let jwt = new SignJWT({
    user_idx: Number(request.userIdx),
    nickname: request.nickname,
    ...(request.roles.length === 0 ? {} : { role: request.roles.length === 1 ? request.roles[0] : request.roles }),
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(request.userIdx)
    .setIssuedAt()
    .setExpirationTime(`${request.ttlS}s`);
  if (issuer) jwt = jwt.setIssuer(issuer);
  if (audience) jwt = jwt.setAudience(audience);
  process.stdout.write(`${await jwt.sign(new TextEncoder().encode(secret))}\n`);
} catch (err) {
  fail(1, `could not sign: ${err instanceof Error ? err.message : String(err)}`);
}
