// Event rules (derived events such as deal.stage.changed): thin wrappers over the SQL functions
// DBAs call (webhooks.add_event_rule, drop_event_rule), which check the rule and compile it
// into the table's capture function, so the CLI and SQL behave identically.
import { sql } from "kysely";
import type { Connection } from "../db/connection";
import { fromPostgresError } from "../db/errors";
import { stringifyExact } from "../delivery/event-json";
import { DomainError } from "../errors";
import type { EventTypeInfo } from "../model/event-type";
import { filterSchema, formatFilterIssues } from "../model/filter";
import { jsonProblem } from "../model/validation";
import { all, build } from "./query";
import type { Operation } from "./tracking";

export interface RuleInput {
  /** A table name as Postgres reads it: `deals`, `public.deals`. */
  table: string;
  type: string;
  onChange?: string[] | null;
  /** A condition in the webhook filter language (numbers kept exact, as parseExact reads them). */
  condition?: unknown;
  operations?: Operation[];
}

export interface EventRuleInfo {
  table: string;
  type: string;
  operations: string[];
  on_change: string[] | null;
  condition: unknown;
  sql_condition: string | null;
  /** Null while the rule fires; otherwise why it does not (a column it names is gone, say). */
  disabled_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

/**
 * Our SQL functions raise `field: problem` (SQLSTATE 22023/42703); the field may be a path
 * such as `condition.data.value.$gt`. Those become invalid_input naming it; anything else is
 * rethrown for the face to map.
 */
function asDomainError(e: unknown, table: string): unknown {
  const d = fromPostgresError(e, { userInput: { table } });
  if (d?.code !== "invalid_input") return e;
  const m = /^([a-z_]+(?:\.[^:\s]+)*): (.*)$/s.exec(d.message);
  if (!m?.[1] || !m[2]) return d;
  return new DomainError("invalid_input", d.message, [{ path: m[1], message: m[2] }], { cause: e });
}

// table_name is a regclass: as text it is the name as the search path shows it, and sorts as one.
const tableName = sql<string>`table_name::text`;

const rules = () =>
  build
    .selectFrom("webhooks.event_rules")
    // A rule of a table dropped since names no table any more: not listed.
    .where(sql<boolean>`exists (select from pg_catalog.pg_class c where c.oid = table_name)`)
    .select([
      tableName.as("table"),
      "event_type as type",
      "operations",
      "on_change",
      "condition",
      "sql_condition",
      // untrack_table() leaves rules in place (track_table() brings them back) without rewriting them.
      sql<string | null>`coalesce(disabled_reason, case when not exists (
        select from webhooks.tracked_tables t where t.table_name = event_rules.table_name)
        then table_name::text || ' is not tracked' end)`.as("disabled_reason"),
      "created_at",
      "updated_at",
    ]);

/**
 * A condition is checked as a webhook's filter is (the same language, the same messages), before
 * Postgres sees it: a number such as 1e400 or text jsonb cannot hold is refused by name.
 */
function checkCondition(condition: unknown): void {
  const problem = jsonProblem(condition);
  if (problem) {
    const path = ["condition", ...problem.path.map(String)].join(".");
    throw new DomainError("invalid_input", `${path}: ${problem.message}`, [{ path, message: problem.message }]);
  }
  const parsed = filterSchema.safeParse(condition);
  if (!parsed.success) {
    const details = formatFilterIssues(parsed.error, "condition");
    const first = details[0];
    throw new DomainError("invalid_input", first ? `${first.path}: ${first.message}` : "condition: invalid", details);
  }
}

/** Adds (or replaces) a rule and recompiles the table's capture function; returns the rule. */
export async function addEventRule(conn: Connection, input: RuleInput): Promise<EventRuleInfo> {
  if (input.condition !== undefined && input.condition !== null) checkCondition(input.condition);
  const condition = input.condition === undefined || input.condition === null ? null : stringifyExact(input.condition, "number", true);
  try {
    return await conn.sql.begin(async (tx) => {
      // Tagged SQL: the call a DBA would type, with its named arguments.
      await tx`
        select webhooks.add_event_rule(
          ${input.table}::regclass,
          ${input.type}::text,
          on_change => ${input.onChange && input.onChange.length > 0 ? input.onChange : null}::text[],
          condition => ${condition}::text::jsonb,
          operations => ${input.operations && input.operations.length > 0 ? input.operations : ["update"]}::text[])`;
      const [row] = await all(
        tx,
        rules().where("table_name", "=", sql<string>`${input.table}::regclass`).where("event_type", "=", input.type),
      );
      if (!row) throw new Error(`add_event_rule(${input.table}, ${input.type}) left no event_rules row`);
      return row;
    });
  } catch (e) {
    throw asDomainError(e, input.table);
  }
}

/** Drops a rule; false when there was none. */
export async function dropEventRule(conn: Connection, table: string, type: string): Promise<boolean> {
  try {
    // Tagged SQL: a call of the function DBAs call.
    const [row] = await conn.sql<{ dropped: boolean }[]>`select webhooks.drop_event_rule(${table}::regclass, ${type}) as dropped`;
    return row?.dropped === true;
  } catch (e) {
    throw asDomainError(e, table);
  }
}

export async function listEventRules(conn: Connection): Promise<EventRuleInfo[]> {
  return all(conn.db, rules().orderBy(tableName).orderBy("event_type"));
}

/**
 * The derived types rules of tracked tables produce, for the event-type listing (disabled
 * rules too: a rule whose column is back fires again). A small function of its own so the
 * event catalog can call it.
 */
export async function ruleEventTypes(conn: Connection): Promise<Pick<EventTypeInfo, "type" | "source" | "table">[]> {
  const rows = await all(
    conn.db,
    rules()
      .where(({ exists, selectFrom }) =>
        exists(selectFrom("webhooks.tracked_tables as t").select(sql`1`.as("one")).whereRef("t.table_name", "=", "webhooks.event_rules.table_name")),
      )
      .orderBy(tableName)
      .orderBy("event_type"),
  );
  return rows.map((r) => ({ type: r.type, source: "rule" as const, table: r.table }));
}
