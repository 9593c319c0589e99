// Exact numbers end to end: a tracked table's bigint, numeric, double precision and jsonb values
// reach a real receiver, the attempt log, replays and test sends without changing, and the
// default body stays what JSON.stringify(JSON.parse(body)) gives back (n8n verifies that way).
import { createHmac } from "node:crypto";
import { createTestDatabase, emptyWebhookTables, type TestDatabase } from "./helpers/db";
import { startReceiver, type Receiver, type ReceivedRequest } from "./helpers/receiver";
import { insertWebhook, runDispatcher, settled, waitUntil, type RunningDispatcher } from "./helpers/pipeline";
import { startApi, type Api } from "./helpers/api";
import { runCli, runJson } from "./helpers/cli";
import { replayDeliveries } from "../src/services/deliveries";
import { ADMIN } from "../src/services/scope";
import { parseExact, ExactNumber } from "../src/delivery/event-json";

let t: TestDatabase;
let rx: Receiver;
let dispatcher: RunningDispatcher;
let api: Api;

const DOC =
  '{"n": 9007199254740993, "neg": -12345678901234567890.5, "small": 1.10, "deep": [[[18446744073709551615]]], ' +
  '"s": "9007199254740993", "text": "\\u0001 😀 line\\r\\nbreak \\"12345678901234567890\\"", "__proto__": {"x": 1}, "1": 2, ' +
  '"tiny": 0.000000000000000000001, "huge": 1e400, "denormal": 5e-324}';

beforeAll(async () => {
  t = await createTestDatabase();
  rx = await startReceiver();
  await t.sql`
    create table public.ledger (
      id bigint primary key, amount numeric(38,2), big numeric, ratio double precision, tags text[], doc jsonb, note text)`;
  await t.sql`select webhooks.track_table('public.ledger')`;
  dispatcher = await runDispatcher(t.url);
  api = await startApi({}, t);
});
afterAll(async () => {
  await api?.close();
  await dispatcher?.stop();
  await rx?.close();
  await t?.close();
});
beforeEach(async () => {
  await emptyWebhookTables(t.sql);
  await t.sql`delete from public.ledger`;
  await t.sql`delete from webhooks.outbox`;
  rx.requests.length = 0;
  rx.respond({ status: 200 });
});

async function insertRow(): Promise<void> {
  await t.sql`
    insert into public.ledger values (9007199254740993, 12345678901234567890.12, 123456789012345678901234567890, 1e308,
                                      '{vip,eu}', ${DOC}::text::jsonb, 'a "quoted" 12345678901234567890')`;
}

/** Byte for byte: what n8n's Code node signs is JSON.stringify of the parsed body. */
function expectStringifyRoundTrip(body: string): void {
  expect(JSON.stringify(JSON.parse(body))).toBe(body);
}

const exactData = {
  id: "9007199254740993",
  amount: "12345678901234567890.12",
  big: "123456789012345678901234567890",
  ratio: 1e308,
  tags: ["vip", "eu"],
  note: 'a "quoted" 12345678901234567890',
};

