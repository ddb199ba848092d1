import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import t from "tap";
import { createTestDatabase, REDIS_URL, uniqueRedisPrefix } from "./helpers/databases.js";
import { type NginxCluster, nodeAttaching, startNginxCluster } from "./helpers/nginx-cluster.js";
import { type NodeProcess, SERVER_DIR } from "./helpers/processes.js";
import { mintToken } from "./helpers/tokens.js";

// The web console in a real Chromium (Debian's package, driven by playwright-core), served by
// two real nodes behind the real nginx: a presenter page and a sender page, then the presenter's
// node is killed and a message posted during the outage must appear once the console reconnected.

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = join(SERVER_DIR, "test-artifacts");
const WAIT_MS = 30_000;

if (!existsSync(CHROMIUM)) {
  throw new Error(`this test needs Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
}

const db = await createTestDatabase();
const env = { DATABASE_URL: db.url, REDIS_URL, REDIS_KEY_PREFIX: uniqueRedisPrefix() };
let cluster: NginxCluster | undefined;
let browser: Browser | undefined;

let cleaned: Promise<void> | undefined;
const cleanup = () => {
  cleaned ??= (async () => {
    await browser?.close();
    await cluster?.stop();
    await db.drop();
  })();
  return cleaned;
};
t.teardown(cleanup);

try {
  cluster = await startNginxCluster(["b1", "b2"], env);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
} catch (err) {
  await cleanup();
  throw err;
}
const { nodes, proxy: via } = cluster;
const chrome = browser;

/** A console page, with whatever the page logs to its console or throws kept for the report. */
async function openConsole(): Promise<{ page: Page; problems: string[] }> {
  const page = await chrome.newPage({ viewport: { width: 1280, height: 800 } });
  const problems: string[] = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("response", (res) => {
    if (res.status() >= 400) problems.push(`${res.status()} for ${new URL(res.url()).pathname}`);
  });
  const res = await page.goto(`${via.http}/console/`);
  if (res?.status() !== 200) throw new Error(`/console/ answered ${res?.status()}`);
  return { page, problems };
}

async function post(page: Page, room: number, token: string, text: string): Promise<void> {
  const before = await page.locator("#outcomes li.ok").count();
  await page.fill("#sender-form [name=roomId]", String(room));
  await page.fill("#sender-form [name=token]", token);
  await page.fill("#sender-form [name=text]", text);
  await page.click("#send");
  await page.locator("#outcomes li.ok").nth(before).waitFor({ timeout: WAIT_MS });
}

t.test("presenter and sender pages through nginx; the presenter's node dies; nothing is lost", async (t) => {
  const room = 9201;
  const presenter = await openConsole();
  const sender = await openConsole();
  const viewerToken = await mintToken({ user_idx: 777, nickname: "viewer 777" });

  await presenter.page.fill("#presenter-form [name=roomId]", String(room));
  await presenter.page.fill("#presenter-form [name=token]", await mintToken({ user_idx: room }));
  await presenter.page.click("#connect");
  await presenter.page.waitForSelector("#state[data-state=open]", { timeout: WAIT_MS });

  await sender.page.click("nav [data-tab=sender]");
  await post(sender.page, room, viewerToken, "hello from the sender page");
  const row = (text: string) => presenter.page.locator("#messages tbody tr td.text", { hasText: text });
  await row("hello from the sender page").waitFor({ timeout: WAIT_MS });
  t.pass("the presenter page shows the message posted from the sender page");

  const connId = (await presenter.page.textContent("#conn-id")) ?? "";
  const holder = await nodeAttaching(nodes, connId);
  t.pass(`the page shows its connection id (${connId}), which a node logged attaching`);
  await holder.kill("SIGKILL");

  // Posted while the presenter has no socket: accepted by the surviving node, kept in the log.
  await post(sender.page, room, viewerToken, "posted during the outage");
  await row("posted during the outage").waitFor({ timeout: WAIT_MS });
  await presenter.page.waitForSelector("#state[data-state=open]", { timeout: WAIT_MS });
  t.not(await presenter.page.textContent("#reconnects"), "0", "the page shows the reconnect");
  t.ok(
    (await presenter.page.locator("#connection-log li.bad").count()) >= 1,
    "the connection log shows the close that was retried",
  );
  const seqs = await presenter.page.$$eval("#messages tbody tr", (rows) =>
    rows.map((r) => Number(r.getAttribute("data-seq"))),
  );
  t.same(seqs, [2, 1], "each message once, newest first, with its seq");

  // A moderation action from the presenter page: delete the first message.
  await presenter.page.click("#messages tbody tr[data-seq='1'] button:text('delete')");
  await presenter.page.waitForSelector("#messages tbody tr.deleted[data-seq='1']", { timeout: WAIT_MS });
  t.ok(
    await presenter.page.locator("#messages tbody tr.event").count(),
    "the delete event is shown, and the message struck",
  );

  // The history view: paging over the log, and the room's status.
  await sender.page.click("nav [data-tab=history]");
  await sender.page.fill("#history-form [name=roomId]", String(room));
  await sender.page.fill("#history-form [name=token]", viewerToken);
  await sender.page.fill("#history-form [name=limit]", "1");
  await sender.page.click("#load");
  await sender.page.locator("#history-items tbody tr").nth(0).waitFor({ timeout: WAIT_MS });
  await sender.page.click("#older");
  await sender.page.locator("#history-items tbody tr").nth(1).waitFor({ timeout: WAIT_MS });
  const entries = await sender.page.$$eval("#history-items tbody tr", (rows) =>
    rows.map((r) => [r.children[0]?.textContent, r.children[1]?.textContent, r.children[3]?.textContent]),
  );
  t.match(entries[0], ["3", "delete", /"targetSeq":1/], "page one: the newest entry, the delete event");
  t.same(entries[1], ["2", "message", "posted during the outage"], "page two: the entry before it");
  const status = (await sender.page.textContent("#room-status")) ?? "";
  t.match(status, /live/, "the room is live");
  const survivor = nodes.find((n) => n !== holder) as NodeProcess;
  t.match(status, new RegExp(`presenter node: ${survivor.name}`), "on the node that survived");

  mkdirSync(ARTIFACTS, { recursive: true });
  await presenter.page.screenshot({ path: join(ARTIFACTS, "console-presenter.png"), fullPage: true });
  t.same([...presenter.problems, ...sender.problems], [], "no script error and no failed request on either page");
});

t.test("the console's pages carry a strict Content-Security-Policy and only the node's own files", async (t) => {
  const res = await fetch(`${via.http}/console/`);
  t.equal(res.status, 200);
  const csp = res.headers.get("content-security-policy") ?? "";
  t.match(csp, /default-src 'none'/);
  t.match(csp, /frame-ancestors 'none'/);
  const html = await res.text();
  t.notMatch(html, /https?:\/\//, "no absolute URL: nothing comes from another origin");
  const missing = await fetch(`${via.http}/console/../../package.json`);
  t.equal(missing.status, 404, "no path outside the console's own files");
  const redirect = await fetch(`${via.http}/console`, { redirect: "manual" });
  t.equal(redirect.status, 302);
  t.equal(redirect.headers.get("location"), "/console/");
});
