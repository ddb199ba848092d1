// Mints a development JWT (HS256) for trying the server locally.
// Usage: pnpm dev-token <user_idx> [nickname] [--role viewer] [--ttl seconds]
// Signs with JWT_SECRET, or the server's built-in development secret when it is unset.
import { SignJWT } from "jose";
import { DEV_JWT_SECRET } from "../src/config.js";

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return undefined;
  const value = args[i + 1];
  args.splice(i, 2);
  return value;
};
const role = flag("role");
const ttl = Number(flag("ttl") ?? 24 * 3600);
const [userIdx, nickname] = args;
if (!userIdx || !/^[1-9]\d*$/.test(userIdx)) {
  process.stderr.write("usage: pnpm dev-token <user_idx> [nickname] [--role viewer] [--ttl seconds]\n");
  process.exit(2);
}
const secret = process.env.JWT_SECRET ?? DEV_JWT_SECRET;
const token = await new SignJWT({
  user_idx: Number(userIdx),
  nickname: nickname ?? `user-${userIdx}`,
  ...(role ? { role } : {}),
})
  .setProtectedHeader({ alg: "HS256" })
  .setSubject(userIdx)
  .setIssuedAt()
  .setExpirationTime(`${ttl}s`)
  .sign(new TextEncoder().encode(secret));
process.stdout.write(`${token}\n`);
