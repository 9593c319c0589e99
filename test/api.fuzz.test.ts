// Walks every route of the served /openapi.json and puts hostile values (NUL, lone surrogates,
// CR/LF, impossible dates, 10,000-deep nesting, 2^53 + 1, 1e400, huge strings, wrong types) into
// each body field (and the fields nested in it), query parameter and path parameter, with a
// tenant key and the admin key. Every answer is a 4xx in the error shape, or a 2xx for a value
// that happens to be harmless; never a 5xx; and a refused request writes nothing.
import { insertFailedDelivery, startApi, webhookBody, type Api, type HttpMethod } from "./helpers/api";
import { startReceiver, type Receiver } from "./helpers/receiver";

let api: Api;
let receiver: Receiver;
let tenantKey: string;
let webhookId: string;
let deliveryId: string;

beforeAll(async () => {
  api = await startApi();
  receiver = await startReceiver({ status: 200 });
  tenantKey = await api.key("acme");
  const res = await api.call("POST", "/v1/webhooks", { key: tenantKey, body: webhookBody(`${receiver.url}/in`) });
  webhookId = res.json().id;
  deliveryId = await insertFailedDelivery(api.db, webhookId, "a.b", "acme");
});
afterAll(async () => {
  await receiver.close();
  await api.close();
});

// ── Hostile values ──────────────────────────────────────────────────────────────────────

/** Values JSON.stringify cannot write (1e400, 2^53 + 1, deep nesting) ride as markers replaced after. */
const RAW: string[] = [];
function raw(text: string): string {
  RAW.push(text);
  return `\u0001RAW${RAW.length - 1}\u0001`;
}
function toJson(value: unknown): string {
  return JSON.stringify(value).replace(/"\\u0001RAW(\d+)\\u0001"/g, (_, i: string) => RAW[Number(i)] ?? "null");
}

const HOSTILE_TEXT = [
  "a\u0000b",
  "\ud800",
  "x\udc00",
  "\r\n",
  "x\r\nX-Injected: 1",
  "9999999999999d",
  "10000-01-01",
  "0000-01-01",
  "+275760-09-13T00:00:00.000Z",
  "2024-02-30",
  "x".repeat(100_000),
];
const HOSTILE_BODY_VALUES: unknown[] = [
  ...HOSTILE_TEXT,
  raw("9007199254740993"),
  raw("1e400"),
  raw(`${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`),
  true,
  null,
  [],
  {},
];
/** As the whole body only: each field goes through the same parser and check. */
const HOSTILE_BODIES: unknown[] = [...HOSTILE_BODY_VALUES, raw("-1e400"), raw(`${"[".repeat(100_000)}${"]".repeat(100_000)}`)];
/** Fewer for the fields nested inside a field, to keep the walk quick. */
const HOSTILE_NESTED: unknown[] = ["\u0000", "\ud800", "x\r\nX-Injected: 1", raw("1e400")];

const HOSTILE_QUERY = ["%00", "a%00b", "%ED%A0%80", "%ff%fe", "%0d%0aX-Injected:%201", "9999999999999d", "10000-01-01", "0000-01-01", "%2B275760-09-13T00:00:00.000Z", "2024-02-30", "9007199254740993", "1e400", "-1", "x".repeat(20_000), "", "true&x=1"];
const HOSTILE_PATH = ["%00", "%ff%fe", "%ED%A0%80", "a%0d%0ab", "9007199254740993", "x".repeat(5_000), "..%2f..%2f", "%2e%2e"];

// ── Walking the OpenAPI document ────────────────────────────────────────────────────────

interface Schema {
  $ref?: string;
  type?: string | string[];
  const?: unknown;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  oneOf?: Schema[];
  anyOf?: Schema[];
}
interface Operation {
  parameters?: { in: string; name: string }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
}
type Doc = { paths: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, Schema> } };

function resolve(doc: Doc, s: Schema): Schema {
  if (s.$ref === undefined) return s;
  const name = s.$ref.split("/").pop() ?? "";
  return doc.components?.schemas?.[name] ?? {};
}

/** Values of schema `s` with `hostile` placed at each leaf reachable within `depth` levels. */
function variants(doc: Doc, schema: Schema, hostile: unknown, depth: number): unknown[] {
  const s = resolve(doc, schema);
  const out: unknown[] = [hostile];
  if (depth === 0) return out;
  for (const option of [...(s.oneOf ?? []), ...(s.anyOf ?? [])]) out.push(...variants(doc, option, hostile, depth).slice(1));
  const types = Array.isArray(s.type) ? s.type : [s.type];
  if (s.properties) {
    const consts: Record<string, unknown> = {};
    for (const [k, p] of Object.entries(s.properties)) if (resolve(doc, p).const !== undefined) consts[k] = resolve(doc, p).const;
    for (const [k, p] of Object.entries(s.properties)) {
      if (resolve(doc, p).const !== undefined) continue;
      for (const v of variants(doc, p, hostile, depth - 1)) out.push({ ...consts, [k]: v });
    }
  }
  if (typeof s.additionalProperties === "object") {
    for (const v of variants(doc, s.additionalProperties, hostile, depth - 1)) out.push({ "X-Fuzz": v });
    if (typeof hostile === "string") out.push({ [hostile]: "v" });
  }
  if (types.includes("object") && !s.properties && s.additionalProperties === undefined) {
    // A free-form object (a filter): hostile as a value, in an operator and as a key.
    out.push({ "data.x": hostile }, { "data.x": { $in: [hostile] } });
    if (typeof hostile === "string") out.push({ [`data.${hostile}`]: 1 });
  }
  if (types.includes("array") && s.items) for (const v of variants(doc, s.items, hostile, depth - 1)) out.push([v]);
  return out;
}

