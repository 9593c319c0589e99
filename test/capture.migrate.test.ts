// Migrating real databases: one migrated by the pre-release files (before they were folded
// into sql/0001-0003) is recognised, and a schema owner that is not a superuser gets capture
// that still follows ALTER TABLE.
import postgres from "postgres";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { connect, type Connection, type Sql } from "../src/db/connection";
import { describeSchema } from "../src/db/describe";
import { migrate, migrationFiles } from "../src/db/migrate";
import { createTestDatabase } from "./helpers/db";
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

// The last commit with the pre-release migration files, and those files in order.
const UNFOLDED_AT = "360f139";
const git = (...args: string[]) => execFileSync("git", args, { cwd: join(__dirname, ".."), encoding: "utf8" });
/** A shallow clone has no such commit: the three tests that need its files are then skipped, and say so. */
const HAVE_HISTORY = (() => {
  try {
    git("cat-file", "-e", `${UNFOLDED_AT}^{commit}`);
    return true;
  } catch {
    console.warn(`capture.migrate: commit ${UNFOLDED_AT} is not in this clone (shallow?); the pre-release migration tests are skipped`);
    return false;
  }
})();
const itWithHistory = HAVE_HISTORY ? it : it.skip;
const UNFOLDED = (HAVE_HISTORY ? git("ls-tree", "--name-only", UNFOLDED_AT, "sql/") : "")
  .split("\n")
  .map((p) => p.replace(/^sql\//, ""))
  .filter((f) => /^\d{4}_.+\.sql$/.test(f))
  .sort();

/** Applies pre-release files as the migration runner of their time did, recording each. */
async function migrateUnfolded(conn: Connection, files: string[]): Promise<void> {
  await conn.sql.unsafe(`create schema if not exists webhooks;
    create table if not exists webhooks.schema_migrations (name text primary key, applied_at timestamptz not null default now());
    comment on table webhooks.schema_migrations is 'A row is a file from sql/ that has been applied.'`);
  for (const f of files) {
    const text = git("show", `${UNFOLDED_AT}:sql/${f}`);
    await conn.sql.begin(async (tx) => {
      await tx.unsafe(text);
      await tx`insert into webhooks.schema_migrations (name) values (${f})`;
    });
  }
}

const migrations = async (sql: Sql) =>
  (await sql<{ name: string }[]>`select name from webhooks.schema_migrations order by name`).map((r) => r.name);
const hasLegacyCapture = async (sql: Sql) =>
  (await sql<{ found: boolean }[]>`select to_regprocedure('webhooks.capture()') is not null as found`)[0]?.found;

/** What describeSchema leaves out: triggers, event triggers, column comments, privileges, rows. */
async function catalogExtras(sql: Sql): Promise<unknown> {
  const [r] = await sql`
    select
      (select json_agg(pg_get_triggerdef(t.oid) order by pg_get_triggerdef(t.oid)) from pg_trigger t join pg_class c on c.oid = t.tgrelid
        where c.relnamespace = 'webhooks'::regnamespace and not t.tgisinternal) as triggers,
      (select json_agg(json_build_array(evtname, evtevent, evttags, evtfoid::regproc::text,
                                        obj_description(oid, 'pg_event_trigger')) order by evtname)
         from pg_event_trigger) as event_triggers,
      (select json_agg(json_build_array(c.relname, a.attname, col_description(c.oid, a.attnum)) order by c.relname, a.attname)
         from pg_attribute a join pg_class c on c.oid = a.attrelid
        where c.relnamespace = 'webhooks'::regnamespace and col_description(c.oid, a.attnum) is not null) as column_comments,
      (select json_agg(json_build_array(p.oid::regprocedure::text, p.proacl::text, p.prosecdef, p.proconfig) order by p.oid::regprocedure::text)
         from pg_proc p where p.pronamespace = 'webhooks'::regnamespace) as functions,
      (select json_agg(json_build_array(c.relname, c.relacl::text) order by c.relname)
         from pg_class c where c.relnamespace = 'webhooks'::regnamespace) as relations,
      (select json_agg(w) from webhooks.dispatcher_wakeup w) as wakeup`;
  return r;
}

itWithHistory("recognises a database migrated by the pre-release files: same schema as a fresh one, without webhooks.capture()", async () => {
  const url = await database();
  const conn = connect(url, { max: 1 });
  const fresh = await createTestDatabase();
  try {
    await migrateUnfolded(conn, UNFOLDED);
    expect(await hasLegacyCapture(conn.sql)).toBe(true);

    // The folded files stand for the pre-release ones; migrations added since apply as usual.
    const folded = ["0001_tables.sql", "0002_events.sql", "0003_live_settings.sql"];
    const later = migrationFiles().filter((f) => !folded.includes(f));
    const r = await migrate(conn.sql, url);
    expect(r.applied).toEqual(later);
    expect(await migrations(conn.sql)).toEqual([...folded, ...later]);
    expect(await hasLegacyCapture(conn.sql)).toBe(false);
    expect(await describeSchema(conn.sql)).toBe(await describeSchema(fresh.sql));
    expect(await catalogExtras(conn.sql)).toEqual(await catalogExtras(fresh.sql));

    const again = await migrate(conn.sql, url);
    expect(again).toEqual({ applied: [], alreadyApplied: [...folded, ...later] });
  } finally {
    await conn.close();
    await fresh.close();
  }
});

itWithHistory("refuses a database that applied only some pre-release files, says what to do, and changes nothing", async () => {
  const url = await database();
  const conn = connect(url, { max: 1 });
  try {
    await migrateUnfolded(conn, UNFOLDED.slice(0, 3));
    const before = await describeSchema(conn.sql);

    await expect(migrate(conn.sql, url)).rejects.toThrow(
      /without 0004_capture_for_any_writer\.sql, .*0008_big_numbers\.sql.*pg-webhooks migrate` from commit 360f139.*drop schema webhooks cascade/,
    );
    expect(await migrations(conn.sql)).toEqual(UNFOLDED.slice(0, 3));
    expect(await hasLegacyCapture(conn.sql)).toBe(true);
    expect(await describeSchema(conn.sql)).toBe(before);
  } finally {
    await conn.close();
  }
});

itWithHistory("keeps capturing tables tracked under the pre-release files: ordinary roles may write them and a renamed excluded column stays out", async () => {
  const url = await database();
  const conn = connect(url, { max: 1 });
  try {
    // Tracked by the first generic capture() and its triggers, then moved along by 0003 and 0004.
    await migrateUnfolded(conn, UNFOLDED.slice(0, 2));
    await conn.sql.unsafe(`create table clients (id int primary key, account_id text, password_hash text);
      create table notes (body text);
      grant select, insert, update, delete on clients, notes to ${app};
      select webhooks.track_table('clients', tenant_column => 'account_id', excluded_columns => array['password_hash']);
      select webhooks.track_table('notes');`);
    await migrateUnfolded(conn, UNFOLDED.slice(2));

    await migrate(conn.sql, url);

    expect(await hasLegacyCapture(conn.sql)).toBe(false);
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
