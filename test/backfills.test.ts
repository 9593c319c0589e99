// Backfills through the API and a running dispatcher: a tracked table's existing rows reach
// one webhook (and no other) once each, in key order, built as capture builds events; --where
// is checked before anything is written; tenant keys read only their tenant's rows; rows
// updated by writers during the backfill end, in commit order, with their newest state.
import postgres from "postgres";
import { startApi, type Api } from "./helpers/api";
import { startReceiver, type Receiver } from "./helpers/receiver";
import { runDispatcher, settled, waitUntil, type RunningDispatcher } from "./helpers/pipeline";

let api: Api;
let dispatcher: RunningDispatcher;
const receivers: Receiver[] = [];

interface BackfillBody {
  id: string;
  state: string;
  rows_total: number | null;
  rows_sent: number;
  event_type: string;
  cursor: string[] | null;
  error: string | null;
}

const ROWS = 3000;

beforeAll(async () => {
  api = await startApi();
  const sql = api.db.sql;
  await sql`
    create table public.clients (
      id bigint primary key,
      account text not null,
      name text,
      big bigint,
      amount numeric,
      born timestamptz,
      day date,
      doc jsonb,
      password_hash text,
      version int not null default 0
    )`;
  // Rows first, tracking second: these are the existing rows a new webhook has never seen.
  await sql`
    insert into public.clients (id, account, name, big, amount, born, day, doc, password_hash)
    select i, case when i % 3 = 0 then 'acme' else 'globex' end, 'client ' || i,
           9007199254740993 + i, 123456789012345678901234567890.123456789 + i, '2024-01-01'::timestamptz + i * interval '1 minute',
           '2024-01-01'::date, jsonb_build_object('i', i), 'hash-' || i
      from generate_series(1, ${ROWS}) i`;
  await sql`select webhooks.track_table('public.clients', tenant_column => 'account', excluded_columns => array['password_hash'])`;
  dispatcher = await runDispatcher(api.db.url);
});
afterAll(async () => {
  await dispatcher?.stop();
  for (const r of receivers) await r.close();
  await api?.close();
});

async function receiver(): Promise<Receiver> {
  const rx = await startReceiver({ status: 200 });
  receivers.push(rx);
  return rx;
}

async function webhook(url: string, extra: Record<string, unknown> = {}, key?: string): Promise<string> {
  const res = await api.call("POST", "/v1/webhooks", { body: { url, events: ["clients.*"], ...extra }, ...(key ? { key } : {}) });
  expect(res.statusCode).toBe(201);
  return (res.json() as { id: string }).id;
}

async function start(webhookId: string, body: Record<string, unknown>, key?: string): Promise<BackfillBody> {
  const res = await api.call("POST", `/v1/webhooks/${webhookId}/backfills`, { body, ...(key ? { key } : {}) });
  expect(res.statusCode).toBe(201);
  return res.json() as BackfillBody;
}

async function finished(webhookId: string, id: string, key?: string): Promise<BackfillBody> {
  return waitUntil(
    async () => {
      const b = (await api.call("GET", `/v1/webhooks/${webhookId}/backfills/${id}`, key ? { key } : {})).json() as BackfillBody;
      return b.state === "running" ? null : b;
    },
    60_000,
    "the backfill to finish",
  );
}

const backfillCount = async () => (await api.db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.backfills`)[0]!.n;
const outboxCount = async () => (await api.db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.outbox`)[0]!.n;

