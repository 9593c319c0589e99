// Delivery logs over HTTP, and sending deliveries again: retry one, replay many.
import { startApi, webhookBody, type Api } from "./helpers/api";
import { runDispatcher, waitUntil } from "./helpers/pipeline";
import { startReceiver, type Receiver } from "./helpers/receiver";

let api: Api;
let receiver: Receiver;

beforeAll(async () => {
  api = await startApi();
  receiver = await startReceiver({ status: 200 });
});
afterAll(async () => {
  await receiver.close();
  await api.close();
});

async function createWebhook(extra: Record<string, unknown> = {}, path = "/in"): Promise<string> {
  const res = await api.call("POST", "/v1/webhooks", { body: webhookBody(`${receiver.url}${path}`, extra) });
  expect(res.statusCode).toBe(201);
  return res.json().id;
}

interface Seed {
  type?: string;
  status?: "pending" | "retrying" | "succeeded" | "failed" | "cancelled";
  /** Postgres interval ago, e.g. '3 hours'. */
  age?: string;
}

/** Delivery rows as the dispatcher leaves them (one per event), oldest first. */
async function seed(webhookId: string, rows: Seed[]): Promise<{ id: string; event_id: string }[]> {
  const out: { id: string; event_id: string }[] = [];
  for (const r of rows) {
    const [d] = await api.db.sql<{ id: string; event_id: string }[]>`
      with e as (
        insert into webhooks.outbox (type, data, dispatched_at) values (${r.type ?? "clients.created"}, '{"id": 1}', now())
        returning id, event_id
      )
      insert into webhooks.deliveries (subscription_id, outbox_id, event_id, event_type, status, attempts, created_at, finished_at, last_status_code)
      select ${webhookId}, e.id, e.event_id, ${r.type ?? "clients.created"}, ${r.status ?? "failed"},
             case when ${r.status ?? "failed"} = 'pending' then 0 else 1 end,
             now() - ${r.age ?? "0 seconds"}::interval,
             case when ${r.status ?? "failed"} in ('succeeded', 'failed', 'cancelled') then now() end,
             case when ${r.status ?? "failed"} = 'failed' then 500 end
        from e
      returning id, event_id`;
    out.push(d!);
  }
  return out;
}

const ids = (res: { json(): { items: { id: string }[] } }) => res.json().items.map((d) => d.id);

async function jobsFor(deliveryId: string): Promise<number> {
  const [row] = await api.db.sql<{ n: number }[]>`
    select count(*)::int as n from graphile_worker._private_jobs where payload::jsonb -> 'ids' ? ${deliveryId}`;
  return row?.n ?? 0;
}

