import t from "tap";
import { createTestDatabase } from "./helpers/databases.js";
import { request } from "./helpers/http.js";
import { appendMessages } from "./helpers/retention.js";
import { startTestServer } from "./helpers/server.js";
import { mintToken } from "./helpers/tokens.js";

// The retention operator routes: GET, PUT and DELETE /v1/rooms/:roomId/retention.

interface View {
  roomId: number;
  override: { maxAgeDays: number | null; maxCount: number | null; updatedBy: number; updatedAt: string } | null;
  global: { maxAgeDays: number | null; maxCount: number | null };
  effective: { maxAgeDays: number | null; maxCount: number | null };
  retainedFrom: number | null;
  lastSeq: number;
}

const stores: [string, () => Promise<{ env: Record<string, string>; drop: () => Promise<void> }>][] = [
  ["PGlite", async () => ({ env: {}, drop: async () => {} })],
  [
    "PostgreSQL",
    async () => {
      const db = await createTestDatabase();
      return { env: { DATABASE_URL: db.url }, drop: db.drop };
    },
  ],
];

for (const [store, open] of stores) {
  t.test(`${store}: set, read and remove a room's override`, async (t) => {
    const { env, drop } = await open();
    t.teardown(drop);
    const server = await startTestServer({ ...env, RETENTION_MAX_AGE_DAYS: "30", RETENTION_INTERVAL_MS: "86400000" });
    t.teardown(() => server.shutdown());
    const operator = { authorization: `Bearer ${await mintToken({ user_idx: 9001, role: "operator" })}` };
    const url = `${server.http}/v1/rooms/77/retention`;

    const empty = await request<View>(url, { headers: operator });
    t.equal(empty.status, 200);
    t.same(empty.body, {
      roomId: 77,
      override: null,
      global: { maxAgeDays: 30, maxCount: null },
      effective: { maxAgeDays: 30, maxCount: null },
      retainedFrom: null,
      lastSeq: 0,
    });

    await appendMessages(server.chatLog, 77, 3);
    const put = await request<View>(url, {
      method: "PUT",
      headers: operator,
      body: { maxAgeDays: null, maxCount: 1000 },
    });
    t.equal(put.status, 200, put.text);
    t.match(put.body, {
      override: { maxAgeDays: null, maxCount: 1000, updatedBy: 9001, updatedAt: String },
      effective: { maxAgeDays: null, maxCount: 1000 },
      retainedFrom: 1,
      lastSeq: 3,
    });
    const read = await request<View>(url, { headers: operator });
    t.same(read.body, put.body, "GET answers what PUT stored");

    const again = await request<View>(url, {
      method: "PUT",
      headers: operator,
      body: { maxAgeDays: 2, maxCount: null },
    });
    t.match(again.body.effective, { maxAgeDays: 2, maxCount: null }, "a second PUT replaces the override");

    const removed = await request<View>(url, { method: "DELETE", headers: operator });
    t.equal(removed.status, 200);
    t.same([removed.body.override, removed.body.effective], [null, { maxAgeDays: 30, maxCount: null }]);
    t.equal((await request<View>(url, { method: "DELETE", headers: operator })).status, 200, "idempotent");
  });
}

t.test("only operator tokens; bad parameters get a clear 400", async (t) => {
  const server = await startTestServer({ RETENTION_INTERVAL_MS: "86400000" });
  t.teardown(() => server.shutdown());
  const room = 55;
  const url = `${server.http}/v1/rooms/${room}/retention`;
  const good = { maxAgeDays: 3, maxCount: null };
  const bearer = async (claims: Parameters<typeof mintToken>[0]) => ({
    authorization: `Bearer ${await mintToken(claims)}`,
  });

  for (const method of ["GET", "PUT", "DELETE"]) {
    const body = method === "PUT" ? good : undefined;
    const none = await request(url, { method, ...(body ? { body } : {}) });
    t.equal(none.status, 401, `${method} without a token`);
    const viewer = await request(url, { method, headers: await bearer({ user_idx: 12 }), ...(body ? { body } : {}) });
    t.equal(viewer.status, 403, `${method} with a viewer's token`);
    const presenter = await request(url, {
      method,
      headers: await bearer({ user_idx: room }),
      ...(body ? { body } : {}),
    });
    t.equal(presenter.status, 403, `${method} with the room's presenter's token`);
    t.match(presenter.headers.get("content-type"), /^application\/problem\+json/);
  }

  const operator = await bearer({ user_idx: 1, role: "operator" });
  const secret = "do-not-echo-me";
  const badBodies: [string, unknown][] = [
    ["a field missing", { maxAgeDays: 3 }],
    ["an unknown field", { ...good, keep: secret }],
    ["age 0", { maxAgeDays: 0, maxCount: null }],
    ["age too large", { maxAgeDays: 36_501, maxCount: null }],
    ["a fractional age", { maxAgeDays: 1.5, maxCount: null }],
    ["count 0", { maxAgeDays: null, maxCount: 0 }],
    ["a string", { maxAgeDays: secret, maxCount: null }],
    ["an array", [good]],
  ];
  for (const [what, body] of badBodies) {
    const res = await request<{ code: string; detail: string }>(url, {
      method: "PUT",
      headers: operator,
      body: body as object,
    });
    t.equal(res.status, 400, `PUT with ${what}`);
    t.notOk(res.text.includes(secret), `${what}: the value is not echoed`);
  }
  const notJson = await request(url, {
    method: "PUT",
    headers: { ...operator, "content-type": "application/json" },
    body: "{nope",
  });
  t.equal(notJson.status, 400, "PUT with a body that is not JSON");
  for (const badRoom of ["0", "abc", "12345678901234567"]) {
    const res = await request(`${server.http}/v1/rooms/${badRoom}/retention`, { headers: operator });
    t.equal(res.status, 400, `GET of room id ${badRoom}`);
    if (badRoom !== "0") t.notOk(res.text.includes(badRoom), "the room id is not echoed");
  }
});
