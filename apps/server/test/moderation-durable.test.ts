import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { call, openPresenter, snapshot } from "./helpers/moderation.js";
import { startTestServer } from "./helpers/server.js";

// Moderation state lives in the database, not in the node: a node restarted on the same
// (embedded, on-disk) database finds every setting, moderator, ban and term, and enforces them.

const dir = mkdtempSync(join(tmpdir(), "chatrelay-moderation-"));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const ROOM = 7201;
const MOD = 9101;
const BANNED = 9102;
const TIMED_OUT = 9103;

t.test("settings, moderators, bans, timeouts, terms and the audit survive a restart of the node", async (t) => {
  const first = await startTestServer({ PGLITE_DATA_DIR: dir });
  let before: Record<string, unknown>;
  try {
    const base = first.http;
    const ok = async (method: string, path: string, who: number, body?: object) => {
      const res = await call(base, method, `/v1/rooms/${ROOM}/${path}`, who, body);
      t.equal(res.status, 200, `${method} ${path}`);
    };
    await ok("PUT", "settings", ROOM, { slowModeS: 30, moderatorsOnly: false, maxTextLength: 42 });
    await ok("PUT", `moderators/${MOD}`, ROOM);
    await ok("PUT", `bans/${BANNED}`, MOD, { reason: "abuse" });
    await ok("PUT", `timeouts/${TIMED_OUT}`, MOD, { durationS: 3600 });
    await ok("POST", "blocked-terms", MOD, { terms: ["forbidden", "*scam*"] });
    before = await snapshot(base, ROOM);
    t.match(before, { settings: { version: 5 }, auditLength: 5 });
  } finally {
    await first.shutdown();
  }

  const second = await startTestServer({ PGLITE_DATA_DIR: dir });
  t.teardown(() => second.shutdown());
  t.same(await snapshot(second.http, ROOM), before, "the same state, version and audit after the restart");

  // ...and enforced by the new node, which has never seen the room.
  const presenter = await openPresenter(second.ws, ROOM);
  const banned = await call(second.http, "POST", `/v1/rooms/${ROOM}/messages`, BANNED, { text: "hello again" });
  t.equal(banned.status, 403);
  t.equal(banned.body.code, "banned");
  const timedOut = await call(second.http, "POST", `/v1/rooms/${ROOM}/messages`, TIMED_OUT, { text: "hi" });
  t.equal(timedOut.status, 403);
  t.equal(timedOut.body.code, "timed_out");
  const blocked = await call(second.http, "POST", `/v1/rooms/${ROOM}/messages`, 9104, { text: "what a SCAMMER" });
  t.equal(blocked.status, 400);
  t.equal(blocked.body.code, "text_blocked");
  const tooLong = await call(second.http, "POST", `/v1/rooms/${ROOM}/messages`, 9105, { text: "x".repeat(43) });
  t.equal(tooLong.status, 400);
  t.equal(tooLong.body.code, "text_too_long");
  const fine = await call(second.http, "POST", `/v1/rooms/${ROOM}/messages`, 9106, { text: "fine" });
  t.equal(fine.status, 201);
  const again = await call(second.http, "POST", `/v1/rooms/${ROOM}/messages`, 9106, { text: "fine again" });
  t.equal(again.status, 429, "slow mode (30 s) holds too");
  t.equal(again.body.code, "slow_mode");
  presenter.close(1000);
});