interface Probe {
  method: HttpMethod;
  url: string;
  raw?: string;
}

function realPath(template: string, id: string): string {
  return template.replace("{id}", template.startsWith("/v1/deliveries") ? deliveryId : id);
}

/** Every probe the document describes. */
function probes(doc: Doc): Probe[] {
  const out: Probe[] = [];
  for (const [template, methods] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(methods)) {
      const method = m.toUpperCase() as HttpMethod;
      const params = op.parameters ?? [];
      const url = realPath(template, webhookId);
      for (const p of params.filter((x) => x.in === "path")) {
        for (const v of HOSTILE_PATH) out.push({ method, url: template.replace(`{${p.name}}`, v) });
      }
      for (const p of params.filter((x) => x.in === "query")) {
        for (const v of HOSTILE_QUERY) out.push({ method, url: `${url}?${p.name}=${v}` });
        out.push({ method, url: `${url}?${p.name}=1&${p.name}=2` });
      }
      const schema = op.requestBody?.content?.["application/json"]?.schema;
      if (schema === undefined) continue;
      const s = resolve(doc, schema);
      const base = template === "/v1/webhooks" ? webhookBody(`${receiver.url}/in`) : {};
      for (const h of HOSTILE_BODIES) out.push({ method, url, raw: toJson(h) });
      for (const [field, fieldSchema] of Object.entries(s.properties ?? {})) {
        for (const h of HOSTILE_BODY_VALUES) out.push({ method, url, raw: toJson({ ...base, [field]: h }) });
        for (const h of HOSTILE_NESTED) {
          for (const v of variants(doc, fieldSchema, h, 2).slice(1)) out.push({ method, url, raw: toJson({ ...base, [field]: v }) });
        }
      }
    }
  }
  const seen = new Set<string>();
  return out.filter((p) => {
    const k = `${p.method} ${p.url} ${p.raw ?? ""}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** What a refused request must leave as it was. */
async function fingerprint(): Promise<string> {
  const [row] = await api.db.sql<{ f: string }[]>`
    select concat_ws(',',
      (select count(*) from webhooks.outbox), (select count(*) from webhooks.deliveries),
      (select count(*) from webhooks.attempts), (select count(*) from webhooks.event_types_seen),
      (select count(*) from graphile_worker._private_jobs),
      (select md5(coalesce(string_agg(s::text, ',' order by s.id), '')) from webhooks.subscriptions s),
      (select md5(coalesce(string_agg(d::text, ',' order by d.id), '')) from webhooks.deliveries d)) as f`;
  return row?.f ?? "";
}

describe("every route of /openapi.json with hostile values", () => {
  it("answers 4xx in the error shape or a harmless 2xx, never 5xx, and a 4xx writes nothing", async () => {
    const res = await api.call("GET", "/openapi.json", { key: null });
    expect(res.statusCode).toBe(200);
    const doc = res.json() as Doc;
    const all = probes(doc);
    const routes = new Set(all.map((p) => `${p.method} ${p.url.split("?")[0]}`));
    expect(routes.size).toBeGreaterThanOrEqual(12);

    const failures: string[] = [];
    const statuses: Record<string, number> = {};
    let before = await fingerprint();
    for (const key of [tenantKey, api.adminKey]) {
      for (const p of all) {
        const r = await api.app.inject({
          method: p.method,
          url: p.url,
          headers: { authorization: `Bearer ${key}`, ...(p.raw === undefined ? {} : { "content-type": "application/json" }) },
          ...(p.raw === undefined ? {} : { payload: p.raw }),
        });
        const label = `${key === tenantKey ? "tenant" : "admin"} ${p.method} ${p.url.slice(0, 100)} ${(p.raw ?? "").slice(0, 100)}`;
        const bucket = `${Math.floor(r.statusCode / 100)}xx`;
        statuses[bucket] = (statuses[bucket] ?? 0) + 1;
        // GET answers only read (an API key's last_used_at aside, which is not in the fingerprint).
        const after = p.method === "GET" ? before : await fingerprint();
        if (r.statusCode >= 500) failures.push(`${label}: ${r.statusCode} ${r.body.slice(0, 200)}`);
        else if (r.statusCode >= 400) {
          let e: { code?: unknown; message?: unknown; details?: unknown } | undefined;
          try {
            e = r.json().error;
          } catch {
            e = undefined;
          }
          if (typeof e?.code !== "string" || typeof e.message !== "string" || !Array.isArray(e.details)) {
            failures.push(`${label}: ${r.statusCode} not the error shape: ${r.body.slice(0, 200)}`);
          }
          if (after !== before) failures.push(`${label}: refused with ${r.statusCode} but wrote`);
        }
        before = after;
        if (failures.length > 20) break;
      }
    }
    expect(failures).toEqual([]);
    // The walk really reached the routes: most probes are refused, a few harmless ones pass.
    expect(statuses["4xx"]).toBeGreaterThan(1000);
    expect(statuses["5xx"]).toBeUndefined();
  });
});
