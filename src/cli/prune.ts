// `pg-webhooks prune`: deletes old history (finished deliveries, their attempts, dispatched
// outbox rows) in short batches, and says how many rows went.
import type { Command } from "commander";
import { prune } from "../services/prune";
import type { Cli } from "./context";
import { common, integer, when, type CommonOptions } from "./options";

interface PruneOptions extends CommonOptions {
  olderThan: Date;
  dryRun?: boolean;
  batchSize?: number;
}

export function registerPrune(program: Command, cli: Cli): void {
  common(
    program
      .command("prune")
      .description("delete finished deliveries, their attempts, dispatched events and processed inbound events older than a cut-off")
      .requiredOption("--older-than <age>", "cut-off: a duration (30d, 12h) or an ISO timestamp", when)
      .option("--dry-run", "count what would be deleted, delete nothing")
      .option("--batch-size <n>", "rows per delete statement (default 5000)", integer(1, 100_000)),
    "pg-webhooks prune --older-than 30d --dry-run",
    "pg-webhooks prune --older-than 2024-01-01T00:00:00Z",
  ).action((opts: PruneOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      const r = await prune(conn, {
        olderThan: opts.olderThan,
        dryRun: opts.dryRun === true,
        ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
      });
      out.result(r, () => {
        const verb = r.dry_run ? "Would delete" : "Deleted";
        out.say(
          `${verb} ${r.deliveries} deliveries, ${r.attempts} attempts, ${r.outbox} events and ${r.webhooks} deleted webhooks, ` +
            `${r.inbound_events} inbound events and ${r.inbound_sources} deleted inbound sources older than ${r.cutoff.toISOString()}.`,
        );
      });
    }),
  );
}
