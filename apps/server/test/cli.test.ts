import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { DEV_JWT_SECRET } from "../src/auth/secret-strength.js";
import { createTokenVerifier } from "../src/auth/token-verifier.js";
import { runNode } from "./helpers/child-run.js";
import { createTestDatabase } from "./helpers/databases.js";
import { TEST_JWT_SECRET } from "./helpers/tokens.js";

const SERVER_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const REPO_ROOT = join(SERVER_DIR, "..", "..");
const MIGRATE_CLI = join(SERVER_DIR, "dist", "migrate-cli.js");
const SERVER_MAIN = join(SERVER_DIR, "dist", "main.js");

/** Runs a command to its end (bounded) with only the given settings of ours in its environment. */
const run = (args: string[], env: Record<string, string>, cwd = REPO_ROOT, timeoutMs = 60_000) =>
  runNode(args, { env, cwd, timeoutMs });

/** What `pnpm dev-token` runs (package.json), from the repository root. */
const devToken = (args: string[], env: Record<string, string> = {}) =>
  run(["--import", "tsx", "apps/server/scripts/mint-token.ts", ...args], env);

const verifierFor = (secret: string) =>
  createTokenVerifier({ secret, jwksUrl: undefined, issuer: undefined, audience: undefined });

const hasStack = (text: string) => /^\s+at /m.test(text);

t.test("dev-token: an empty or blank JWT_SECRET means the development secret, as on the server", async (t) => {
  for (const secret of ["", "   "]) {
    const out = await devToken(["42", "alice"], { JWT_SECRET: secret });
    t.equal(out.code, 0, `JWT_SECRET=${JSON.stringify(secret)}: exit 0`);
    const principal = await verifierFor(DEV_JWT_SECRET)(out.stdout.trim());
    t.match(principal, { userId: 42, nickname: "alice", roles: [] });
  }
});

t.test("dev-token: JWT_SECRET, the default nickname, --role and --ttl", async (t) => {
  const out = await devToken(["7", "--role", "Viewer", "--ttl", "60"], { JWT_SECRET: TEST_JWT_SECRET });
  t.equal(out.code, 0, out.stderr);
  const jwt = out.stdout.trim();
  const principal = await verifierFor(TEST_JWT_SECRET)(jwt);
  t.match(principal, { userId: 7, nickname: "user-7", roles: ["viewer"] });
  const claims = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString()) as Record<string, number>;
  t.equal((claims.exp ?? 0) - (claims.iat ?? 0), 60, "lifetime is --ttl");
  const def = await devToken(["7"], { JWT_SECRET: TEST_JWT_SECRET });
  const defClaims = JSON.parse(Buffer.from(def.stdout.split(".")[1] ?? "", "base64url").toString()) as Record<
    string,
    number
  >;
  t.equal((defClaims.exp ?? 0) - (defClaims.iat ?? 0), 86_400, "default lifetime: the server's default maximum");
});

t.test("dev-token: bad arguments get a one-line usage error, exit 2, no stack", async (t) => {
  for (const args of [
    ["42", "--ttl", "abc"],
    ["42", "--ttl", "0"],
    ["42", "--ttl", "-5"],
    ["42", "--ttl", "1.5"],
    ["42", "--ttl", "86401"],
    ["42", "--ttl"],
    ["42", "--role"],
    ["42", "--colour", "red"],
    ["abc"],
    ["9007199254740993"],
    [],
    ["42", "alice", "extra"],
  ]) {
    const out = await devToken(args, { JWT_SECRET: TEST_JWT_SECRET });
    t.equal(out.code, 2, `${JSON.stringify(args)}: exit 2`);
    t.equal(out.stdout, "", "no token");
    t.match(out.stderr, /^dev-token: .*\nusage: pnpm dev-token/, "reason, then usage");
    t.notOk(hasStack(out.stderr), "no stack trace");
  }
});

t.test("dev-token: a JWT_SECRET the server would refuse is refused here too", async (t) => {
  for (const secret of ["change-me-to-at-least-32-random-characters", "short", DEV_JWT_SECRET]) {
    const out = await devToken(["42"], { JWT_SECRET: secret });
    t.equal(out.code, 78, "exit 78 (configuration)");
    t.match(out.stderr, /^dev-token: JWT_SECRET /);
    t.notOk(out.stderr.includes(secret), "the secret is not printed");
    t.notOk(hasStack(out.stderr));
  }
});

t.test("migrate CLI", async (t) => {
  t.ok(existsSync(MIGRATE_CLI), "built (run `pnpm build` first)");

  t.test("NODE_ENV=production with only DATABASE_URL migrates (no JWT secret needed)", async (t) => {
    const db = await createTestDatabase();
    t.teardown(db.drop);
    const env = { NODE_ENV: "production", DATABASE_URL: db.url };
    const first = await run([MIGRATE_CLI], env);
    t.equal(first.code, 0, first.stderr);
    t.match(first.stdout, /^applied: \S+/);
    const again = await run([MIGRATE_CLI], env, SERVER_DIR);
    t.equal(again.code, 0, again.stderr);
    t.equal(again.stdout, "up to date\n", "from another cwd: the same migrations, already applied");
  });

  t.test("configuration errors exit 78 with a message, before touching a store", async (t) => {
    const missing = join(tmpdir(), `chatrelay-no-migrations-${process.pid}`);
    for (const [what, env, reason] of [
      [
        "missing MIGRATIONS_DIR",
        { MIGRATIONS_DIR: missing, PGLITE_DATA_DIR: "memory://" },
        /MIGRATIONS_DIR=.* is not a folder/,
      ],
      ["bad DATABASE_URL", { DATABASE_URL: "mysql://db/chat" }, /DATABASE_URL must use postgres/],
    ] as const) {
      const out = await run([MIGRATE_CLI], { NODE_ENV: "production", ...env });
      t.equal(out.code, 78, `${what}: exit 78`);
      t.match(out.stderr, reason);
      t.notOk(hasStack(out.stderr), "no stack trace");
    }
  });
});

t.test("the server refuses the development secret beyond loopback (exit 78)", async (t) => {
  t.ok(existsSync(SERVER_MAIN), "built (run `pnpm build` first)");
  const out = await run([SERVER_MAIN], { HOST: "0.0.0.0", PORT: "0", PGLITE_DATA_DIR: "memory://" });
  t.equal(out.code, 78);
  t.match(out.stderr, /HOST=0\.0\.0\.0 is not a loopback address/);
});
