// The event types there are to subscribe to: those tracked tables produce (from their
// options) and the custom types webhooks.emit() has produced so far. A tenant key sees only
// the custom types of its own tenant's events: a type name can itself tell another tenant's story.
// Each type carries the JSON Schema of its data (from the table's columns, before any event
// happened) and an example body per payload preset.
import { sql } from "kysely";
import type { Connection } from "../db/connection";
import { renderPayload } from "../delivery/render";
import { PAYLOAD_PRESETS, type PayloadPreset } from "../model/payload";
import type { EventTypeInfo } from "../model/event-type";
import { ruleEventTypes } from "./rules";
import type { Scope } from "./scope";

const SUFFIX: Record<string, string> = { insert: "created", update: "updated", delete: "deleted" };

/** A column of a tracked table as pg_catalog describes it. */
export interface ColumnInfo {
  name: string;
  /** pg_type.typname (an array's starts with _). */
  type: string;
  /** pg_type.typcategory; an array's is A. */
  category: string;
  /** The element's typname, for arrays. */
  element: string | null;
  /** Enum labels, in order, for enum types. */
  labels: string[] | null;
  not_null: boolean;
}

type Schema = Record<string, unknown>;

const INTEGER_DIGITS = "^-?[0-9]+$";
const DECIMAL_DIGITS = "^-?[0-9]+(\\.[0-9]+)?$";

/** JSON Schema of a value of this Postgres type as to_jsonb writes it (and big_numbers "string" carries it). */
function typeSchema(type: string, category: string, labels: string[] | null): Schema {
  switch (type) {
    case "int2":
    case "int4":
      return { type: "integer" };
    case "int8":
      return {
        type: ["integer", "string"],
        pattern: INTEGER_DIGITS,
        description: "bigint: a number; beyond 2^53, a string of its exact digits",
      };
    case "numeric":
      return {
        type: ["number", "string"],
        pattern: DECIMAL_DIGITS,
        description: "numeric: a number; with more than 15 significant digits, a string of its exact digits",
      };
    case "float4":
    case "float8":
      return { type: ["number", "string"], description: "a number; NaN and Infinity as strings" };
    case "bool":
      return { type: "boolean" };
    case "uuid":
      return { type: "string", format: "uuid" };
    case "date":
      return { type: "string", format: "date" };
    case "timestamp":
    case "timestamptz":
      return { type: "string", format: "date-time" };
    case "json":
    case "jsonb":
      return {};
  }
  if (labels !== null) return { type: "string", enum: labels };
  if (category === "S" || category === "D" || category === "T" || category === "U" || category === "I") return { type: "string" };
  if (category === "N") return { type: "number" };
  if (category === "C") return { type: "object" };
  return {};
}

function columnSchema(c: ColumnInfo): Schema {
  const s =
    c.category === "A"
      ? { type: "array", items: typeSchema(c.element ?? "", "", null) }
      : typeSchema(c.type, c.category, c.labels);
  if (c.not_null || !("type" in s)) return s;
  const t = s.type;
  return { ...s, type: Array.isArray(t) ? [...t, "null"] : [t, "null"] };
}

/** The JSON Schema of a tracked table's event data. */
export function dataSchema(columns: ColumnInfo[]): Schema {
  return {
    type: "object",
    properties: Object.fromEntries(columns.map((c) => [c.name, columnSchema(c)])),
    required: columns.map((c) => c.name),
  };
}

/** A made-up value of the column's type. */
export function sampleValue(c: ColumnInfo, now: Date): unknown {
  if (c.category === "A") return [];
  if (c.labels !== null && c.labels.length > 0) return c.labels[0];
  switch (c.type) {
    case "int2":
    case "int4":
    case "int8":
      return c.name === "id" || c.name.endsWith("_id") ? 42 : 1;
    case "numeric":
    case "float4":
    case "float8":
      return 12.5;
    case "bool":
      return true;
    case "uuid":
      return "00000000-0000-4000-8000-000000000000";
    case "json":
    case "jsonb":
      return {};
    case "date":
      return now.toISOString().slice(0, 10);
    case "timestamp":
      return now.toISOString().slice(0, 23);
    case "timestamptz":
      return now.toISOString();
  }
  if (c.category === "N") return 1;
  if (c.category === "S") return c.name === "name" ? "Acme" : "example";
  return null;
}

/** A made-up row of the table: its data for the examples. */
export function sampleRow(columns: ColumnInfo[], now = new Date()): Record<string, unknown> {
  return Object.fromEntries(columns.map((c) => [c.name, sampleValue(c, now)]));
}

const EXAMPLE_WEBHOOK = { id: "00000000-0000-4000-8000-00000000000a", name: "example" };
const EXAMPLE_DELIVERY = "00000000-0000-4000-8000-00000000000d";
const EXAMPLE_EVENT = "00000000-0000-4000-8000-00000000000e";

/** The body each preset sends for a made-up event (an update changes the first non-key column). */
export async function exampleBodies(
  type: string,
  data: Record<string, unknown>,
  primaryKey: string[] | null,
  previous: Record<string, unknown> | null,
): Promise<Record<PayloadPreset, unknown>> {
  const out = {} as Record<PayloadPreset, unknown>;
  const event = {
    event_id: EXAMPLE_EVENT,
    type,
    occurred_at: new Date("2026-01-01T12:00:00.000Z"),
    data: JSON.stringify(data),
    previous_attributes: previous === null ? null : JSON.stringify(previous),
    tenant: null,
    big_numbers: "string" as const,
  };
  for (const preset of PAYLOAD_PRESETS) {
    const body = await renderPayload({ preset }, event, {
      webhook: EXAMPLE_WEBHOOK,
      deliveryId: EXAMPLE_DELIVERY,
      organization: { id: "acme", name: "Acme Inc.", slug: "acme", metadata: {} },
      primaryKey,
    });
    out[preset] = JSON.parse(body) as unknown;
  }
  return out;
}

