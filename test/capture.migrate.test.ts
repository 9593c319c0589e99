// Migration 0004 on real databases: tables tracked before it are upgraded, and a schema owner
// that is not a superuser gets capture that still follows ALTER TABLE.
import postgres from "postgres";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connect, type Connection } from "../src/db/connection";
import { migrate, migrationFiles, SQL_DIR } from "../src/db/migrate";
import { withDatabase } from "./helpers/global-setup";

const server = process.env.PGW_TEST_SERVER_URL ?? "";
const suffix = randomBytes(4).toString("hex");
const app = `pgw_app_${suffix}`;
const owner = `pgw_owner_${suffix}`;
const databases: string[] = [];
const admin = postgres(server, { max: 1, onnotice: () => {} });

beforeAll(async () => {
  await admin.unsafe(`create role ${app} nologin; create role ${owner} login`);
});
afterAll(async () => {
  for (const d of databases) await admin.unsafe(`drop database if exists ${d} with (force)`);
  await admin.unsafe(`drop role if exists ${app}; drop role if exists ${owner}`);
  await admin.end();
});

async function database(ownedBy?: string): Promise<string> {
  const name = `pgw_cm_${suffix}_${databases.length}`;
  databases.push(name);
  await admin.unsafe(`create database ${name}${ownedBy ? ` owner ${ownedBy}` : ""}`);
  return withDatabase(server, name);
}

async function asApp(conn: Connection, ...statements: string[]): Promise<void> {
  await conn.sql.begin(async (tx) => {
    await tx.unsafe(`set local role ${app}`);
    for (const s of statements) await tx.unsafe(s);
  });
}

const events = (conn: Connection) =>
  conn.sql<{ type: string; tenant: string | null; data: Record<string, unknown>; previous_attributes: unknown }[]>`
    select type, tenant, data, previous_attributes from webhooks.outbox order by id`;

it("upgrades tables tracked before it: ordinary roles may write them and a renamed excluded column stays out", async () => {
  const url = await database();
  const conn = connect(url, { max: 1 });
  try {
    // What a database migrated before 0004 looks like, as migrate() records it.
    await conn.sql.unsafe(`create schema webhooks;
      create table webhooks.schema_migrations (name text primary key, applied_at timestamptz not null default now())`);
    for (const f of migrationFiles().filter((f) => f < "0004")) {
      await conn.sql.begin(async (tx) => {
        await tx.unsafe(readFileSync(join(SQL_DIR, f), "utf8"));
        await tx`insert into webhooks.schema_migrations (name) values (${f})`;
      });
    }
    await conn.sql.unsafe(`create table clients (id int primary key, account_id text, password_hash text);
      create table notes (body text);
      grant select, insert, update, delete on clients, notes to ${app};
      select webhooks.track_table('clients', tenant_column => 'account_id', excluded_columns => array['password_hash']);
      select webhooks.track_table('notes');`);

    await migrate(conn.sql, url);

    const fns = await conn.sql`
      select distinct p.prosecdef, p.proconfig from pg_trigger t join pg_proc p on p.oid = t.tgfoid
       where t.tgrelid in ('clients'::regclass, 'notes'::regclass)`;
    expect(fns).toEqual([{ prosecdef: true, proconfig: ["search_path=pg_catalog, pg_temp"] }]);
    await conn.sql`alter table clients rename column password_hash to pw`;
    await asApp(
      conn,
      "insert into clients values (1, 'acme', 'h1')",
      "update clients set pw = 'h2', id = 2",
      "insert into notes values ('a')",
      "update notes set body = 'b'",
    );
    const rows = await events(conn);
    expect(JSON.stringify(rows)).not.toMatch(/h1|h2|pw|password/);
    expect(rows.map((r) => [r.type, r.tenant, r.previous_attributes])).toEqual([
      ["clients.created", "acme", null],
      ["clients.updated", "acme", { id: 1 }],
      ["notes.created", null, null],
      ["notes.updated", null, { body: "a" }],
    ]);
  } finally {
    await conn.close();
  }
});

it("works for a schema owner that is not a superuser: no event trigger, capture still follows ALTER TABLE", async () => {
  const url = await database(owner);
  const u = new URL(url);
  u.username = owner;
  const notices: string[] = [];
  const sql = postgres(u.toString(), { max: 1, onnotice: (n) => notices.push(String(n.message)) });
  const conn = connect(url, { max: 1 }); // a superuser's connection, writing as the app role
  try {
    await migrate(sql, u.toString());
    expect(notices.join("\n")).toMatch(/not a superuser, so no event trigger follows ALTER TABLE/);
    expect(await sql`select evtname from pg_event_trigger`).toEqual([]);

    await sql.unsafe(`create table deals (id int primary key, account_id text, secret text, j json);
      grant select, insert, update, delete, truncate on deals to ${app};
      select webhooks.track_table('deals', tenant_column => 'account_id', excluded_columns => array['secret'])`);
    const [fn] = await sql`
      select p.prosecdef, p.proowner::regrole::text as owner from pg_trigger t join pg_proc p on p.oid = t.tgfoid
       where t.tgrelid = 'deals'::regclass limit 1`;
    expect(fn).toEqual({ prosecdef: true, owner });

    await asApp(conn, "insert into deals values (1, 'acme', 's1', '{\"a\": \"\\u0000\"}')");
    await sql`alter table deals rename column account_id to org`;
    await sql`alter table deals rename column secret to token`;
    await sql`alter table deals drop constraint deals_pkey`;
    await asApp(conn, "update deals set token = 's2', id = 2", "truncate deals");
    const rows = await events(conn);
    expect(JSON.stringify(rows)).not.toMatch(/s1|s2|secret|token/);
    expect(rows.map((r) => [r.type, r.tenant, r.data])).toEqual([
      ["deals.created", "acme", { id: 1, account_id: "acme", j: { $text: '{"a": "\\u0000"}' } }],
      ["deals.updated", "acme", { id: 2, org: "acme", j: { $text: '{"a": "\\u0000"}' } }],
      ["deals.truncated", null, { table: "public.deals" }],
    ]);
  } finally {
    await sql.end();
    await conn.close();
  }
});
