// `rules list|add|drop`: derived events (deal.stage.changed) compiled into a tracked table's capture.
import type { Command } from "commander";
import { addEventRule, dropEventRule, listEventRules, type EventRuleInfo } from "../services/rules";
import { OPERATIONS } from "../services/tracking";
import type { Cli } from "./context";
import { common, jsonValue, list, listOf, withFlagNames, type CommonOptions } from "./options";
import type { Column } from "./output";

interface AddOptions extends CommonOptions {
  onChange?: string[];
  condition?: unknown;
  operations?: (typeof OPERATIONS)[number][];
}

/** SQL argument names → the flags that set them, so errors name what the user typed. */
const FLAGS: Record<string, string> = {
  table: "<table>",
  type: "<type>",
  on_change: "--on-change",
  condition: "--condition",
  operations: "--operations",
};

const ruleColumns: Column<EventRuleInfo>[] = [
  { header: "table", value: (r) => r.table },
  { header: "type", value: (r) => r.type },
  { header: "operations", value: (r) => r.operations },
  { header: "on change", value: (r) => r.on_change },
  { header: "condition", value: (r) => r.condition ?? (r.sql_condition === null ? null : `sql: ${r.sql_condition}`), max: 60 },
  { header: "status", value: (r) => (r.disabled_reason === null ? "active" : `disabled: ${r.disabled_reason}`) },
];

export function registerRules(program: Command, cli: Cli): void {
  const rules = program
    .command("rules")
    .description("derived events: emit deal.stage.changed when a tracked table's stage changes (compiled into its capture trigger)");

  common(
    rules.command("list").description("list event rules, with why a rule is disabled"),
    "pg-webhooks rules list --json",
  ).action((opts: CommonOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      out.list(await listEventRules(conn), ruleColumns, {
        empty: "No event rules. Add one with: pg-webhooks rules add <table> <type> --on-change <columns>",
      });
    }),
  );

  common(
    rules
      .command("add")
      .description("emit <type> after the table's own event when a write changes --on-change and matches --condition (again: replace the rule)")
      .argument("<table>", "a tracked table, optionally schema-qualified (public.deals)")
      .argument("<type>", "the derived event's type, e.g. deal.stage.changed")
      .option("--on-change <columns>", "fire only when one of these columns changes (default: any change)", list)
      .option("--condition <json>", "a webhook filter over the event, e.g. '{\"data.stage\": \"won\"}'", (text) => jsonValue(text))
      .option("--operations <list>", "which of insert,update,delete (default: update)", listOf(OPERATIONS)),
    "pg-webhooks rules add public.deals deal.stage.changed --on-change stage",
    `pg-webhooks rules add public.opportunities opportunity.closed_won --on-change stage --condition '{"data.stage": "won"}'`,
  ).action((table: string, type: string, opts: AddOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      let rule: EventRuleInfo;
      try {
        rule = await addEventRule(conn, {
          table,
          type,
          onChange: opts.onChange ?? null,
          condition: opts.condition ?? null,
          ...(opts.operations ? { operations: opts.operations } : {}),
        });
      } catch (e) {
        throw withFlagNames(e, FLAGS);
      }
      out.result(rule, () => {
        out.say(`Rule ${rule.type} on ${rule.table} (${rule.operations.join(", ")})`);
        if (rule.on_change) out.say(`  on change of: ${rule.on_change.join(", ")}`);
        if (rule.condition !== null) out.say(`  condition: ${JSON.stringify(rule.condition)}`);
      });
    }),
  );

  common(
    rules
      .command("drop")
      .description("stop emitting a derived event")
      .argument("<table>", "table name")
      .argument("<type>", "the rule's event type"),
    "pg-webhooks rules drop public.deals deal.stage.changed",
  ).action((table: string, type: string, opts: CommonOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      let dropped: boolean;
      try {
        dropped = await dropEventRule(conn, table, type);
      } catch (e) {
        throw withFlagNames(e, FLAGS);
      }
      out.result({ table, type, dropped }, () =>
        out.say(dropped ? `Dropped rule ${type} on ${table}.` : `${table} has no rule ${type}; nothing changed.`),
      );
    }),
  );
}
