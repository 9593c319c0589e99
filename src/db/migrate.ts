// Applies the pending sql/NNNN_*.sql files in order, each once, all in ONE transaction: a file
// that fails leaves nothing half-applied (neither it nor the files before it in this run), and
// an advisory lock held to the commit makes concurrent runs wait, then find nothing to do.
// graphile-worker's own migrations run afterwards, in their own transactions.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Logger as GraphileLogger, runMigrations } from "graphile-worker";
import type { Queryable, Sql } from "./connection";

export const SQL_DIR = join(__dirname, "..", "..", "sql");
const LOCK_KEY = 7_351_234_001; // arbitrary, constant: "pg-webhooks migrations"

export interface MigrationResult {
  applied: string[];
  alreadyApplied: string[];
}

export function migrationFiles(dir = SQL_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_.+\.sql$/.test(f))
    .sort();
}

export async function migrate(sql: Sql, databaseUrl: string): Promise<MigrationResult> {
  const applied: string[] = [];
  const alreadyApplied: string[] = [];
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${LOCK_KEY})`;
    await tx.unsafe(`
      create schema if not exists webhooks;
      create table if not exists webhooks.schema_migrations (
        name text primary key,
        applied_at timestamptz not null default now()
      );
      comment on table webhooks.schema_migrations is 'A row is a file from sql/ that has been applied.';
    `);
    const done = await adoptUnfoldedMigrations(
      tx,
      new Set((await tx<{ name: string }[]>`select name from webhooks.schema_migrations`).map((r) => r.name)),
    );
    for (const file of migrationFiles()) {
      if (done.has(file)) {
        alreadyApplied.push(file);
        continue;
      }
      await tx.unsafe(readFileSync(join(SQL_DIR, file), "utf8"));
      await tx`insert into webhooks.schema_migrations (name) values (${file})`;
      applied.push(file);
    }
  });
  await runMigrations({ connectionString: databaseUrl, logger: silentGraphileLogger() });
  return { applied, alreadyApplied };
}

// Before 0.1.0 the migrations were eight files, folded since into the three that sql/ holds.
// A database that applied all eight has the folded schema plus webhooks.capture(), which no
// trigger uses: drop it and record the new names, in one batch of statements (atomic whether
// or not a transaction is open). A database that applied only some of them is refused.
const UNFOLDED = [
  "0001_core.sql",
  "0002_endpoint_health.sql",
  "0003_capture_speed.sql",
  "0004_capture_for_any_writer.sql",
  "0005_live_settings.sql",
  "0006_secret_headers.sql",
  "0007_hostile_receivers.sql",
  "0008_big_numbers.sql",
];
const FOLDED = ["0001_tables.sql", "0002_events.sql", "0003_live_settings.sql"];

/** The names in webhooks.schema_migrations once a database migrated by the unfolded files is recognised. */
export async function adoptUnfoldedMigrations(sql: Queryable, done: Set<string>): Promise<Set<string>> {
  const missing = UNFOLDED.filter((f) => !done.has(f));
  if (missing.length === UNFOLDED.length) return done;
  if (missing.length > 0) {
    throw new Error(
      `webhooks.schema_migrations lists pre-release migrations without ${missing.join(", ")}, ` +
        `so this database cannot take the migrations that replaced them (${FOLDED.join(", ")}). ` +
        "Either finish the old ones first (run `pg-webhooks migrate` from commit 360f139) and migrate again, " +
        "or start over with `drop schema webhooks cascade` (this deletes every webhook, delivery and tracked table's triggers) " +
        "and `pg-webhooks migrate`.",
    );
  }
  const list = (names: string[]) => names.map((n) => `('${n}')`).join(", ");
  await sql.unsafe(`
    drop function if exists webhooks.capture();
    delete from webhooks.schema_migrations where name in (values ${list(UNFOLDED)});
    insert into webhooks.schema_migrations (name) values ${list(FOLDED)} on conflict do nothing;`);
  return new Set([...[...done].filter((n) => !UNFOLDED.includes(n)), ...FOLDED]);
}

export function silentGraphileLogger(): GraphileLogger {
  return new GraphileLogger(() => () => {});
}
