// Bad input on every write route: each malformed body answers 4xx with the one error shape,
// names the field, and writes nothing.
import { BODY_LIMIT } from "../src/api/app";
import { toErrorResponse } from "../src/api/errors";
import { rowCounts, startApi, webhookBody, type Api, type CallOptions, type HttpMethod } from "./helpers/api";
import { startReceiver, type Receiver } from "./helpers/receiver";

let api: Api;
let receiver: Receiver;
let webhookId: string;

beforeAll(async () => {
  api = await startApi();
  receiver = await startReceiver({ status: 200 });
  const res = await api.call("POST", "/v1/webhooks", { body: webhookBody(`${receiver.url}/in`) });
  webhookId = res.json().id;
  await api.db.sql`
    with e as (insert into webhooks.outbox (type, data, dispatched_at) values ('a.b', '{}', now()) returning id, event_id)
    insert into webhooks.deliveries (subscription_id, outbox_id, event_id, event_type, status)
    select ${webhookId}, id, event_id, 'a.b', 'failed' from e`;
});
afterAll(async () => {
  await receiver.close();
  await api.close();
});

type Case = { name: string; status: number; path?: string } & Pick<CallOptions, "body" | "raw" | "headers">;

/** Malformed whatever the route: the body itself is wrong. */
const anyRoute: Case[] = [
  { name: "broken JSON", raw: '{"url": ', status: 400, path: "body" },
  { name: "trailing garbage", raw: '{"url": "x"} x', status: 400, path: "body" },
  { name: "an array", body: [], status: 400 },
  { name: "a string", body: "hello", status: 400 },
  { name: "a number", body: 42, status: 400 },
  { name: "an unknown field", body: { bogus: 1 }, status: 400, path: "bogus" },
  { name: "a __proto__ key", raw: '{"__proto__": {"polluted": true}}', status: 400, path: "body" },
  { name: "a body over the limit", raw: JSON.stringify({ name: "x".repeat(BODY_LIMIT) }), status: 413, path: "body" },
  { name: "a form body", raw: "url=https://x.example", headers: { "content-type": "application/x-www-form-urlencoded" }, status: 415 },
  { name: "a text body", raw: '{"url": "https://x.example"}', headers: { "content-type": "text/plain" }, status: 415 },
];

