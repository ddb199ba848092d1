import { messages, PGlite } from "@electric-sql/pglite";
import t from "tap";
import { PGliteThread } from "../src/chatlog/pglite-thread.js";

// The embedded chat log runs PGlite on a worker thread (chatlog/pglite-thread.ts): SQL must not hold
// the event loop, and callers must see what PGlite itself gives them (values, errors, transactions).
const db = await PGliteThread.start("memory://");
t.teardown(() => db.close());

t.test("a long statement does not hold the event loop", async (t) => {
  const order: string[] = [];
  const slow = db.query("SELECT pg_sleep(0.5)").then(() => order.push("query"));
  // On the event loop's thread the timer could only fire after the statement: here it fires first.
  await new Promise<void>((resolve) => setTimeout(resolve, 0)).then(() => order.push("timer"));
  await slow;
  t.same(order, ["timer", "query"]);
});

t.test("values come back as PGlite itself gives them; the caller's own parsers get the text", async (t) => {
  const sql =
    "SELECT 42::int8 AS big, '2026-01-02 03:04:05+00'::timestamptz AS at, '{1,2}'::int8[] AS list, '{\"a\":1}'::jsonb AS doc, NULL::text AS nothing";
  const direct = await PGlite.create("memory://");
  t.teardown(() => direct.close());
  const own = { 1184: (x: string) => `text:${x}` };
  for (const options of [undefined, { rowMode: "array" as const }, { rowMode: "array" as const, parsers: own }]) {
    const [mine, theirs] = await Promise.all([db.query(sql, [], options), direct.query(sql, [], options)]);
    t.strictSame(mine.rows, theirs.rows, `rows as PGlite gives them (${JSON.stringify(options)})`);
    t.strictSame(
      mine.fields.map((f) => [f.name, f.dataTypeID]),
      theirs.fields.map((f) => [f.name, f.dataTypeID]),
    );
  }
  const withOwn = await db.query<unknown[]>(sql, [], { rowMode: "array", parsers: own });
  t.match(withOwn.rows[0]?.[1], /^text:2026-01-02 03:04:05/, "a parser of the caller's own gets PostgreSQL's text");
});

t.test("errors keep PostgreSQL's fields and class; the connection goes on", async (t) => {
  await db.exec("CREATE TABLE uniq (k int PRIMARY KEY)");
  await db.query("INSERT INTO uniq VALUES ($1)", [1]);
  const err = await db.query("INSERT INTO uniq VALUES ($1)", [1]).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof messages.DatabaseError, "a DatabaseError");
  t.match(err, { code: "23505", constraint: "uniq_pkey" });
  t.same((await db.query("SELECT count(*)::int AS n FROM uniq")).rows, [{ n: 1 }]);
});

t.test("a transaction holds the connection: other statements wait, rollback undoes", async (t) => {
  await db.exec("CREATE TABLE tx (k int)");
  const order: string[] = [];
  let release = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tx = db.transaction(async (tx) => {
    await tx.query("INSERT INTO tx VALUES (1)");
    order.push("in tx");
    await held;
    await tx.query("INSERT INTO tx VALUES (2)");
  });
  const outside = db.query<{ n: number }>("SELECT count(*)::int AS n FROM tx").then((r) => {
    order.push("outside");
    return r.rows[0]?.n;
  });
  await new Promise((resolve) => setImmediate(resolve));
  release();
  await tx;
  t.equal(await outside, 2, "the statement outside ran after the commit");
  t.same(order, ["in tx", "outside"]);

  await t.rejects(
    db.transaction(async (tx) => {
      await tx.query("INSERT INTO tx VALUES (3)");
      throw new Error("abort");
    }),
    /abort/,
  );
  await db.transaction(async (tx) => {
    await tx.query("INSERT INTO tx VALUES (4)");
    await tx.rollback();
  });
  t.same((await db.query("SELECT k FROM tx ORDER BY k")).rows, [{ k: 1 }, { k: 2 }], "both rolled back");
});
