// Event rules: derived events compiled into a tracked table's capture function, written right
// after their base event, as the application role writes (table grants only), whatever the
// data or a later ALTER TABLE. Conditions mean what the same filter means on a webhook.
import postgres from "postgres";
import { randomBytes } from "node:crypto";
import type { TransactionSql } from "postgres";
import { parseExact } from "../src/delivery/event-json";
import { matches, type Filter } from "../src/model/filter";
import { createTestDatabase, type TestDatabase } from "./helpers/db";
import { listEventTypes } from "../src/services/event-types";
import { listEventRules } from "../src/services/rules";
import { runCli, runJson } from "./helpers/cli";

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
beforeEach(async () => {
  await t.sql`truncate webhooks.outbox cascade`;
  await t.sql`delete from webhooks.event_rules`;
});

interface Event {
  type: string;
  tenant: string | null;
  data: Record<string, unknown>;
  previous_attributes: Record<string, unknown> | null;
}
const outbox = (table: string) =>
  t.sql<Event[]>`select type, tenant, data, previous_attributes from webhooks.outbox
                  where source_table = ${`public.${table}`} order by id`;
const types = async (table: string) => (await outbox(table)).map((e) => e.type);

/** Runs statements as the application role: table grants (and sequence usage) only. */
async function asApp(...statements: string[]): Promise<void> {
  await t.sql.begin(async (tx: TransactionSql) => {
    await tx.unsafe(`set local role ${role}`);
    for (const s of statements) await tx.unsafe(s);
  });
}

async function tracked(name: string, columns: string, options = ""): Promise<void> {
  await t.sql.unsafe(`drop table if exists public.${name} cascade`);
  await t.sql.unsafe(`create table public.${name} (${columns})`);
  await t.sql.unsafe(`grant select, insert, update, delete, truncate on public.${name} to ${role}`);
  await t.sql.unsafe(`grant usage on all sequences in schema public to ${role}`);
  await t.sql.unsafe(`select webhooks.track_table('public.${name}'${options})`);
}

const rule = (args: string) => t.sql.unsafe(`select webhooks.add_event_rule(${args})`);
const q = (s: string) => `'${s.replace(/'/g, "''")}'`;