/** Wrong fields of a webhook (create and update). */
const webhookFields: Case[] = [
  { name: "an ftp URL", body: { url: "ftp://files.example/in" }, status: 400, path: "url" },
  { name: "a relative URL", body: { url: "/hook" }, status: 400, path: "url" },
  { name: "credentials in the URL", body: { url: "https://user:pw@x.example/in" }, status: 400, path: "url" },
  { name: "a URL that is a number", body: { url: 5 }, status: 400, path: "url" },
  { name: "no events", body: { events: [] }, status: 400, path: "events" },
  { name: "events not a list", body: { events: "clients.created" }, status: 400, path: "events" },
  { name: "a bad event pattern", body: { events: ["clients.*.x", "ok.type"] }, status: 400, path: "events.0" },
  { name: "method GET", body: { method: "GET" }, status: 400, path: "method" },
  { name: "an unknown auth type", body: { auth: { type: "oauth" } }, status: 400, path: "auth.type" },
  { name: "bearer auth without a token", body: { auth: { type: "bearer" } }, status: 400, path: "auth.token" },
  { name: "an unknown auth field", body: { auth: { type: "none", token: "x" } }, status: 400, path: "auth.token" },
  { name: "a bad header name", body: { headers: { "Bad Header": "x" } }, status: 400, path: "headers.Bad Header" },
  { name: "a header value that is a number", body: { headers: { "X-N": 1 } }, status: 400, path: "headers.X-N" },
  { name: "a reserved header", body: { headers: { Host: "x.example" } }, status: 400, path: "headers.Host" },
  { name: "a header with a line break", body: { headers: { "X-A": "a\r\nX-B: b" } }, status: 400, path: "headers.X-A" },
  { name: "an unknown filter operator", body: { filter: { "data.x": { $regex: "a" } } }, status: 400, path: "filter.data.x.$regex" },
  { name: "a filter on an unknown root", body: { filter: { stage: "won" } }, status: 400, path: "filter.stage" },
  { name: "a filter that is a string", body: { filter: "data.stage = won" }, status: 400, path: "filter" },
  { name: "an unknown signature scheme", body: { signature: { scheme: "md5" } }, status: 400, path: "signature.scheme" },
  { name: "a signature header for hex", body: { signature: { scheme: "hex", header: "X-Sig" } }, status: 400, path: "signature.header" },
  { name: "a short secret", body: { secret: "abc" }, status: 400, path: "secret" },
  { name: "zero attempts", body: { retry: { max_attempts: 0 } }, status: 400, path: "retry.max_attempts" },
  { name: "an unknown retry strategy", body: { retry: { max_attempts: 3, strategy: "fibonacci" } }, status: 400, path: "retry.strategy" },
  { name: "a timeout too short", body: { timeout_ms: 5 }, status: 400, path: "timeout_ms" },
  { name: "a timeout as text", body: { timeout_ms: "15s" }, status: 400, path: "timeout_ms" },
  { name: "zero requests in flight", body: { max_in_flight: 0 }, status: 400, path: "max_in_flight" },
  { name: "too many requests in flight", body: { max_in_flight: 1001 }, status: 400, path: "max_in_flight" },
  { name: "a fractional max_in_flight", body: { max_in_flight: 2.5 }, status: 400, path: "max_in_flight" },
  { name: "max_in_flight null", body: { max_in_flight: null }, status: 400, path: "max_in_flight" },
  { name: "a negative rate limit", body: { rate_limit_per_s: -1 }, status: 400, path: "rate_limit_per_s" },
  { name: "a zero rate limit", body: { rate_limit_per_s: 0 }, status: 400, path: "rate_limit_per_s" },
  { name: "a rate limit over 10000", body: { rate_limit_per_s: 10001 }, status: 400, path: "rate_limit_per_s" },
  { name: "a rate limit as text", body: { rate_limit_per_s: "5/s" }, status: 400, path: "rate_limit_per_s" },
  { name: "disable_after_s as text", body: { disable_after_s: "x" }, status: 400, path: "disable_after_s" },
  { name: "disable_after_s zero", body: { disable_after_s: 0 }, status: 400, path: "disable_after_s" },
  { name: "disable_after_s over a year", body: { disable_after_s: 31536001 }, status: 400, path: "disable_after_s" },
  { name: "fractional disable_after_s", body: { disable_after_s: 1.5 }, status: 400, path: "disable_after_s" },
  { name: "is_active as text", body: { is_active: "yes" }, status: 400, path: "is_active" },
  { name: "an empty tenant", body: { tenant: "" }, status: 400, path: "tenant" },
  { name: "a name that is a number", body: { name: 5 }, status: 400, path: "name" },
];

function asCreate(c: Case): Case {
  if (c.body === undefined || typeof c.body !== "object" || c.body === null || Array.isArray(c.body)) return c;
  return { ...c, body: { ...webhookBody(`${receiver.url}/in`), ...c.body } };
}

