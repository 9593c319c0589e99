// The core pipeline end to end: a tracked table, a running dispatcher, a real receiver.
import { createHmac } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { createTestDatabase, emptyWebhookTables, type TestDatabase } from "./helpers/db";
import { startReceiver, type Receiver } from "./helpers/receiver";
import { insertWebhook, runDispatcher, settled, type RunningDispatcher } from "./helpers/pipeline";

let t: TestDatabase;
let rx: Receiver;
let dispatcher: RunningDispatcher;

beforeAll(async () => {
  t = await createTestDatabase();
  rx = await startReceiver();
  await t.sql`create table public.clients (id serial primary key, account_id text, name text, stage text, value int, password_hash text)`;
  await t.sql`select webhooks.track_table('public.clients', tenant_column => 'account_id', excluded_columns => array['password_hash'])`;
  dispatcher = await runDispatcher(t.url);
});
afterAll(async () => {
  await dispatcher?.stop();
  await rx?.close();
  await t?.close();
});
beforeEach(async () => {
  await emptyWebhookTables(t.sql);
  rx.requests.length = 0;
  rx.respond({ status: 200 });
});

it("delivers insert, update and delete as three signed requests of the documented shape", async () => {
  const { secret } = await insertWebhook(t.sql, { url: `${rx.url}/hook`, events: ["clients.*"] });
  await t.sql`insert into clients (account_id, name, stage, password_hash) values ('acme', 'Ada', 'lead', 'h')`;
  await t.sql`update clients set stage = 'won'`;
  await t.sql`delete from clients`;
  await settled(t.sql, 3);
  const reqs = await rx.waitFor(3);
  const bodies = reqs.map((r) => JSON.parse(r.body) as Record<string, unknown>).sort((a, b) =>
    String(a.timestamp).localeCompare(String(b.timestamp)));
  expect(bodies.map((b) => b.type).sort()).toEqual(["clients.created", "clients.deleted", "clients.updated"]);
  const updated = bodies.find((b) => b.type === "clients.updated");
  expect(updated).toEqual({
    id: expect.stringMatching(/^[0-9a-f-]{36}$/),
    type: "clients.updated",
    timestamp: expect.any(String),
    data: { id: expect.any(Number), account_id: "acme", name: "Ada", stage: "won", value: null },
    previous_attributes: { stage: "lead" },
  });
  const wh = new Webhook(secret);
  for (const r of reqs) {
    expect(r.method).toBe("POST");
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers["user-agent"]).toMatch(/^pg-webhooks\//);
    expect(r.headers["x-webhook-event"]).toBe(JSON.parse(r.body).type);
    expect(r.headers["x-webhook-delivery-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.headers["webhook-id"]).toBe(JSON.parse(r.body).id);
    expect(() => wh.verify(r.body, r.headers as Record<string, string>)).not.toThrow();
    expect(r.body).not.toContain("password_hash");
  }
  const attempts = await t.sql`select response_status, coalesce(a.request_body, d.body) as request_body, request_headers
    from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id`;
  expect(attempts).toHaveLength(3);
  expect(attempts[0]?.request_headers).toMatchObject({ "webhook-signature": expect.stringMatching(/^v1,\*+/) });
  expect(attempts.every((a) => a.response_status === 200)).toBe(true);
  expect(JSON.stringify(attempts)).not.toContain(secret.slice(6));
});

it.each([
  ["hex", null, "x-webhook-signature", (body: string, secret: string) => createHmac("sha256", secret).update(body).digest("hex")],
  ["sha256", "X-Signature-256", "x-signature-256", (body: string, secret: string) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`],
] as const)("signs with the %s scheme as receivers verify it with Node crypto", async (scheme, header, lower, expected) => {
  const { secret } = await insertWebhook(t.sql, { url: rx.url, signature_scheme: scheme, signature_header: header, secret: "my-shared-secret" });
  await t.sql`select webhooks.emit('invoice.paid', '{"id": 1}'::jsonb)`;
  const [req] = await rx.waitFor(1);
  expect(req?.headers[lower]).toBe(expected(req?.body ?? "", secret));
});

it("sends only the events a webhook's types, tenant and filter select", async () => {
  await insertWebhook(t.sql, { url: `${rx.url}/won`, events: ["clients.updated"], filter: { "data.stage": "won", "previous_attributes.stage": { $exists: true } } });
  await insertWebhook(t.sql, { url: `${rx.url}/big`, events: ["clients.*"], filter: { "data.value": { $gt: 10000 } } });
  await insertWebhook(t.sql, { url: `${rx.url}/globex`, events: ["*"], tenant: "globex" });
  await insertWebhook(t.sql, { url: `${rx.url}/off`, events: ["*"], is_active: false });
  await t.sql`insert into clients (account_id, name, stage, value) values ('acme', 'a', 'lead', 500), ('acme', 'b', 'lead', 20000), ('globex', 'c', 'lead', 1)`;
  await t.sql`update clients set stage = 'won' where name in ('a', 'c')`;
  await t.sql`update clients set value = 7 where name = 'a'`;
  await settled(t.sql, 5);
  await new Promise((r) => setTimeout(r, 300));
  const got = rx.requests.map((r) => `${r.path} ${JSON.parse(r.body).type} ${JSON.parse(r.body).data.name}`).sort();
  expect(got).toEqual([
    "/big clients.created b",
    "/globex clients.created c",
    "/globex clients.updated c",
    "/won clients.updated a",
    "/won clients.updated c",
  ]);
});

it("follows the retry schedule to failed, recording every attempt, with a stable event id", async () => {
  rx.respond({ status: 500, body: "down" });
  const { id } = await insertWebhook(t.sql, {
    url: rx.url,
    retry: { max_attempts: 3, strategy: "schedule", delays_ms: [300, 600] },
  });
  await t.sql`select webhooks.emit('invoice.paid', '{"id": 2}'::jsonb)`;
  const counts = await settled(t.sql, 1);
  expect(counts).toEqual({ failed: 1 });
  const reqs = rx.requests;
  expect(reqs).toHaveLength(3);
  const gaps = [reqs[1]!.receivedAt - reqs[0]!.receivedAt, reqs[2]!.receivedAt - reqs[1]!.receivedAt];
  expect(gaps[0]).toBeGreaterThanOrEqual(280);
  expect(gaps[1]).toBeGreaterThanOrEqual(580);
  expect(new Set(reqs.map((r) => r.headers["webhook-id"])).size).toBe(1);
  const [d] = await t.sql`select status, attempts, last_status_code, finished_at from webhooks.deliveries where subscription_id = ${id}`;
  expect(d).toMatchObject({ status: "failed", attempts: 3, last_status_code: 500 });
  const attempts = await t.sql`select attempt_number, response_status, response_body from webhooks.attempts order by attempt_number`;
  expect(attempts).toEqual([1, 2, 3].map((n) => ({ attempt_number: n, response_status: 500, response_body: "down" })));
});

it("records a network error as a failed attempt and succeeds on a later one", async () => {
  rx.respond((_req, i) => (i === 0 ? { reset: true } : { status: 204 }));
  await insertWebhook(t.sql, { url: rx.url });
  await t.sql`select webhooks.emit('invoice.paid', '{"id": 3}'::jsonb)`;
  expect(await settled(t.sql, 1)).toEqual({ succeeded: 1 });
  const attempts = await t.sql`select response_status, error from webhooks.attempts order by attempt_number`;
  expect(attempts[0]).toMatchObject({ response_status: null, error: expect.any(String) });
  expect(attempts[1]).toMatchObject({ response_status: 204, error: null });
});

it("refuses a private target when private targets are not allowed, and records why", async () => {
  const strict = await runDispatcher(t.url, { WEBHOOKS_ALLOW_PRIVATE_TARGETS: "false" });
  await dispatcher.stop();
  try {
    await insertWebhook(t.sql, { url: `http://localhost:${rx.port}/x`, retry: { max_attempts: 1, strategy: "schedule", delays_ms: [100] } });
    await t.sql`select webhooks.emit('invoice.paid', '{"id": 4}'::jsonb)`;
    expect(await settled(t.sql, 1)).toEqual({ failed: 1 });
    const [a] = await t.sql`select error from webhooks.attempts`;
    expect(a?.error).toMatch(/private/);
    expect(rx.requests).toHaveLength(0);
  } finally {
    await strict.stop();
    dispatcher = await runDispatcher(t.url);
  }
});
