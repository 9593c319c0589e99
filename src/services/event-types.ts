// The event types there are to subscribe to: those tracked tables produce (from their
// options) and the custom types webhooks.emit() has produced so far. A tenant key sees only
// the custom types of its own tenant's events: a type name can itself tell another tenant's story.
import { sql } from "kysely";
import type { Connection } from "../db/connection";
import type { EventTypeInfo } from "../model/event-type";
import { ruleEventTypes } from "./rules";
import type { Scope } from "./scope";

const SUFFIX: Record<string, string> = { insert: "created", update: "updated", delete: "deleted" };

/**
 * Table types first (by table, in created/updated/deleted/truncated order), then rule types (by
 * table and name), then custom types by name.
 * Tracked tables are shared by every tenant; custom types are listed to a tenant key only when
 * an event of its tenant still in the outbox carries them (emit() keeps no tenant per type).
 */
export async function listEventTypes(conn: Connection, scope: Scope): Promise<EventTypeInfo[]> {
  const { tenant } = scope;
  // table_name is a regclass: as text it is the name as the search path shows it, and sorts as one.
  const tableName = sql<string>`table_name::text`;
  const tables = await conn.db
    .selectFrom("webhooks.tracked_tables")
    .select([tableName.as("table"), "event_prefix", "operations"])
    .orderBy(tableName)
    .execute();
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
    for (const op of ["insert", "update", "delete"]) {
      if (t.operations.includes(op)) out.push({ type: `${t.event_prefix}.${SUFFIX[op]}`, source: "table", table: t.table });
    }
    // A TRUNCATE of a table whose deletes are tracked is one <prefix>.truncated event.
    if (t.operations.includes("delete")) out.push({ type: `${t.event_prefix}.truncated`, source: "table", table: t.table });
  }
  // Derived types from event rules (services/rules.ts), shared by every tenant as tables are.
  out.push(...(await ruleEventTypes(conn)));
  for (const c of custom) out.push({ type: c.type, source: "custom" });
  return out;
}
