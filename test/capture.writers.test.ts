// Tracking never breaks the application's writes: ordinary roles, odd values, ALTER TABLE,
// TRUNCATE, partitions and tenant moves, written as an application role with table grants only.
import postgres from "postgres";
import { randomBytes } from "node:crypto";
import type { TransactionSql } from "postgres";
import { createTestDatabase, type TestDatabase } from "./helpers/db";

let t: TestDatabase;
const role = `pgw_app_${randomBytes(4).toString("hex")}`;

beforeAll(async () => {
  t = await createTestDatabase();
  await t.sql.unsafe(`create role ${role} nologin`);
});
afterAll(async () => {
  await t.close();
  const admin = postgres(process.env.PGW_TEST_SERVER_URL ?? "", { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop role if exists ${role}`);
  await admin.end();
});
beforeEach(() => t.sql`truncate webhooks.outbox cascade`);

interface Event {
  type: string;
  tenant: string | null;
  data: Record<string, unknown>;
  previous_attributes: Record<string, unknown> | null;
}
const outbox = (table: string) =>
  t.sql<Event[]>`select type, tenant, data, previous_attributes from webhooks.outbox
                  where source_table = ${`public.${table}`} order by id`;

/** Runs statements as the application role: table grants (and sequence usage) only. */
async function asApp(...statements: string[]): Promise<void> {
  await t.sql.begin(async (tx: TransactionSql) => {
    await tx.unsafe(`set local role ${role}`);
    for (const s of statements) await tx.unsafe(s);
  });
}

/** A fresh table the application role may write, tracked with the given options. */
async function tracked(name: string, columns: string, options = ""): Promise<void> {
  await t.sql.unsafe(`drop table if exists public.${name} cascade`);
  await t.sql.unsafe(`create table public.${name} (${columns})`);
  await t.sql.unsafe(`grant select, insert, update, delete, truncate on public.${name} to ${role}`);
  await t.sql.unsafe(
    `grant usage on all sequences in schema public to ${role}`,
  );
  await t.sql.unsafe(`select webhooks.track_table('public.${name}'${options})`);
}

describe("an application role with table grants only", () => {
  it("writes, updates, deletes and truncates a tracked table, and its events are captured", async () => {
    await tracked("clients", "id serial primary key, account_id text, name text", ", tenant_column => 'account_id'");
    await asApp(
      "insert into clients (account_id, name) values ('acme', 'Ada')",
      "update clients set name = 'Ada L'",
      "delete from clients",
      "insert into clients (account_id, name) values ('acme', 'Bob')",
      "truncate clients",
    );
    const rows = await outbox("clients");
    expect(rows.map((r) => [r.type, r.tenant])).toEqual([
      ["clients.created", "acme"],
      ["clients.updated", "acme"],
      ["clients.deleted", "acme"],
      ["clients.created", "acme"],
      ["clients.truncated", null],
    ]);
    expect(rows[1]?.previous_attributes).toEqual({ name: "Ada" });
    expect(rows[4]?.data).toEqual({ table: "public.clients" });
  });

  it("may not write the outbox itself, nor attach a capture function to a table of its own", async () => {
    await tracked("leads", "id int primary key, name text");
    const [fn] = await t.sql<{ fn: string }[]>`
      select tgfoid::regproc::text as fn from pg_trigger where tgrelid = 'public.leads'::regclass and tgname = 'pg_webhooks_insert'`;
    await t.sql.unsafe(`grant usage, create on schema public to ${role}; grant usage on schema webhooks to ${role}`);
    try {
      await expect(asApp("insert into webhooks.outbox (type, data) values ('leads.created', '{}')")).rejects.toThrow(
        /permission denied for table outbox/,
      );
      await expect(
        asApp(
          "create table forged (id int primary key, name text)",
          `create trigger f after insert on forged referencing new table as new_rows for each statement execute function ${fn?.fn}()`,
        ),
      ).rejects.toThrow(/permission denied for function/);
    } finally {
      await t.sql.unsafe(`revoke usage, create on schema public from ${role}; revoke usage on schema webhooks from ${role}`);
    }
  });

  it("emits custom events once granted usage on the schema and execute on emit, not before", async () => {
    await t.sql.unsafe(`grant usage on schema webhooks to ${role}`);
    try {
      await expect(asApp("select webhooks.emit('invoice.paid', '{\"id\": 1}')")).rejects.toThrow(
        /permission denied for function emit/,
      );
      await t.sql.unsafe(`grant execute on function webhooks.emit(text, jsonb, text) to ${role}`);
      await asApp(
        "set local search_path = pg_temp, public",
        "select webhooks.emit('invoice.paid', '{\"id\": 9007199254740993}', tenant => e'acme\\r\\n')",
      );
      const rows = await t.sql<Event[]>`select type, tenant, data, previous_attributes from webhooks.outbox`;
      expect(rows).toEqual([{ type: "invoice.paid", tenant: "acme\r\n", data: { id: 9007199254740993 }, previous_attributes: null }]);
      const [exact] = await t.sql`select data->>'id' as id from webhooks.outbox`;
      expect(exact?.id).toBe("9007199254740993");
    } finally {
      await t.sql.unsafe(`revoke execute on function webhooks.emit(text, jsonb, text) from ${role}; revoke usage on schema webhooks from ${role}`);
    }
  });
});

// Both ways capture functions are generated: rewritten by the event trigger on ALTER TABLE
// (a superuser migrated), or looking their columns up per statement (no event trigger).
describe.each([
  ["with the ALTER TABLE event trigger", true],
  ["without the event trigger", false],
])("%s", (_name, follow) => {
  beforeAll(async () => {
    await t.sql.unsafe(`alter event trigger pg_webhooks_follow_ddl ${follow ? "enable" : "disable"}`);
  });
  afterAll(() => t.sql.unsafe("alter event trigger pg_webhooks_follow_ddl enable"));

  it("carries json values jsonb cannot hold as their text, and the rest of the row intact", async () => {
    await tracked(
      "docs",
      "id bigint primary key, account_id text, j json, js json[], at timestamptz, n numeric",
      ", tenant_column => 'account_id'",
    );
    const odd = ['{"a":"\\u0000"}', '{"a":"\\ud800"}', '{"a":1e200000}'];
    const deep = "[".repeat(10_000) + "]".repeat(10_000);
    await asApp(
      ...odd.map(
        (j, i) =>
          `insert into docs values (${9007199254740993n + BigInt(i)}, 'acme', ${literal(j)}, array[${literal(j)}]::json[], 'infinity', 123456789012345678901234567890.5)`,
      ),
      `insert into docs values (1, 'acme', '{"ok": [1, 2]}', null, '294276-12-31 23:59:59+00', 'NaN')`,
      `insert into docs values (2, 'acme', '${deep}', null, '-infinity', -0.0)`,
      "update docs set account_id = 'acme', n = 1 where id > 1",
    );
    const rows = await outbox("docs");
    const created = rows.filter((r) => r.type === "docs.created");
    expect(created).toHaveLength(5);
    const [nested] = await t.sql`select (data->'j')::text = ${deep} as same from webhooks.outbox where type = 'docs.created' and data->'id' = '2'`;
    expect(nested?.same).toBe(true);
    expect(created.every((r) => r.tenant === "acme")).toBe(true);
    odd.forEach((j, i) => {
      expect(created[i]?.data.j).toEqual({ $text: j });
      expect(created[i]?.data.js).toEqual({ $text: `{${arrayElement(j)}}` });
      expect(created[i]?.data.at).toBe("infinity");
    });
    expect(created[3]?.data).toMatchObject({ id: 1, j: { ok: [1, 2] }, js: null, n: "NaN", at: "294276-12-31T23:59:59+00:00" });
    const ids = await t.sql`select data->>'id' as id, data->>'n' as n from webhooks.outbox o where type = 'docs.created' order by o.id`;
    expect(ids.slice(0, 2)).toEqual([
      { id: "9007199254740993", n: "123456789012345678901234567890.5" },
      { id: "9007199254740994", n: "123456789012345678901234567890.5" },
    ]);
    const updated = rows.filter((r) => r.type === "docs.updated");
    expect(updated.map((r) => r.previous_attributes)).toEqual([...odd.map(() => ({ n: 123456789012345678901234567890.5 })), { n: 0 }]);
  });

  it("calls no cast to json a table owner created, which would run with the schema owner's rights", async () => {
    await t.sql.unsafe(`grant usage, create on schema public to ${role}`);
    try {
      await asApp(
        "create type stage_t as enum ('lead', 'won')",
        "create domain stage_d as stage_t",
        // Anyone calling this with elevated rights would reveal it: it returns who runs it.
        "create function stage_json(stage_t) returns json language sql as $$ select to_json(current_user::text) $$",
      );
      await tracked("casts", "id int primary key, stage stage_t, stages stage_t[], d stage_d, j json");
      await asApp("insert into casts values (1, 'lead', '{lead}', 'lead', '{\"a\": 1}')");
      await asApp("create cast (stage_t as json) with function stage_json(stage_t)");
      await asApp(
        "insert into casts values (2, 'won', '{won,lead}', 'won', '{\"a\": \"\\u0000\"}')",
        "update casts set stage = 'won' where id = 1",
      );
      const rows = await outbox("casts");
      expect(JSON.stringify(rows)).not.toContain("postgres");
      expect(rows.map((r) => [r.type, r.data])).toEqual([
        ["casts.created", { id: 1, stage: "lead", stages: ["lead"], d: "lead", j: { a: 1 } }],
        ["casts.created", { id: 2, stage: "won", stages: { $text: "{won,lead}" }, d: "won", j: { $text: '{"a": "\\u0000"}' } }],
        ["casts.updated", { id: 1, stage: "won", stages: { $text: "{lead}" }, d: "lead", j: { a: 1 } }],
      ]);
    } finally {
      await t.sql.unsafe("drop table casts; drop cast if exists (stage_t as json); drop function if exists stage_json(stage_t); drop domain if exists stage_d; drop type if exists stage_t");
      await t.sql.unsafe(`revoke usage, create on schema public from ${role}`);
    }
  });

  it("pairs every row with its own old version after the primary key column is dropped", async () => {
    await tracked("p", "id int primary key, v text");
    await asApp("insert into p select g, 'a' || g from generate_series(1, 100) g", "update p set v = v || '!'");
    await t.sql`alter table p drop column id`;
    await asApp("update p set v = v || '?'", "insert into p values ('new')");
    const rows = await outbox("p");
    const updates = rows.filter((r) => r.type === "p.updated");
    expect(updates).toHaveLength(200);
    for (const u of updates.slice(100)) {
      expect(`${String(u.previous_attributes?.v)}?`).toBe(u.data.v);
      expect(u.data).not.toHaveProperty("id");
    }
    expect(rows.filter((r) => r.type === "p.created").at(-1)?.data).toEqual({ v: "new" });
  });

  it("pairs updates after a primary key is added, and when the key value itself changes", async () => {
    await tracked("q", "id int, v text");
    await asApp("insert into q values (1, 'a'), (2, 'b')", "update q set v = upper(v)");
    await t.sql`alter table q add primary key (id)`;
    await asApp("update q set id = id + 10");
    const updates = (await outbox("q")).filter((r) => r.type === "q.updated");
    expect(updates.map((r) => [r.data, r.previous_attributes])).toEqual([
      [{ id: 1, v: "A" }, { v: "a" }],
      [{ id: 2, v: "B" }, { v: "b" }],
      [{ id: 11, v: "A" }, { id: 1 }],
      [{ id: 12, v: "B" }, { id: 2 }],
    ]);
  });

  it("follows a renamed tenant column, and keeps a renamed excluded column out of events", async () => {
    await tracked("r", "id int primary key, account_id text, secret text", ", tenant_column => 'account_id', excluded_columns => array['secret']");
    await asApp("insert into r values (1, 'acme', 's1')");
    await t.sql`alter table r rename column account_id to org`;
    await t.sql`alter table r rename column secret to api_token`;
    await asApp("insert into r values (2, 'beta', 's2')", "update r set api_token = 's3', org = org where id = 2", "update r set id = 3 where id = 2");
    const rows = await outbox("r");
    expect(JSON.stringify(rows)).not.toMatch(/s1|s2|s3|secret|api_token/);
    expect(rows.map((r) => [r.type, r.tenant])).toEqual([
      ["r.created", "acme"],
      ["r.created", "beta"],
      ["r.updated", "beta"],
    ]);
    expect(rows[1]?.data).toEqual({ id: 2, org: "beta" });
  });

  it("keeps excluding a dropped excluded column that comes back, and drops the tenant with its column", async () => {
    await tracked("s", "id int primary key, account_id text, secret text", ", tenant_column => 'account_id', excluded_columns => array['secret']");
    await t.sql`alter table s drop column secret`;
    await asApp("insert into s values (1, 'acme')");
    await t.sql`alter table s add column secret text`;
    await asApp("insert into s values (2, 'acme', 'hidden')");
    await t.sql`alter table s drop column account_id`;
    await asApp("insert into s values (3, 'hidden2')", "update s set id = id * 10");
    const rows = await outbox("s");
    expect(JSON.stringify(rows)).not.toMatch(/hidden|secret/);
    expect(rows.map((r) => [r.type, r.tenant, r.data.id])).toEqual([
      ["s.created", "acme", 1],
      ["s.created", "acme", 2],
      ["s.created", null, 3],
      ["s.updated", null, 10],
      ["s.updated", null, 20],
      ["s.updated", null, 30],
    ]);
  });

  it("captures added columns and changed types, json ones included", async () => {
    await tracked("u", "id int primary key, v text");
    await asApp("insert into u values (1, '{\"a\":\"\\u0000\"}'), (2, '\"x\"')");
    await t.sql`alter table u add column j json`;
    await asApp("insert into u values (3, '[]', '{\"a\":\"\\ud800\"}')");
    await t.sql`alter table u alter column v type json using v::json`;
    await asApp("update u set id = id + 10");
    const rows = await outbox("u");
    expect(rows.map((r) => [r.type, r.data, r.previous_attributes])).toEqual([
      ["u.created", { id: 1, v: '{"a":"\\u0000"}' }, null],
      ["u.created", { id: 2, v: '"x"' }, null],
      ["u.created", { id: 3, v: "[]", j: { $text: '{"a":"\\ud800"}' } }, null],
      ["u.updated", { id: 11, v: { $text: '{"a":"\\u0000"}' }, j: null }, { id: 1 }],
      ["u.updated", { id: 12, v: "x", j: null }, { id: 2 }],
      ["u.updated", { id: 13, v: [], j: { $text: '{"a":"\\ud800"}' } }, { id: 3 }],
    ]);
  });
});

describe("what a tracked table announces", () => {
  it("announces TRUNCATE once, without a tenant, when deletes are tracked; nothing when they are not", async () => {
    await tracked("t1", "id int primary key, account_id text", ", tenant_column => 'account_id'");
    await tracked("t2", "id int primary key", ", operations => array['insert', 'update']");
    await asApp("insert into t1 values (1, 'acme'), (2, 'beta')", "insert into t2 values (1)", "truncate t1, t2");
    expect((await outbox("t1")).slice(2)).toEqual([
      { type: "t1.truncated", tenant: null, data: { table: "public.t1" }, previous_attributes: null },
    ]);
    expect((await outbox("t2")).map((r) => r.type)).toEqual(["t2.created"]);
    await t.sql.begin(async (tx) => {
      await tx`insert into t1 values (3, 'acme')`;
      await tx`truncate t1`;
      await tx`rollback and chain`;
    });
    expect(await outbox("t1")).toHaveLength(3);
  });

  it("announces a row moved between partitions as updated, with the partition key in previous_attributes", async () => {
    await t.sql.unsafe("drop table if exists public.parts cascade");
    await t.sql.unsafe(`create table public.parts (id int, region text, v text, primary key (id, region)) partition by list (region);
      create table public.parts_eu partition of public.parts for values in ('eu');
      create table public.parts_us partition of public.parts for values in ('us');
      grant select, insert, update, delete on public.parts, public.parts_eu, public.parts_us to ${role};
      select webhooks.track_table('public.parts')`);
    await asApp("insert into parts values (1, 'eu', 'a'), (2, 'us', 'b'), (3, 'eu', 'c')", "update parts set region = case region when 'eu' then 'us' else 'eu' end, v = v || '!'");
    const updates = (await outbox("parts")).filter((r) => r.type === "parts.updated");
    expect(updates.map((r) => [r.data, r.previous_attributes]).sort((a, b) => Number((a[0] as { id: number }).id) - Number((b[0] as { id: number }).id))).toEqual([
      [{ id: 1, region: "us", v: "a!" }, { region: "eu", v: "a" }],
      [{ id: 2, region: "eu", v: "b!" }, { region: "us", v: "b" }],
      [{ id: 3, region: "us", v: "c!" }, { region: "eu", v: "c" }],
    ]);
  });

  it("tells the old tenant a row left (deleted) and the new one it arrived (created), neither the other's values", async () => {
    await tracked("deals", "id int primary key, account_id text, amount int", ", tenant_column => 'account_id'");
    await asApp(
      "insert into deals values (1, 'acme', 10), (2, 'acme', 20)",
      "update deals set account_id = case id when 1 then 'beta' else account_id end, amount = amount + 1",
      "update deals set account_id = null where id = 2",
    );
    const rows = (await outbox("deals")).slice(2);
    expect(rows).toEqual([
      { type: "deals.deleted", tenant: "acme", data: { id: 1, account_id: "acme", amount: 10 }, previous_attributes: null },
      { type: "deals.created", tenant: "beta", data: { id: 1, account_id: "beta", amount: 11 }, previous_attributes: null },
      { type: "deals.updated", tenant: "acme", data: { id: 2, account_id: "acme", amount: 21 }, previous_attributes: { amount: 20 } },
      { type: "deals.deleted", tenant: "acme", data: { id: 2, account_id: "acme", amount: 21 }, previous_attributes: null },
      { type: "deals.created", tenant: null, data: { id: 2, account_id: null, amount: 21 }, previous_attributes: null },
    ]);
  });

  it("pairs the rows an upsert updates with their own old versions", async () => {
    await tracked("ups", "id int primary key, v int");
    await asApp(
      "insert into ups select g, g from generate_series(1, 50) g",
      "insert into ups select g, g * 100 from generate_series(50, 1, -1) g union all select 51, 51 on conflict (id) do update set v = excluded.v",
    );
    const rows = (await outbox("ups")).slice(50);
    expect(rows.filter((r) => r.type === "ups.created").map((r) => r.data)).toEqual([{ id: 51, v: 51 }]);
    const updates = rows.filter((r) => r.type === "ups.updated");
    expect(updates).toHaveLength(50);
    for (const u of updates) {
      expect(u.previous_attributes).toEqual({ v: Number(u.data.id) });
      expect(u.data.v).toBe(Number(u.data.id) * 100);
    }
  });

  it("prints no NOTICE when a table is tracked for the first time, again, or untracked", async () => {
    const notices: string[] = [];
    const sql = postgres(t.url, { max: 1, onnotice: (n) => notices.push(String(n.message)) });
    try {
      await sql`create table quiet (id int primary key)`;
      await sql`select webhooks.track_table('quiet')`;
      await sql`select webhooks.track_table('quiet', operations => array['insert'])`;
      await sql`select webhooks.untrack_table('quiet')`;
      await sql`select webhooks.untrack_table('quiet')`;
    } finally {
      await sql.end();
    }
    expect(notices).toEqual([]);
  });
});

function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
function arrayElement(j: string): string {
  return `"${j.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