describe("derived events", () => {
  it("deal.stage.changed fires only when stage changes, with previous_attributes.stage", async () => {
    await tracked("deals", "id serial primary key, stage text, amount numeric, notes text");
    await rule(`'public.deals', 'deal.stage.changed', on_change => array['stage']`);
    await asApp(
      "insert into deals (stage, amount) values ('lead', 100)",
      "update deals set notes = 'called'",
      "update deals set stage = 'lead'",
      "update deals set stage = 'qualified', amount = 200",
      "update deals set stage = null",
    );
    const events = await outbox("deals");
    expect(events.map((e) => e.type)).toEqual([
      "deals.created",
      "deals.updated",
      "deals.updated",
      "deal.stage.changed",
      "deals.updated",
      "deal.stage.changed",
    ]);
    expect(events[3]).toEqual({ ...events[2], type: "deal.stage.changed" });
    expect(events[3]?.previous_attributes).toEqual({ stage: "lead", amount: 100 });
    expect(events[5]?.previous_attributes).toEqual({ stage: "qualified" });
    expect(events[5]?.data.stage).toBeNull();
  });

  it("opportunity.closed_won fires only on a change to won", async () => {
    await tracked("opportunities", "id int primary key, stage text, amount int");
    await rule(`'public.opportunities', 'opportunity.closed_won', on_change => array['stage'], condition => '{"data.stage": "won"}'`);
    await asApp(
      "insert into opportunities values (1, 'won', 1), (2, 'lead', 1), (3, 'lead', 1)",
      "update opportunities set stage = 'won' where id = 2",
      "update opportunities set amount = 5",
      "update opportunities set stage = 'lost' where id = 3",
      "update opportunities set stage = 'won' where id in (1, 3)",
    );
    const won = (await outbox("opportunities")).filter((e) => e.type === "opportunity.closed_won");
    expect(won.map((e) => [e.data.id, e.previous_attributes])).toEqual([
      [2, { stage: "lead" }],
      [3, { stage: "lost" }],
    ]);
  });

  it("writes each derived event right after its base event, in one statement's order", async () => {
    await tracked("deals", "id int primary key, stage text");
    await rule(`'public.deals', 'deal.stage.changed', on_change => array['stage']`);
    await rule(`'public.deals', 'deal.won', on_change => array['stage'], condition => '{"data.stage": "won"}'`);
    await asApp("insert into deals select i, 'lead' from generate_series(1, 4) i", "update deals set stage = case when id % 2 = 0 then 'won' else 'lost' end");
    const updates = (await outbox("deals")).filter((e) => e.type !== "deals.created").map((e) => `${e.type}:${e.data.id}`);
    expect(updates).toEqual([
      "deals.updated:1", "deal.stage.changed:1",
      "deals.updated:2", "deal.stage.changed:2", "deal.won:2",
      "deals.updated:3", "deal.stage.changed:3",
      "deals.updated:4", "deal.stage.changed:4", "deal.won:4",
    ]);
  });

  it("keeps the tenant and leaves excluded columns out of data and previous_attributes", async () => {
    await tracked(
      "accounts",
      "id int primary key, org text, stage text, secret text",
      ", tenant_column => 'org', excluded_columns => array['secret']",
    );
    await rule(`'public.accounts', 'account.stage.changed', on_change => array['stage']`);
    await asApp("insert into accounts values (1, 'acme', 'a', 's1')", "update accounts set stage = 'b', secret = 's2'");
    const [, base, derived] = await outbox("accounts");
    expect(derived).toEqual({ ...base, type: "account.stage.changed" });
    expect(derived).toEqual({
      type: "account.stage.changed",
      tenant: "acme",
      data: { id: 1, org: "acme", stage: "b" },
      previous_attributes: { stage: "a" },
    });
    // The excluded column can be named neither as a trigger nor in a condition.
    await expect(rule(`'public.accounts', 'account.x', on_change => array['secret']`)).rejects.toThrow(
      /on_change: column secret is excluded/,
    );
    await expect(rule(`'public.accounts', 'account.x', condition => '{"data.secret": "s"}'`)).rejects.toThrow(
      /condition\.data\.secret: column secret is excluded/,
    );
  });

  it("follows the base events of a tenant move: the old tenant's deleted, the new one's created", async () => {
    await tracked("accounts", "id int primary key, org text, stage text", ", tenant_column => 'org'");
    await rule(`'public.accounts', 'account.stage.changed', on_change => array['stage']`);
    await rule(`'public.accounts', 'account.joined', operations => array['insert']`);
    await rule(`'public.accounts', 'account.left', operations => array['delete']`);
    await asApp("insert into accounts values (1, 'acme', 'a')", "update accounts set org = 'beta', stage = 'b'");
    expect((await outbox("accounts")).map((e) => [e.type, e.tenant])).toEqual([
      ["accounts.created", "acme"],
      ["account.joined", "acme"],
      ["accounts.deleted", "acme"],
      ["account.left", "acme"],
      ["accounts.created", "beta"],
      ["account.joined", "beta"],
    ]);
  });

  it("fires on insert and delete when asked, on_change then meaning a value is (was) set", async () => {
    await tracked("leads", "id int primary key, owner_id int, source text");
    await rule(`'public.leads', 'new_lead', operations => array['insert'], condition => '{"data.source": "web"}'`);
    await rule(`'public.leads', 'lead.assigned', operations => array['insert', 'update'], on_change => array['owner_id']`);
    await rule(`'public.leads', 'lead.removed', operations => array['delete'], on_change => array['owner_id']`);
    await asApp(
      "insert into leads values (1, null, 'web'), (2, 7, 'phone')",
      "update leads set owner_id = 8 where id = 1",
      "delete from leads",
    );
    expect((await outbox("leads")).map((e) => `${e.type}:${e.data.id}`)).toEqual([
      "leads.created:1", "new_lead:1",
      "leads.created:2", "lead.assigned:2",
      "leads.updated:1", "lead.assigned:1",
      // the updated row 1 now comes after row 2 in the table
      "leads.deleted:2", "lead.removed:2",
      "leads.deleted:1", "lead.removed:1",
    ]);
    const removed = (await outbox("leads")).find((e) => e.type === "lead.removed");
    expect(removed?.previous_attributes).toBeNull();
  });

  it("stops when the rule is dropped, and a rule added again replaces it", async () => {
    await tracked("deals", "id int primary key, stage text");
    await rule(`'public.deals', 'deal.stage.changed', on_change => array['stage']`);
    await rule(`'public.deals', 'deal.stage.changed', on_change => array['stage'], condition => '{"data.stage": "won"}'`);
    await asApp("insert into deals values (1, 'a')", "update deals set stage = 'b'", "update deals set stage = 'won'");
    expect((await types("deals")).filter((x) => x === "deal.stage.changed")).toHaveLength(1);
    const [dropped] = await t.sql`select webhooks.drop_event_rule('public.deals', 'deal.stage.changed') as d`;
    expect(dropped?.d).toBe(true);
    const [again] = await t.sql`select webhooks.drop_event_rule('public.deals', 'deal.stage.changed') as d`;
    expect(again?.d).toBe(false);
    await t.sql`truncate webhooks.outbox cascade`;
    await asApp("update deals set stage = 'lost'", "update deals set stage = 'won'");
    expect(await types("deals")).toEqual(["deals.updated", "deals.updated"]);
    const [fns] = await t.sql`select count(*)::int as n from pg_proc where proname like 'capture\\_deals\\_%'`;
    expect(fns?.n).toBe(1);
  });

  it("outlives untrack_table as a disabled rule and fires again once the table is tracked", async () => {
    await tracked("deals", "id int primary key, stage text");
    await rule(`'public.deals', 'deal.stage.changed', on_change => array['stage']`);
    await t.sql`select webhooks.untrack_table('public.deals')`;
    expect((await listEventRules(t)).map((r) => [r.type, r.disabled_reason])).toEqual([["deal.stage.changed", "deals is not tracked"]]);
    expect((await listEventTypes(t, { tenant: null } as never)).map((e) => e.type)).not.toContain("deal.stage.changed");
    await t.sql`select webhooks.track_table('public.deals', operations => array['insert'])`;
    expect((await listEventRules(t)).map((r) => r.disabled_reason)).toEqual([expect.stringMatching(/deals is not tracked for update/)]);
    await t.sql`select webhooks.track_table('public.deals')`;
    expect((await listEventRules(t)).map((r) => r.disabled_reason)).toEqual([null]);
    await asApp("insert into deals values (1, 'a')", "update deals set stage = 'b'");
    expect(await types("deals")).toEqual(["deals.created", "deals.updated", "deal.stage.changed"]);
  });

  it("refuses bad rules with the argument named, changing nothing", async () => {
    await tracked("deals", "id int primary key, stage text, amount numeric", ", operations => array['insert', 'update']");
    await t.sql.unsafe("create table public.untracked (id int)");
    const cases: [string, RegExp][] = [
      [`'public.nope', 'x.y'`, /relation "public.nope" does not exist/],
      [`'public.untracked', 'x.y'`, /^table: untracked is not tracked; track it first: select webhooks.track_table\('untracked'\)/],
      [`'public.deals', 'deal stage'`, /^type: expected a dotted event name/],
      [`'public.deals', 'deal.*'`, /^type: expected a dotted event name/],
      [`'public.deals', 'deals.updated'`, /^type: deals.updated is one of deals's own event types/],
      [`'public.deals', 'deal.x', on_change => array['stag']`, /^on_change: deals has no column stag/],
      [`'public.deals', 'deal.x', operations => array['delete']`, /^operations: deals is not tracked for delete/],
      [`'public.deals', 'deal.x', operations => array['upsert']`, /^operations: expected insert, update or delete, got 'upsert'/],
      [`'public.deals', 'deal.x', condition => '{"data.stag": "won"}'`, /^condition\.data\.stag: deals has no column stag/],
      [`'public.deals', 'deal.x', condition => '{"data.amount": {"$gt": true}}'`, /^condition\.data\.amount\.\$gt: expected a number or string for \$gt, got boolean/],
      [`'public.deals', 'deal.x', condition => '{"data.amount": 9007199254740993}'`, /^condition\.data\.amount: 9007199254740993 is beyond 2\^53/],
      [`'public.deals', 'deal.x', condition => '{"data.amount": {"$near": 1}}'`, /^condition\.data\.amount\.\$near: unknown operator/],
      [`'public.deals', 'deal.x', condition => '{"$or": []}'`, /^condition\.\$or: expected an array of filters, got an empty array/],
      [`'public.deals', 'deal.x', condition => '{"id": "x"}'`, /^condition\.id: id is not known when a rule runs/],
      [`'public.deals', 'deal.x', condition => '{"tenant": {"$contains": "a"}}'`, /^condition\.tenant\.\$contains: tenant is a string, not an array/],
      [`'public.deals', 'deal.x', condition => '[1]'`, /^condition: expected a filter object/],
      [`'public.deals', 'deal.x', condition => '${"{\"$not\": ".repeat(11)}{}${"}".repeat(11)}'`, /filter is nested too deeply/],
      [`'public.deals', 'deal.x', sql_condition => 'NEW.stag = ''won'''`, /^sql_condition: column new.stag does not exist/],
      [`'public.deals', 'deal.x', sql_condition => 'NEW.amount > ''abc'''`, /^sql_condition: invalid input syntax for type numeric: "abc"/],
      [`'public.deals', 'deal.x', sql_condition => 'NEW.stage'`, /^sql_condition: argument of AND must be type boolean/],
    ];
    for (const [args, message] of cases) {
      await expect(rule(args)).rejects.toThrow(message);
    }
    const [n] = await t.sql`select count(*)::int as n from webhooks.event_rules`;
    expect(n?.n).toBe(0);
  });
});

describe("sql conditions (a DBA's SQL over NEW and OLD)", () => {
  it("fire over the row itself, excluded columns included, inlined into capture", async () => {
    await tracked("deals", "id int primary key, stage text, secret text", ", excluded_columns => array['secret']");
    await rule(`'public.deals', 'deal.won', sql_condition => 'NEW.stage = ''won'' and OLD.stage is distinct from ''won'' and NEW.secret = ''s'''`);
    await asApp("insert into deals values (1, 'a', 's'), (2, 'a', 't')", "update deals set stage = 'won'", "update deals set stage = 'won'");
    const won = (await outbox("deals")).filter((e) => e.type === "deal.won");
    expect(won.map((e) => e.data)).toEqual([{ id: 1, stage: "won" }]);
  });

  it("never fail the writer: a condition that raises leaves the base events and a warning", async () => {
    await tracked("deals", "id int primary key, stage text");
    await rule(`'public.deals', 'deal.numbered', sql_condition => 'NEW.stage::int > 0'`);
    await rule(`'public.deals', 'deal.changed', on_change => array['stage']`);
    const warnings: string[] = [];
    const conn = postgres(t.url, { max: 1, onnotice: (n) => warnings.push(String(n.message)) });
    try {
      await conn.begin(async (tx) => {
        await tx.unsafe(`set local role ${role}`);
        await tx.unsafe("insert into deals values (1, '5')");
        await tx.unsafe("update deals set stage = '6'");
        await tx.unsafe("update deals set stage = 'not a number'");
      });
    } finally {
      await conn.end();
    }
    expect(await types("deals")).toEqual(["deals.created", "deals.updated", "deal.numbered", "deal.changed", "deals.updated", "deal.changed"]);
    expect(warnings).toEqual([expect.stringMatching(/sql_condition on public.deals failed.*invalid input syntax for type integer/)]);
  });

  it("do not keep DROP TABLE from working", async () => {
    await tracked("doomed", "id int primary key, stage text");
    await rule(`'public.doomed', 'doomed.won', sql_condition => 'NEW.stage = ''won'''`);
    const [doomed] = await t.sql<{ fn: string }[]>`select sql_function as fn from webhooks.event_rules`;
    await t.sql.unsafe("drop table public.doomed");
    await tracked("deals", "id int primary key, stage text");
    await rule(`'public.deals', 'deal.won', sql_condition => 'NEW.stage = ''won'''`);
    const rows = await t.sql`select event_type, sql_function from webhooks.event_rules order by 1`;
    expect(rows.map((r) => r.event_type)).toEqual(["deal.won"]);
    // The dropped table's rule went at the next add_event_rule, with its function.
    const [fn] = await t.sql`select to_regproc(${doomed?.fn ?? ""}) as f`;
    expect(fn?.f).toBeNull();
  });
});

describe("conditions mean what the same webhook filter means, and never fail the writer", () => {
  const filters: Filter[] = [
    { "data.v": 5 },
    { "data.v": "5" },
    { "data.v": { $gt: 4 } },
    { "data.v": { $gte: "b" } },
    { "data.v": { $lt: "9007199254740993" } },
    { "data.v": "9007199254740993" },
    { "data.v": { $ne: null } },
    { "data.v": null },
    { "data.v": { $exists: false } },
    { "data.v.a": { $exists: true } },
    { "data.v.0": 1 },
    { "data.v": { $in: [1, "x", true, null] } },
    { "data.v": { $nin: [1, "x"] } },
    { "data.v": { $contains: 1 } },
    { "data.v": { $all: ["x", 1] } },
    { "data.v": { $contains: "9007199254740993" } },
    { "data.v": true },
    { $or: [{ "data.v": { $lt: 0 } }, { $not: { "data.n": { $gte: 10 } } }] },
    { "data.n": { $gt: 1.5 } },
    { "data.n": 12 },
    { "data.t": { $gt: "a" } },
    { "data.t": { $gt: 3 } },
    { "data.arr": { $contains: "vip" } },
    { "data.arr.1": "eu" },
    { tenant: "acme" },
    { tenant: null },
    { type: "probe.hit" },
    { "data.v.a.b.c": { $lte: 0 } },
    // missing paths: $ne and $nin hold, $not of an equality holds
    { "data.v.a": { $ne: 1 } },
    { "data.v.a": { $nin: [1, null] } },
    { $not: { "data.v.a": 1 } },
    { "previous_attributes.v": { $exists: false } },
    {},
  ];
  // jsonb values a row can hold: types a condition does not expect, odd strings, big numbers.
  const values = [
    "null", "5", "5.0", "-0", "4.999999999999999", "\"5\"", "\"b\"", "\"\"", "true", "false",
    "9007199254740993", "9007199254740992", "1e400", "-1e-400", "\"9007199254740993\"",
    "[1, \"x\"]", "[\"x\", 1.0]", "[[1]]", "[9007199254740993]", "[\"9007199254740993\"]", "[]",
    "{\"a\": 1}", "{\"a\": {\"b\": {\"c\": -1}}}", "{\"0\": 1}", "\"\\ud83d\\ude00\"", "\"\\u00e9\"",
    `"${"x".repeat(3000)}"`, "{\"a\": null}",
  ];

  it.each([true, false])("with the ALTER TABLE event trigger: %s", async (follow) => {
    await t.sql.unsafe(`alter event trigger pg_webhooks_follow_ddl ${follow ? "enable" : "disable"}`);
    try {
      await tracked("probe", "id int primary key, org text, v jsonb, n numeric, t text, arr text[]", ", tenant_column => 'org'");
      let discriminating = 0;
      for (const [i, f] of filters.entries()) {
        await rule(`'public.probe', 'probe.hit', operations => array['insert'], condition => ${q(JSON.stringify(f))}`);
        await t.sql.unsafe("delete from probe");
        await t.sql`truncate webhooks.outbox cascade`;
        const rows = values.map(
          (v, j) =>
            `(${j}, ${j % 3 === 0 ? "null" : j % 3 === 1 ? "'acme'" : "'beta'"}, ${q(v)}::jsonb, ` +
            `${["null", "12", "1.5", "9007199254740993", "-3", "12.000"][j % 6]}, ` +
            `${["null", "'b'", "'A'", "'é'", "''"][j % 5]}, ${["null", "array['vip','eu']", "'{}'", "array[null]::text[]"][j % 4]})`,
        );
        await asApp(`insert into probe values ${rows.join(", ")}`);
        const events = await t.sql<{ type: string; tenant: string | null; data: string }[]>`
          select type, tenant, data::text as data from webhooks.outbox order by id`;
        const fired = new Set<number>();
        const expected = new Set<number>();
        events.forEach((e, k) => {
          const data = parseExact(e.data).value as Record<string, unknown>;
          const id = Number(String(data.id));
          if (e.type === "probe.hit") {
            expect(events[k - 1]?.type).toBe("probe.created");
            fired.add(id);
          } else if (matches(f, { type: "probe.hit", data, tenant: e.tenant })) {
            expected.add(id);
          }
        });
        expect({ filter: i, fired: [...fired].sort((a, b) => a - b) }).toEqual({
          filter: i,
          fired: [...expected].sort((a, b) => a - b),
        });
        if (fired.size > 0 && fired.size < values.length) discriminating += 1;
      }
      // Not a vacuous comparison: all but a few filters ({}, type, ...) select some rows and not others.
      expect(discriminating).toBeGreaterThanOrEqual(filters.length - 6);
    } finally {
      await t.sql.unsafe("alter event trigger pg_webhooks_follow_ddl enable");
    }
  });
});

describe("hostile values", () => {
  it("json that jsonb cannot hold, deep nesting and numbers beyond 2^53 never fail the writer", async () => {
    await tracked("docs", "id bigint primary key, j json, n numeric, t text");
    await rule(`'public.docs', 'doc.flagged', operations => array['insert', 'update'],
                condition => '{"$or": [{"data.j.a": {"$gt": 1}}, {"data.j.0": "x"}, {"data.n": {"$gte": "9007199254740993"}}, {"data.t": {"$lt": 5}}]}'`);
    await rule(`'public.docs', 'doc.changed', on_change => array['j', 'n', 't']`);
    const literal = (v: string) => `'${v.replace(/'/g, "''")}'`;
    const deep = "[".repeat(10_000) + "]".repeat(10_000);
    await asApp(
      `insert into docs values (1, ${literal('{"a":"\\u0000"}')}, 9007199254740993, e'\\r\\n')`,
      `insert into docs values (2, ${literal('{"a":"\\ud800"}')}, 1e30, 'x')`,
      `insert into docs values (3, ${literal('{"a":1e200000}')}, null, null)`,
      `insert into docs values (4, ${literal(deep)}, -0.0, '9')`,
      `insert into docs values (5, '{"a": 2}', 9007199254740992, '')`,
      `update docs set j = '["x"]', n = n + 1, t = t || 'y'`,
    );
    const events = await outbox("docs");
    const flagged = events.filter((e) => e.type === "doc.flagged").map((e) => Number(e.data.id));
    // 1 and 2: n is 2^53 + 1, 1e30; 5: j.a is 2; then every update (j.0 is "x")
    expect(flagged).toEqual([1, 2, 5, 1, 2, 3, 4, 5]);
    expect(events.filter((e) => e.type === "doc.changed")).toHaveLength(5);
    expect(events.find((e) => e.type === "docs.created")?.data.j).toEqual({ $text: '{"a":"\\u0000"}' });
  });
});

describe.each([
  ["with the ALTER TABLE event trigger", true],
  ["without the event trigger", false],
])("ALTER TABLE %s", (_name, follow) => {
  beforeAll(() => t.sql.unsafe(`alter event trigger pg_webhooks_follow_ddl ${follow ? "enable" : "disable"}`));
  afterAll(() => t.sql.unsafe("alter event trigger pg_webhooks_follow_ddl enable"));

  const reasons = async () =>
    Object.fromEntries(
      (await t.sql<{ event_type: string; disabled_reason: string | null }[]>`
        select event_type, disabled_reason from webhooks.event_rules where table_name = 'public.deals'::regclass`).map((r) => [
        r.event_type,
        r.disabled_reason,
      ]),
    );

  it("never fails the writer; a rule naming a column that went is disabled with a reason until it comes back", async () => {
    await tracked("deals", "id int primary key, stage text, amount int");
    await rule(`'public.deals', 'deal.stage.changed', on_change => array['stage']`);
    await rule(`'public.deals', 'deal.big', condition => '{"data.amount": {"$gt": 100}}'`);
    await rule(`'public.deals', 'deal.won', sql_condition => 'NEW.stage = ''won'''`);
    await asApp("insert into deals values (1, 'a', 1)", "update deals set stage = 'won', amount = 500");
    expect(await types("deals")).toEqual(["deals.created", "deals.updated", "deal.stage.changed", "deal.big", "deal.won"]);

    // rename: the rules naming stage stop (visibly, where the event trigger follows DDL)
    await t.sql.unsafe("alter table deals rename column stage to phase");
    await t.sql`truncate webhooks.outbox cascade`;
    await asApp("update deals set phase = 'lost', amount = 600");
    expect(await types("deals")).toEqual(["deals.updated", "deal.big"]);
    if (follow) {
      expect(await reasons()).toEqual({
        "deal.stage.changed": expect.stringMatching(/column stage is gone/),
        "deal.big": null,
        "deal.won": "sql_condition: column new.stage does not exist",
      });
    }

    // renamed back: they fire again
    await t.sql.unsafe("alter table deals rename column phase to stage");
    await t.sql`truncate webhooks.outbox cascade`;
    await asApp("update deals set stage = 'won'");
    expect(await types("deals")).toEqual(["deals.updated", "deal.stage.changed", "deal.big", "deal.won"]);
    if (follow) expect(Object.values(await reasons())).toEqual([null, null, null]);

    // retype: amount as text no longer compares with a number (as in a webhook filter)
    await t.sql.unsafe("alter table deals alter column amount type text");
    await t.sql`truncate webhooks.outbox cascade`;
    await asApp("update deals set stage = 'lost', amount = '700'", "update deals set stage = 'won'");
    expect(await types("deals")).toEqual(["deals.updated", "deal.stage.changed", "deals.updated", "deal.stage.changed", "deal.won"]);

    // add and drop columns
    await t.sql.unsafe("alter table deals add column owner int");
    await t.sql.unsafe("alter table deals drop column stage");
    await t.sql`truncate webhooks.outbox cascade`;
    await asApp("update deals set owner = 1", "insert into deals (id, amount, owner) values (2, '1', 2)");
    expect(await types("deals")).toEqual(["deals.updated", "deals.created"]);
    if (follow) {
      expect(await reasons()).toEqual({
        "deal.stage.changed": expect.stringMatching(/column stage is gone/),
        "deal.big": null,
        "deal.won": "sql_condition: column new.stage does not exist",
      });
    }
    await t.sql.unsafe("alter table deals add column stage text");
    await t.sql`truncate webhooks.outbox cascade`;
    await asApp("update deals set stage = 'won' where id = 2");
    expect(await types("deals")).toEqual(["deals.updated", "deal.stage.changed", "deal.won"]);
  });
});

describe("emit with previous values", () => {
  it("carries previous_attributes; the three-argument emit works as before", async () => {
    await t.sql.unsafe(`grant usage on schema webhooks to ${role}`);
    await t.sql.unsafe(`grant execute on function webhooks.emit(text, jsonb, text), webhooks.emit(text, jsonb, text, jsonb) to ${role}`);
    try {
      await asApp(
        `select webhooks.emit('invoice.status_changed', '{"id": 1, "status": "paid"}', 'acme', previous => '{"status": "open", "n": 9007199254740993}')`,
        `select webhooks.emit('invoice.paid', '{"id": 1}', tenant => 'acme')`,
        `select webhooks.emit('invoice.paid', '{"id": 2}')`,
      );
      const rows = await t.sql<{ type: string; tenant: string | null; prev: string | null }[]>`
        select type, tenant, previous_attributes::text as prev from webhooks.outbox order by id`;
      expect(rows).toEqual([
        { type: "invoice.status_changed", tenant: "acme", prev: '{"n": 9007199254740993, "status": "open"}' },
        { type: "invoice.paid", tenant: "acme", prev: null },
        { type: "invoice.paid", tenant: null, prev: null },
      ]);
      await expect(asApp(`select webhooks.emit('a.b', '{}', null, previous => '[1]')`)).rejects.toThrow(
        /^previous: expected a JSON object/,
      );
    } finally {
      await t.sql.unsafe(
        `revoke execute on function webhooks.emit(text, jsonb, text), webhooks.emit(text, jsonb, text, jsonb) from ${role}; revoke usage on schema webhooks from ${role}`,
      );
    }
  });
});

describe("the CLI", () => {
  const env = () => ({ DATABASE_URL: t.url });

  it("adds, lists and drops rules; rule types are listed as event types", async () => {
    await tracked("opportunities", "id int primary key, stage text");
    const added = await runJson<{ type: string; on_change: string[]; condition: unknown; operations: string[] }>(
      ["rules", "add", "public.opportunities", "opportunity.closed_won", "--on-change", "stage", "--condition", '{"data.stage": "won"}', "--operations", "update,insert"],
      { env: env() },
    );
    expect(added).toMatchObject({ type: "opportunity.closed_won", on_change: ["stage"], condition: { "data.stage": "won" }, operations: ["insert", "update"] });
    const listed = await runJson<{ table: string; type: string; disabled_reason: string | null }[]>(["rules", "list"], { env: env() });
    expect(listed).toEqual([expect.objectContaining({ table: "opportunities", type: "opportunity.closed_won", disabled_reason: null })]);
    const table = await runCli(["rules", "list"], { env: env() });
    expect(table.stdout).toMatch(/opportunities\s+opportunity\.closed_won\s+insert,update\s+stage\s+\{"data\.stage":"won"\}\s+active/);

    expect(await listEventTypes(t, { tenant: null } as never)).toContainEqual(expect.objectContaining({ type: "opportunity.closed_won", source: "rule", table: "opportunities" }));

    await asApp("insert into opportunities values (1, 'won')");
    expect(await types("opportunities")).toEqual(["opportunities.created", "opportunity.closed_won"]);

    const dropped = await runJson<{ dropped: boolean }>(["rules", "drop", "public.opportunities", "opportunity.closed_won"], { env: env() });
    expect(dropped.dropped).toBe(true);
    const none = await runCli(["rules", "list"], { env: env() });
    expect(none.stdout).toMatch(/No event rules/);
  });

  it("has help with examples, --json and --database-url for rules list, add and drop", async () => {
    for (const sub of ["list", "add", "drop"]) {
      const r = await runCli(["rules", sub, "--help"], { env: env() });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: pg-webhooks rules ${sub}`);
      expect(r.stdout).toMatch(/Examples?:\n {2}\$ pg-webhooks rules /);
      expect(r.stdout).toContain("--json");
      expect(r.stdout).toContain("--database-url");
    }
  });

  it("answers bad input with exit 2 and the flag named", async () => {
    await tracked("opportunities", "id int primary key, stage text");
    const cases: [string[], RegExp][] = [
      [["rules", "add", "public.opportunities", "o.x", "--on-change", "stag"], /--on-change: opportunities has no column stag/],
      [["rules", "add", "public.opportunities", "o.x", "--condition", '{"data.stage": {"$gt": []}}'], /--condition \(condition\.data\.stage\.\$gt\): expected a number or string/],
      [["rules", "add", "public.opportunities", "o.x", "--condition", "{nope"], /--condition.*expected JSON/],
      // Checked as a webhook filter is: 1e400 is not turned into null, NUL and lone surrogates are named.
      [["rules", "add", "public.opportunities", "o.x", "--condition", '{"data.stage": 1e400}'], /--condition \(condition\.data\.stage\): expected/],
      [["rules", "add", "public.opportunities", "o.x", "--condition", '{"data.stage": "a\\u0000b"}'], /--condition \(condition\.data\.stage\): .*NUL|--condition \(condition\.data\.stage\): .*U\+0000/],
      [["rules", "add", "public.opportunities", "o.x", "--condition", '{"data.stage": "\\ud800"}'], /--condition \(condition\.data\.stage\): .*surrogate/],
      [["rules", "add", "public.opportunities", "o x"], /<type>: expected a dotted event name/],
      [["rules", "add", "public.nope", "o.x"], /<table>: .*does not exist/],
      [["rules", "add", "public.opportunities", "o.x", "--operations", "upsert"], /--operations/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args, { env: env() });
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(message);
    }
    expect(await t.sql`select 1 from webhooks.event_rules where event_type = 'o.x'`).toHaveLength(0);
  });

  it("emit --previous is read like the data", async () => {
    const r = await runJson<{ event_id: string }>(
      ["emit", "invoice.status_changed", '{"id": 9007199254740993}', "--previous", '{"status": "open", "n": 12345678901234567890}'],
      { env: env() },
    );
    const [row] = await t.sql`select previous_attributes::text as p, data::text as d from webhooks.outbox where event_id = ${r.event_id}`;
    expect(row).toEqual({ p: '{"n": 12345678901234567890, "status": "open"}', d: '{"id": 9007199254740993}' });
    const bad = await runCli(["emit", "a.b", "{}", "--previous", "[1]"], { env: env() });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--previous: expected a JSON object/);
  });
});
