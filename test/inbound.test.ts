// Inbound webhooks over real HTTP: sources managed through /v1, requests to /in/<slug> verified
// per scheme over the exact bytes, stored (or not) and claimed from SQL as an ordinary role.
import { createHmac, randomBytes } from "node:crypto";
import { connect as netConnect } from "node:net";
import { Writable } from "node:stream";
import pino from "pino";
import { Webhook } from "standardwebhooks";
import type { FastifyInstance } from "fastify";
import { buildApp } from "../src/api/app";
import { connect } from "../src/db/connection";
import { createCore } from "../src/core";
import { createKey } from "../src/services/keys";
import { createMetrics } from "../src/metrics";
import { prune } from "../src/services/prune";
import { createTestDatabase, type TestDatabase } from "./helpers/db";
import { testConfig } from "./helpers/pipeline";

let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let adminKey: string;
let closeCore: () => Promise<void>;
const logLines: string[] = [];
let metricsText: () => Promise<string>;

beforeAll(async () => {
  db = await createTestDatabase();
  const config = testConfig();
  const core = createCore(config, { database: { url: db.url, connection: db } });
  const { ctx } = core.sending();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString("utf8"));
      cb();
    },
  });
  const logger = pino({ level: "info" }, sink);
  const metrics = createMetrics(db);
  metricsText = () => metrics.render();
  app = buildApp({ conn: db, ctx, config, logger, metrics, admin: false });
  base = await app.listen({ host: "127.0.0.1", port: 0 });
  closeCore = async () => {
    await app.close();
    await core.close();
  };
  adminKey = (await createKey(db, { name: "admin" })).key;
});

afterAll(async () => {
  await closeCore();
  await db.close();
});