describe("bodies", () => {
  it("carry every number a double would change as a string of its exact digits, and stringify back to themselves", async () => {
    await insertWebhook(t.sql, { url: rx.url, events: ["ledger.created"], signature_scheme: "hex", secret: "n8n-shared-secret" });
    await insertRow();
    const [req] = await rx.waitFor(1);
    const body = req?.body ?? "";
    expectStringifyRoundTrip(body);
    // The hex signature checks out the way the CRM guide's n8n Code node computes it.
    const n8n = createHmac("sha256", "n8n-shared-secret").update(JSON.stringify(JSON.parse(body))).digest("hex");
    expect(req?.headers["x-webhook-signature"]).toBe(n8n);
    const data = (JSON.parse(body) as { data: Record<string, unknown> }).data;
    expect(data).toMatchObject(exactData);
    const doc = data.doc as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual(["1", "n", "s", "neg", "deep", "huge", "text", "tiny", "small", "denormal", "__proto__"]);
    expect(doc).toMatchObject({
      "1": 2,
      n: "9007199254740993",
      neg: "-12345678901234567890.5",
      small: 1.1,
      deep: [[["18446744073709551615"]]],
      s: "9007199254740993",
      text: '\u0001 😀 line\r\nbreak "12345678901234567890"',
      tiny: 1e-21,
      huge: "1" + "0".repeat(400),
      denormal: 5e-324,
    });
    expect(Object.getOwnPropertyDescriptor(doc, "__proto__")?.value).toEqual({ x: 1 });
    // The attempt log holds the very bytes sent.
    await settled(t.sql, 1);
    const [attempt] = await t.sql<{ request_body: string }[]>`select coalesce(a.request_body, d.body) as request_body from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id`;
    expect(attempt?.request_body).toBe(body);
  });

  it("carry Postgres's digits as JSON numbers with big_numbers number", async () => {
    const { id } = await insertWebhook(t.sql, { url: rx.url, events: ["ledger.created"] });
    await t.sql`update webhooks.subscriptions set big_numbers = 'number' where id = ${id}`;
    await insertRow();
    const [req] = await rx.waitFor(1);
    const body = req?.body ?? "";
    for (const raw of [
      '"id":9007199254740993',
      '"amount":12345678901234567890.12',
      '"big":123456789012345678901234567890',
      '"n":9007199254740993',
      '"neg":-12345678901234567890.5',
      '"deep":[[[18446744073709551615]]]',
      '"s":"9007199254740993"',
      `"huge":1${"0".repeat(400)}`,
      '"small":1.1',
    ]) {
      expect(body).toContain(raw);
    }
    // A lossless parser reads the exact values; a double-based one would not give the body back.
    const data = (parseExact(body).value as { data: Record<string, unknown> }).data;
    expect(data.id).toEqual(new ExactNumber("9007199254740993"));
    expect(JSON.stringify(JSON.parse(body))).not.toBe(body);
    await settled(t.sql, 1);
    const [attempt] = await t.sql<{ request_body: string }[]>`select coalesce(a.request_body, d.body) as request_body from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id`;
    expect(attempt?.request_body).toBe(body);
  });

  it("carry double precision as to_jsonb gives it: 1e308, -0 as 0, NaN and Infinity as strings", async () => {
    await insertWebhook(t.sql, { url: rx.url, events: ["ledger.created"] });
    await t.sql`
      insert into public.ledger (id, ratio, big) values
        (1, '-0', 'NaN'), (2, 'NaN', -0.0), (3, 'Infinity', 1e-400), (4, '-Infinity', 0.1), (5, '1.7976931348623157e308', 9007199254740992)`;
    const reqs = await rx.waitFor(5);
    const byId = new Map<unknown, Record<string, unknown>>();
    for (const r of reqs) {
      expectStringifyRoundTrip(r.body);
      const data = (JSON.parse(r.body) as { data: Record<string, unknown> }).data;
      byId.set(data.id, data);
    }
    expect(byId.get(1)).toMatchObject({ ratio: 0, big: "NaN" });
    expect(byId.get(2)).toMatchObject({ ratio: "NaN", big: 0 });
    expect(byId.get(3)).toMatchObject({ ratio: "Infinity", big: `0.${"0".repeat(399)}1` });
    expect(byId.get(4)).toMatchObject({ ratio: "-Infinity", big: 0.1 });
    expect(byId.get(5)).toMatchObject({ ratio: 1.7976931348623157e308, big: 9007199254740992 });
  });

  it("carry previous_attributes exactly too", async () => {
    await insertWebhook(t.sql, { url: rx.url, events: ["ledger.updated"] });
    await insertRow();
    await t.sql`update public.ledger set amount = 98765432109876543210.99 where id = 9007199254740993`;
    const [req] = await rx.waitFor(1);
    expectStringifyRoundTrip(req?.body ?? "");
    expect(JSON.parse(req?.body ?? "")).toMatchObject({
      data: { id: "9007199254740993", amount: "98765432109876543210.99" },
      previous_attributes: { amount: "12345678901234567890.12" },
    });
  });
});

