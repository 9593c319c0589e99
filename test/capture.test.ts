// Capture: what tracking a table puts into the outbox, inside the writer's transaction.
import { createTestDatabase, type TestDatabase } from "./helpers/db";

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
  await t.sql`create table public.clients (id serial primary key, account_id text, name text, stage text, password_hash text)`;
  await t.sql`create table public.notes (body text)`; // no primary key
  await t.sql`select webhooks.track_table('public.clients', tenant_column => 'account_id', excluded_columns => array['password_hash'])`;
  await t.sql`select webhooks.track_table('public.notes')`;
});
afterAll(() => t.close());
beforeEach(() => t.sql`truncate webhooks.outbox cascade`);

const outbox = () =>
  t.sql<{ type: string; tenant: string | null; data: Record<string, unknown>; previous_attributes: Record<string, unknown> | null }[]>`
    select type, tenant, data, previous_attributes from webhooks.outbox order by id`;

describe("track_table", () => {
  it("emits created, updated and deleted events with the documented shape", async () => {
    await t.sql`insert into clients (account_id, name, stage, password_hash) values ('acme', 'Ada', 'lead', 'secret-hash')`;
    await t.sql`update clients set stage = 'won' where name = 'Ada'`;
    await t.sql`delete from clients where name = 'Ada'`;
    const rows = await outbox();
    expect(rows.map((r) => r.type)).toEqual(["clients.created", "clients.updated", "clients.deleted"]);
    expect(rows.every((r) => r.tenant === "acme")).toBe(true);
    expect(rows[0]?.data).toEqual({ id: expect.any(Number), account_id: "acme", name: "Ada", stage: "lead" });
    expect(rows[1]?.data).toMatchObject({ stage: "won" });
    expect(rows[1]?.previous_attributes).toEqual({ stage: "lead" });
    expect(rows[2]?.data).toMatchObject({ name: "Ada", stage: "won" });
  });

  it("emits nothing when the transaction rolls back", async () => {
    await t.sql
      .begin(async (tx) => {
        await tx`insert into clients (name) values ('Ghost')`;
        await tx`select webhooks.emit('invoice.paid', '{"id": 1}'::jsonb)`;
        throw new Error("rollback");
      })
      .catch(() => {});
    expect(await outbox()).toEqual([]);
  });

  it("never lets excluded columns leave the database", async () => {
    await t.sql`insert into clients (name, password_hash) values ('Bob', 'h1')`;
    await t.sql`update clients set password_hash = 'h2', name = 'Bobby' where name = 'Bob'`;
    const rows = await outbox();
    expect(JSON.stringify(rows)).not.toContain("password_hash");
    expect(JSON.stringify(rows)).not.toContain("h2");
  });

  it("emits nothing for an update that changes no value, or only excluded columns", async () => {
    await t.sql`insert into clients (name, password_hash) values ('Cy', 'h1')`;
    await t.sql`update clients set name = name`;
    await t.sql`update clients set password_hash = 'h9'`;
    expect((await outbox()).map((r) => r.type)).toEqual(["clients.created"]);
  });

  it("captures every row of a bulk statement", async () => {
    await t.sql`insert into clients (name) select 'n' || g from generate_series(1, 500) g`;
    await t.sql`update clients set stage = 'x' where name like 'n%'`;
    const counts = await t.sql`select type, count(*)::int as n from webhooks.outbox group by type order by type`;
    expect(counts).toEqual([
      { type: "clients.created", n: 500 },
      { type: "clients.updated", n: 500 },
    ]);
  });

  it("pairs updates on tables without a primary key row by row", async () => {
    await t.sql`insert into notes values ('a'), ('b')`;
    await t.sql`update notes set body = body || '!'`;
    const rows = (await outbox()).filter((r) => r.type === "notes.updated");
    expect(rows.map((r) => r.previous_attributes)).toEqual([{ body: "a" }, { body: "b" }]);
  });

  it("replaces its options when called again instead of stacking triggers", async () => {
    await t.sql`select webhooks.track_table('public.clients', event_prefix => 'customer', operations => array['insert'])`;
    await t.sql`insert into clients (name) values ('Di')`;
    await t.sql`update clients set stage = 'won' where name = 'Di'`;
    const triggers = await t.sql`select tgname from pg_trigger where tgrelid = 'public.clients'::regclass and not tgisinternal`;
    expect(triggers.map((r) => r.tgname)).toEqual(["pg_webhooks_insert"]);
    expect((await outbox()).map((r) => r.type)).toEqual(["customer.created"]);
    await t.sql`select webhooks.track_table('public.clients', tenant_column => 'account_id', excluded_columns => array['password_hash'])`;
  });

  it("stops emitting after untrack_table", async () => {
    await t.sql`create table public.tmp (id int primary key)`;
    await t.sql`select webhooks.track_table('public.tmp')`;
    expect((await t.sql`select webhooks.untrack_table('public.tmp') as r`)[0]?.r).toBe(true);
    await t.sql`insert into tmp values (1)`;
    expect(await outbox()).toEqual([]);
    expect((await t.sql`select webhooks.untrack_table('public.tmp') as r`)[0]?.r).toBe(false);
  });

  it.each([
    ["select webhooks.track_table('public.clients', tenant_column => 'nope')", /tenant_column: .* has no column nope/],
    ["select webhooks.track_table('public.clients', excluded_columns => array['nope'])", /excluded_columns: .* has no column nope/],
    ["select webhooks.track_table('public.clients', operations => array['upsert'])", /operations: expected insert, update or delete, got 'upsert'/],
    ["select webhooks.track_table('public.missing')", /relation "public.missing" does not exist/],
  ])("refuses bad options with a message naming them: %s", async (stmt, message) => {
    await expect(t.sql.unsafe(stmt)).rejects.toThrow(message);
    const tracked = await t.sql`select event_prefix from webhooks.tracked_tables where table_name = 'public.clients'::regclass`;
    expect(tracked).toEqual([{ event_prefix: "clients" }]);
  });
});

describe("emit", () => {
  it("records a custom event with its tenant, and remembers the type", async () => {
    const [row] = await t.sql`select webhooks.emit('invoice.paid', '{"id": 7}'::jsonb, tenant => 'acme') as id`;
    expect(row?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await outbox()).toEqual([{ type: "invoice.paid", tenant: "acme", data: { id: 7 }, previous_attributes: null }]);
    expect(await t.sql`select type from webhooks.event_types_seen`).toEqual([{ type: "invoice.paid" }]);
  });

  it("refuses a type that is not a dotted name", async () => {
    await expect(t.sql`select webhooks.emit('bad type!', '{}'::jsonb)`).rejects.toThrow(/type: expected a dotted event name/);
  });
});

describe("wake-up", () => {
  it("notifies only while a dispatcher is idle", async () => {
    const got: string[] = [];
    const listener = await t.sql.listen("pg_webhooks", (p) => got.push(p));
    await t.sql`update webhooks.dispatcher_wakeup set idle = false`;
    await t.sql`insert into clients (name) values ('quiet')`;
    await t.sql`update webhooks.dispatcher_wakeup set idle = true`;
    await t.sql`insert into clients (name) values ('loud')`;
    await new Promise((r) => setTimeout(r, 200));
    await listener.unlisten();
    expect(got).toHaveLength(1);
  });
});
