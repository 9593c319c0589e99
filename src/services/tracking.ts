// Tracking tables and emitting custom events: thin wrappers over the SQL functions DBAs call
// (webhooks.track_table, untrack_table, emit), so the CLI and SQL behave identically.
import { sql } from "kysely";
import type { Connection } from "../db/connection";
import { fromPostgresError } from "../db/errors";
import { stringifyExact } from "../delivery/event-json";
import { all, build, first } from "./query";

export const OPERATIONS = ["insert", "update", "delete"] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface TrackOptions {
  /** A table name as Postgres reads it: `clients`, `public.clients`, `"Mixed Case"`. */
  table: string;
  /** Event type prefix; defaults (in SQL) to the table name. */
  prefix?: string | null;
  operations?: Operation[];
  tenantColumn?: string | null;
  excludedColumns?: string[];
}

export interface TrackedTableInfo {
  table: string;
  event_prefix: string;
  operations: string[];
  tenant_column: string | null;
  excluded_columns: string[];
  primary_key: string[];
  tracked_at: Date;
  updated_at: Date;
}

/**
 * The caller's mistakes (an unknown table, a bad argument to our SQL functions, bad JSON)
 * become invalid_input; anything else is rethrown as it is, for the face to map.
 */
function asDomainError(e: unknown, table?: string): unknown {
  const d = fromPostgresError(e, { userInput: table === undefined ? {} : { table } });
  return d?.code === "invalid_input" ? d : e;
}

// table_name is a regclass: as text it is the name as the search path shows it, and sorts as one.
const tableName = sql<string>`table_name::text`;

/** tracked_tables rows as TrackedTableInfo. */
const trackedTables = () =>
  build
    .selectFrom("webhooks.tracked_tables")
    .select([tableName.as("table"), "event_prefix", "operations", "tenant_column", "excluded_columns", "primary_key", "tracked_at", "updated_at"]);

/** Installs (or re-configures) the capture trigger on a table; returns its tracking options. */
export async function trackTable(conn: Connection, opts: TrackOptions): Promise<TrackedTableInfo> {
  const operations = opts.operations && opts.operations.length > 0 ? opts.operations : [...OPERATIONS];
  try {
    return await conn.sql.begin(async (tx) => {
      // Tagged SQL: the call a DBA would type, with its named arguments.
      await tx`
        select webhooks.track_table(
          ${opts.table}::regclass,
          event_prefix => ${opts.prefix ?? null}::text,
          operations => ${operations}::text[],
          tenant_column => ${opts.tenantColumn ?? null}::text,
          excluded_columns => ${opts.excludedColumns ?? []}::text[])`;
      const row = await first(tx, trackedTables().where("table_name", "=", sql<string>`${opts.table}::regclass`));
      if (!row) throw new Error(`track_table(${opts.table}) left no tracked_tables row`);
      return row;
    });
  } catch (e) {
    throw asDomainError(e, opts.table);
  }
}

/** Removes the capture trigger; false when the table was not tracked. */
export async function untrackTable(conn: Connection, table: string): Promise<boolean> {
  try {
    // Tagged SQL: a call of the function DBAs call, nothing to type beyond its one result.
    const [row] = await conn.sql<{ untracked: boolean }[]>`select webhooks.untrack_table(${table}::regclass) as untracked`;
    return row?.untracked === true;
  } catch (e) {
    throw asDomainError(e, table);
  }
}

export async function listTracked(conn: Connection): Promise<TrackedTableInfo[]> {
  return all(conn.db, trackedTables().orderBy(tableName));
}

export interface EmitInput {
  type: string;
  data: unknown;
  tenant?: string | null;
  /** previous_attributes: the old values of what changed (a JSON object). */
  previous?: unknown;
}

/** Emits a custom event in its own transaction; returns the event id. */
export async function emitEvent(conn: Connection, input: EmitInput): Promise<{ event_id: string }> {
  const data = stringifyExact(input.data, "number", true);
  const tenant = input.tenant ?? null;
  try {
    // Tagged SQL: a call of webhooks.emit(), with the data as an explicit jsonb parameter. The
    // three-argument form unless there are previous values (a role may be granted only that one).
    const [row] =
      input.previous === undefined
        ? await conn.sql<{ event_id: string }[]>`
            select webhooks.emit(${input.type}, ${data}::text::jsonb, ${tenant}::text) as event_id`
        : await conn.sql<{ event_id: string }[]>`
            select webhooks.emit(${input.type}, ${data}::text::jsonb, ${tenant}::text,
                                 previous => ${stringifyExact(input.previous, "number", true)}::text::jsonb) as event_id`;
    if (!row) throw new Error("webhooks.emit returned no row");
    return row;
  } catch (e) {
    throw asDomainError(e);
  }
}
