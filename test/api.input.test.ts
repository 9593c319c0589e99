// Bad input on every write route: each malformed body answers 4xx with the one error shape,
// names the field, and writes nothing.
import { connect } from "node:net";
import { BODY_LIMIT } from "../src/api/app";
import { toErrorResponse } from "../src/api/errors";
import { DomainError } from "../src/errors";
import { testSendSchema } from "../src/services/test-send";
import { parseInput } from "../src/model/validation";
import { parseWebhookInput, webhookCreateSchema } from "../src/model/webhook";
import { insertFailedDelivery, rowCounts, startApi, webhookBody, type Api, type CallOptions, type HttpMethod } from "./helpers/api";
import { startReceiver, type Receiver } from "./helpers/receiver";

let api: Api;
let receiver: Receiver;
let webhookId: string;

beforeAll(async () => {
  api = await startApi();
  receiver = await startReceiver({ status: 200 });
  const res = await api.call("POST", "/v1/webhooks", { body: webhookBody(`${receiver.url}/in`) });
  webhookId = res.json().id;
  await insertFailedDelivery(api.db, webhookId, "a.b");
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
  // Text Postgres cannot store unchanged, and line breaks where a line is expected.
  { name: "a NUL in the name", body: { name: "a\u0000b" }, status: 400, path: "name" },
  { name: "a lone surrogate in the name", body: { name: "a\ud800b" }, status: 400, path: "name" },
  { name: "a lone low surrogate in the name", body: { name: "\udc00" }, status: 400, path: "name" },
  { name: "a line break in the name", body: { name: "a\r\nb" }, status: 400, path: "name" },
  { name: "a NUL in the description", body: { description: "\u0000" }, status: 400, path: "description" },
  { name: "a lone surrogate in the description", body: { description: "x\udbff" }, status: 400, path: "description" },
  { name: "a NUL in the tenant", body: { tenant: "acme\u0000" }, status: 400, path: "tenant" },
  { name: "a lone surrogate in the tenant", body: { tenant: "\ud800" }, status: 400, path: "tenant" },
  { name: "CR/LF in the URL", body: { url: "https://x.example/in\r\nX-Injected: 1" }, status: 400, path: "url" },
  { name: "a tab in the URL", body: { url: "https://x.exa\tmple/in" }, status: 400, path: "url" },
  { name: "a NUL in the URL", body: { url: "https://x.example/in\u0000" }, status: 400, path: "url" },
  { name: "CR/LF in a bearer token", body: { auth: { type: "bearer", token: "abc\r\nX-Evil: 1" } }, status: 400, path: "auth.token" },
  { name: "a NUL in a bearer token", body: { auth: { type: "bearer", token: "abc\u0000" } }, status: 400, path: "auth.token" },
  { name: "a lone surrogate in a bearer token", body: { auth: { type: "bearer", token: "abc\ud800" } }, status: 400, path: "auth.token" },
  { name: "CR/LF in a basic password", body: { auth: { type: "basic", username: "u", password: "p\r\nw" } }, status: 400, path: "auth.password" },
  { name: "a NUL in a basic password", body: { auth: { type: "basic", username: "u", password: "\u0000" } }, status: 400, path: "auth.password" },
  { name: "a NUL in a basic username", body: { auth: { type: "basic", username: "u\u0000", password: "p" } }, status: 400, path: "auth.username" },
  { name: "a control character in an auth header value", body: { auth: { type: "header", name: "X-Key", value: "a\u0007b" } }, status: 400, path: "auth.value" },
  { name: "a NUL in a header value", body: { headers: { "X-A": "a\u0000" } }, status: 400, path: "headers.X-A" },
  { name: "a header value beyond Latin-1", body: { headers: { "X-A": "caf\u00e9 \u2603" } }, status: 400, path: "headers.X-A" },
  { name: "a bearer token beyond Latin-1", body: { auth: { type: "bearer", token: "t\u{1F600}" } }, status: 400, path: "auth.token" },
  { name: "a NUL in a secret", body: { signature: { scheme: "hex" }, secret: "abcdefgh\u0000" }, status: 400, path: "secret" },
  { name: "a lone surrogate in a secret", body: { signature: { scheme: "hex" }, secret: "abcdefgh\ud800" }, status: 400, path: "secret" },
  { name: "a NUL in a filter value", body: { filter: { "data.stage": "won\u0000" } }, status: 400, path: "filter.data.stage" },
  { name: "a lone surrogate in a filter list", body: { filter: { "data.stage": { $in: ["a", "\ud800"] } } }, status: 400, path: "filter.data.stage.$in.1" },
  { name: "a NUL in a filter field path", body: { filter: { "data.\u0000": 1 } }, status: 400, path: "filter.data.\u0000" },
  { name: "a filter number beyond the double range", raw: '{"filter": {"data.n": {"$gt": 1e400}}}', status: 400, path: "filter.data.n.$gt" },
  { name: "a timeout beyond the double range", raw: '{"timeout_ms": 1e400}', status: 400, path: "timeout_ms" },
  { name: "a timeout beyond 2^53", raw: '{"timeout_ms": 9007199254740993}', status: 400, path: "timeout_ms" },
  { name: "a filter nested 10,000 levels deep", raw: `{"filter": ${'{"$not":'.repeat(10000)}{}${"}".repeat(10000)}}`, status: 400 },
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
        { name: "a NUL in the data", body: { data: { a: "x\u0000" } }, status: 400, path: "data.a" },
        { name: "a lone surrogate in the data", body: { data: ["ok", "\ud800"] }, status: 400, path: "data.1" },
        { name: "a NUL in a data key", body: { data: { "a\u0000": 1 } }, status: 400, path: "data.a\u0000" },
        { name: "a data number beyond the double range", raw: '{"data": {"n": 1e400}}', status: 400, path: "data.n" },
        { name: "data nested 10,000 objects deep", raw: `{"data": ${'{"a":'.repeat(10000)}1${"}".repeat(10000)}}`, status: 400 },
        { name: "data nested 100,000 arrays deep", raw: `{"data": ${"[".repeat(100000)}1${"]".repeat(100000)}}`, status: 400 },
        { name: "data 101 levels deep", raw: `{"data": ${"[".repeat(101)}${"]".repeat(101)}}`, status: 400 },
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
        { name: "a NUL in the event", body: { event: "a\u0000" }, status: 400, path: "event" },
        { name: "since 9999999999999d ago", body: { since: "9999999999999d" }, status: 400, path: "since" },
        { name: "since year 10000", body: { since: "10000-01-01" }, status: 400, path: "since" },
        { name: "since year 0", body: { since: "0000-01-01" }, status: 400, path: "since" },
        { name: "since +275760", body: { since: "+275760-09-13T00:00:00.000Z" }, status: 400, path: "since" },
        { name: "since February 30", body: { since: "2024-02-30" }, status: 400, path: "since" },
        { name: "since hour 24", body: { since: "2024-01-01T24:00:00Z" }, status: 400, path: "since" },
        { name: "until before 1970", body: { until: "1969-12-31T23:59:59Z" }, status: 400, path: "until" },
        { name: "a NUL in since", body: { since: "2h\u0000" }, status: 400, path: "since" },
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

  it("refuse bytes that are not UTF-8 instead of storing U+FFFD in their place", async () => {
    const countsBefore = await rowCounts(api.db);
    for (const bytes of [[0xff, 0xfe], [0xed, 0xa0, 0x80], [0xc3]]) {
      const payload = Buffer.concat([Buffer.from('{"url": "https://example.com/hook", "events": ["*"], "name": "'), Buffer.from(bytes), Buffer.from('"}')]);
      const res = await api.app.inject({
        method: "POST",
        url: "/v1/webhooks",
        headers: { authorization: `Bearer ${api.adminKey}`, "content-type": "application/json" },
        payload,
      });
      expect({ bytes, status: res.statusCode, error: res.json().error }).toMatchObject({
        bytes,
        status: 400,
        error: { code: "invalid_input", details: [{ path: "body", message: expect.stringContaining("not UTF-8") }] },
      });
    }
    expect(await rowCounts(api.db)).toEqual(countsBefore);
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

/** A cursor as the API makes them, around any timestamp text. */
const cursorAt = (ts: string) => Buffer.from(JSON.stringify([ts, "3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f"])).toString("base64url");

describe("hostile values in queries and paths", () => {
  it("answer 4xx with the error shape naming the parameter", async () => {
    const deliveries = `/v1/webhooks/${webhookId}/deliveries`;
    const cases: [string, number, string][] = [
      ["/v1/webhooks?event=%00", 400, "event"],
      ["/v1/webhooks?event=a%00b", 400, "event"],
      [`/v1/webhooks?cursor=${cursorAt("9999-99-99T00:00:00.000000Z")}`, 400, "cursor"],
      [`/v1/webhooks?cursor=${cursorAt("2024-02-30T00:00:00.000000Z")}`, 400, "cursor"],
      [`/v1/webhooks?cursor=${cursorAt("0000-01-01T00:00:00.000000Z")}`, 400, "cursor"],
      [`${deliveries}?cursor=${cursorAt("2024-01-01T25:61:61.000000Z")}`, 400, "cursor"],
      [`${deliveries}?since=9999999999999d`, 400, "since"],
      [`${deliveries}?since=10000-01-01`, 400, "since"],
      [`${deliveries}?since=0000-01-01`, 400, "since"],
      [`${deliveries}?since=%2B275760-09-13T00:00:00.000Z`, 400, "since"],
      [`${deliveries}?since=-000001-01-01`, 400, "since"],
      [`${deliveries}?since=2024-02-30`, 400, "since"],
      [`${deliveries}?until=2023-02-29T00:00:00Z`, 400, "until"],
      [`${deliveries}?until=2024-01-01T00:00:00%2B24:00`, 400, "until"],
      [`${deliveries}?since=%00`, 400, "since"],
      [`${deliveries}?event=%00`, 400, "event"],
      [`/v1/webhooks/%ff%fe`, 400, "path"],
      [`/v1/webhooks/${webhookId}%ff/deliveries`, 400, "path"],
      [`/v1/webhooks/${"a".repeat(100_000)}`, 414, "path"],
      [`/v1/deliveries/${"%00".repeat(50)}`, 400, "id"],
      // Routes without query parameters refuse unknown ones, as the list routes do.
      [`/v1/event-types?x=%00`, 400, "x"],
      [`/v1/webhooks/${webhookId}?verbose=1`, 400, "verbose"],
    ];
    const before = await rowCounts(api.db);
    const failures: string[] = [];
    for (const [url, status, path] of cases) {
      const res = await api.call("GET", url);
      const label = `GET ${url.slice(0, 120)}`;
      let e: { code?: unknown; message?: unknown; details?: { path: string }[] } | undefined;
      try {
        e = res.json().error;
      } catch {
        failures.push(`${label}: not JSON: ${res.body.slice(0, 200)}`);
        continue;
      }
      if (res.statusCode !== status) failures.push(`${label}: ${res.statusCode}, expected ${status}: ${res.body.slice(0, 300)}`);
      else if (typeof e?.code !== "string" || typeof e.message !== "string" || !Array.isArray(e.details)) failures.push(`${label}: not the error shape: ${res.body.slice(0, 300)}`);
      else if (!e.details.some((d) => d.path === path)) failures.push(`${label}: no detail for ${path}: ${JSON.stringify(e.details)}`);
      else if (res.body.length > 2000) failures.push(`${label}: echoes ${res.body.length} characters`);
    }
    expect(failures).toEqual([]);
    expect(await rowCounts(api.db)).toEqual(before);
  });

  it("still accept the times they document: durations, dates, offsets, fractions", async () => {
    for (const since of ["2h", "7d", "0.5h", "2024-02-29", "2024-02-29T23:59:59Z", "2024-02-29T23:59:59.999999+05:30", "1970-01-01", "9999-12-31T23:59:59Z"]) {
      const res = await api.call("GET", `/v1/webhooks/${webhookId}/deliveries?since=${encodeURIComponent(since)}`);
      expect({ since, status: res.statusCode }).toEqual({ since, status: 200 });
    }
  });
});

describe("requests Node's HTTP parser refuses", () => {
  async function rawRequest(port: number, text: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => socket.write(text));
      let out = "";
      socket.on("data", (d) => (out += d.toString("latin1")));
      socket.on("close", () => resolve(out));
      socket.on("error", (e) => (out ? resolve(out) : reject(e)));
    });
  }

  it("answer a 100 KB path with 431 and a malformed request with 400, both in the error shape", async () => {
    const address = await api.app.listen({ host: "127.0.0.1", port: 0 });
    const port = Number(new URL(address).port); // afterAll's api.close() stops listening
    const long = await rawRequest(port, `GET /v1/webhooks/${"a".repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(long).toMatch(/^HTTP\/1\.1 431 /);
    const longBody = JSON.parse(long.slice(long.indexOf("\r\n\r\n") + 4));
    expect(longBody.error).toMatchObject({ code: "headers_too_large", message: expect.any(String), details: [] });
    const broken = await rawRequest(port, "GET /v1/webhooks HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    expect(broken).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(broken.slice(broken.indexOf("\r\n\r\n") + 4)).error.code).toBe("invalid_input");
  });
});

describe("the service schemas the CLI shares", () => {
  it("refuse the same hostile values without the API's body check", () => {
    const base = { url: "https://x.example/in", events: ["*"] };
    const cases: [Record<string, unknown>, string][] = [
      [{ url: "https://x.example/in\r\nX: y" }, "url"],
      [{ name: "a\u0000" }, "name"],
      [{ description: "\ud800" }, "description"],
      [{ auth: { type: "bearer", token: "t\r\n" } }, "auth.token"],
      [{ auth: { type: "basic", username: "u", password: "p\n" } }, "auth.password"],
      [{ filter: { "data.a": { $nin: ["\u0000"] } } }, "filter.data.a.$nin.0"],
      [{ tenant: "\udfff" }, "tenant"],
    ];
    for (const [extra, path] of cases) {
      let err: unknown;
      try {
        parseWebhookInput(webhookCreateSchema, { ...base, ...extra });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DomainError);
      expect((err as DomainError).details.map((d) => d.path)).toContain(path);
    }
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(() => parseInput(testSendSchema, { data: deep })).toThrow(/data(\.0)+: expected JSON nested at most 100 levels deep/);
  });
});