describe("replays and test sends", () => {
  it("replay the very bytes of the first attempt", async () => {
    const { id } = await insertWebhook(t.sql, { url: rx.url, events: ["ledger.created"] });
    await insertRow();
    await settled(t.sql, 1);
    const r = await replayDeliveries(t, ADMIN, { webhook_id: id, status: "succeeded" });
    expect(r.queued).toBe(1);
    const reqs = await rx.waitFor(2);
    expect(reqs[1]?.body).toBe(reqs[0]?.body);
    expect(JSON.parse(reqs[1]?.body ?? "")).toMatchObject({ data: exactData });
  });

  it("keep the exact digits given to `webhooks test --data`, in either format", async () => {
    const asString = await insertWebhook(t.sql, { url: `${rx.url}/string`, events: ["*"] });
    const asNumber = await insertWebhook(t.sql, { url: `${rx.url}/number`, events: ["*"] });
    await t.sql`update webhooks.subscriptions set big_numbers = 'number' where id = ${asNumber.id}`;
    const data = '{"id": 9007199254740993, "amount": 12345678901234567890.12, "ok": 1.5}';
    const env = { DATABASE_URL: t.url, WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true" };
    for (const w of [asString, asNumber]) {
      const result = await runJson<{ ok: boolean }>(["webhooks", "test", w.id, "--data", data], { env });
      expect(result.ok).toBe(true);
    }
    const reqs = await rx.waitFor(2);
    const body = (path: string): string => reqs.find((r: ReceivedRequest) => r.path === path)?.body ?? "";
    expectStringifyRoundTrip(body("/string"));
    expect(JSON.parse(body("/string"))).toMatchObject({ data: { id: "9007199254740993", amount: "12345678901234567890.12", ok: 1.5 } });
    expect(body("/number")).toContain('"data":{"id":9007199254740993,"ok":1.5,"amount":12345678901234567890.12}');
  });

  it("keep the exact digits of a test send's data given to the API as JSON numbers", async () => {
    const { id } = await insertWebhook(t.sql, { url: rx.url, events: ["*"] });
    const res = await api.call("POST", `/v1/webhooks/${id}/test`, {
      raw: '{"data": {"id": 9007199254740993, "amount": 12345678901234567890.12, "one": 1.0000000000000001, "s": "9007199254740993", "n": 1.25, "big": 1e308, "e21": 1e21}}',
    });
    expect(res.statusCode).toBe(200);
    const [req] = await rx.waitFor(1);
    expectStringifyRoundTrip(req?.body ?? "");
    expect(JSON.parse(req?.body ?? "")).toMatchObject({
      data: { id: "9007199254740993", amount: "12345678901234567890.12", one: "1.0000000000000001", s: "9007199254740993", n: 1.25 },
    });
    // Numbers a double holds as written go in their shortest form, as to_jsonb gives them.
    expect(req?.body).toContain('"big":1e+308,"e21":1e+21');
  });
});

describe("filters over a tracked table", () => {
  it("compare big numbers exactly and look inside text[] columns with $contains and $all", async () => {
    const hooks = {
      exact: { "data.id": "9007199254740993" },
      neighbour: { "data.id": "9007199254740992" },
      amount: { "data.amount": { $gt: "12345678901234567890.11", $lt: "12345678901234567890.13" } },
      vip: { "data.tags": { $contains: "vip" } },
      vipEu: { "data.tags": { $all: ["vip", "eu"] } },
      vipUs: { "data.tags": { $all: ["vip", "us"] } },
      inList: { "data.tags": { $in: ["vip"] } },
      nested: { "data.doc.deep.0.0": { $contains: "18446744073709551615" } },
    };
    for (const [name, filter] of Object.entries(hooks)) {
      await insertWebhook(t.sql, { url: `${rx.url}/${name}`, events: ["ledger.created"], filter });
    }
    await insertRow();
    await t.sql`insert into public.ledger (id, tags) values (7, '{eu}'), (8, null), (9, '{}')`;
    await settled(t.sql, 1);
    await waitUntil(async () => (await t.sql`select 1 from webhooks.outbox where dispatched_at is null`).length === 0);
    const delivered = await t.sql<{ url: string; n: number }[]>`
      select s.url, count(*)::int as n from webhooks.deliveries d join webhooks.subscriptions s on s.id = d.subscription_id
       group by s.url order by s.url`;
    expect(Object.fromEntries(delivered.map((d) => [d.url.slice(rx.url.length + 1), d.n]))).toEqual({
      exact: 1,
      amount: 1,
      vip: 1,
      vipEu: 1,
      nested: 1,
    });
  });

  it("refuse a filter literal that JSON parsing rounded, naming its path", async () => {
    const res = await api.call("POST", "/v1/webhooks", {
      raw: `{"url": "${rx.url}", "events": ["*"], "filter": {"data.id": {"$eq": 9007199254740993}}}`,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      error: {
        code: "invalid_filter",
        details: [{ path: "filter.data.id.$eq", message: expect.stringContaining("write it as a string of its exact digits") }],
      },
    });
    expect(await t.sql`select count(*)::int as n from webhooks.subscriptions`).toEqual([{ n: 0 }]);
  });
});

describe("numbers a double would change, given as input", () => {
  const env = () => ({ DATABASE_URL: t.url, WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true" });

  it("are refused in a filter even when their double looks short (1.0000000000000001 is not 1), by the API and the CLI", async () => {
    for (const raw of [
      `{"url": "${rx.url}", "events": ["*"], "filter": {"data.v": {"$lt": 1.0000000000000001}}}`,
      `{"url": "${rx.url}", "events": ["*"], "filter": {"data.v": 1.0000000000000001}}`,
      `{"url": "${rx.url}", "events": ["*"], "filter": {"data.v": {"$in": [1, 0.30000000000000000001]}}}`,
    ]) {
      const res = await api.call("POST", "/v1/webhooks", { raw });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({
        error: { code: "invalid_filter", details: [{ path: expect.stringMatching(/^filter\.data\.v/), message: expect.stringContaining("write it as a string of its exact digits") }] },
      });
    }
    const cli = await runCli(["webhooks", "create", "--url", rx.url, "--events", "*", "--filter", '{"data.v": {"$lt": 1.0000000000000001}}'], { env: env() });
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain("--filter (filter.data.v.$lt): 1.0000000000000001 is beyond 2^53 or has more than 15 significant digits");
    expect(await t.sql`select count(*)::int as n from webhooks.subscriptions`).toEqual([{ n: 0 }]);
  });

  it("are refused, naming the field, where a setting takes a plain number (10.000000000000000001 is not 10)", async () => {
    const res = await api.call("POST", "/v1/webhooks", { raw: `{"url": "${rx.url}", "events": ["*"], "max_in_flight": 10.000000000000000001}` });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      error: { code: "invalid_input", details: [{ path: "max_in_flight", message: "expected a whole number of requests from 1 to 1000" }] },
    });
    expect(await t.sql`select count(*)::int as n from webhooks.subscriptions`).toEqual([{ n: 0 }]);
  });

  it("keep their digits in `pg-webhooks emit`, which refuses what Postgres cannot store with the field's path", async () => {
    const emitted = await runJson<{ event_id: string }>(
      ["emit", "inv.paid", '{"id": 9007199254740993, "n": 12345678901234567890.12, "deep": {"a": [123456789012345678901234567890]}, "one": 1.5}'],
      { env: env() },
    );
    const [row] = await t.sql<{ data: string }[]>`select data::text as data from webhooks.outbox where event_id = ${emitted.event_id}`;
    expect(row?.data).toBe('{"n": 12345678901234567890.12, "id": 9007199254740993, "one": 1.5, "deep": {"a": [123456789012345678901234567890]}}');
    const before = await t.sql`select count(*)::int as n from webhooks.outbox`;
    for (const [data, message] of [
      ['{"a": 1e400}', "a: expected a number within the double range"],
      ['{"a": "x\\u0000y"}', "a: "],
    ] as const) {
      const r = await runCli(["emit", "inv.bad", data], { env: env() });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(message);
    }
    expect(await t.sql`select count(*)::int as n from webhooks.outbox`).toEqual(before);
  });
});

describe("the big_numbers setting", () => {
  it("defaults to string, is set through the API and the CLI, and refuses other values", async () => {
    const created = await api.call("POST", "/v1/webhooks", { body: { url: rx.url, events: ["*"] } });
    expect(created.statusCode).toBe(201);
    const { id, big_numbers } = created.json() as { id: string; big_numbers: string };
    expect(big_numbers).toBe("string");
    const patched = await api.call("PATCH", `/v1/webhooks/${id}`, { body: { big_numbers: "number" } });
    expect(patched.json()).toMatchObject({ big_numbers: "number" });
    const bad = await api.call("PATCH", `/v1/webhooks/${id}`, { body: { big_numbers: "exact" } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: { details: [{ path: "big_numbers", message: 'expected big_numbers "string" or "number"' }] } });
    // A NUL is refused by the body-wide storable-text check before the enum, still naming the field.
    const nul = await api.call("PATCH", `/v1/webhooks/${id}`, { body: { big_numbers: "exact\u0000" } });
    expect(nul.statusCode).toBe(400);
    expect(nul.json()).toMatchObject({ error: { details: [{ path: "big_numbers" }] } });
    const env = { DATABASE_URL: t.url, WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true" };
    const viaCli = await runJson<{ big_numbers: string }>(["webhooks", "update", id, "--big-numbers", "string"], { env });
    expect(viaCli.big_numbers).toBe("string");
  });
});
