// `pg-webhooks migrate`: applies the SQL migrations (and graphile-worker's) once each.
import type { Command } from "commander";
import type { Cli } from "./context";
import { common, type CommonOptions } from "./options";

export function registerMigrate(program: Command, cli: Cli): void {
  common(
    program.command("migrate").description("apply pending database migrations (safe to run concurrently)"),
    "pg-webhooks migrate --database-url postgres://app@db.internal/app",
  ).action((opts: CommonOptions) =>
    cli.run(opts, async ({ conn, out, db }) => {
      const { migrate } = await import("../db/migrate.js"); // graphile-worker: loaded on use
      const r = await migrate(conn.sql, db.url);
      out.result({ applied: r.applied, already_applied: r.alreadyApplied }, () => {
        if (r.applied.length === 0) out.say(`Database is up to date (${r.alreadyApplied.length} migrations applied earlier).`);
        else for (const f of r.applied) out.say(`applied ${f}`);
      });
    }, { autoMigrate: false }),
  );
}
