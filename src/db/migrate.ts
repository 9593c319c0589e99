// Applies the pending sql/NNNN_*.sql files in order, each once, all in ONE transaction: a file
// that fails leaves nothing half-applied (neither it nor the files before it in this run), and
// an advisory lock held to the commit makes concurrent runs wait, then find nothing to do.
// graphile-worker's own migrations run afterwards, in their own transactions.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runMigrations } from "graphile-worker";
import type { Sql } from "./connection";

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
    const done = new Set((await tx<{ name: string }[]>`select name from webhooks.schema_migrations`).map((r) => r.name));
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

import { Logger as GraphileLogger } from "graphile-worker";
export function silentGraphileLogger(): GraphileLogger {
  return new GraphileLogger(() => () => {});
}
