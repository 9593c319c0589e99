// GET /v1/deliveries across webhooks (the filters the admin's list uses, tenant-scoped, bad input
// a 400) and GET /v1/webhook-rates (how each webhook's deliveries ended over a window).
import { startApi, insertFailedDelivery, webhookBody, type Api } from "./helpers/api";

let api: Api;
let a: string;
let b: string;
let acmeHook: string;
const ids = { aFailed: "", bFailed: "", acme: "" };

beforeAll(async () => {
  api = await startApi();
  const create = async (extra: Record<string, unknown>) =>
    ((await api.call("POST", "/v1/webhooks", { body: webhookBody("https://hooks.example.com/x", extra) })).json() as { id: string }).id;
  a = await create({ name: "alpha" });
  b = await create({ name: "beta" });
  acmeHook = await create({ name: "acme's", tenant: "acme" });
  ids.aFailed = await insertFailedDelivery(api.db, a, "clients.created");
  ids.bFailed = await insertFailedDelivery(api.db, b, "invoices.paid");
  ids.acme = await insertFailedDelivery(api.db, acmeHook, "clients.updated", "acme");
  // One that succeeded with a 204, one that got no answer.
  await api.db.sql`update webhooks.deliveries set status = 'succeeded', last_status_code = 204, attempts = 1 where id = ${ids.bFailed}`;
  await api.db.sql`update webhooks.deliveries set attempts = 3, last_error = 'timed out' where id = ${ids.aFailed}`;
});
afterAll(() => api.close());

type Page = { items: { id: string; webhook_id: string; webhook_name: string | null }[]; next_cursor: string | null; circuits: unknown[] };

describe("GET /v1/deliveries", () => {
  it("lists every webhook's deliveries, newest first, with the webhook's name beside its id", async () => {
    const res = await api.call("GET", "/v1/deliveries");
    expect(res.statusCode).toBe(200);
    const page = res.json() as Page;
    expect(page.items.map((d) => d.id)).toEqual([ids.acme, ids.bFailed, ids.aFailed]);
    expect(page.items.map((d) => d.webhook_name)).toEqual(["acme's", "beta", "alpha"]);
    expect(page.circuits).toEqual([]);
  });

  it("filters by status, webhook, event type, event id, tenant and response class", async () => {
    const ask = async (q: string) => ((await api.call("GET", `/v1/deliveries?${q}`)).json() as Page).items.map((d) => d.id);
    expect(await ask("status=failed")).toEqual([ids.acme, ids.aFailed]);
    expect(await ask(`webhook_id=${b}`)).toEqual([ids.bFailed]);
    expect(await ask("event=clients.*")).toEqual([ids.acme, ids.aFailed]);
    expect(await ask("tenant=acme")).toEqual([ids.acme]);
    expect(await ask("response_class=2xx")).toEqual([ids.bFailed]);
    expect(await ask("response_class=none")).toEqual([ids.aFailed]);
    expect(await ask("response_class=5xx")).toEqual([]);
    const [row] = await api.db.sql<{ event_id: string }[]>`select event_id from webhooks.deliveries where id = ${ids.acme}`;
    expect(await ask(`event_id=${row?.event_id}`)).toEqual([ids.acme]);
    expect(await ask("since=1h&until=2099-01-01T00:00:00Z")).toHaveLength(3);
  });

  it("pages with a cursor", async () => {
    const first = (await api.call("GET", "/v1/deliveries?limit=2")).json() as Page;
    expect(first.items).toHaveLength(2);
    const second = (await api.call("GET", `/v1/deliveries?limit=2&cursor=${first.next_cursor}`)).json() as Page;
    expect(second.items.map((d) => d.id)).toEqual([ids.aFailed]);
    expect(second.next_cursor).toBeNull();
  });

  it("shows a tenant key its own tenant's deliveries only", async () => {
    const key = await api.key("acme");
    const page = (await api.call("GET", "/v1/deliveries", { key })).json() as Page;
    expect(page.items.map((d) => d.id)).toEqual([ids.acme]);
    const other = (await api.call("GET", "/v1/deliveries?tenant=globex", { key })).json() as Page;
    expect(other.items).toEqual([]);
  });

  it("answers bad filters with 400 in the error shape", async () => {
    for (const q of ["status=lost", "webhook_id=nope", "event=a b", "response_class=6xx", "since=yesterday", "cursor=zz", "limit=0", "tenant=%00", "colour=red"]) {
      const res = await api.call("GET", `/v1/deliveries?${q}`);
      expect({ q, status: res.statusCode }).toEqual({ q, status: 400 });
      expect(res.json()).toMatchObject({ error: { code: "invalid_input" } });
    }
    expect((await api.call("GET", "/v1/deliveries", { key: null })).statusCode).toBe(401);
  });
});

describe("GET /v1/webhook-rates", () => {
  it("says how each webhook's deliveries ended over the window", async () => {
    const res = await api.call("GET", "/v1/webhook-rates?window=24h");
    expect(res.statusCode).toBe(200);
    const body = res.json() as { window_hours: number; items: Record<string, unknown>[] };
    expect(body.window_hours).toBe(24);
    expect(body.items).toEqual([
      expect.objectContaining({ webhook_id: a, webhook_name: "alpha", total: 1, failed: 1, succeeded: 0, success_rate: 0, last_error: "timed out" }),
      expect.objectContaining({ webhook_id: b, total: 1, succeeded: 1, success_rate: 1, last_status_code: 204 }),
      expect.objectContaining({ webhook_id: acmeHook, total: 1, failed: 1 }),
    ]);
    const tenant = (await api.call("GET", "/v1/webhook-rates", { key: await api.key("acme") })).json() as { items: { webhook_id: string }[] };
    expect(tenant.items.map((r) => r.webhook_id)).toEqual([acmeHook]);
  });

  it("refuses a window outside 1h to 30d", async () => {
    for (const w of ["10m", "31d", "soon", "%00"]) {
      const res = await api.call("GET", `/v1/webhook-rates?window=${w}`);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: { code: "invalid_input", details: [{ path: "window" }] } });
    }
  });
});
