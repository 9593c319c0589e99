// Keys and tenants: no key or a bad key is 401 everywhere; a tenant key cannot see or touch
// another tenant's objects through any route (404, never 403), and nothing changes when it tries.
import { revokeKey } from "../src/services/keys";
import { insertFailedDelivery, rowCounts, startApi, webhookBody, type Api, type HttpMethod } from "./helpers/api";
import { startReceiver, type Receiver } from "./helpers/receiver";

let api: Api;
let receiver: Receiver;
let acmeKey: string;
let globexKey: string;
/** acme's webhook and one of its (failed) deliveries. */
let webhookId: string;
let deliveryId: string;

beforeAll(async () => {
  api = await startApi();
  receiver = await startReceiver({ status: 200 });
  acmeKey = await api.key("acme");
  globexKey = await api.key("globex");
  const res = await api.call("POST", "/v1/webhooks", { key: acmeKey, body: webhookBody(`${receiver.url}/acme`) });
  expect(res.statusCode).toBe(201);
  webhookId = res.json().id;
  deliveryId = await insertFailedDelivery(api.db, webhookId, "clients.created", "acme");
});
afterAll(async () => {
  await receiver.close();
  await api.close();
});

/** Every route that names an object, with a body that would be valid. */
function objectRoutes(): [HttpMethod, string, unknown?][] {
  return [
    ["GET", `/v1/webhooks/${webhookId}`],
    ["PATCH", `/v1/webhooks/${webhookId}`, { name: "taken over", url: "https://evil.example/hook" }],
    ["GET", `/v1/webhooks/${webhookId}/secret`],
    ["POST", `/v1/webhooks/${webhookId}/test`, { event_type: "clients.created" }],
    ["POST", `/v1/webhooks/${webhookId}/rotate-secret`, { grace_ms: 0 }],
    ["GET", `/v1/webhooks/${webhookId}/deliveries`],
    ["POST", `/v1/webhooks/${webhookId}/replay`, { status: "failed" }],
    ["GET", `/v1/deliveries/${deliveryId}`],
    ["POST", `/v1/deliveries/${deliveryId}/retry`],
    ["DELETE", `/v1/webhooks/${webhookId}`],
  ];
}

function everyRoute(): [HttpMethod, string, unknown?][] {
  return [
    ["POST", "/v1/webhooks", webhookBody("https://hooks.example.com/x")],
    ["GET", "/v1/webhooks"],
    ["GET", "/v1/event-types"],
    ...objectRoutes(),
  ];
}

async function snapshot() {
  const [w] = await api.db.sql`select * from webhooks.subscriptions where id = ${webhookId}`;
  const [d] = await api.db.sql`select * from webhooks.deliveries where id = ${deliveryId}`;
  return { w, d, counts: await rowCounts(api.db) };
}

describe("another tenant's key", () => {
  it("gets 404 from every route that names acme's objects, and changes nothing", async () => {
    const before = await snapshot();
    for (const [method, url, body] of objectRoutes()) {
      const res = await api.call(method, url, { key: globexKey, ...(body === undefined ? {} : { body }) });
      expect({ method, url, status: res.statusCode }).toEqual({ method, url, status: 404 });
      expect(res.json().error.code).toMatch(/^(webhook|delivery)_not_found$/);
    }
    expect(await snapshot()).toEqual(before);
    expect(receiver.requests).toHaveLength(0);
  });

  it("does not list acme's webhooks, and creates its own webhooks in its own tenant only", async () => {
    const list = await api.call("GET", "/v1/webhooks", { key: globexKey });
    expect(list.json().items).toEqual([]);
    const own = await api.call("POST", "/v1/webhooks", { key: globexKey, body: webhookBody("https://hooks.example.com/g") });
    expect(own.json().tenant).toBe("globex");
    const other = await api.call("POST", "/v1/webhooks", { key: globexKey, body: webhookBody("https://hooks.example.com/g", { tenant: "acme" }) });
    expect(other.statusCode).toBe(400);
    expect(other.json().error.details[0].path).toBe("tenant");
    const moved = await api.call("PATCH", `/v1/webhooks/${own.json().id}`, { key: globexKey, body: { tenant: "acme" } });
    expect(moved.statusCode).toBe(400);
    expect((await api.call("GET", "/v1/webhooks", { key: acmeKey })).json().items.map((w: { id: string }) => w.id)).toEqual([webhookId]);
  });
});