describe("GET /v1/webhooks/:id/deliveries", () => {
  it("lists newest first and pages through deliveries created in the same instant without repeats", async () => {
    const w = await createWebhook();
    await api.db.sql`
      with e as (
        insert into webhooks.outbox (type, data, dispatched_at)
        select 'clients.created', '{}', now() from generate_series(1, 5) returning id, event_id
      )
      insert into webhooks.deliveries (subscription_id, outbox_id, event_id, event_type, status)
      select ${w}, id, event_id, 'clients.created', 'succeeded' from e`;
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await api.call("GET", `/v1/webhooks/${w}/deliveries?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.statusCode).toBe(200);
      seen.push(...ids(res));
      cursor = res.json().next_cursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(5);
    const one = (await api.call("GET", `/v1/webhooks/${w}/deliveries?limit=1`)).json().items[0];
    expect(one).toEqual({
      id: expect.any(String),
      webhook_id: w,
      webhook_name: null,
      event_id: expect.any(String),
      event_type: "clients.created",
      tenant: null,
      status: "succeeded",
      attempts: 0,
      last_status_code: null,
      last_duration_ms: null,
      last_error: null,
      next_attempt_at: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
      finished_at: null,
    });
  });

  it("filters by status, event type or pattern, and time", async () => {
    const w = await createWebhook();
    const [old, failedNote, okClient] = await seed(w, [
      { type: "clients.created", status: "failed", age: "3 hours" },
      { type: "notes.created", status: "failed", age: "10 minutes" },
      { type: "clients.updated", status: "succeeded" },
    ]);
    const get = (q: string) => api.call("GET", `/v1/webhooks/${w}/deliveries?${q}`);
    expect(ids(await get("status=failed"))).toEqual([failedNote!.id, old!.id]);
    expect(ids(await get("event=clients.*"))).toEqual([okClient!.id, old!.id]);
    expect(ids(await get("event=notes.created"))).toEqual([failedNote!.id]);
    expect(ids(await get("since=1h"))).toEqual([okClient!.id, failedNote!.id]);
    expect(ids(await get("until=1h"))).toEqual([old!.id]);
    expect(ids(await get(`since=${encodeURIComponent(new Date(Date.now() - 60_000).toISOString())}`))).toEqual([okClient!.id]);
  });

  it("answers 400 naming a bad query value and 404 for an unknown webhook", async () => {
    const w = await createWebhook();
    const badStatus = await api.call("GET", `/v1/webhooks/${w}/deliveries?status=lost`);
    expect(badStatus.statusCode).toBe(400);
    expect(badStatus.json().error.details[0].path).toBe("status");
    const badSince = await api.call("GET", `/v1/webhooks/${w}/deliveries?since=yesterday`);
    expect(badSince.statusCode).toBe(400);
    expect(badSince.json().error.details[0]).toMatchObject({ path: "since", message: expect.stringContaining("2h") });
    const missing = await api.call("GET", "/v1/webhooks/00000000-0000-4000-8000-000000000000/deliveries");
    expect(missing.statusCode).toBe(404);
  });
});

describe("GET /v1/deliveries/:id", () => {
  it("shows every attempt with what was sent and what came back", async () => {
    const w = await createWebhook();
    const [d] = await seed(w, [{ status: "failed" }]);
    await api.db.sql`
      insert into webhooks.attempts (delivery_id, attempt_number, started_at, url, method, request_headers, request_body,
                                     response_status, response_headers, response_body, duration_ms, error)
      values (${d!.id}, 1, now(), 'http://x/in', 'POST', '{"webhook-signature": "v1,****"}', '{"id":1}',
              500, '{"content-type": "text/plain"}', 'boom', 12, null),
             (${d!.id}, 2, now(), 'http://x/in', 'POST', '{}', '{"id":1}', null, null, null, 5000, 'timeout after 5000 ms')`;
    const res = await api.call("GET", `/v1/deliveries/${d!.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      id: d!.id,
      webhook_id: w,
      event_id: d!.event_id,
      status: "failed",
      attempts: [
        {
          attempt_number: 1,
          request_headers: { "webhook-signature": "v1,****" },
          request_body: '{"id":1}',
          response_status: 500,
          response_headers: { "content-type": "text/plain" },
          response_body: "boom",
          duration_ms: 12,
          error: null,
        },
        { attempt_number: 2, response_status: null, error: "timeout after 5000 ms" },
      ],
    });
  });

  it("masks credentials a receiver sent back (Set-Cookie, tokens) in the attempt log", async () => {
    const w = await createWebhook();
    const [d] = await seed(w, [{ status: "succeeded" }]);
    const answered = { "set-cookie": "session=abc123; HttpOnly", "x-auth-token": "t0ken-from-receiver", "content-type": "text/plain" };
    await api.db.sql`
      insert into webhooks.attempts (delivery_id, attempt_number, started_at, url, method, request_headers, request_body,
                                     response_status, response_headers, response_body, duration_ms, error)
      values (${d!.id}, 1, now(), 'http://x/in', 'POST', '{}', '{"id":1}', 200, ${api.db.sql.json(answered)}, 'ok', 3, null)`;
    const res = await api.call("GET", `/v1/deliveries/${d!.id}`);
    expect(res.json().attempts[0].response_headers).toEqual({ "set-cookie": "****", "x-auth-token": "****", "content-type": "text/plain" });
    expect(res.body).not.toContain("abc123");
    expect(res.body).not.toContain("t0ken-from-receiver");
  });

  it("answers 404 for an unknown delivery and 400 for a malformed id", async () => {
    expect((await api.call("GET", "/v1/deliveries/00000000-0000-4000-8000-000000000000")).json().error.code).toBe("delivery_not_found");
    expect((await api.call("GET", "/v1/deliveries/nope")).statusCode).toBe(400);
  });
});