describe("a backfill", () => {
  it("sends every existing row once to its one webhook, in key order, while another webhook of the same table gets nothing", async () => {
    const target = await receiver();
    const bystander = await receiver();
    const id = await webhook(`${target.url}/crm`);
    await webhook(`${bystander.url}/other`);
    const b = await start(id, { table: "public.clients" });
    expect(b).toMatchObject({ state: "running", rows_total: ROWS, event_type: "clients.backfill" });

    const done = await finished(id, b.id);
    expect(done).toMatchObject({ state: "done", rows_sent: ROWS, rows_total: ROWS, error: null, cursor: [String(ROWS)] });
    await settled(api.db.sql, ROWS, 60_000);
    expect(bystander.requests).toHaveLength(0);
    expect(target.requests).toHaveLength(ROWS);

    const bodies = target.requests.map((r) => JSON.parse(r.body) as { type: string; data: Record<string, unknown> });
    expect(new Set(bodies.map((x) => x.type))).toEqual(new Set(["clients.backfill"]));
    expect(new Set(bodies.map((x) => String(x.data.id))).size).toBe(ROWS);
    const one = bodies.find((x) => String(x.data.id) === "8")!;
    // Built as capture builds it: exact big numbers (as strings by default), excluded column gone.
    expect(one.data).toMatchObject({ id: 8, account: "globex", name: "client 8", big: "9007199254741001", amount: "123456789012345678901234567898.123456789" });
    expect(one.data).not.toHaveProperty("password_hash");
    // Written in key order: outbox ids rise with the key.
    const order = await api.db.sql<{ k: string }[]>`select data->>'id' as k from webhooks.outbox where target_subscription = ${id} order by id`;
    expect(order.map((r) => Number(r.k))).toEqual(Array.from({ length: ROWS }, (_, i) => i + 1));
    const tenants = await api.db.sql<{ tenant: string; n: number }[]>`
      select tenant, count(*)::int as n from webhooks.outbox where target_subscription = ${id} group by tenant order by tenant`;
    expect(tenants).toEqual([{ tenant: "acme", n: ROWS / 3 }, { tenant: "globex", n: (2 * ROWS) / 3 }]);
  });

  it("counts with dry-run and filters with where, writing nothing for a dry run", async () => {
    const rx = await receiver();
    const id = await webhook(`${rx.url}/x`);
    const before = { b: await backfillCount(), o: await outboxCount() };
    const dry = await api.call("POST", `/v1/webhooks/${id}/backfills/dry-run`, { body: { table: "clients", where: "id <= 100 and name like 'client %'" } });
    expect(dry.statusCode).toBe(200);
    expect(dry.json()).toEqual({ dry_run: true, table: "public.clients", event_type: "clients.backfill", rows: 100 });
    expect({ b: await backfillCount(), o: await outboxCount() }).toEqual(before);

    const b = await start(id, { table: "public.clients", where: "id > 2990 or (id = 5)" });
    expect(b.rows_total).toBe(11);
    expect(await finished(id, b.id)).toMatchObject({ state: "done", rows_sent: 11 });
    await waitUntil(async () => rx.requests.length >= 11, 20_000, "11 requests");
    expect(rx.requests.map((r) => (JSON.parse(r.body) as { data: { id: number } }).data.id).sort((x, y) => x - y)).toEqual([5, 2991, 2992, 2993, 2994, 2995, 2996, 2997, 2998, 2999, 3000]);
  });

  it.each([
    ["nosuchcolumn = 1", /^where: Postgres cannot run it over public\.clients: column "nosuchcolumn" does not exist/],
    ["id", /^where: Postgres cannot run it over public\.clients: argument of WHERE must be type boolean/],
    ["true; delete from public.clients", /^where: expected one condition: ; is not accepted/],
    ["true) union select * from public.clients where (true", /^where: unbalanced parentheses: a \) at character 5 closes nothing/],
    ["id = 1 -- and more", /^where: comments \(--\) are not accepted/],
    ["id = 1 /* hidden */", /^where: comments/],
    ["name = $$x$$", /^where: dollar signs/],
    ["name = E'\\' or true or '", /^where: backslashes are not accepted/],
    ["name = 'unterminated", /^where: an unterminated string/],
    ["(select count(*) from pg_authid) > 0 and false", /^where: Postgres cannot run it|^$/],
    ["nextval('x') > 0", /^where: Postgres cannot run it over public\.clients/],
  ])("refuses where %j with a 400 naming the problem, writing nothing", async (where, message) => {
    const id = await webhook("http://127.0.0.1:9/never");
    const before = { b: await backfillCount(), o: await outboxCount() };
    const res = await api.call("POST", `/v1/webhooks/${id}/backfills`, { body: { table: "public.clients", where } });
    if (where.startsWith("(select count(*) from pg_authid)")) {
      // A superuser may read pg_authid: then it plans and counts 0 rows; either way nothing is sent.
      expect([201, 400]).toContain(res.statusCode);
      if (res.statusCode === 201) expect((res.json() as BackfillBody).rows_total).toBe(0);
      return;
    }
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe("invalid_input");
    expect(res.json().error.message).toMatch(message);
    expect({ b: await backfillCount(), o: await outboxCount() }).toEqual(before);
  });

  it("refuses an untracked or missing table, one without a primary key, and a disabled webhook", async () => {
    await api.db.sql`create table public.nokey (v int)`;
    await api.db.sql`select webhooks.track_table('public.nokey')`;
    await api.db.sql`create table public.untracked (id int primary key)`;
    const id = await webhook("http://127.0.0.1:9/never");
    for (const [table, message] of [
      ["public.untracked", /^table: "public\.untracked" is not a tracked table/],
      ["public.nosuch", /^table: "public\.nosuch" is not a tracked table/],
      ["a'b\"c", /^table: .* is not a tracked table/],
      ["public.nokey", /^table: public\.nokey has no primary key/],
    ] as const) {
      const res = await api.call("POST", `/v1/webhooks/${id}/backfills`, { body: { table } });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.message).toMatch(message);
    }
    const bad = await api.call("POST", `/v1/webhooks/${id}/backfills`, { body: { table: "public.clients", rate: 0 } });
    expect(bad.statusCode).toBe(400);
    const off = await webhook("http://127.0.0.1:9/never", { is_active: false });
    const before = await backfillCount();
    const res = await api.call("POST", `/v1/webhooks/${off}/backfills`, { body: { table: "public.clients" } });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.message).toMatch(/is disabled: enable it first/);
    expect(await backfillCount()).toBe(before);
  });

  it("with a tenant key: sends only the tenant's rows, refuses where, and hides its backfills from other tenants", async () => {
    const acme = await api.key("acme");
    const globex = await api.key("globex");
    const rx = await receiver();
    const id = await webhook(`${rx.url}/acme`, {}, acme);
    const where = await api.call("POST", `/v1/webhooks/${id}/backfills`, { body: { table: "public.clients", where: "true" }, key: acme });
    expect(where.statusCode).toBe(400);
    expect(where.json().error.message).toMatch(/^where: only an admin key may give a SQL condition/);
    const other = await api.call("POST", `/v1/webhooks/${id}/backfills`, { body: { table: "public.clients" }, key: globex });
    expect(other.statusCode).toBe(404);

    const b = await start(id, { table: "public.clients", rate: 5000 }, acme);
    expect(b.rows_total).toBe(ROWS / 3);
    expect((await api.call("GET", `/v1/webhooks/${id}/backfills/${b.id}`, { key: globex })).statusCode).toBe(404);
    expect((await api.call("GET", `/v1/webhooks/${id}/backfills`, { key: globex })).statusCode).toBe(404);
    expect(await finished(id, b.id, acme)).toMatchObject({ state: "done", rows_sent: ROWS / 3 });
    await waitUntil(async () => rx.requests.length >= ROWS / 3, 30_000, "the tenant's rows");
    const accounts = new Set(rx.requests.map((r) => (JSON.parse(r.body) as { data: { account: string } }).data.account));
    expect(accounts).toEqual(new Set(["acme"]));
    const list = (await api.call("GET", `/v1/webhooks/${id}/backfills`, { key: acme })).json() as { items: BackfillBody[] };
    expect(list.items.map((x) => x.id)).toEqual([b.id]);
  });

  it("pauses, resumes from its cursor and cancels; a finished backfill cannot be resumed (409)", async () => {
    const rx = await receiver();
    const id = await webhook(`${rx.url}/slow`);
    const b = await start(id, { table: "public.clients", rate: 200 });
    await waitUntil(async () => ((await api.call("GET", `/v1/webhooks/${id}/backfills/${b.id}`)).json() as BackfillBody).rows_sent >= 40, 20_000, "some rows");
    const paused = (await api.call("POST", `/v1/webhooks/${id}/backfills/${b.id}/pause`)).json() as BackfillBody;
    expect(paused.state).toBe("paused");
    await new Promise((r) => setTimeout(r, 600));
    const still = (await api.call("GET", `/v1/webhooks/${id}/backfills/${b.id}`)).json() as BackfillBody;
    await new Promise((r) => setTimeout(r, 600));
    expect(((await api.call("GET", `/v1/webhooks/${id}/backfills/${b.id}`)).json() as BackfillBody).rows_sent).toBe(still.rows_sent);
    expect((await api.call("POST", `/v1/webhooks/${id}/backfills/${b.id}/resume`)).json()).toMatchObject({ state: "running" });
    await waitUntil(async () => ((await api.call("GET", `/v1/webhooks/${id}/backfills/${b.id}`)).json() as BackfillBody).rows_sent > still.rows_sent, 20_000, "more rows");
    const cancelled = (await api.call("POST", `/v1/webhooks/${id}/backfills/${b.id}/cancel`)).json() as BackfillBody;
    expect(cancelled.state).toBe("cancelled");
    const resumed = await api.call("POST", `/v1/webhooks/${id}/backfills/${b.id}/resume`);
    expect(resumed.statusCode).toBe(409);
    expect(resumed.json().error.message).toMatch(/is cancelled: it cannot be resumed/);
    // No row twice: the cursor moved with the events it covered.
    const dupes = await api.db.sql`
      select data->>'id' from webhooks.outbox where target_subscription = ${id} group by 1 having count(*) > 1`;
    expect(dupes).toHaveLength(0);
  });
});

