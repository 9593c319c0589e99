// Payloads per webhook: presets (classic, thin, slack, discord), JSONata templates with their
// guards, the body rendered once and stored (retries and replays send the same bytes), previews
// and the event catalog. Real Postgres, a real dispatcher, real HTTP receivers, the real binary.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, emptyWebhookTables, type TestDatabase } from "./helpers/db";
import { startReceiver, type Receiver, type ReceivedRequest } from "./helpers/receiver";
import { runDispatcher, settled, waitUntil, type RunningDispatcher } from "./helpers/pipeline";
import { startApi, type Api } from "./helpers/api";
import { runCli, runJson } from "./helpers/cli";

let t: TestDatabase;
let rx: Receiver;
let other: Receiver;
let dispatcher: RunningDispatcher;
let api: Api;
const dir = mkdtempSync(join(tmpdir(), "pgw-payloads-"));

const FAST_RETRY = { max_attempts: 3, strategy: "schedule", delays_ms: [1000, 1000] };

beforeAll(async () => {
  t = await createTestDatabase();
  rx = await startReceiver();
  other = await startReceiver();
  await t.sql`
    create table public.deals (
      id bigint primary key, account text not null, name text, stage text, amount numeric, owner_id int, note text)`;
  await t.sql`select webhooks.track_table('public.deals', event_prefix => 'deal', tenant_column => 'account')`;
  await t.sql`insert into webhooks.tenants (id, name, slug, metadata) values ('acct_1', 'Acme Inc.', 'acme', '{"plan": "pro"}')`;
  dispatcher = await runDispatcher(t.url);
  api = await startApi({}, t);
});
afterAll(async () => {
  await api?.close();
  await dispatcher?.stop();
  await rx?.close();
  await other?.close();
  await t?.close();
});
beforeEach(async () => {
  await emptyWebhookTables(t.sql);
  await t.sql`delete from public.deals`;
  await t.sql`delete from webhooks.outbox`;
  await t.sql`select webhooks.set_tenant_source(null)`;
  for (const r of [rx, other]) {
    r.requests.length = 0;
    r.respond({ status: 200 });
  }
});

async function createWebhook(body: Record<string, unknown>): Promise<{ id: string; preview: { body: string | null; error: string | null }[] }> {
  const res = await api.call("POST", "/v1/webhooks", { body: { url: rx.url, events: ["deal.*"], retry: FAST_RETRY, ...body } });
  if (res.statusCode !== 201) throw new Error(`create answered ${res.statusCode}: ${res.body}`);
  return res.json() as { id: string; preview: { body: string | null; error: string | null }[] };
}

const json = (r: ReceivedRequest | undefined) => JSON.parse(r?.body ?? "null") as Record<string, unknown>;

/** The lead guide's Express handler, as its receivers run it: switch on `event`, log `metadata.delivery_id`. */
function leadGuideHandler(body: Record<string, unknown>): { event: string; deliveryId: string } {
  const event = body.event;
  const metadata = body.metadata as { delivery_id?: unknown } | undefined;
  if (typeof event !== "string") throw new Error("KeyError: 'event'");
  if (typeof metadata?.delivery_id !== "string") throw new Error("KeyError: 'delivery_id'");
  return { event, deliveryId: metadata.delivery_id };
}

