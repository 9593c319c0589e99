// The webhooks resource over HTTP: create, list, read, change, delete, secrets, test sends
// and secret rotation, each with its main failure; endpoint health (settings, circuit, and
// what enabling and disabling do to it).
import { Webhook as StandardWebhook } from "standardwebhooks";
import { createHmac } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { startApi, rowCounts, webhookBody, type Api } from "./helpers/api";
import { startReceiver, type Receiver } from "./helpers/receiver";

let api: Api;
let receiver: Receiver;

beforeAll(async () => {
  api = await startApi();
  receiver = await startReceiver({ status: 200, body: "thanks" });
});
afterAll(async () => {
  await receiver.close();
  await api.close();
});
beforeEach(() => {
  receiver.respond({ status: 200, body: "thanks" });
  receiver.requests.length = 0;
});

function flat(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

async function create(extra: Record<string, unknown> = {}): Promise<{ id: string; secret: string }> {
  const res = await api.call("POST", "/v1/webhooks", { body: webhookBody(`${receiver.url}/hook`, extra) });
  expect(res.statusCode).toBe(201);
  return res.json();
}

const HEALTHY = {
  circuit: "closed",
  consecutive_failures: 0,
  failing_since: null,
  last_success_at: null,
  last_failure_at: null,
  next_probe_at: null,
};

/** What the dispatcher writes when an endpoint keeps failing: an open circuit after 12 failures. */
async function openCircuit(webhookId: string): Promise<void> {
  await api.db.sql`
    insert into webhooks.endpoint_health (subscription_id, circuit, consecutive_failures, failing_since, last_success_at,
                                          last_failure_at, opened_at, next_probe_at, probe_interval_ms)
    values (${webhookId}, 'open', 12, now() - interval '2 hours', now() - interval '3 hours',
            now() - interval '1 minute', now() - interval '1 minute', now() + interval '5 minutes', 30000)`;
}

/** A delivery owed to the webhook; `parked`: waiting for the circuit to close, so without a job. */
async function insertDelivery(webhookId: string, status: "pending" | "retrying", parked: boolean): Promise<string> {
  const [row] = await api.db.sql<{ id: string }[]>`
    with e as (insert into webhooks.outbox (type, data, dispatched_at) values ('a.b', '{}', now()) returning id, event_id)
    insert into webhooks.deliveries (subscription_id, outbox_id, event_id, event_type, status, attempts, parked_at)
    select ${webhookId}, id, event_id, 'a.b', ${status}, ${status === "retrying" ? 3 : 0}, ${parked ? new Date() : null} from e
    returning id`;
  return row!.id;
}

describe("POST /v1/webhooks", () => {
  it("creates a webhook and answers 201 with it and a generated whsec_ secret", async () => {
    const res = await api.call("POST", "/v1/webhooks", {
      body: {
        name: "CRM sync",
        description: "won deals to the CRM",
        url: `${receiver.url}/crm`,
        method: "PUT",
        auth: { type: "bearer", token: "tok-123" },
        headers: { "X-Source": "pgw", "X-Api-Key": "k3y" },
        events: ["deals.updated", "clients.*"],
        filter: { "data.stage": "won" },
        retry: { max_attempts: 5 },
        timeout_ms: 5000,
        max_in_flight: 4,
        rate_limit_per_s: 2.5,
        disable_after_s: 3600,
      },
    });
    expect(res.statusCode).toBe(201);
    const w = res.json();
    expect(res.headers.location).toBe(`/v1/webhooks/${w.id}`);
    expect(w).toMatchObject({
      name: "CRM sync",
      method: "PUT",
      auth: { type: "bearer" },
      headers: { "X-Source": "pgw", "X-Api-Key": "****" },
      events: ["deals.updated", "clients.*"],
      filter: { "data.stage": "won" },
      signature_scheme: "standard",
      retry: { max_attempts: 5, strategy: "schedule" },
      timeout_ms: 5000,
      max_in_flight: 4,
      rate_limit_per_s: 2.5,
      disable_after_s: 3600,
      is_active: true,
      tenant: null,
      health: HEALTHY,
    });
    expect(w.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(JSON.stringify(w)).not.toContain("tok-123");
    expect(JSON.stringify(w)).not.toContain("k3y");
  });

  it("defaults to 10 requests in flight, no rate limit and the dispatcher's disable-after", async () => {
    const w = await create();
    const res = await api.call("GET", `/v1/webhooks/${w.id}`);
    expect(res.json()).toMatchObject({ max_in_flight: 10, rate_limit_per_s: null, disable_after_s: null, health: HEALTHY });
    const [row] = await api.db.sql`select max_in_flight, rate_limit_per_s, disable_after_s from webhooks.subscriptions where id = ${w.id}`;
    expect(row).toEqual({ max_in_flight: 10, rate_limit_per_s: null, disable_after_s: null });
  });

  it("names the field and the expected shape of bad endpoint settings, and writes nothing", async () => {
    const before = await rowCounts(api.db);
    const res = await api.call("POST", "/v1/webhooks", {
      body: webhookBody(receiver.url, { max_in_flight: 0, rate_limit_per_s: -1, disable_after_s: "x" }),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe("invalid_input");
    expect(res.json().error.details).toEqual([
      { path: "max_in_flight", message: "expected a whole number of requests from 1 to 1000" },
      { path: "rate_limit_per_s", message: "expected requests per second from 0.001 (one every 1000 s) to 10000, or null for no limit" },
      { path: "disable_after_s", message: "expected whole seconds from 1 to 31536000 (a year), or null for the dispatcher default" },
    ]);
    expect(res.json().error.message).toMatch(/^max_in_flight: expected a whole number of requests from 1 to 1000 \(and 2 more problems\)$/);
    expect(await rowCounts(api.db)).toEqual(before);
  });

  it("names the bad field of an invalid filter, and writes nothing", async () => {
    const before = await rowCounts(api.db);
    const res = await api.call("POST", "/v1/webhooks", {
      body: webhookBody(receiver.url, { filter: { "data.value": { $gt: true } } }),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({
      code: "invalid_filter",
      details: [{ path: "filter.data.value.$gt", message: expect.stringContaining("expected a number or string for $gt") }],
    });
    expect(await rowCounts(api.db)).toEqual(before);
  });

  it("refuses private targets unless WEBHOOKS_ALLOW_PRIVATE_TARGETS is set", async () => {
    const strict = await startApi({ WEBHOOKS_ALLOW_PRIVATE_TARGETS: "false" }, api.db);
    try {
      const before = await rowCounts(api.db);
      for (const url of ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://localhost/x", "http://[::1]/x"]) {
        const res = await strict.call("POST", "/v1/webhooks", { body: webhookBody(url) });
        expect(res.statusCode).toBe(400);
        expect(res.json().error).toMatchObject({ code: "private_target", details: [{ path: "url" }] });
      }
      expect(await rowCounts(api.db)).toEqual(before);
      const ok = await strict.call("POST", "/v1/webhooks", { body: webhookBody("https://hooks.example.com/in") });
      expect(ok.statusCode).toBe(201);
    } finally {
      await strict.close();
    }
  });

  it("takes a given secret, and checks it fits the standard scheme", async () => {
    const secret = "whsec_" + Buffer.alloc(24, 7).toString("base64");
    const w = await create({ secret });
    expect(w.secret).toBe(secret);
    const bad = await api.call("POST", "/v1/webhooks", { body: webhookBody(receiver.url, { secret: "hunter22" }) });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details[0]).toMatchObject({ path: "secret", message: expect.stringContaining("whsec_") });
    const hex = await create({ secret: "hunter22", signature: { scheme: "hex" } });
    expect(hex.secret).toBe("hunter22");
  });
});

describe("GET /v1/webhooks", () => {
  it("pages oldest first with a cursor and filters by is_active and event", async () => {
    await api.db.sql`update webhooks.subscriptions set deleted_at = now()`;
    const a = await create({ events: ["clients.*"] });
    const b = await create({ events: ["notes.created"], is_active: false });
    const c = await create({ events: ["*"] });
    const d = await create({ events: ["clients.created"] });

    const first = await api.call("GET", "/v1/webhooks?limit=3");
    expect(first.statusCode).toBe(200);
    expect(first.json().items.map((w: { id: string }) => w.id)).toEqual([a.id, b.id, c.id]);
    const cursor = first.json().next_cursor;
    expect(cursor).toEqual(expect.any(String));
    const second = await api.call("GET", `/v1/webhooks?limit=3&cursor=${cursor}`);
    expect(second.json()).toEqual({ items: [expect.objectContaining({ id: d.id })], next_cursor: null });

    const inactive = await api.call("GET", "/v1/webhooks?is_active=false");
    expect(inactive.json().items.map((w: { id: string }) => w.id)).toEqual([b.id]);
    const forClients = await api.call("GET", "/v1/webhooks?event=clients.created");
    expect(forClients.json().items.map((w: { id: string }) => w.id)).toEqual([a.id, c.id, d.id]);
    expect(JSON.stringify(first.json())).not.toContain("whsec_");
  });

  it("answers 400 for a cursor it did not issue and for an unknown query parameter", async () => {
    const res = await api.call("GET", "/v1/webhooks?cursor=bogus");
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details[0].path).toBe("cursor");
    const unknown = await api.call("GET", "/v1/webhooks?colour=blue");
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.details[0]).toMatchObject({ path: "colour", message: expect.stringContaining("unknown field") });
  });
});

describe("GET /v1/webhooks/:id", () => {
  it("shows the webhook without secrets", async () => {
    const w = await create({ auth: { type: "basic", username: "ada", password: "pw-secret" } });
    const res = await api.call("GET", `/v1/webhooks/${w.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: w.id, auth: { type: "basic", username: "ada" } });
    expect(res.body).not.toContain("pw-secret");
    expect(res.body).not.toContain(w.secret);
  });

  it("shows the endpoint's health: an open circuit with its run of failures", async () => {
    const w = await create();
    await openCircuit(w.id);
    const res = await api.call("GET", `/v1/webhooks/${w.id}`);
    expect(res.statusCode).toBe(200);
    const health = res.json().health;
    expect(health).toEqual({
      circuit: "open",
      consecutive_failures: 12,
      failing_since: expect.any(String),
      last_success_at: expect.any(String),
      last_failure_at: expect.any(String),
      next_probe_at: expect.any(String),
    });
    expect(Date.parse(health.failing_since)).toBeLessThan(Date.now() - 3_500_000);
    expect(Date.parse(health.next_probe_at)).toBeGreaterThan(Date.now());

    const list = await api.call("GET", "/v1/webhooks?limit=1000");
    const listed = list.json().items.find((x: { id: string }) => x.id === w.id);
    expect(listed.health).toEqual(health);
    expect(list.json().items.filter((x: { id: string }) => x.id !== w.id).every((x: { health: unknown }) => JSON.stringify(x.health) === JSON.stringify(HEALTHY))).toBe(true);
  });

  it("answers 404 for an unknown id and 400 for a malformed one", async () => {
    const missing = await api.call("GET", "/v1/webhooks/00000000-0000-4000-8000-000000000000");
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe("webhook_not_found");
    const malformed = await api.call("GET", "/v1/webhooks/42");
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.details[0].path).toBe("id");
  });
});

describe("PATCH /v1/webhooks/:id", () => {
  it("changes only the fields given", async () => {
    const w = await create({ name: "before", events: ["a.b"] });
    const res = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { events: ["clients.*"], signature: { scheme: "sha256", header: "X-Sig" } } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ name: "before", events: ["clients.*"], signature_scheme: "sha256", signature_header: "X-Sig" });
    const cleared = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { name: null } });
    expect(cleared.json()).toMatchObject({ name: null, events: ["clients.*"] });
  });

  it("disables and re-enables, recording when and clearing it again", async () => {
    const w = await create();
    const off = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { is_active: false } });
    expect(off.json()).toMatchObject({ is_active: false, disabled_at: expect.any(String), disabled_reason: expect.any(String) });
    const on = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { is_active: true } });
    expect(on.json()).toMatchObject({ is_active: true, disabled_at: null, disabled_reason: null });
  });

  it("changes the endpoint settings, and null removes the rate limit and restores the default disable-after", async () => {
    const w = await create();
    const set = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { max_in_flight: 1, rate_limit_per_s: 0.5, disable_after_s: 86400 } });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toMatchObject({ max_in_flight: 1, rate_limit_per_s: 0.5, disable_after_s: 86400, health: HEALTHY });
    const cleared = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { rate_limit_per_s: null, disable_after_s: null } });
    expect(cleared.json()).toMatchObject({ max_in_flight: 1, rate_limit_per_s: null, disable_after_s: null });
  });

  it("refuses bad endpoint settings naming each field, and changes nothing", async () => {
    const w = await create({ max_in_flight: 3 });
    const [before] = await api.db.sql`select * from webhooks.subscriptions where id = ${w.id}`;
    for (const [body, path] of [
      [{ max_in_flight: 0 }, "max_in_flight"],
      [{ max_in_flight: 1001 }, "max_in_flight"],
      [{ max_in_flight: 2.5 }, "max_in_flight"],
      [{ max_in_flight: null }, "max_in_flight"],
      [{ rate_limit_per_s: -1 }, "rate_limit_per_s"],
      [{ rate_limit_per_s: 0 }, "rate_limit_per_s"],
      [{ rate_limit_per_s: 10001 }, "rate_limit_per_s"],
      [{ disable_after_s: "x" }, "disable_after_s"],
      [{ disable_after_s: 0 }, "disable_after_s"],
      [{ disable_after_s: 31536001 }, "disable_after_s"],
    ] as const) {
      const res = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { name: "changed", ...body } });
      expect({ body, status: res.statusCode }).toEqual({ body, status: 400 });
      expect({ body, details: res.json().error.details }).toEqual({ body, details: [{ path, message: expect.stringMatching(/^expected /) }] });
    }
    const [after] = await api.db.sql`select * from webhooks.subscriptions where id = ${w.id}`;
    expect(after).toEqual(before);
  });

  it("resets the endpoint's health when a disabled webhook is enabled again", async () => {
    const w = await create();
    await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { is_active: false } });
    await openCircuit(w.id);
    expect((await api.call("GET", `/v1/webhooks/${w.id}`)).json().health).toMatchObject({ circuit: "open", consecutive_failures: 12 });

    const on = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { is_active: true } });
    expect(on.statusCode).toBe(200);
    expect(on.json()).toMatchObject({ is_active: true, health: HEALTHY });
    const rows = await api.db.sql`select 1 from webhooks.endpoint_health where subscription_id = ${w.id}`;
    expect(rows).toHaveLength(0);
  });

  it("leaves the health of a webhook that is already active alone (the dispatcher's probes own it)", async () => {
    const w = await create();
    await openCircuit(w.id);
    const res = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { is_active: true, name: "renamed" } });
    expect(res.json()).toMatchObject({ name: "renamed", health: { circuit: "open", consecutive_failures: 12 } });
  });

  it("fails the parked deliveries of a webhook it disables, in the same change, and they stay replayable", async () => {
    const w = await create();
    await openCircuit(w.id);
    const parkedPending = await insertDelivery(w.id, "pending", true);
    const parkedRetrying = await insertDelivery(w.id, "retrying", true);
    const queued = await insertDelivery(w.id, "pending", false);

    const off = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { is_active: false } });
    expect(off.statusCode).toBe(200);
    const rows = await api.db.sql<{ id: string; status: string; parked_at: Date | null; finished_at: Date | null; last_error: string | null }[]>`
      select id, status, parked_at, finished_at, last_error from webhooks.deliveries where subscription_id = ${w.id}`;
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const id of [parkedPending, parkedRetrying]) {
      expect(byId.get(id)).toMatchObject({
        status: "failed",
        parked_at: null,
        finished_at: expect.any(Date),
        last_error: "webhook disabled: disabled by a user",
      });
    }
    // Not parked: its job is still queued, and the dispatcher fails it when it runs.
    expect(byId.get(queued)).toMatchObject({ status: "pending", finished_at: null });

    await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { is_active: true } });
    const replay = await api.call("POST", `/v1/webhooks/${w.id}/replay`, { body: {} });
    expect(replay.statusCode).toBe(202);
    expect(replay.json()).toEqual({ matched: 2, queued: 2, circuit: null });
  });

  it("queues, on enabling, a delivery parked after the webhook was disabled (no health row would probe for it)", async () => {
    const w = await create({ is_active: false });
    await openCircuit(w.id);
    const stray = await insertDelivery(w.id, "retrying", true);
    const [jobsBefore] = await api.db.sql<{ n: number }[]>`select count(*)::int as n from graphile_worker._private_jobs`;
    await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { is_active: true } });
    const [row] = await api.db.sql`select status, parked_at, next_attempt_at from webhooks.deliveries where id = ${stray}`;
    expect(row).toMatchObject({ status: "retrying", parked_at: null, next_attempt_at: expect.any(Date) });
    const [jobsAfter] = await api.db.sql<{ n: number }[]>`select count(*)::int as n from graphile_worker._private_jobs`;
    expect(jobsAfter!.n).toBe(jobsBefore!.n + 1);
  });

  it("answers 400 naming an unknown field, and changes nothing", async () => {
    const w = await create({ name: "keep" });
    const res = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { name: "changed", urll: "https://x.example" } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details).toEqual([{ path: "urll", message: expect.stringContaining("unknown field") }]);
    expect((await api.call("GET", `/v1/webhooks/${w.id}`)).json().name).toBe("keep");
  });

  it("refuses switching to the standard scheme while the secret is not a whsec_ one", async () => {
    const w = await create({ secret: "plain-secret", signature: { scheme: "hex" } });
    const res = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { signature: { scheme: "standard" } } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details[0].path).toBe("secret");
  });
});

describe("DELETE /v1/webhooks/:id", () => {
  it("answers 204, hides the webhook, cancels what it was owed and keeps its history", async () => {
    const w = await create();
    const [event] = await api.db.sql<{ id: string; event_id: string }[]>`
      insert into webhooks.outbox (type, data, dispatched_at) values ('a.b', '{}', now()) returning id, event_id`;
    const [delivery] = await api.db.sql<{ id: string }[]>`
      insert into webhooks.deliveries (subscription_id, outbox_id, event_id, event_type)
      values (${w.id}, ${event!.id}, ${event!.event_id}, 'a.b') returning id`;
    const parked = await insertDelivery(w.id, "retrying", true);
    const res = await api.call("DELETE", `/v1/webhooks/${w.id}`);
    expect(res.statusCode).toBe(204);
    const [parkedRow] = await api.db.sql`select status, parked_at from webhooks.deliveries where id = ${parked}`;
    expect(parkedRow).toEqual({ status: "cancelled", parked_at: null });
    expect(res.body).toBe("");
    expect((await api.call("GET", `/v1/webhooks/${w.id}`)).statusCode).toBe(404);
    const history = await api.call("GET", `/v1/deliveries/${delivery!.id}`);
    expect(history.statusCode).toBe(200);
    expect(history.json().status).toBe("cancelled");
    expect((await api.call("DELETE", `/v1/webhooks/${w.id}`)).statusCode).toBe(404);
  });
});

describe("GET /v1/webhooks/:id/secret", () => {
  it("shows the current secret, and 404 for an unknown webhook", async () => {
    const w = await create();
    const res = await api.call("GET", `/v1/webhooks/${w.id}/secret`);
    expect(res.json()).toEqual({ secret: w.secret });
    expect((await api.call("GET", "/v1/webhooks/00000000-0000-4000-8000-000000000000/secret")).statusCode).toBe(404);
  });
});

describe("POST /v1/webhooks/:id/test", () => {
  it("sends a signed webhook.test event and answers with the receiver's response", async () => {
    const w = await create({ auth: { type: "header", name: "X-Api-Key", value: "abc" } });
    const res = await api.call("POST", `/v1/webhooks/${w.id}/test`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      delivery_id: expect.any(String),
      ok: true,
      status_code: 200,
      duration_ms: expect.any(Number),
      error: null,
      response_excerpt: "thanks",
    });
    const [req] = receiver.requests;
    expect(req?.headers["x-api-key"]).toBe("abc");
    const body = new StandardWebhook(w.secret).verify(req!.body, flat(req!.headers)) as { type: string; data: unknown };
    expect(body).toMatchObject({ type: "webhook.test", data: { message: "test event from pg-webhooks" } });

    const log = await api.call("GET", `/v1/deliveries/${res.json().delivery_id}`);
    expect(log.json()).toMatchObject({ status: "succeeded", event_type: "webhook.test", attempts: [{ response_status: 200, response_body: "thanks" }] });
    const sent = log.json().attempts[0].request_headers;
    expect(sent["x-api-key"]).toBe("****");
    expect(sent["webhook-signature"]).toBe("v1,****");
  });

  it("reports a failing receiver as ok: false and records the delivery as failed", async () => {
    receiver.respond({ status: 503, body: "down for maintenance" });
    const w = await create();
    const res = await api.call("POST", `/v1/webhooks/${w.id}/test`, { body: { event_type: "invoice.paid", data: { id: 7 } } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ ok: false, status_code: 503, response_excerpt: "down for maintenance" });
    expect(JSON.parse(receiver.requests[0]!.body)).toMatchObject({ type: "invoice.paid", data: { id: 7 } });
    expect((await api.call("GET", `/v1/deliveries/${res.json().delivery_id}`)).json().status).toBe("failed");
  });

  it("works on disabled webhooks and samples a tracked table's row for its event type", async () => {
    await api.db.sql`create table public.clients (id serial primary key, account_id text, name text, secret_note text)`;
    await api.db.sql`select webhooks.track_table('public.clients', tenant_column => 'account_id', excluded_columns => array['secret_note'])`;
    const w = await create({ is_active: false, tenant: "acme" });
    const res = await api.call("POST", `/v1/webhooks/${w.id}/test`, { body: { event_type: "clients.created" } });
    expect(res.json()).toMatchObject({ ok: true });
    expect(JSON.parse(receiver.requests[0]!.body).data).toEqual({ id: 1, account_id: "acme", name: "example" });
  });

  it("answers 404 for an unknown webhook and 400 for a wildcard event type", async () => {
    expect((await api.call("POST", "/v1/webhooks/00000000-0000-4000-8000-000000000000/test")).statusCode).toBe(404);
    const w = await create();
    const res = await api.call("POST", `/v1/webhooks/${w.id}/test`, { body: { event_type: "clients.*" } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details[0].path).toBe("event_type");
    expect(receiver.requests).toHaveLength(0);
  });
});

describe("POST /v1/webhooks/:id/rotate-secret", () => {
  // Within the 30 days a switch-over may be set to, so only the hostile part is wrong.
  const SOON = new Date(Date.now() + 3_600_000).toISOString();

  it("signs with the new and the old secret during the grace period", async () => {
    const w = await create();
    const res = await api.call("POST", `/v1/webhooks/${w.id}/rotate-secret`, { body: { grace_ms: 60_000 } });
    expect(res.statusCode).toBe(200);
    const rotated = res.json();
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(w.secret);
    expect(Date.parse(rotated.previous_secret_expires_at)).toBeGreaterThan(Date.now() + 50_000);

    await api.call("POST", `/v1/webhooks/${w.id}/test`);
    const [req] = receiver.requests;
    expect(req!.headers["webhook-signature"]?.toString().split(" ")).toHaveLength(2);
    expect(() => new StandardWebhook(rotated.secret).verify(req!.body, flat(req!.headers))).not.toThrow();
    expect(() => new StandardWebhook(w.secret).verify(req!.body, flat(req!.headers))).not.toThrow();
    expect((await api.call("GET", `/v1/webhooks/${w.id}/secret`)).json().secret).toBe(rotated.secret);
  });

  it("hex: keeps the old secret signing alone until switch_at and says what receivers see", async () => {
    const w = await create({ signature: { scheme: "hex" }, secret: "old-hex-secret" });
    const at = new Date(Date.now() + 2 * 3_600_000);
    const res = await api.call("POST", `/v1/webhooks/${w.id}/rotate-secret`, { body: { switch_at: at.toISOString() } });
    expect(res.statusCode).toBe(200);
    const rotated = res.json();
    expect(Math.abs(Date.parse(rotated.previous_secret_expires_at) - at.getTime())).toBeLessThan(60_000);
    expect(rotated.receivers_see).toContain("old secret alone");
    expect((await api.call("GET", `/v1/webhooks/${w.id}`)).json().secret_rotation).toBe(rotated.receivers_see);

    await api.call("POST", `/v1/webhooks/${w.id}/test`);
    const [req] = receiver.requests;
    const hex = (key: string) => createHmac("sha256", key).update(req!.body, "utf8").digest("hex");
    expect(req!.headers["x-webhook-signature"]).toBe(hex("old-hex-secret"));
    expect(req!.headers["x-webhook-signature"]).not.toBe(hex(rotated.secret));
  });

  it.each([
    [{ switch_at: "10000-01-01T00:00:00Z" }],
    [{ switch_at: "+275760-09-13T00:00:00Z" }],
    [{ switch_at: "0000-01-01T00:00:00Z" }],
    [{ switch_at: "2024-02-30T00:00:00Z" }],
    [{ switch_at: "2020-01-01T00:00:00Z" }],
    [{ switch_at: new Date(Date.now() + 31 * 86_400_000).toISOString() }],
    [{ switch_at: `${SOON}\u0000` }],
    [{ switch_at: `${SOON.slice(0, 5)}\ud800` }],
    [{ switch_at: `${SOON}\r\n` }],
    [{ switch_at: SOON.replace("Z", "") }],
    [{ switch_at: 1893456000000 }],
    [{ switch_at: new Date(Date.now() + 3_600_000).toISOString(), grace_ms: 1000 }],
  ])("refuses %j with a 400 naming switch_at, changing nothing", async (body) => {
    const w = await create({ signature: { scheme: "hex" }, secret: "old-hex-secret" });
    const before = await rowCounts(api.db);
    const res = await api.call("POST", `/v1/webhooks/${w.id}/rotate-secret`, { body });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details[0].path).toBe("switch_at");
    expect(await rowCounts(api.db)).toEqual(before);
    expect((await api.call("GET", `/v1/webhooks/${w.id}/secret`)).json().secret).toBe("old-hex-secret");
  });

  it("switches at once with grace_ms 0, and refuses a grace beyond 30 days", async () => {
    const w = await create();
    const res = await api.call("POST", `/v1/webhooks/${w.id}/rotate-secret`, { body: { grace_ms: 0 } });
    expect(res.json().previous_secret_expires_at).toBeNull();
    await api.call("POST", `/v1/webhooks/${w.id}/test`);
    const [req] = receiver.requests;
    expect(req!.headers["webhook-signature"]?.toString().split(" ")).toHaveLength(1);
    expect(() => new StandardWebhook(w.secret).verify(req!.body, flat(req!.headers))).toThrow();

    const tooLong = await api.call("POST", `/v1/webhooks/${w.id}/rotate-secret`, { body: { grace_ms: 31 * 86_400_000 } });
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.json().error.details[0].path).toBe("grace_ms");
    expect((await api.call("GET", `/v1/webhooks/${w.id}/secret`)).json().secret).toBe(res.json().secret);
  });
});

describe("secret header values", () => {
  // The masking must not depend on what the secret looks like (quotes, a v1, prefix, 4 KB).
  const HEADERS = {
    "X-Auth": "s3cr3t-auth",
    "X-Session-Id": "s3cr3t-session",
    "X-Client-Credential": "Bearer s3cr3t-credential",
    "X-Tenant-Pin": `s3cr3t-pin;q="1" v1,${"x".repeat(4000)}`,
    "X-Plain": "visible",
  };
  const MASKED = {
    "X-Auth": "****",
    "X-Session-Id": "****",
    "X-Client-Credential": "Bearer ****",
    "X-Tenant-Pin": "****",
    "X-Plain": "visible",
  };

  it("masks marked and credential-like headers in create, GET and list, and sends them as given", async () => {
    const res = await api.call("POST", "/v1/webhooks", {
      body: webhookBody(`${receiver.url}/hook`, { headers: HEADERS, secret_headers: ["x-tenant-PIN"] }),
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ headers: MASKED, secret_headers: ["x-tenant-pin"] });
    const id = res.json().id as string;
    const got = await api.call("GET", `/v1/webhooks/${id}`);
    expect(got.json().headers).toEqual(MASKED);
    const listed = await api.call("GET", "/v1/webhooks?limit=1000");
    expect(listed.json().items.find((w: { id: string }) => w.id === id).headers).toEqual(MASKED);
    for (const body of [res.body, got.body, listed.body]) expect(body).not.toContain("s3cr3t");

    const sent = await api.call("POST", `/v1/webhooks/${id}/test`);
    const [req] = receiver.requests;
    expect(sent.json().ok).toBe(true);
    expect(req!.headers["x-tenant-pin"]).toBe(HEADERS["X-Tenant-Pin"]);
    expect(req!.headers["x-auth"]).toBe("s3cr3t-auth");
    const delivery = await api.call("GET", `/v1/deliveries/${sent.json().delivery_id}`);
    const logged = delivery.json().attempts[0].request_headers;
    expect(logged).toMatchObject({ "x-auth": "****", "x-session-id": "****", "x-client-credential": "Bearer ****", "x-tenant-pin": "****", "x-plain": "visible" });
    expect(delivery.body).not.toContain("s3cr3t");
    const [stored] = await api.db.sql<{ h: string }[]>`select request_headers::text as h from webhooks.attempts where delivery_id = ${sent.json().delivery_id}`;
    expect(stored!.h).not.toContain("s3cr3t");
  });

  it("masks a header marked secret later in the attempts already logged", async () => {
    const w = await create({ headers: { "X-Tenant-Pin": "s3cr3t-pin" } });
    const sent = await api.call("POST", `/v1/webhooks/${w.id}/test`);
    expect((await api.call("GET", `/v1/deliveries/${sent.json().delivery_id}`)).body).toContain("s3cr3t-pin");

    const patched = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { secret_headers: ["X-Tenant-Pin"] } });
    expect(patched.json()).toMatchObject({ headers: { "X-Tenant-Pin": "****" }, secret_headers: ["x-tenant-pin"] });
    const delivery = await api.call("GET", `/v1/deliveries/${sent.json().delivery_id}`);
    expect(delivery.json().attempts[0].request_headers["x-tenant-pin"]).toBe("****");
    expect(delivery.body).not.toContain("s3cr3t");
    // Changing the headers keeps the marks.
    const again = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { headers: { "X-Tenant-Pin": "s3cr3t-2" } } });
    expect(again.json().headers).toEqual({ "X-Tenant-Pin": "****" });
  });

  it.each([
    [["X-Pin\u0000"]],
    [["\ud800"]],
    [["X-Pin\r\nX-Other"]],
    [["Host"]],
    [[123]],
    ["X-Pin"],
    [Array.from({ length: 51 }, (_, i) => `X-H${i}`)],
  ])("refuses secret_headers %j with a 400 naming it, writing nothing", async (value) => {
    const before = await rowCounts(api.db);
    const res = await api.call("POST", "/v1/webhooks", { body: webhookBody(`${receiver.url}/hook`, { secret_headers: value }) });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details[0].path).toMatch(/^secret_headers/);
    expect(await rowCounts(api.db)).toEqual(before);
  });
});