function writeRoutes(): { method: HttpMethod; url: string; cases: Case[] }[] {
  return [
    { method: "POST", url: "/v1/webhooks", cases: [...anyRoute, ...webhookFields.map(asCreate), { name: "no url", body: { events: ["*"] }, status: 400, path: "url" }] },
    { method: "PATCH", url: `/v1/webhooks/${webhookId}`, cases: [...anyRoute, ...webhookFields] },
    {
      method: "POST",
      url: `/v1/webhooks/${webhookId}/test`,
      cases: [
        ...anyRoute,
        { name: "a wildcard event type", body: { event_type: "a.*" }, status: 400, path: "event_type" },
        { name: "an event type that is a number", body: { event_type: 5 }, status: 400, path: "event_type" },
      ],
    },
    {
      method: "POST",
      url: `/v1/webhooks/${webhookId}/rotate-secret`,
      cases: [
        ...anyRoute,
        { name: "a negative grace", body: { grace_ms: -1 }, status: 400, path: "grace_ms" },
        { name: "a grace as text", body: { grace_ms: "1h" }, status: 400, path: "grace_ms" },
        { name: "a fractional grace", body: { grace_ms: 1.5 }, status: 400, path: "grace_ms" },
      ],
    },
    {
      method: "POST",
      url: `/v1/webhooks/${webhookId}/replay`,
      cases: [
        ...anyRoute,
        { name: "a pending status", body: { status: "pending" }, status: 400, path: "status" },
        { name: "an unreadable since", body: { since: "whenever" }, status: 400, path: "since" },
        { name: "a bad event pattern", body: { event: "a b" }, status: 400, path: "event" },
      ],
    },
  ];
}

describe("malformed bodies on every write route", () => {
  it("answer 4xx with the error shape naming the field, and write nothing", async () => {
    const [webhookBefore] = await api.db.sql`select * from webhooks.subscriptions where id = ${webhookId}`;
    const countsBefore = await rowCounts(api.db);
    const failures: string[] = [];
    let checked = 0;
    for (const route of writeRoutes()) {
      for (const c of route.cases) {
        const { name, status, path, ...opts } = c;
        const res = await api.call(route.method, route.url, opts);
        const label = `${route.method} ${route.url} with ${name}`;
        checked++;
        let body: { error?: { code?: unknown; message?: unknown; details?: { path: string; message: string }[] } };
        try {
          body = res.json();
        } catch {
          failures.push(`${label}: not JSON: ${res.body.slice(0, 200)}`);
          continue;
        }
        const e = body.error;
        if (res.statusCode !== status) failures.push(`${label}: ${res.statusCode}, expected ${status}: ${res.body.slice(0, 300)}`);
        else if (typeof e?.code !== "string" || typeof e.message !== "string" || !Array.isArray(e.details)) {
          failures.push(`${label}: not the error shape: ${res.body.slice(0, 300)}`);
        } else if (path !== undefined && !e.details.some((d) => d.path === path)) {
          failures.push(`${label}: no detail for ${path}: ${JSON.stringify(e.details)}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThan(90);
    const [webhookAfter] = await api.db.sql`select * from webhooks.subscriptions where id = ${webhookId}`;
    expect(webhookAfter).toEqual(webhookBefore);
    expect(await rowCounts(api.db)).toEqual(countsBefore);
    expect(receiver.requests).toHaveLength(0);
  });

  it("reports every problem of a body at once", async () => {
    const res = await api.call("POST", "/v1/webhooks", { body: { url: "ftp://x", events: [], timeout_ms: 1, colour: "red" } });
    expect(res.statusCode).toBe(400);
    const paths = res.json().error.details.map((d: { path: string }) => d.path).sort();
    expect(paths).toEqual(["colour", "events", "timeout_ms", "url"]);
    expect(res.json().error.message).toMatch(/\(and 3 more problems\)$/);
  });
});

describe("errors outside the request", () => {
  it("an unknown route answers 404 with the error shape", async () => {
    const res = await api.call("GET", "/v1/nothing-here");
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toMatchObject({ code: "not_found", message: expect.stringContaining("/v1/nothing-here") });
  });

  it("an unexpected error is a 500 that reveals nothing, a lost database a 503", () => {
    const internal = toErrorResponse(new Error("relation secret_table does not exist at /srv/app.ts:12"), BODY_LIMIT);
    expect(internal.status).toBe(500);
    expect(JSON.stringify(internal.body)).not.toContain("secret_table");
    const down = toErrorResponse(Object.assign(new Error("connect ECONNREFUSED 10.0.0.5:5432"), { code: "ECONNREFUSED" }), BODY_LIMIT);
    expect(down.status).toBe(503);
    expect(down.body.error.code).toBe("database_unavailable");
    expect(JSON.stringify(down.body)).not.toContain("10.0.0.5");
  });
});