describe("a backfill's events", () => {
  it("carry exactly what capture made of the same rows (hostile values, json jsonb cannot hold, rows written by an ordinary role)", async () => {
    const sql = api.db.sql;
    await sql`create table public.odd (id int primary key, j json, n numeric, big bigint, d date, ts timestamptz, t text)`;
    await sql`select webhooks.track_table('public.odd')`;
    await sql`create role bf_app login password 'a'`.catch(() => {});
    await sql`grant usage on schema public to bf_app`;
    await sql`grant insert on public.odd to bf_app`;
    const url = new URL(api.db.url);
    url.username = "bf_app";
    url.password = "a";
    const app = postgres(url.toString(), { max: 1, onnotice: () => {} });
    // Valid json that jsonb cannot hold (\u0000, a lone surrogate escape, 1e400), numbers beyond
    // doubles, the ends of the date ranges, text that looks like escapes.
    await app`
      insert into public.odd values
        (1, '{"a": "\\u0000", "b": "\\ud800", "n": 1e400}', 1e30 + 0.5, 9223372036854775807, '4713-01-01 BC', '-infinity', 'line\r\nnext \\ud800'),
        (2, '[1, 2.50, 12345678901234567890]', -0.000000000000000000001, -9223372036854775808, '5874897-12-31', '294276-12-31 23:59:59+00', ''),
        (3, null, 'NaN', 9007199254740993, 'infinity', '1970-01-01 00:00:00+00', ${"\\u0000 is only text here"})`;
    await app.end();
    const rx = await receiver();
    const id = await webhook(`${rx.url}/odd`, { events: ["nothing.matches"] });
    const b = await start(id, { table: "public.odd" });
    expect(await finished(id, b.id)).toMatchObject({ state: "done", rows_sent: 3 });
    const pairs = await sql<{ id: string; created: string; backfill: string }[]>`
      select c.data->>'id' as id, c.data::text as created, f.data::text as backfill
        from webhooks.outbox c join webhooks.outbox f on f.data->>'id' = c.data->>'id' and f.type = 'odd.backfill' and f.target_subscription = ${id}
       where c.type = 'odd.created' order by 1`;
    expect(pairs).toHaveLength(3);
    for (const p of pairs) expect(p.backfill).toBe(p.created);
    expect(JSON.parse(pairs[0]!.created).j).toEqual({ $text: '{"a": "\\u0000", "b": "\\ud800", "n": 1e400}' });
    await waitUntil(async () => rx.requests.length >= 3, 20_000, "3 requests");
    const body = rx.requests.map((r) => JSON.parse(r.body) as { data: { id: number; big: unknown } }).find((x) => x.data.id === 1)!;
    expect(body.data.big).toBe("9223372036854775807");
  });
});

