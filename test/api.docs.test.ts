// The API's own description and liveness: /openapi.json (and its committed copy, checked for
// drift), /docs, /v1/health, and the event types there are to subscribe to.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildApp } from "../src/api/app";
import { formatOpenApi, openApiDocument } from "../src/api/openapi";
import { createLogger } from "../src/logger";
import { connect } from "../src/db/connection";
import { startApi, type Api } from "./helpers/api";

let api: Api;

beforeAll(async () => {
  api = await startApi();
});
afterAll(() => api.close());

/** The endpoints issue 3 asks for, exactly. */
const ENDPOINTS = [
  "post /v1/webhooks",
  "post /v1/webhooks/{id}/preview",
  "get /v1/webhooks",
  "get /v1/webhooks/{id}",
  "patch /v1/webhooks/{id}",
  "delete /v1/webhooks/{id}",
  "get /v1/webhooks/{id}/secret",
  "post /v1/webhooks/{id}/test",
  "post /v1/webhooks/{id}/rotate-secret",
  "get /v1/webhooks/{id}/deliveries",
  "post /v1/webhooks/{id}/replay",
  "get /v1/deliveries",
  "get /v1/deliveries/{id}",
  "get /v1/webhook-rates",
  "post /v1/deliveries/{id}/retry",
  "get /v1/event-types",
  "get /v1/health",
  // issue 19: backfills
  "post /v1/webhooks/{id}/backfills",
  "post /v1/webhooks/{id}/backfills/dry-run",
  "get /v1/webhooks/{id}/backfills",
  "get /v1/webhooks/{id}/backfills/{bid}",
  "post /v1/webhooks/{id}/backfills/{bid}/cancel",
  "post /v1/webhooks/{id}/backfills/{bid}/pause",
  "post /v1/webhooks/{id}/backfills/{bid}/resume",
  "post /v1/inbound-sources",
  "get /v1/inbound-sources",
  "get /v1/inbound-sources/{id}",
  "patch /v1/inbound-sources/{id}",
  "delete /v1/inbound-sources/{id}",
  "get /v1/inbound-events",
  "get /v1/inbound-events/{id}",
  "post /v1/inbound-events/replay",
  "post /in/{slug}",
  "post /in/{slug}/{event_name}",
].sort();

interface Operation {
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
  security?: unknown[];
}

describe("GET /openapi.json", () => {
  it("describes every route with its request and response schemas", async () => {
    const res = await api.call("GET", "/openapi.json", { key: null });
    expect(res.statusCode).toBe(200);
    const doc = res.json() as { openapi: string; paths: Record<string, Record<string, Operation>> };
    expect(doc.openapi).toMatch(/^3\.1/);
    const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m} ${path}`));
    expect(ops.sort()).toEqual(ENDPOINTS);
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const success = Object.entries(op.responses).filter(([code]) => code.startsWith("2"));
        expect({ op: `${method} ${path}`, success: success.length }).toEqual({ op: `${method} ${path}`, success: 1 });
        const [code, response] = success[0]!;
        if (code !== "204") expect(response.content?.["application/json"]?.schema).toBeDefined();
        if (path !== "/v1/health") expect(op.responses["401"]).toBeDefined();
      }
    }
    for (const op of ["post /v1/webhooks", "patch /v1/webhooks/{id}", "post /v1/webhooks/{id}/test", "post /v1/webhooks/{id}/rotate-secret", "post /v1/webhooks/{id}/replay"]) {
      const [method, path] = op.split(" ") as [string, string];
      expect(doc.paths[path]?.[method]?.requestBody?.content["application/json"]?.schema).toBeDefined();
    }
    expect(doc.paths["/v1/health"]?.get?.security).toEqual([]);
  });

  it("matches the committed openapi.json (run npm run gen:openapi after changing the API)", async () => {
    const committed = readFileSync(join(__dirname, "..", "openapi.json"), "utf8");
    expect(committed).toBe(formatOpenApi(await openApiDocument()));
  });
});

describe("GET /docs", () => {
  it("serves the interactive docs for the document", async () => {
    const index = await api.app.inject({ method: "GET", url: "/docs/" });
    expect(index.statusCode).toBe(200);
    expect(index.headers["content-type"]).toMatch(/text\/html/);
    const init = await api.app.inject({ method: "GET", url: "/docs/static/swagger-initializer.js" });
    expect(init.statusCode).toBe(200);
    const json = await api.app.inject({ method: "GET", url: "/docs/json" });
    expect(json.json().paths["/v1/webhooks"]).toBeDefined();
  });
});

describe("GET /v1/health", () => {
  it("answers 200 without a key while the database answers", async () => {
    const res = await api.call("GET", "/v1/health", { key: null });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: "ok" });
  });

  it("answers 503 with the error shape when the database does not", async () => {
    const down = connect("postgres://postgres@127.0.0.1:1/none", { max: 1 });
    const app = buildApp({ conn: down, ctx: { conn: down, sender: api.sender, logger: createLogger("silent", false) }, config: api.config });
    try {
      const res = await app.inject({ method: "GET", url: "/v1/health" });
      expect(res.statusCode).toBe(503);
      expect(res.json().error.code).toBe("database_unavailable");
    } finally {
      await app.close();
      await down.close();
    }
  });
});

describe("GET /v1/event-types", () => {
  it("lists the types tracked tables produce (truncated with deletes) and the custom types emitted so far", async () => {
    await api.db.sql`create table public.invoices (id serial primary key, total int)`;
    await api.db.sql`select webhooks.track_table('public.invoices', event_prefix => 'billing.invoice', operations => array['insert', 'delete'])`;
    await api.db.sql`select webhooks.emit('payment.failed', '{"id": 1}'::jsonb)`;
    const res = await api.call("GET", "/v1/event-types");
    expect(res.statusCode).toBe(200);
    const items = (res.json() as { items: { type: string; source: string; table?: string }[] }).items;
    // Each also carries data_schema and examples (test/payloads.test.ts).
    expect({ items: items.map(({ type, source, table }) => ({ type, source, ...(table === undefined ? {} : { table }) })) }).toEqual({
      items: [
        { type: "billing.invoice.created", source: "table", table: "invoices" },
        { type: "billing.invoice.deleted", source: "table", table: "invoices" },
        // Deletes are tracked, so a TRUNCATE is announced too.
        { type: "billing.invoice.truncated", source: "table", table: "invoices" },
        { type: "payment.failed", source: "custom" },
      ],
    });
  });

  it("answers 401 without a key", async () => {
    expect((await api.call("GET", "/v1/event-types", { key: null })).statusCode).toBe(401);
  });
});