describe("the classic preset", () => {
  it("gives the lead guide's handler every event: event, changes, organization and metadata with the delivery id", async () => {
    const w = await createWebhook({ name: "crm", payload: { preset: "classic" } });
    await t.sql`insert into public.deals (id, account, name, stage, amount) values (1, 'acct_1', 'Big deal', 'lead', 100)`;
    await t.sql`update public.deals set stage = 'won' where id = 1`;
    await t.sql`delete from public.deals where id = 1`;
    const reqs = await rx.waitFor(3);
    const seen = reqs.map((r) => ({ ...leadGuideHandler(json(r)), header: r.headers["x-webhook-delivery-id"] }));
    expect(seen.map((s) => s.event)).toEqual(["deal.created", "deal.updated", "deal.deleted"]);
    for (const s of seen) expect(s.deliveryId).toBe(s.header);
    const updated = json(reqs[1]);
    expect(updated).toMatchObject({
      event: "deal.updated",
      data: { id: 1, stage: "won", name: "Big deal" },
      changes: { stage: "won" },
      organization: { id: "acct_1", name: "Acme Inc.", slug: "acme" },
      metadata: { webhook_id: w.id, webhook_name: "crm", event_id: reqs[1]?.headers["webhook-id"] },
    });
    expect(Object.keys(updated)).toEqual(["event", "timestamp", "data", "changes", "organization", "metadata"]);
    expect(json(reqs[0]).changes).toEqual({});
    // Signed over the exact bytes, which stringify back to themselves.
    for (const r of reqs) expect(JSON.stringify(JSON.parse(r.body))).toBe(r.body);
  });

  it("reads organization from the app's own table once pointed at it, and null without a record", async () => {
    await t.sql`create table if not exists public.orgs (id text primary key, name text, slug text)`;
    await t.sql`insert into public.orgs values ('acct_2', 'Globex', 'globex') on conflict do nothing`;
    await t.sql`select webhooks.set_tenant_source('public.orgs')`;
    await createWebhook({ payload: { preset: "classic" } });
    await t.sql`insert into public.deals (id, account, name) values (2, 'acct_2', 'x'), (3, 'acct_none', 'y')`;
    const reqs = await rx.waitFor(2);
    const byId = new Map(reqs.map((r) => [(json(r).data as { id: number }).id, json(r)]));
    expect(byId.get(2)?.organization).toEqual({ id: "acct_2", name: "Globex", slug: "globex" });
    expect(byId.get(3)?.organization).toBeNull();
  });
});

describe("the thin, slack and discord presets", () => {
  it("thin carries only the row's primary key", async () => {
    await createWebhook({ payload: { preset: "thin" } });
    await t.sql`insert into public.deals (id, account, name, note) values (7, 'acct_1', 'secret name', 'private')`;
    const [r] = await rx.waitFor(1);
    const body = json(r);
    expect(body).toEqual({ id: r?.headers["webhook-id"], type: "deal.created", timestamp: expect.any(String), data: { id: 7 } });
  });

  it("thin carries every column of a composite primary key, and nothing else", async () => {
    await t.sql`create table if not exists public.line_items (order_id int, line int, sku text, qty int, primary key (order_id, line))`;
    await t.sql`select webhooks.track_table('public.line_items', event_prefix => 'line_item')`;
    await api.call("POST", "/v1/webhooks", { body: { url: other.url, events: ["line_item.*"], payload: { preset: "thin" } } });
    await t.sql`insert into public.line_items values (10, 2, 'SKU-1', 3)`;
    const [r] = await other.waitFor(1);
    expect(json(r).data).toEqual({ line: 2, order_id: 10 });
  });

  it("slack gets a one-line {text} summary and discord a {content} of at most 2,000 characters", async () => {
    await createWebhook({ payload: { preset: "slack" } });
    const d = await api.call("POST", "/v1/webhooks", { body: { url: other.url, events: ["deal.updated"], payload: { preset: "discord" } } });
    expect(d.statusCode).toBe(201);
    await t.sql`insert into public.deals (id, account, stage, note) values (9, 'acct_1', 'lead', 'short')`;
    await t.sql`update public.deals set stage = 'won', note = ${"@everyone <b>\n".repeat(500)} where id = 9`;
    const [, slackUpdate] = await rx.waitFor(2);
    const text = json(slackUpdate).text as string;
    expect(Object.keys(json(slackUpdate))).toEqual(["text"]);
    expect(text).toMatch(/^\*deal\.updated\* · id 9 · /);
    expect(text).toContain("stage: lead → won");
    expect(text).not.toContain("\n");
    expect(text).not.toContain("<b>"); // escaped: Slack would read it as markup
    const [discord] = await other.waitFor(1);
    const body = json(discord);
    expect((body.content as string).length).toBeLessThanOrEqual(2000);
    expect(body.content).toMatch(/^\*\*deal\.updated\*\* · id 9 · /);
    expect(body.allowed_mentions).toEqual({ parse: [] });
  });
});

