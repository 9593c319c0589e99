// `pg-webhooks event-types`: every type there is to subscribe to, with the JSON Schema of its
// data and an example body per payload preset (under --json, or for one type with --type).
import type { Command } from "commander";
import { ADMIN } from "../services/scope";
import type { EventTypeInfo } from "../model/event-type";
import type { Cli } from "./context";
import { common, type CommonOptions } from "./options";
import type { Column } from "./output";

const columns: Column<EventTypeInfo>[] = [
  { header: "type", value: (t) => t.type },
  { header: "source", value: (t) => t.source },
  { header: "table", value: (t) => t.table ?? null },
  { header: "fields", value: (t) => Object.keys((t.data_schema.properties as Record<string, unknown> | undefined) ?? {}).join(", "), max: 48 },
];

export function registerEventTypes(program: Command, cli: Cli): void {
  common(
    program
      .command("event-types")
      .description("list the event types tracked tables and emit() produce, with their data's JSON Schema and example bodies")
      .option("--type <type>", "show one type: its data schema and the body each payload preset sends"),
    "pg-webhooks event-types",
    "pg-webhooks event-types --type clients.updated",
  ).action((opts: CommonOptions & { type?: string }) =>
    cli.run(opts, async ({ conn, out }) => {
      const { listEventTypes } = await import("../services/event-types.js");
      const all = await listEventTypes(conn, ADMIN);
      if (opts.type === undefined) {
        out.list(all, columns, { empty: "No event types yet. Track a table with: pg-webhooks track <table>" });
        return;
      }
      const one = all.find((t) => t.type === opts.type);
      if (one === undefined) {
        const { DomainError } = await import("../errors.js");
        throw new DomainError("not_found", `event type ${opts.type} not found (pg-webhooks event-types lists them)`);
      }
      out.result(one, () => {
        out.say(`${one.type} (${one.source}${one.table ? `, ${one.table}` : ""})`);
        out.say(`data schema:\n  ${JSON.stringify(one.data_schema)}`);
        for (const [preset, body] of Object.entries(one.examples)) out.say(`${preset}:\n  ${JSON.stringify(body)}`);
      });
    }),
  );
}