describe("GET /v1/event-types", () => {
  it("lists a tenant key only the custom types its own tenant emitted; an admin key sees all", async () => {
    await api.db.sql`select webhooks.emit('acme.secret_merger', '{}'::jsonb, tenant => 'acme')`;
    await api.db.sql`select webhooks.emit('globex.layoffs', '{}'::jsonb, tenant => 'globex')`;
    await api.db.sql`select webhooks.emit('nobody.owns_this', '{}'::jsonb)`;
    const custom = async (key: string) =>
      (await api.call("GET", "/v1/event-types", { key })).json().items
        .filter((t: { source: string }) => t.source === "custom")
        .map((t: { type: string }) => t.type);
    expect(await custom(acmeKey)).toEqual(["acme.secret_merger"]);
    expect(await custom(globexKey)).toEqual(["globex.layoffs"]);
    expect(await custom(api.adminKey)).toEqual(["acme.secret_merger", "globex.layoffs", "nobody.owns_this"]);
  });
});

describe("the owning tenant's key and an admin key", () => {
  it("see acme's objects", async () => {
    for (const key of [acmeKey, api.adminKey]) {
      expect((await api.call("GET", `/v1/webhooks/${webhookId}`, { key })).statusCode).toBe(200);
      expect((await api.call("GET", `/v1/deliveries/${deliveryId}`, { key })).statusCode).toBe(200);
    }
    const all = await api.call("GET", "/v1/webhooks");
    expect(all.json().items.map((w: { tenant: string | null }) => w.tenant).sort()).toEqual(["acme", "globex"]);
  });

  it("an admin key may set the tenant on create", async () => {
    const res = await api.call("POST", "/v1/webhooks", { body: webhookBody("https://hooks.example.com/i", { tenant: "initech" }) });
    expect(res.json().tenant).toBe("initech");
  });
});

describe("requests without a valid key", () => {
  it("get 401 with the error shape from every route", async () => {
    const revoked = await api.key("acme");
    const [row] = await api.db.sql<{ id: string }[]>`select id from webhooks.api_keys order by created_at desc limit 1`;
    await revokeKey(api.db, row!.id);
    const before = await rowCounts(api.db);
    const cases: { key: string | null; headers?: Record<string, string> }[] = [
      { key: null },
      { key: "pgw_not-a-real-key" },
      { key: "something-else" },
      { key: revoked },
      { key: null, headers: { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` } },
    ];
    for (const c of cases) {
      for (const [method, url, body] of everyRoute()) {
        const res = await api.call(method, url, { key: c.key, ...(c.headers ? { headers: c.headers } : {}), ...(body === undefined ? {} : { body }) });
        expect({ method, url, status: res.statusCode }).toEqual({ method, url, status: 401 });
        expect(res.json().error).toMatchObject({ code: "unauthorized", message: expect.any(String), details: [] });
        expect(res.headers["www-authenticate"]).toMatch(/^Bearer/);
      }
    }
    expect(await rowCounts(api.db)).toEqual(before);
  });

  it("still reach /v1/health, /openapi.json and /docs", async () => {
    expect((await api.call("GET", "/v1/health", { key: null })).statusCode).toBe(200);
    expect((await api.call("GET", "/openapi.json", { key: null })).statusCode).toBe(200);
    expect((await api.call("GET", "/docs", { key: null })).statusCode).toBeLessThan(400);
  });
});