describe("templates", () => {
  it("build any JSON from the event, the webhook, the delivery and the organization; exact numbers stay their digits", async () => {
    const template =
      '{"kind": type, "deal": data.name, "amount": data.amount, "id": data.id, "org": $organization.slug, ' +
      '"plan": $organization.metadata.plan, "hook": $webhook.name, "delivery": $delivery.id, "changed": $keys(changes)}';
    const w = await createWebhook({ name: "tpl", payload: { template } });
    expect(w.preview.length).toBeGreaterThan(0);
    expect(w.preview[0]?.error).toBeNull();
    await t.sql`insert into public.deals (id, account, name, amount) values (9007199254740993, 'acct_1', 'Huge', 12345678901234567890.12)`;
    await t.sql`update public.deals set name = 'Huger' where id = 9007199254740993`;
    const [created, updated] = await rx.waitFor(2);
    expect(created?.body).toBe(
      `{"kind":"deal.created","deal":"Huge","amount":"12345678901234567890.12","id":"9007199254740993","org":"acme",` +
        `"plan":"pro","hook":"tpl","delivery":"${created?.headers["x-webhook-delivery-id"]}"}`,
    );
    expect(json(updated)).toMatchObject({ kind: "deal.updated", deal: "Huger", changed: "name" });
  });

  it("with big_numbers number, carry Postgres's digits as JSON numbers", async () => {
    await createWebhook({ big_numbers: "number", payload: { template: '{"id": data.id, "label": "deal " & data.id}' } });
    await t.sql`insert into public.deals (id, account) values (9007199254740993, 'acct_1')`;
    const [r] = await rx.waitFor(1);
    expect(r?.body).toBe('{"id":9007199254740993,"label":"deal 9007199254740993"}');
  });

  it("refuse a compile error with its position, in the documented error shape, writing nothing", async () => {
    const res = await api.call("POST", "/v1/webhooks", { body: { url: rx.url, events: ["*"], payload: { template: '{"a": }' } } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      error: { code: "invalid_input", message: expect.stringMatching(/^payload\.template: syntax error at position 7: /), details: [{ path: "payload.template" }] },
    });
    expect((await t.sql`select count(*)::int as n from webhooks.subscriptions`)[0]?.n).toBe(0);
  });

  it.each([
    ["infinite recursion", "( $f := function($n){ $f($n + 1) }; $f(0) )", /ran past 50000 evaluation steps/],
    ["deep recursion", "( $f := function($n){ 1 + $f($n + 1) }; $f(0) )", /Stack overflow/],
    ["a huge $pad", '$pad("", 200000000, "x")', /\$pad would exceed/],
    ["deep nesting", "[".repeat(3000) + "1" + "]".repeat(3000), /nested/],
    ["a huge range literal", "$count([1..100000000])", /range literals are limited/],
    ["a huge computed range", "( $n := 100000000; $count([1..$n]) )", /range operator|sequence/],
    ["$join of a huge separator", '( $n := 5000; $join([1..$n].$string(), $pad("", 100000, "y")) )', /\$join would exceed|evaluation steps/],
    ["$eval", '$eval("1 + 1")', /\$eval is not available/],
  ])("refuse %s when saved", async (_what, template, message) => {
    const res = await api.call("POST", "/v1/webhooks", { body: { url: rx.url, events: ["deal.*"], payload: { template } } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe("invalid_input");
    expect(res.json().error.message).toMatch(message);
    expect(res.json().error.details[0].path).toBe("payload.template");
  });

  it("cut off at render (data-driven), fail that delivery with no request, and harm no other webhook's deliveries", async () => {
    // Harmless on the samples rendered when saved; hostile for the rows below.
    const hostile = await createWebhook({
      payload: { template: 'data.note = "loop" ? ( $f := function($n){ $f($n + 1) }; $f(0) ) : data.note = "pad" ? $pad("", data.owner_id * 100000, "x") : {"ok": data.id}' },
    });
    const std = await api.call("POST", "/v1/webhooks", { body: { url: other.url, events: ["deal.*"] } });
    expect(std.statusCode).toBe(201);
    await t.sql`insert into public.deals (id, account, note, owner_id) values (1, 'acct_1', 'loop', 1), (2, 'acct_1', 'pad', 2000), (3, 'acct_1', 'fine', 1)`;
    expect(await settled(t.sql, 6)).toEqual({ succeeded: 4, failed: 2 });
    expect((await other.waitFor(3)).map((r) => (json(r).data as { id: number }).id).sort()).toEqual([1, 2, 3]);
    expect(rx.requests.map((r) => r.body)).toEqual(['{"ok":3}']);
    const failed = await t.sql<{ last_error: string; status_code: number | null; attempts: number; request_body: string | null }[]>`
      select d.last_error, a.response_status as status_code, d.attempts, a.request_body
        from webhooks.deliveries d join webhooks.attempts a on a.delivery_id = d.id
       where d.subscription_id = ${hostile.id} and d.status = 'failed' order by d.last_error`;
    expect(failed).toHaveLength(2);
    const errors = failed.map((f) => f.last_error);
    expect(errors).toContainEqual(expect.stringMatching(/^could not render the body, so no request was sent: template cut off: \$pad would exceed/));
    expect(errors).toContainEqual(
      expect.stringMatching(/^could not render the body, so no request was sent: template cut off: the template ran past 50000 evaluation steps/),
    );
    expect(failed.every((f) => f.status_code === null && f.attempts === 1)).toBe(true);
  });

  it("that block in one built-in (a backtracking regex) are ended with their worker, never stall other deliveries, and are suspended after two", async () => {
    // Fast on the sample rendered when saved; catastrophic backtracking on the rows below.
    const hostile = await createWebhook({ payload: { template: '{"m": $match(data.note, /(a+)+$/)}' } });
    await api.call("POST", "/v1/webhooks", { body: { url: other.url, events: ["deal.*"] } });
    const evil = `${"a".repeat(40)}!`;
    await t.sql`insert into public.deals (id, account, note) values (1, 'acct_1', ${evil})`;
    await t.sql`insert into public.deals (id, account, note) values (2, 'acct_1', 'fine')`;
    // The other webhook gets both rows while the first render is still stuck in its worker.
    await other.waitFor(2);
    const [stuck] = await t.sql<{ status: string }[]>`select status from webhooks.deliveries where subscription_id = ${hostile.id} order by created_at limit 1`;
    expect(stuck?.status).not.toBe("failed");
    await t.sql`insert into public.deals (id, account, note) values (3, 'acct_1', ${evil})`;
    await waitUntil(async () => {
      const [c] = await t.sql<{ n: number }[]>`select count(*)::int as n from webhooks.deliveries where subscription_id = ${hostile.id} and status = 'failed'`;
      return (c?.n ?? 0) >= 2;
    }, 20_000);
    await t.sql`insert into public.deals (id, account, note) values (4, 'acct_1', ${evil})`;
    await waitUntil(async () => {
      const [c] = await t.sql<{ n: number }[]>`select count(*)::int as n from webhooks.deliveries where subscription_id = ${hostile.id} and status = 'failed'`;
      return (c?.n ?? 0) >= 3;
    }, 20_000);
    const failed = await t.sql<{ id: string; last_error: string }[]>`
      select o.data->>'id' as id, d.last_error from webhooks.deliveries d join webhooks.outbox o on o.id = d.outbox_id
       where d.subscription_id = ${hostile.id} and d.status = 'failed' order by o.id`;
    expect(failed.map((f) => f.id)).toEqual(["1", "3", "4"]);
    expect(failed[0]?.last_error).toMatch(/template cut off: one step of the template ran past 3000 ms/);
    expect(failed[1]?.last_error).toMatch(/template cut off: one step of the template ran past 3000 ms/);
    expect(failed[2]?.last_error).toMatch(/template suspended for 10 more min: it was cut off 2 times/);
    // Row 2 rendered for the hostile webhook too (its note does not backtrack), in a fresh worker.
    expect(rx.requests.map((r) => r.body)).toEqual(['{}']); // no match: JSONata leaves the field out
    expect(await other.waitFor(4)).toHaveLength(4);
  }, 60_000);

  it("that exhaust memory lose only their worker's heap, and fail that delivery", async () => {
    // 42 copies of 250,000 characters on the sample; 3,500 (about 1.7 GB) for the row below.
    const w = await createWebhook({ payload: { template: '($s := $pad("", 250000, "€"); {"n": $count([1..data.owner_id].$uppercase($s))})' } });
    expect(w.preview[0]?.error).toBeNull();
    await t.sql`insert into public.deals (id, account, owner_id) values (1, 'acct_1', 3500), (2, 'acct_1', 3)`;
    await waitUntil(async () => {
      const [c] = await t.sql<{ n: number }[]>`select count(*)::int as n from webhooks.deliveries where status in ('failed', 'succeeded')`;
      return (c?.n ?? 0) >= 2;
    }, 30_000);
    const rows = await t.sql<{ id: string; status: string; last_error: string | null }[]>`
      select o.data->>'id' as id, d.status, d.last_error from webhooks.deliveries d join webhooks.outbox o on o.id = d.outbox_id order by o.id`;
    expect(rows[0]).toMatchObject({ id: "1", status: "failed", last_error: expect.stringMatching(/template cut off: the template used more than 192 MB of memory/) });
    expect(rows[1]).toMatchObject({ id: "2", status: "succeeded" });
    expect(rx.requests.map((r) => r.body)).toEqual(['{"n":3}']);
  }, 60_000);

  it("cannot splice text into a body through the marks of exact numbers (big_numbers number)", async () => {
    const template = '{"whole": data.amount, "inj": $substringBefore(data.amount, ":") & ":1, \\"evil\\": true}"}';
    await createWebhook({ big_numbers: "number", payload: { template } });
    await t.sql`insert into public.deals (id, account, amount) values (1, 'acct_1', 9007199254740993)`;
    const [r] = await rx.waitFor(1);
    const body = JSON.parse(r?.body ?? "") as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(["whole", "inj"]);
    expect(r?.body).toMatch(/^\{"whole":9007199254740993,"inj":"/);
    expect(typeof body.inj).toBe("string");
  });

  it("keep the body limit for the body as sent, escapes included", async () => {
    const before = await t.sql<{ n: number }[]>`select count(*)::int as n from webhooks.subscriptions`;
    const res = await api.call("POST", "/v1/webhooks", {
      body: { url: rx.url, events: ["deal.*"], payload: { template: '{"a": $pad("", 250000, $decodeUrlComponent("%01"))}' } },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: { code: "invalid_input", message: expect.stringMatching(/^payload\.template: .*at most 262144 are allowed/) } });
    expect(await t.sql<{ n: number }[]>`select count(*)::int as n from webhooks.subscriptions`).toEqual(before);
  });

  it("that fail on an event fail its delivery at once with the error in its log, with no HTTP attempt", async () => {
    const w = await createWebhook({ payload: { template: 'data.stage = "bad" ? $error("stage bad is not for this receiver") : {"id": data.id}' } });
    await t.sql`insert into public.deals (id, account, stage) values (1, 'acct_1', 'bad')`;
    expect(await settled(t.sql, 1)).toEqual({ failed: 1 });
    expect(rx.requests).toHaveLength(0);
    const [d] = (await api.call("GET", `/v1/webhooks/${w.id}/deliveries`)).json().items as { id: string; last_error: string }[];
    expect(d?.last_error).toMatch(/template failed.*stage bad is not for this receiver/);
    const detail = (await api.call("GET", `/v1/deliveries/${d?.id}`)).json() as { attempts: { response_status: number | null; error: string }[] };
    expect(detail.attempts).toEqual([expect.objectContaining({ response_status: null, error: expect.stringMatching(/template failed/) })]);
  });
});

describe("a delivery's body", () => {
  it("is rendered once: a retry and a replay send the first attempt's bytes after the template changed; new events get the new one", async () => {
    const w = await createWebhook({ payload: { template: '{"v": 1, "id": data.id, "at": $millis()}' } });
    rx.respond((_req, i) => ({ status: i === 0 ? 500 : 200 }));
    await t.sql`insert into public.deals (id, account) values (1, 'acct_1')`;
    const [first] = await rx.waitFor(1);
    const [delivery] = await waitUntil(async () => {
      const rows = await t.sql<{ id: string; body: string | null }[]>`select id, body from webhooks.deliveries where body is not null`;
      return rows.length > 0 ? rows : null;
    });
    expect(delivery?.body).toBe(first?.body);
    const patched = await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { payload: { template: '{"v": 2, "id": data.id}' } } });
    expect(patched.statusCode).toBe(200);
    expect(patched.json().preview[0].body).toMatch(/^\{"v":2,/);
    const [, retry] = await rx.waitFor(2, 10_000);
    expect(retry?.body).toBe(first?.body);
    expect(retry?.headers["webhook-id"]).toBe(first?.headers["webhook-id"]);
    await settled(t.sql, 1);
    expect((await api.call("POST", `/v1/deliveries/${delivery?.id}/retry`)).statusCode).toBeLessThan(300);
    const [, , replay] = await rx.waitFor(3, 10_000);
    expect(replay?.body).toBe(first?.body);
    await t.sql`insert into public.deals (id, account) values (2, 'acct_1')`;
    const [, , , fresh] = await rx.waitFor(4, 10_000);
    expect(fresh?.body).toBe('{"v":2,"id":2}');
    await settled(t.sql, 2);
    // Stored once: the attempts keep no copy, and the attempt log still shows the body as sent.
    const copies = await t.sql`select count(*)::int as n from webhooks.attempts where request_body is not null`;
    expect(copies[0]?.n).toBe(0);
    const log = (await api.call("GET", `/v1/deliveries/${delivery?.id}`)).json() as { attempts: { request_body: string }[] };
    expect(log.attempts.map((a) => a.request_body)).toEqual([first?.body, first?.body, first?.body]);
  });

  it("carries X-Webhook-Timestamp (ISO 8601, the signing second) when the webhook asks for it (API and CLI)", async () => {
    const w = await createWebhook({ iso_timestamp_header: true });
    const env = { DATABASE_URL: t.url, WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true" };
    const off = await runJson<{ iso_timestamp_header: boolean }>(["webhooks", "update", w.id, "--no-iso-timestamp-header"], { env });
    expect(off.iso_timestamp_header).toBe(false);
    const on = await runJson<{ iso_timestamp_header: boolean }>(["webhooks", "update", w.id, "--iso-timestamp-header"], { env });
    expect(on.iso_timestamp_header).toBe(true);
    await t.sql`insert into public.deals (id, account) values (1, 'acct_1')`;
    const [r] = await rx.waitFor(1);
    const iso = r?.headers["x-webhook-timestamp"];
    expect(iso).toBe(new Date(Number(r?.headers["webhook-timestamp"]) * 1000).toISOString());
  });
});

describe("previews", () => {
  it("render a body for a real event through the API and the CLI, sending nothing", async () => {
    const w = await createWebhook({ payload: { preset: "classic" } });
    await api.call("PATCH", `/v1/webhooks/${w.id}`, { body: { is_active: false } });
    await t.sql`insert into public.deals (id, account, name) values (5, 'acct_1', 'Preview me')`;
    const [event] = await waitUntil(async () => {
      const rows = await t.sql<{ event_id: string }[]>`select event_id from webhooks.outbox where dispatched_at is not null`;
      return rows.length > 0 ? rows : null;
    });
    const res = await api.call("POST", `/v1/webhooks/${w.id}/preview`, { body: { event_id: event?.event_id } });
    expect(res.statusCode).toBe(200);
    const [item] = res.json().items as { event_id: string; sample: boolean; body: string }[];
    expect(item).toMatchObject({ event_id: event?.event_id, sample: false, type: "deal.created" });
    expect(JSON.parse(item?.body ?? "")).toMatchObject({ event: "deal.created", data: { name: "Preview me" }, organization: { slug: "acme" } });
    const recent = (await api.call("POST", `/v1/webhooks/${w.id}/preview`)).json().items as unknown[];
    expect(recent).toHaveLength(1);
    const cli = await runJson<{ items: { body: string }[] }>(["webhooks", "preview", w.id, "--event", event?.event_id ?? ""], { env: { DATABASE_URL: t.url } });
    expect(cli.items[0]?.body).toBe(item?.body);
    expect((await api.call("POST", `/v1/webhooks/${w.id}/preview`, { body: { event_id: "00000000-0000-4000-8000-000000000000" } })).statusCode).toBe(404);
    expect(rx.requests).toHaveLength(0);
  });
});

describe("the CLI", () => {
  it("sets a preset and a template from a file, shows the preview, and refuses a compile error naming the position", async () => {
    const env = { DATABASE_URL: t.url, WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true" };
    const created = await runJson<{ id: string; payload: unknown; preview: unknown[] }>(
      ["webhooks", "create", "--url", rx.url, "--events", "deal.*", "--payload-preset", "slack"],
      { env },
    );
    expect(created.payload).toEqual({ preset: "slack" });
    expect(created.preview.length).toBeGreaterThan(0);
    const file = join(dir, "t.jsonata");
    writeFileSync(file, '{"event": type, "id": data.id}');
    const updated = await runJson<{ payload: unknown; preview: { body: string }[] }>(["webhooks", "update", created.id, "--payload-template", file], { env });
    expect(updated.payload).toEqual({ template: '{"event": type, "id": data.id}' });
    expect(JSON.parse(updated.preview[0]?.body ?? "{}")).toHaveProperty("event");
    const shown = await runCli(["webhooks", "show", created.id], { env });
    expect(shown.stdout).toMatch(/payload:\s+template \(30 characters\)/);
    writeFileSync(file, "{ 1 + }");
    const bad = await runCli(["webhooks", "update", created.id, "--payload-template", file], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--payload-template \(payload\.template\): syntax error at position 7: /);
    const bogus = await runCli(["webhooks", "update", created.id, "--payload-preset", "fancy"], { env });
    expect(bogus.code).toBe(2);
  });
});

describe("the event catalog", () => {
  it("lists every type tracked tables produce, with a JSON Schema of the data and an example body per preset, through the API and the CLI", async () => {
    const res = await api.call("GET", "/v1/event-types");
    expect(res.statusCode).toBe(200);
    const items = res.json().items as { type: string; data_schema: { properties: Record<string, unknown> }; examples: Record<string, unknown> }[];
    const updated = items.find((i) => i.type === "deal.updated");
    expect(items.map((i) => i.type)).toEqual(expect.arrayContaining(["deal.created", "deal.updated", "deal.deleted", "deal.truncated"]));
    expect(updated?.data_schema.properties).toMatchObject({
      id: { type: ["integer", "string"], pattern: "^-?[0-9]+$" },
      account: { type: "string" },
      name: { type: ["string", "null"] },
      amount: { type: ["number", "string", "null"] },
      owner_id: { type: ["integer", "null"] },
    });
    expect(Object.keys(updated?.examples ?? {})).toEqual(["standard", "classic", "thin", "slack", "discord"]);
    // The example changes a column other than the key and the tenant column (account): an update never changes its tenant.
    expect(updated?.examples.classic).toMatchObject({ event: "deal.updated", changes: { name: "Acme" }, metadata: expect.any(Object) });
    expect(updated?.examples.thin).toMatchObject({ data: { id: 42 } });
    const cli = await runJson<typeof items>(["event-types"], { env: { DATABASE_URL: t.url } });
    expect(cli.map((i) => i.type)).toEqual(items.map((i) => i.type));
    const one = await runCli(["event-types", "--type", "deal.updated"], { env: { DATABASE_URL: t.url } });
    expect(one.code).toBe(0);
    expect(one.stdout).toContain("data schema:");
    expect(one.stdout).toMatch(/^slack:\n  \{"text":"\*deal\.updated\*/m);
  });
});
