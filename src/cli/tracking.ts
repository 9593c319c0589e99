// `track`, `untrack`, `tracked`, `emit`: which tables produce events, and custom events.
import type { Command } from "commander";
import { emitEvent, listTracked, OPERATIONS, trackTable, untrackTable, type TrackedTableInfo } from "../services/tracking";
import type { Cli } from "./context";
import { common, jsonValue, list, listOf, withFlagNames, type CommonOptions } from "./options";
import type { Column } from "./output";

interface TrackOptions extends CommonOptions {
  prefix?: string;
  operations?: (typeof OPERATIONS)[number][];
  tenantColumn?: string;
  excludeColumns?: string[];
}

/** SQL option names → the flags that set them, so errors name what the user typed. */
const FLAGS: Record<string, string> = {
  event_prefix: "--prefix",
  operations: "--operations",
  tenant_column: "--tenant-column",
  excluded_columns: "--exclude-columns",
  table: "<table>",
  type: "<type>",
  data: "<json>",
  tenant: "--tenant",
  previous: "--previous",
};

const trackedColumns: Column<TrackedTableInfo>[] = [
  { header: "table", value: (t) => t.table },
  { header: "prefix", value: (t) => t.event_prefix },
  { header: "operations", value: (t) => t.operations },
  { header: "tenant column", value: (t) => t.tenant_column },
  { header: "excluded columns", value: (t) => (t.excluded_columns.length ? t.excluded_columns : null) },
  { header: "primary key", value: (t) => (t.primary_key.length ? t.primary_key : null) },
  { header: "tracked at", value: (t) => t.tracked_at },
];

export function registerTracking(program: Command, cli: Cli): void {
  common(
    program
      .command("track")
      .description("emit <prefix>.created|updated|deleted (and .truncated) events for a table's row changes (again: update the options)")
      .argument("<table>", "table name, optionally schema-qualified (public.clients)")
      .option("--prefix <prefix>", "event type prefix (default: the table name)")
      .option("--operations <list>", "which of insert,update,delete to capture (default: all three)", listOf(OPERATIONS))
      .option("--tenant-column <column>", "column whose value travels with each event as its tenant")
      .option("--exclude-columns <list>", "columns that never leave the database, e.g. password_hash", list),
    "pg-webhooks track public.clients --tenant-column account_id --exclude-columns password_hash,api_token",
    "pg-webhooks track deals --prefix crm.deal --operations insert,update",
  ).action((table: string, opts: TrackOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      let info: TrackedTableInfo;
      try {
        info = await trackTable(conn, {
          table,
          prefix: opts.prefix ?? null,
          ...(opts.operations ? { operations: opts.operations } : {}),
          tenantColumn: opts.tenantColumn ?? null,
          excludedColumns: opts.excludeColumns ?? [],
        });
      } catch (e) {
        throw withFlagNames(e, FLAGS);
      }
      out.result(info, () => {
        const types = OPERATIONS.filter((o) => info.operations.includes(o)).map(
          (o) => `${info.event_prefix}.${o === "insert" ? "created" : `${o}d`}`,
        );
        // TRUNCATE is announced with deletes (sql/0002_events.sql).
        if (info.operations.includes("delete")) types.push(`${info.event_prefix}.truncated`);
        out.say(`Tracking ${info.table}: ${types.join(", ")}`);
        if (info.tenant_column) out.say(`  tenant column: ${info.tenant_column}`);
        if (info.excluded_columns.length) out.say(`  excluded columns: ${info.excluded_columns.join(", ")}`);
      });
    }),
  );

  common(
    program
      .command("untrack")
      .description("stop emitting events for a table (events already captured are still delivered)")
      .argument("<table>", "table name"),
    "pg-webhooks untrack public.clients",
  ).action((table: string, opts: CommonOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      let untracked: boolean;
      try {
        untracked = await untrackTable(conn, table);
      } catch (e) {
        throw withFlagNames(e, FLAGS);
      }
      out.result({ table, untracked }, () =>
        out.say(untracked ? `No longer tracking ${table}.` : `${table} was not tracked; nothing changed.`),
      );
    }),
  );

  common(
    program.command("tracked").description("list tracked tables with their options"),
    "pg-webhooks tracked --json",
  ).action((opts: CommonOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      out.list(await listTracked(conn), trackedColumns, { empty: "No tables are tracked. Add one with: pg-webhooks track <table>" });
    }),
  );

  common(
    program
      .command("emit")
      .description("emit a custom event, delivered like any other (apps call webhooks.emit() in SQL)")
      .argument("<type>", "dotted event name, e.g. invoice.paid")
      .argument("<json>", "the event's data as JSON (numbers kept exactly)", (text) => jsonValue(text, true))
      .option("--tenant <tenant>", "tenant the event belongs to")
      .option("--previous <json>", "previous_attributes: a JSON object of the old values of what changed", (text) => jsonValue(text, true)),
    `pg-webhooks emit invoice.paid '{"id": 42, "amount": 1200}' --tenant acme`,
    `pg-webhooks emit invoice.status_changed '{"id": 42, "status": "paid"}' --previous '{"status": "open"}'`,
  ).action((type: string, data: unknown, opts: CommonOptions & { tenant?: string; previous?: unknown }) =>
    cli.run(opts, async ({ conn, out }) => {
      let r: { event_id: string };
      try {
        r = await emitEvent(conn, { type, data, tenant: opts.tenant ?? null, ...(opts.previous === undefined ? {} : { previous: opts.previous }) });
      } catch (e) {
        throw withFlagNames(e, FLAGS);
      }
      out.result({ event_id: r.event_id, type }, () => out.say(`Emitted ${type} (event ${r.event_id}).`));
    }),
  );
}
