// The event types there are to subscribe to: those tracked tables produce (from their
// options) and the custom types webhooks.emit() has produced so far. A tenant key sees only
// the custom types of its own tenant's events: a type name can itself tell another tenant's story.
import { z } from "zod";
import type { Connection } from "../db/connection";
import type { Scope } from "./scope";

export const eventTypeSchema = z
  .object({
    type: z.string(),
    source: z.enum(["table", "custom"]),
    table: z.string().optional().meta({ description: "The tracked table, for table events." }),
  })
  .meta({ id: "EventType" });

export type EventTypeInfo = z.output<typeof eventTypeSchema>;

const SUFFIX: Record<string, string> = { insert: "created", update: "updated", delete: "deleted" };

/**
 * Table types first (by table, in created/updated/deleted order), then custom types by name.
 * Tracked tables are shared by every tenant; custom types are listed to a tenant key only when
 * an event of its tenant still in the outbox carries them (emit() keeps no tenant per type).
 */
export async function listEventTypes(conn: Connection, scope: Scope): Promise<EventTypeInfo[]> {
  const tables = await conn.sql<{ table: string; event_prefix: string; operations: string[] }[]>`
    select table_name::text as table, event_prefix, operations from webhooks.tracked_tables order by table_name::text`;
  const custom =
    scope.tenant === null
      ? await conn.sql<{ type: string }[]>`select type from webhooks.event_types_seen order by type`
      : await conn.sql<{ type: string }[]>`
          select s.type from webhooks.event_types_seen s
           where exists (select 1 from webhooks.outbox o where o.type = s.type and o.tenant = ${scope.tenant} and o.source_table is null)
           order by s.type`;
  const out: EventTypeInfo[] = [];
  for (const t of tables) {
    for (const op of ["insert", "update", "delete"]) {
      if (t.operations.includes(op)) out.push({ type: `${t.event_prefix}.${SUFFIX[op]}`, source: "table", table: t.table });
    }
  }
  for (const c of custom) out.push({ type: c.type, source: "custom" });
  return out;
}