describe("a backfill while writers change the table", () => {
  it("loses no row and sends none stale: each row's last event for the webhook carries its newest state", async () => {
    const sql = api.db.sql;
    // Only this test's webhook hears the writers' updates.
    await sql`update webhooks.subscriptions set deleted_at = now(), is_active = false`;
    await sql`create role bf_writer login password 'w'`.catch(() => {});
    await sql`grant usage on schema public to bf_writer`;
    await sql`grant select, update on public.clients to bf_writer`;
    const rx = await receiver();
    const id = await webhook(`${rx.url}/live`);
    const b = await start(id, { table: "public.clients", rate: 2000 });

    // Writers with only table grants update random rows until the backfill is done.
    const url = new URL(api.db.url);
    url.username = "bf_writer";
    url.password = "w";
    const writer = postgres(url.toString(), { max: 3, onnotice: () => {} });
    let writing = true;
    let updates = 0;
    const loops = [0, 1, 2].map(async () => {
      while (writing) {
        const ids = Array.from({ length: 5 }, () => 1 + Math.floor(Math.random() * ROWS));
        try {
          await writer`update public.clients set version = version + 1, name = 'renamed ' || version where id = any(${ids}::bigint[])`;
          updates++;
        } catch (e) {
          // A deadlock with another writer is the application's to retry, as it would anyway.
          if ((e as { code?: string }).code !== "40P01") throw e;
        }
      }
    });
    await finished(id, b.id);
    writing = false;
    await Promise.all(loops);
    await writer.end();
    expect(updates).toBeGreaterThan(10);

    const events = await sql<{ n: number }[]>`select count(*)::int as n from webhooks.outbox where target_subscription = ${id}`;
    expect(events[0]!.n).toBe(ROWS);
    const owed = await waitUntil(async () => {
      const [r] = await sql<{ undispatched: number; open: number; total: number }[]>`
        select (select count(*)::int from webhooks.outbox where dispatched_at is null) as undispatched,
               (select count(*)::int from webhooks.deliveries where subscription_id = ${id} and status <> 'succeeded') as open,
               (select count(*)::int from webhooks.deliveries where subscription_id = ${id}) as total`;
      return r && r.undispatched === 0 && r.open === 0 ? r.total : null;
    }, 60_000, "every delivery of the webhook to succeed");
    expect(owed).toBeGreaterThan(ROWS);
    expect(rx.requests).toHaveLength(owed);

    // In commit (outbox) order, each row's last event for the webhook is the row as it is now.
    const lastEvents = await sql<{ id: string; version: number; name: string }[]>`
      select distinct on (o.data->>'id') o.data->>'id' as id, (o.data->>'version')::int as version, o.data->>'name' as name
        from webhooks.deliveries d join webhooks.outbox o on o.id = d.outbox_id
       where d.subscription_id = ${id}
       order by o.data->>'id', o.id desc`;
    const rows = await sql<{ id: string; version: number; name: string }[]>`select id::text, version, name from public.clients`;
    expect(lastEvents).toHaveLength(ROWS);
    const now = new Map(rows.map((r) => [r.id, r]));
    expect(lastEvents.filter((e) => now.get(e.id)?.version !== e.version || now.get(e.id)?.name !== e.name)).toEqual([]);
    // And the receiver got every row's newest state (in parallel sending, not necessarily last).
    const seen = new Set(rx.requests.map((r) => {
      const data = (JSON.parse(r.body) as { data: { id: number; version: number; name: string } }).data;
      return `${data.id}/${data.version}/${data.name}`;
    }));
    expect(rows.filter((r) => !seen.has(`${r.id}/${r.version}/${r.name}`))).toEqual([]);
  });
});