/** What an update example changes: the first column outside the key, set to a different sample. */
function previousFor(data: Record<string, unknown>, primaryKey: string[], tenantColumn: string | null): Record<string, unknown> | null {
  // Not the tenant column either: an update event never moves a row to another tenant's events.
  const col = Object.keys(data).find((k) => !primaryKey.includes(k) && k !== tenantColumn && typeof data[k] !== "object");
  if (col === undefined) return null;
  const v = data[col];
  return { [col]: typeof v === "number" ? v - 1 : typeof v === "boolean" ? !v : typeof v === "string" ? `previous ${v}` : null };
}

interface TrackedRow {
  table: string;
  /** schema.table, as outbox.source_table names it. */
  source: string;
  event_prefix: string;
  operations: string[];
  primary_key: string[];
  tenant_column: string | null;
  columns: ColumnInfo[] | null;
}

/** Tracked tables with their visible columns (excluded ones left out), by table name. */
export async function trackedTableColumns(conn: Connection): Promise<TrackedRow[]> {
  // table_name is a regclass: as text it is the name as the search path shows it, and sorts as one.
  return conn.sql<TrackedRow[]>`
    select t.table_name::text as table, t.event_prefix, t.operations, t.primary_key, t.tenant_column,
           (select n.nspname || '.' || c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
             where c.oid = t.table_name) as source,
           (select json_agg(json_build_object(
                     'name', a.attname, 'type', ty.typname, 'category', ty.typcategory, 'not_null', a.attnotnull,
                     'element', el.typname,
                     'labels', (select json_agg(e.enumlabel order by e.enumsortorder) from pg_catalog.pg_enum e where e.enumtypid = ty.oid))
                   order by a.attnum)
              from pg_catalog.pg_attribute a
              join pg_catalog.pg_type ty on ty.oid = a.atttypid
              left join pg_catalog.pg_type el on el.oid = ty.typelem and ty.typcategory = 'A'
             where a.attrelid = t.table_name and a.attnum > 0 and not a.attisdropped
               and not (a.attname::text = any(t.excluded_columns)) and not (a.attnum = any(t.excluded_attnums))) as columns
      from webhooks.tracked_tables t
     order by t.table_name::text`;
}

/**
 * Table types first (by table, in created/updated/deleted/truncated order), then rule types (by
 * table and name), then custom types by name.
 * Tracked tables are shared by every tenant; custom types are listed to a tenant key only when
 * an event of its tenant still in the outbox carries them (emit() keeps no tenant per type).
 */
export async function listEventTypes(conn: Connection, scope: Scope): Promise<EventTypeInfo[]> {
  const { tenant } = scope;
  const tables = await trackedTableColumns(conn);
  const custom = await conn.db
    .selectFrom("webhooks.event_types_seen as s")
    .select("s.type")
    .$call((q) =>
      tenant === null
        ? q
        : q.where(({ exists, selectFrom }) =>
            exists(
              selectFrom("webhooks.outbox as o")
                .select(sql`1`.as("one"))
                .whereRef("o.type", "=", "s.type")
                .where("o.tenant", "=", tenant)
                .where("o.source_table", "is", null),
            ),
          ),
    )
    .orderBy("s.type")
    .execute();
  const out: EventTypeInfo[] = [];
  for (const t of tables) {
    const columns = t.columns ?? [];
    const schema = dataSchema(columns);
    const row = sampleRow(columns);
    const pk = t.primary_key.length > 0 ? t.primary_key : null;
    for (const op of ["insert", "update", "delete"]) {
      if (!t.operations.includes(op)) continue;
      const type = `${t.event_prefix}.${SUFFIX[op]}`;
      const previous = op === "update" ? previousFor(row, t.primary_key, t.tenant_column) : null;
      out.push({ type, source: "table", table: t.table, data_schema: schema, examples: await exampleBodies(type, row, pk, previous) });
    }
    // A TRUNCATE of a table whose deletes are tracked is one <prefix>.truncated event.
    if (t.operations.includes("delete")) {
      const type = `${t.event_prefix}.truncated`;
      out.push({
        type,
        source: "table",
        table: t.table,
        data_schema: { type: "object", properties: { table: { type: "string" } }, required: ["table"] },
        examples: await exampleBodies(type, { table: t.table }, null, null),
      });
    }
  }
  // Rule-derived types (webhooks.add_event_rule, src/services/rules.ts), shared by every tenant
  // as tables are: each with its table's data_schema, after the tables' own types.
  const byTable = new Map(tables.map((t) => [t.table, t]));
  for (const r of await ruleEventTypes(conn)) {
    const t = r.table === undefined ? undefined : byTable.get(r.table);
    const columns = t?.columns ?? [];
    const row = sampleRow(columns);
    const pk = t && t.primary_key.length > 0 ? t.primary_key : null;
    const previous = t ? previousFor(row, t.primary_key, t.tenant_column) : null;
    out.push({ ...r, data_schema: dataSchema(columns), examples: await exampleBodies(r.type, row, pk, previous) });
  }
  for (const c of custom) {
    out.push({ type: c.type, source: "custom", data_schema: {}, examples: await exampleBodies(c.type, {}, null, null) });
  }
  return out;
}