async function v1(method: string, path: string, body?: unknown, key = adminKey) {
  const res = await fetch(`${base}/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, text, json: text === "" ? null : (JSON.parse(text) as Record<string, unknown>) };
}

async function source(body: Record<string, unknown>, key = adminKey): Promise<Record<string, unknown>> {
  const r = await v1("POST", "/inbound-sources", body, key);
  if (r.status !== 201) throw new Error(`create source: ${r.status} ${r.text}`);
  return r.json as Record<string, unknown>;
}

async function send(path: string, body: Buffer | string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : new Uint8Array(body),
  });
  const text = await res.text();
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = null;
  }
  return { status: res.status, json, text, headers: res.headers };
}

async function eventCount(slug: string): Promise<number> {
  const [r] = await db.sql<{ n: number }[]>`
    select count(*)::int as n from webhooks.inbound_events e join webhooks.inbound_sources s on s.id = e.source_id where s.slug = ${slug}`;
  return r?.n ?? 0;
}

async function storedRow(id: string) {
  const [r] = await db.sql<{ body: Buffer; payload: string | null; headers: Record<string, string>; tenant: string | null; event_name: string | null; status: string; dedupe_key: string | null }[]>`
    select body, payload::text as payload, headers, tenant, event_name, status, dedupe_key from webhooks.inbound_events where id = ${id}`;
  if (!r) throw new Error(`no inbound event ${id}`);
  return r;
}

const hmacHex = (key: string, data: string | Buffer) => createHmac("sha256", key).update(data).digest("hex");
const hmacB64 = (key: string, data: string | Buffer) => createHmac("sha256", key).update(data).digest("base64");
const nowS = () => Math.floor(Date.now() / 1000);

describe("the CRM guide's n8n-style request", () => {
  const KEY = `crm-key-${randomBytes(12).toString("hex")}`;

  beforeAll(async () => {
    await source({ slug: "crm", verify: "api_key", secrets: [KEY], allowed_tenants: ["acme", "globex"] });
  });

  it("stores POST /in/crm/<event_name> with X-Tenant-ID and X-API-Key, claimable by an ordinary role", async () => {
    const body = '{"contact":{"id":9223372036854775807,"email":"a@example.com"}}';
    const r = await send("/in/crm/contact.created", body, { "x-tenant-id": "acme", "x-api-key": KEY });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ id: expect.any(String), duplicate: false });
    const row = await storedRow(String(r.json?.id));
    expect(row.tenant).toBe("acme");
    expect(row.event_name).toBe("contact.created");
    expect(row.body.toString("utf8")).toBe(body);
    expect(row.payload).toContain("9223372036854775807");
    expect(row.headers["x-api-key"]).toBeUndefined();
    expect(row.headers["x-tenant-id"]).toBe("acme");
    expect(row.status).toBe("pending");

    // A worker role with only the documented grants.
    const role = `inbound_worker_${randomBytes(3).toString("hex")}`;
    await db.sql.unsafe(`create role ${role} login`);
    await db.sql.unsafe(`grant usage on schema webhooks to ${role}`);
    await db.sql.unsafe(
      `grant execute on function webhooks.inbound_claim(text, integer, interval), webhooks.inbound_done(bigint[]), webhooks.inbound_failed(bigint[], text) to ${role}`,
    );
    const claimed = await db.sql.begin(async (tx) => {
      await tx.unsafe(`set local role ${role}`);
      // The role cannot read the table itself ...
      await expect(tx.savepoint((sp) => sp`select 1 from webhooks.inbound_events`)).rejects.toThrow(/permission denied/);
      // ... but claims through the function.
      const rows = await tx<{ id: string; event_name: string; tenant: string; payload: unknown; attempts: number }[]>`
        select id::text, event_name, tenant, payload, attempts from webhooks.inbound_claim('crm', 10)`;
      const [done] = await tx<{ n: number }[]>`select webhooks.inbound_done(array[${rows[0]?.id ?? "0"}::bigint]) as n`;
      return { rows, done: done?.n };
    });
    expect(claimed.rows).toEqual([expect.objectContaining({ id: r.json?.id, event_name: "contact.created", tenant: "acme", attempts: 1 })]);
    expect(claimed.done).toBe(1);
    expect((await storedRow(String(r.json?.id))).status).toBe("done");
    await db.sql.unsafe(`drop owned by ${role}`);
    await db.sql.unsafe(`drop role ${role}`);
  });

  it("refuses a wrong key, a missing key and a tenant not allowed with 401, storing nothing", async () => {
    const before = await eventCount("crm");
    const wrong = await send("/in/crm/contact.created", "{}", { "x-tenant-id": "acme", "x-api-key": `${KEY}x` });
    expect(wrong.status).toBe(401);
    expect(wrong.json).toEqual({ error: { code: "verification_failed", message: expect.any(String), details: [] } });
    expect((await send("/in/crm/contact.created", "{}", { "x-tenant-id": "acme" })).status).toBe(401);
    expect((await send("/in/crm/contact.created", "{}", { "x-tenant-id": "initech", "x-api-key": KEY })).status).toBe(401);
    expect((await send("/in/crm/contact.created", "{}", { "x-api-key": KEY })).status).toBe(401);
    expect(await eventCount("crm")).toBe(before);
  });

  it("never writes the key or a secret to the log, and logs why a request was refused", async () => {
    await send("/in/crm", "{}", { "x-tenant-id": "acme", "x-api-key": `${KEY}-wrong` });
    const log = logLines.join("");
    expect(log).toContain("inbound: request refused");
    expect(log).not.toContain(KEY);
  });
});

describe("signed schemes", () => {
  const body = '{"id":"evt_1","type":"invoice.paid","data":{"amount":18446744073709551616}}';

  it("standard: accepts the library's signature, refuses a wrong one, an old timestamp and a changed body", async () => {
    const secret = `whsec_${randomBytes(24).toString("base64")}`;
    await source({ slug: "std", verify: "standard", secrets: [secret] });
    const wh = new Webhook(secret);
    const headers = (id: string, ts: number, b: string, sig = wh.sign(id, new Date(ts * 1000), b)) => ({
      "webhook-id": id,
      "webhook-timestamp": String(ts),
      "webhook-signature": sig,
    });
    const ok = await send("/in/std", body, headers("msg_1", nowS(), body));
    expect(ok.status).toBe(200);
    const row = await storedRow(String(ok.json?.id));
    expect(row.dedupe_key).toBe("msg_1");
    expect(row.event_name).toBe("invoice.paid");
    expect(row.payload).toContain("18446744073709551616");
    expect((await send("/in/std", body, headers("msg_2", nowS(), body, "v1,AAAA"))).status).toBe(401);
    expect((await send("/in/std", body, headers("msg_3", nowS() - 600, body))).status).toBe(401);
    expect((await send("/in/std", `${body} `, headers("msg_4", nowS(), body))).status).toBe(401);
    // A second signature from a rotated secret is accepted as well.
    const other = new Webhook(`whsec_${randomBytes(24).toString("base64")}`);
    const both = `${other.sign("msg_5", new Date(), body)} ${wh.sign("msg_5", new Date(), body)}`;
    expect((await send("/in/std", body, headers("msg_5", nowS(), body, both))).status).toBe(200);
    expect(await eventCount("std")).toBe(2);
  });

  it("stripe: t=…,v1=… over <t>.<body>; refuses a wrong signature, an old t and a changed body", async () => {
    const secret = `whsec_${randomBytes(16).toString("hex")}`;
    await source({ slug: "stripe", verify: "stripe", secrets: [secret] });
    const sig = (t: number, b: string) => `t=${t},v1=${hmacHex(secret, `${t}.${b}`)},v0=deadbeef`;
    const ok = await send("/in/stripe", body, { "stripe-signature": sig(nowS(), body) });
    expect(ok.status).toBe(200);
    expect((await storedRow(String(ok.json?.id))).dedupe_key).toBe("evt_1");
    expect((await send("/in/stripe", body, { "stripe-signature": `t=${nowS()},v1=${"0".repeat(64)}` })).status).toBe(401);
    expect((await send("/in/stripe", body, { "stripe-signature": sig(nowS() - 301, body) })).status).toBe(401);
    expect((await send("/in/stripe", body.replace("invoice", "invoicf"), { "stripe-signature": sig(nowS(), body) })).status).toBe(401);
    expect(await eventCount("stripe")).toBe(1);
  });

  it("github: X-Hub-Signature-256 over the body; refuses a wrong signature and a changed body", async () => {
    const secret = randomBytes(20).toString("hex");
    await source({ slug: "gh", verify: "github", secrets: [secret] });
    const headers = { "x-hub-signature-256": `sha256=${hmacHex(secret, body)}`, "x-github-event": "push", "x-github-delivery": "d-1" };
    const ok = await send("/in/gh", body, headers);
    expect(ok.status).toBe(200);
    const row = await storedRow(String(ok.json?.id));
    expect(row).toMatchObject({ event_name: "push", dedupe_key: "d-1" });
    expect((await send("/in/gh", body, { ...headers, "x-hub-signature-256": `sha256=${hmacHex("other", body)}` })).status).toBe(401);
    expect((await send("/in/gh", `${body}\n`, headers)).status).toBe(401);
    expect(await eventCount("gh")).toBe(1);
  });

  it("shopify: base64 X-Shopify-Hmac-Sha256 over the body; refuses a wrong signature and a changed body", async () => {
    const secret = randomBytes(20).toString("hex");
    await source({ slug: "shop", verify: "shopify", secrets: [secret] });
    const headers = { "x-shopify-hmac-sha256": hmacB64(secret, body), "x-shopify-topic": "orders/create", "x-shopify-webhook-id": "w-1" };
    const ok = await send("/in/shop", body, headers);
    expect(ok.status).toBe(200);
    expect(await storedRow(String(ok.json?.id))).toMatchObject({ event_name: "orders/create", dedupe_key: "w-1" });
    expect((await send("/in/shop", body, { ...headers, "x-shopify-hmac-sha256": hmacB64("x", body) })).status).toBe(401);
    expect((await send("/in/shop", body.toUpperCase(), headers)).status).toBe(401);
    expect(await eventCount("shop")).toBe(1);
  });

  it("slack: v0 over v0:<ts>:<body>, the url_verification challenge; refuses a wrong signature, an old timestamp and a changed body", async () => {
    const secret = randomBytes(16).toString("hex");
    await source({ slug: "slack", verify: "slack", secrets: [secret] });
    const headers = (ts: number, b: string) => ({ "x-slack-request-timestamp": String(ts), "x-slack-signature": `v0=${hmacHex(secret, `v0:${ts}:${b}`)}` });
    const challenge = '{"type":"url_verification","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}';
    const c = await send("/in/slack", challenge, headers(nowS(), challenge));
    expect(c.status).toBe(200);
    expect(c.json).toEqual({ challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" });
    expect(await eventCount("slack")).toBe(0);
    const ev = '{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention","text":"hi"}}';
    const ok = await send("/in/slack", ev, headers(nowS(), ev));
    expect(ok.status).toBe(200);
    expect(await storedRow(String(ok.json?.id))).toMatchObject({ event_name: "app_mention", dedupe_key: "Ev1" });
    expect((await send("/in/slack", ev, { ...headers(nowS(), ev), "x-slack-signature": "v0=00" })).status).toBe(401);
    expect((await send("/in/slack", ev, headers(nowS() - 301, ev))).status).toBe(401);
    expect((await send("/in/slack", ev.replace("hi", "ho"), headers(nowS(), ev))).status).toBe(401);
    // An unverified challenge is refused too.
    expect((await send("/in/slack", challenge, { ...headers(nowS(), challenge), "x-slack-signature": "v0=ab" })).status).toBe(401);
    expect(await eventCount("slack")).toBe(1);
  });

  it("generic hmac with a signed timestamp; two secrets during rotation", async () => {
    const [newer, older] = [randomBytes(16).toString("hex"), randomBytes(16).toString("hex")];
    await source({
      slug: "gen",
      verify: "hmac",
      secrets: [newer, older],
      hmac: { header: "X-Signature", prefix: "sha256=", encoding: "base64", signed: "timestamp.body", timestamp_header: "X-Timestamp" },
      dedupe: "json:id",
    });
    const headers = (key: string, ts: number, b: string) => ({ "x-timestamp": String(ts), "x-signature": `sha256=${hmacB64(key, `${ts}.${b}`)}` });
    expect((await send("/in/gen", body, headers(newer, nowS(), body))).status).toBe(200);
    const again = await send("/in/gen", body.replace("evt_1", "evt_2"), headers(older, nowS(), body.replace("evt_1", "evt_2")));
    expect(again.status).toBe(200);
    expect((await send("/in/gen", body, headers("nope", nowS(), body))).status).toBe(401);
    expect((await send("/in/gen", body, headers(newer, nowS() - 400, body))).status).toBe(401);
    expect((await send("/in/gen", `${body}x`, headers(newer, nowS(), body))).status).toBe(401);
    expect(await eventCount("gen")).toBe(2);
  });

  it("basic: user:password in Authorization, which is never stored", async () => {
    await source({ slug: "basic", verify: "basic", secrets: ["n8n:s3cret-pass"] });
    const ok = await send("/in/basic", "{}", { authorization: `Basic ${Buffer.from("n8n:s3cret-pass").toString("base64")}`, cookie: "sid=1" });
    expect(ok.status).toBe(200);
    const row = await storedRow(String(ok.json?.id));
    expect(row.headers.authorization).toBeUndefined();
    expect(row.headers.cookie).toBeUndefined();
    expect((await send("/in/basic", "{}", { authorization: `Basic ${Buffer.from("n8n:wrong").toString("base64")}` })).status).toBe(401);
  });
});

describe("receiving", () => {
  beforeAll(async () => {
    await source({ slug: "open", verify: "none", dedupe: "header:x-delivery" });
  });

  it("answers a duplicate with the first event's id and stores nothing new", async () => {
    const first = await send("/in/open", '{"a":1}', { "x-delivery": "dup-1" });
    const second = await send("/in/open", '{"a":2}', { "x-delivery": "dup-1" });
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.json).toEqual({ id: first.json?.id, duplicate: true });
    const rows = await db.sql`select body from webhooks.inbound_events where dedupe_key = 'dup-1'`;
    expect(rows).toHaveLength(1);
    expect(Buffer.from(rows[0]?.body as Buffer).toString()).toBe('{"a":1}');
  });

  it("stores one row when the same request arrives many times at once", async () => {
    const answers = await Promise.all(Array.from({ length: 8 }, () => send("/in/open", "{}", { "x-delivery": "race-1" })));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    expect(new Set(answers.map((a) => a.json?.id)).size).toBe(1);
    const [n] = await db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.inbound_events where dedupe_key = 'race-1'`;
    expect(n?.n).toBe(1);
  });

  it("refuses a 2 MiB body with 413 (1 MiB default) and stores nothing", async () => {
    const before = await eventCount("open");
    const r = await send("/in/open", Buffer.alloc(2 * 1024 * 1024, 0x61), { "content-type": "application/octet-stream" });
    expect(r.status).toBe(413);
    expect(r.json).toMatchObject({ error: { code: "payload_too_large" } });
    expect(await eventCount("open")).toBe(before);
    // A source with a larger limit takes it whole, beyond the API's own 1 MiB.
    await source({ slug: "big", verify: "none", max_body_bytes: 3 * 1024 * 1024 });
    const big = Buffer.alloc(2 * 1024 * 1024, 0x62);
    const ok = await send("/in/big", big, { "content-type": "application/octet-stream" });
    expect(ok.status).toBe(200);
    expect(Buffer.compare(Buffer.from((await storedRow(String(ok.json?.id))).body), big)).toBe(0);
  });

  it("refuses a body over a per-source limit sent without Content-Length (chunked)", async () => {
    await source({ slug: "small", verify: "none", max_body_bytes: 100 });
    const res = await fetch(`${base}/in/small`, {
      method: "POST",
      body: new ReadableStream({
        start(c) {
          c.enqueue(new Uint8Array(80));
          c.enqueue(new Uint8Array(80));
          c.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await eventCount("small")).toBe(0);
  });

  it("stores hostile bodies exactly: NUL, lone surrogates, 2^63, non-UTF-8 bytes, deep nesting", async () => {
    const cases: [string, Buffer, string | null][] = [
      ["nul", Buffer.from('{"s":"a\\u0000b"}'), null],
      ["surrogate", Buffer.from('{"s":"\\ud800"}'), null],
      ["big", Buffer.from('{"n":9223372036854775808,"m":-1.00000000000000000001}'), '{"m": -1.00000000000000000001, "n": 9223372036854775808}'],
      ["bytes", Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x0d, 0x0a]), null],
      ["deep", Buffer.from(`${"[".repeat(10000)}${"]".repeat(10000)}`), null],
      ["raw-nul", Buffer.from([0x7b, 0x7d, 0x00]), null],
      // JSON.parse reads it as 0; jsonb's numeric cannot hold it.
      ["tiny", Buffer.from('{"n":1e-1000000}'), null],
    ];
    for (const [name, bytes, payload] of cases) {
      const r = await send(`/in/open/${name}`, bytes, { "content-type": name === "bytes" ? "application/octet-stream" : "application/json" });
      expect([name, r.status]).toEqual([name, 200]);
      const row = await storedRow(String(r.json?.id));
      expect(Buffer.compare(Buffer.from(row.body), bytes)).toBe(0);
      expect([name, row.payload]).toEqual([name, payload]);
      expect(row.event_name).toBe(name);
    }
  });

  it("refuses a header with CR/LF inside (Node's parser) with a 400, storing nothing", async () => {
    const before = await eventCount("open");
    const { port } = new URL(base);
    const answer = await new Promise<string>((resolve, reject) => {
      const s = netConnect(Number(port), "127.0.0.1", () => {
        s.write("POST /in/open HTTP/1.1\r\nHost: x\r\nX-Bad: a\rb\r\nContent-Length: 2\r\n\r\n{}");
      });
      let got = "";
      s.on("data", (d) => (got += d.toString()));
      s.on("close", () => resolve(got));
      s.on("error", reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(await eventCount("open")).toBe(before);
  });

  it("answers 404 for an unknown, a disabled and a deleted source", async () => {
    expect((await send("/in/nope", "{}")).status).toBe(404);
    expect((await send("/in/%00", "{}")).status).toBe(404);
    const s = await source({ slug: "off", verify: "none", enabled: false });
    expect((await send("/in/off", "{}")).status).toBe(404);
    expect((await v1("PATCH", `/inbound-sources/${String(s.id)}`, { enabled: true })).status).toBe(200);
    expect((await send("/in/off", "{}")).status).toBe(200);
    expect((await v1("DELETE", `/inbound-sources/off`)).status).toBe(204);
    expect((await send("/in/off", "{}")).status).toBe(404);
  });

  it("uses a changed secret at once after an API change, and within a second after one made elsewhere", async () => {
    await source({ slug: "rot", verify: "api_key", secrets: ["key-a-0123456789"] });
    expect((await send("/in/rot", "{}", { "x-api-key": "key-a-0123456789" })).status).toBe(200);
    expect((await v1("PATCH", "/inbound-sources/rot", { secrets: ["key-b-0123456789"] })).status).toBe(200);
    expect((await send("/in/rot", "{}", { "x-api-key": "key-a-0123456789" })).status).toBe(401);
    expect((await send("/in/rot", "{}", { "x-api-key": "key-b-0123456789" })).status).toBe(200);
    // Another process (here: SQL) changes it: this process reads the source again within a second.
    await db.sql`update webhooks.inbound_sources set enabled = false where slug = 'rot'`;
    await new Promise((r) => setTimeout(r, 1100));
    expect((await send("/in/rot", "{}", { "x-api-key": "key-b-0123456789" })).status).toBe(404);
  });

  it("answers 429 with Retry-After over the source's rate limit", async () => {
    await source({ slug: "slow", verify: "none", rate_limit_per_s: 1 });
    const first = await send("/in/slow", "{}");
    const second = await send("/in/slow", "{}");
    expect(first.status).toBe(200);
    expect(second.status).toBe(429);
    expect(Number(second.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await eventCount("slow")).toBe(1);
  });

  it("spends none of the rate on requests that fail verification", async () => {
    await source({ slug: "paced", verify: "api_key", secrets: ["the-real-key-0123"], rate_limit_per_s: 1 });
    for (let i = 0; i < 5; i++) expect((await send("/in/paced", "{}", { "x-api-key": "wrong-key-0123456" })).status).toBe(401);
    expect((await send("/in/paced", "{}", { "x-api-key": "the-real-key-0123" })).status).toBe(200);
    expect((await send("/in/paced", "{}", { "x-api-key": "the-real-key-0123" })).status).toBe(429);
  });

  it("refuses a basic secret with an empty user or password", async () => {
    for (const secret of ["u:", ":p"]) {
      const r = await v1("POST", "/inbound-sources", { slug: "b-empty", verify: "basic", secrets: [secret] });
      expect(r.status).toBe(400);
      expect(r.text).toContain("both non-empty");
    }
  });

  it("relays into the outbound pipeline in the same transaction", async () => {
    const secret = `whsec_${randomBytes(8).toString("hex")}`;
    await source({ slug: "relay", verify: "stripe", secrets: [secret], relay_prefix: "inbound.stripe" });
    const b = '{"id":"evt_r","type":"invoice.paid","data":{"n":12345678901234567890}}';
    const t = nowS();
    const r = await send("/in/relay", b, { "stripe-signature": `t=${t},v1=${hmacHex(secret, `${t}.${b}`)}` });
    expect(r.status).toBe(200);
    const [ev] = await db.sql<{ status: string; relayed_event_id: string; type: string; data: string }[]>`
      select e.status, e.relayed_event_id::text, o.type, o.data::text
        from webhooks.inbound_events e join webhooks.outbox o on o.event_id = e.relayed_event_id
       where e.id = ${String(r.json?.id)}`;
    expect(ev).toMatchObject({ status: "done", type: "inbound.stripe.invoice.paid" });
    expect(ev?.data).toContain("12345678901234567890");
    // Replay relays it again as a new outbound event.
    const replay = await v1("POST", "/inbound-events/replay", { ids: [String(r.json?.id)] });
    expect(replay.json).toEqual({ matched: 1, pending: 0, relayed: 1, failed: 0 });
    const [n] = await db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.outbox where type = 'inbound.stripe.invoice.paid'`;
    expect(n?.n).toBe(2);
  });

  it("answers 503 with Retry-After when the database does not answer", async () => {
    const down = connect("postgres://postgres@127.0.0.1:1/none", { max: 1 });
    const config = testConfig();
    const core = createCore(config, { database: { url: db.url, connection: db } });
    const downApp = buildApp({ conn: down, ctx: core.sending().ctx, config, admin: false });
    try {
      const r = await downApp.inject({ method: "POST", url: "/in/open", payload: "{}", headers: { "content-type": "application/json" } });
      expect(r.statusCode).toBe(503);
      expect(r.headers["retry-after"]).toBe("5");
      expect(r.json()).toMatchObject({ error: { code: "database_unavailable" } });
    } finally {
      await downApp.close();
      await down.close();
      await core.close();
    }
  });

  it("counts requests by source and result", async () => {
    const text = await metricsText();
    expect(text).toMatch(/pgwebhooks_inbound_requests_total\{source="open",result="stored"\} \d+/);
    expect(text).toMatch(/pgwebhooks_inbound_requests_total\{source="crm",result="unverified"\} \d+/);
    expect(text).toMatch(/pgwebhooks_inbound_pending_lag_seconds\{source="open"\} [\d.]+/);
  });
});

describe("SQL workers", () => {
  it("share the work (SKIP LOCKED), mark failures and get stuck rows back after the timeout", async () => {
    await source({ slug: "work", verify: "none" });
    for (let i = 0; i < 4; i++) expect((await send("/in/work", `{"i":${i}}`)).status).toBe(200);
    const a = db.sql.reserve();
    const w1 = await a;
    try {
      await w1`begin`;
      const first = await w1<{ id: string }[]>`select id::text from webhooks.inbound_claim('work', 2)`;
      // While the first worker's transaction holds its rows, a second one claims the others.
      const second = await db.sql<{ id: string }[]>`select id::text from webhooks.inbound_claim('work', 10)`;
      await w1`commit`;
      expect(first).toHaveLength(2);
      expect(second).toHaveLength(2);
      expect(new Set([...first, ...second].map((r) => r.id)).size).toBe(4);
      const ids = first.map((r) => r.id);
      const [f] = await db.sql<{ n: number }[]>`select webhooks.inbound_failed(${ids}::bigint[], 'contact not found') as n`;
      expect(f?.n).toBe(2);
      const [st] = await db.sql<{ last_error: string; status: string }[]>`select status, last_error from webhooks.inbound_events where id = ${ids[0] ?? "0"}`;
      expect(st).toEqual({ status: "failed", last_error: "contact not found" });
      // The second batch's worker died: after the timeout its rows are claimable again.
      await db.sql`update webhooks.inbound_events set locked_at = now() - interval '10 minutes' where id = any(${second.map((r) => r.id)}::bigint[])`;
      const again = await db.sql<{ id: string; attempts: number }[]>`select id::text, attempts from webhooks.inbound_claim('work', 10)`;
      expect(again.map((r) => r.attempts)).toEqual([2, 2]);
      // Replay returns the failed ones to pending.
      const replay = await v1("POST", "/inbound-events/replay", { source: "work", status: "failed" });
      expect(replay.json).toEqual({ matched: 2, pending: 2, relayed: 0, failed: 0 });
    } finally {
      w1.release();
    }
  });

  it("refuse an unknown slug and a stuck_after short enough to take rows other workers hold", async () => {
    await source({ slug: "strict", verify: "none" });
    await expect(db.sql`select * from webhooks.inbound_claim('nope-typo', 10)`).rejects.toThrow(/source_slug: no inbound source 'nope-typo'/);
    await expect(db.sql`select * from webhooks.inbound_claim('strict', 10, interval '0 seconds')`).rejects.toThrow(/stuck_after: expected at least 1 minute/);
  });

  it("see a deleted source's unprocessed events failed, and a reused slug without them", async () => {
    await source({ slug: "gone", verify: "none" });
    expect((await send("/in/gone", '{"a":1}')).status).toBe(200);
    expect((await v1("DELETE", "/inbound-sources/gone")).status).toBe(204);
    const [old] = await db.sql<{ status: string; last_error: string }[]>`
      select e.status, e.last_error from webhooks.inbound_events e join webhooks.inbound_sources s on s.id = e.source_id where s.slug = 'gone'`;
    expect(old).toEqual({ status: "failed", last_error: "the source was deleted before this event was processed" });
    await source({ slug: "gone", verify: "none" });
    const listed = await v1("GET", "/inbound-events?source=gone");
    expect((listed.json as { items: unknown[] }).items).toHaveLength(0);
    expect(await db.sql`select * from webhooks.inbound_claim('gone', 10)`).toHaveLength(0);
  });

  it("derives relay types emit() accepts, or null", async () => {
    const names: [string | null, string | null][] = [
      ["orders/create", "inbound.shop.orders.create"],
      ["invoice.paid", "inbound.shop.invoice.paid"],
      ["contact created!", "inbound.shop.contact_created_"],
      ["..a..b..", "inbound.shop.a.b"],
      [null, "inbound.shop"],
      ["", "inbound.shop"],
      ["...", null],
    ];
    for (const [name, type] of names) {
      const [r] = await db.sql<{ t: string | null }[]>`select webhooks.inbound_relay_type('inbound.shop', ${name}) as t`;
      expect([name, r?.t]).toEqual([name, type]);
    }
  });

  it("NOTIFYs webhooks_inbound with the slug", async () => {
    const got: string[] = [];
    const listener = await db.sql.listen("webhooks_inbound", (p) => got.push(p));
    try {
      expect((await send("/in/work", "{}")).status).toBe(200);
      for (let i = 0; i < 50 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(got).toContain("work");
    } finally {
      await listener.unlisten();
    }
  });
});

describe("/v1/inbound-sources", () => {
  it("is tenant-scoped: another tenant's source is 404, and secrets never appear", async () => {
    const acme = (await createKey(db, { tenant: "acme", name: "acme" })).key;
    const globex = (await createKey(db, { tenant: "globex", name: "globex" })).key;
    const secret = `acme-secret-${randomBytes(16).toString("hex")}`;
    const created = await source({ slug: "acme-in", verify: "api_key", secrets: [secret] }, acme);
    expect(created.tenant).toBe("acme");
    expect(created.secret).toBeNull();
    expect(JSON.stringify(created)).not.toContain(secret);
    expect(created.secret_hints).toEqual([`…${secret.slice(-4)}`]);
    expect((await v1("GET", `/inbound-sources/${String(created.id)}`, undefined, globex)).status).toBe(404);
    expect((await v1("PATCH", `/inbound-sources/acme-in`, { enabled: false }, globex)).status).toBe(404);
    expect((await v1("DELETE", `/inbound-sources/acme-in`, undefined, globex)).status).toBe(404);
    const list = await v1("GET", "/inbound-sources", undefined, globex);
    expect(list.json?.items).toEqual([]);
    const mine = await v1("GET", "/inbound-sources", undefined, acme);
    expect((mine.json?.items as unknown[]).length).toBe(1);
    expect(mine.text).not.toContain(secret);
    const all = await v1("GET", "/inbound-sources?limit=1000");
    expect(all.text).not.toContain(secret);
    // A tenant key cannot make a source for another tenant.
    expect((await v1("POST", "/inbound-sources", { slug: "x-globex", verify: "none", tenant: "globex" }, acme)).status).toBe(400);
  });

  it("generates a secret once when none is given, and refuses bad input with 4xx, writing nothing", async () => {
    const created = await source({ slug: "gen-std", verify: "standard" });
    expect(String(created.secret)).toMatch(/^whsec_/);
    const shown = await v1("GET", "/inbound-sources/gen-std");
    expect(shown.text).not.toContain(String(created.secret));
    const [{ n: before } = { n: 0 }] = await db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.inbound_sources`;
    const bad: Record<string, unknown>[] = [
      { slug: "Bad Slug", verify: "none" },
      { slug: "s1", verify: "stripe" },
      { slug: "s2", verify: "none", secrets: ["x"] },
      { slug: "s3", verify: "standard", secrets: ["not-whsec"] },
      { slug: "s4", verify: "api_key", secrets: ["a\u0000b"] },
      { slug: "s5", verify: "api_key", secrets: ["\ud800"] },
      { slug: "s6", verify: "none", max_body_bytes: 2 ** 53 + 1 },
      { slug: "s7", verify: "hmac", secrets: ["k"] },
      { slug: "s8", verify: "none", relay_prefix: "in.*" },
      { slug: "s9", verify: "none", dedupe: "body:x" },
      { slug: "gen-std", verify: "none" },
      { slug: "s10", verify: "nonsense" },
    ];
    for (const b of bad) {
      const r = await v1("POST", "/inbound-sources", b);
      expect([b.slug, r.status >= 400 && r.status < 500]).toEqual([b.slug, true]);
      expect(r.json).toMatchObject({ error: { code: expect.any(String) } });
    }
    const [{ n: after } = { n: 0 }] = await db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.inbound_sources`;
    expect(after).toBe(before);
  });

  it("lists and shows inbound events with filters, tenant-scoped", async () => {
    const list = await v1("GET", "/inbound-events?source=crm&event=contact.*&limit=5");
    expect(list.status).toBe(200);
    const items = list.json?.items as { source_slug: string; event_name: string }[];
    expect(items.length).toBeGreaterThan(0);
    expect(items.every((e) => e.source_slug === "crm" && e.event_name.startsWith("contact."))).toBe(true);
    const one = await v1("GET", `/inbound-events/${(items[0] as unknown as { id: string }).id}`);
    expect(one.json).toMatchObject({ source_slug: "crm", body_text: expect.stringContaining("contact") });
    const globex = (await createKey(db, { tenant: "globex", name: "globex 2" })).key;
    expect((await v1("GET", `/inbound-events/${(items[0] as unknown as { id: string }).id}`, undefined, globex)).status).toBe(404);
    expect((await v1("GET", "/inbound-events?status=nope")).status).toBe(400);
    expect((await v1("GET", "/inbound-events/abc")).status).toBe(404);
  });
});

describe("pruning", () => {
  it("deletes done and failed events processed before the cut-off, never pending ones, then deleted sources left empty", async () => {
    const s = await source({ slug: "old", verify: "none" });
    for (let i = 0; i < 3; i++) expect((await send("/in/old", `{"i":${i}}`)).status).toBe(200);
    await db.sql`update webhooks.inbound_events set status = 'done', processed_at = now() - interval '40 days'
                  where id in (select id from webhooks.inbound_events where source_id = ${String(s.id)} order by id limit 2)`;
    await db.sql`update webhooks.inbound_events set status = 'failed' where id in (
                  select id from webhooks.inbound_events where source_id = ${String(s.id)} order by id limit 1)`;
    const cutoff = new Date(Date.now() - 30 * 86400_000);
    const dry = await prune(db, { olderThan: cutoff, dryRun: true });
    expect(dry).toMatchObject({ inbound_events: 2, inbound_sources: 0 });
    const done = await prune(db, { olderThan: cutoff, dryRun: false });
    expect(done).toMatchObject({ inbound_events: 2, inbound_sources: 0 });
    expect(await eventCount("old")).toBe(1);
    // Deleted with a pending event left: the source stays until that event is processed and pruned.
    expect((await v1("DELETE", "/inbound-sources/old")).status).toBe(204);
    await db.sql`update webhooks.inbound_sources set deleted_at = now() - interval '40 days' where id = ${String(s.id)}`;
    expect(await prune(db, { olderThan: cutoff, dryRun: false })).toMatchObject({ inbound_events: 0, inbound_sources: 0 });
    await db.sql`update webhooks.inbound_events set status = 'done', processed_at = now() - interval '40 days' where source_id = ${String(s.id)}`;
    expect(await prune(db, { olderThan: cutoff, dryRun: true })).toMatchObject({ inbound_events: 1, inbound_sources: 1 });
    expect(await prune(db, { olderThan: cutoff, dryRun: false })).toMatchObject({ inbound_events: 1, inbound_sources: 1 });
    const [left] = await db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.inbound_sources where id = ${String(s.id)}`;
    expect(left?.n).toBe(0);
  });
});