describe("POST /v1/deliveries/:id/retry", () => {
  it("queues a finished delivery again once; a pending one is left alone", async () => {
    const w = await createWebhook();
    const [d] = await seed(w, [{ status: "failed" }]);
    const res = await api.call("POST", `/v1/deliveries/${d!.id}/retry`);
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ queued: true });
    const [row] = await api.db.sql<{ status: string; finished_at: Date | null }[]>`select status, finished_at from webhooks.deliveries where id = ${d!.id}`;
    expect(row).toEqual({ status: "pending", finished_at: null });
    expect(await jobsFor(d!.id)).toBe(1);
    expect((await api.call("POST", `/v1/deliveries/${d!.id}/retry`)).json()).toEqual({ queued: false });
    expect(await jobsFor(d!.id)).toBe(1);
  });

  it("answers 404 for an unknown delivery and 409 while its webhook is disabled", async () => {
    expect((await api.call("POST", "/v1/deliveries/00000000-0000-4000-8000-000000000000/retry")).statusCode).toBe(404);
    const w = await createWebhook({ is_active: false });
    const [d] = await seed(w, [{ status: "failed" }]);
    const res = await api.call("POST", `/v1/deliveries/${d!.id}/retry`);
    expect(res.statusCode).toBe(409);
    expect(res.json().error).toMatchObject({ code: "conflict", message: expect.stringContaining("disabled") });
    expect(await jobsFor(d!.id)).toBe(0);
  });
});

describe("POST /v1/webhooks/:id/replay", () => {
  it("queues the matching finished deliveries, and replaying twice queues nothing twice", async () => {
    const w = await createWebhook();
    const seeded = await seed(w, [
      { type: "clients.created", status: "failed" },
      { type: "clients.updated", status: "failed" },
      { type: "notes.created", status: "failed" },
      { type: "clients.created", status: "succeeded" },
      { type: "clients.created", status: "retrying" },
    ]);
    const first = await api.call("POST", `/v1/webhooks/${w}/replay`, { body: { event: "clients.*" } });
    expect(first.statusCode).toBe(202);
    expect(first.json()).toEqual({ matched: 2, queued: 2, circuit: null });
    expect((await api.call("POST", `/v1/webhooks/${w}/replay`, { body: { event: "clients.*" } })).json()).toEqual({ matched: 0, queued: 0, circuit: null });
    expect((await api.call("POST", `/v1/webhooks/${w}/replay`, { body: { status: "succeeded" } })).json()).toEqual({ matched: 1, queued: 1, circuit: null });
    const statuses = await api.db.sql<{ id: string; status: string }[]>`
      select id, status from webhooks.deliveries where subscription_id = ${w}`;
    const byId = Object.fromEntries(statuses.map((s) => [s.id, s.status]));
    expect(seeded.map((s) => byId[s.id])).toEqual(["pending", "pending", "failed", "pending", "retrying"]);
  });

  it("answers 400 for a status that cannot be replayed, 404 for an unknown webhook, 409 for a disabled one", async () => {
    const w = await createWebhook();
    const bad = await api.call("POST", `/v1/webhooks/${w}/replay`, { body: { status: "pending" } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details[0].path).toBe("status");
    expect((await api.call("POST", "/v1/webhooks/00000000-0000-4000-8000-000000000000/replay")).statusCode).toBe(404);
    await api.call("PATCH", `/v1/webhooks/${w}`, { body: { is_active: false } });
    expect((await api.call("POST", `/v1/webhooks/${w}/replay`)).statusCode).toBe(409);
  });

  it("delivers replayed events again with their original event ids", async () => {
    // Earlier tests left deliveries queued for /in; this webhook has a path of its own.
    const w = await createWebhook({}, "/replayed");
    const failed = await seed(w, [{ status: "failed" }, { status: "failed" }]);
    const dispatcher = await runDispatcher(api.db.url);
    try {
      expect((await api.call("POST", `/v1/webhooks/${w}/replay`)).json()).toEqual({ matched: 2, queued: 2, circuit: null });
      const replayed = await waitUntil(async () => {
        const got = receiver.requests.filter((r) => r.path === "/replayed");
        return got.length >= 2 ? got : null;
      }, 10_000, "two replayed requests");
      expect(replayed.map((r) => r.headers["webhook-id"]).sort()).toEqual(failed.map((f) => f.event_id).sort());
      await waitUntil(async () => {
        const page = (await api.call("GET", `/v1/webhooks/${w}/deliveries?status=succeeded`)).json();
        return page.items.length === 2;
      }, 10_000, "replayed deliveries to succeed");
      const detail = (await api.call("GET", `/v1/deliveries/${failed[0]!.id}`)).json();
      expect(detail.attempts).toEqual([expect.objectContaining({ response_status: 200 })]);
    } finally {
      await dispatcher.stop();
    }
  });
});
