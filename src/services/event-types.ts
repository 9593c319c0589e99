// The event types there are to subscribe to: those tracked tables produce (from their
// options) and the custom types webhooks.emit() has produced so far.
import { z } from "zod";
import type { Connection } from "../db/connection";

export const eventTypeSchema = z
  .object({
    type: z.string(),
    source: z.enum(["table", "custom"]),
    table: z.string().optional().meta({ description: "The tracked table, for table events." }),
  })
  .meta({ id: "EventType" });

export type EventTypeInfo = z.output<typeof eventTypeSchema>;

const SUFFIX: Record<string, string> = { insert: "created", update: "updated", delete: "deleted" };

/** Table types first (by table, in created/updated/deleted order), then custom types by name. */
export async function listEventTypes(conn: Connection): Promise<EventTypeInfo[]> {
  const tables = await conn.sql<{ table: string; event_prefix: string; operations: string[] }[]>`
    select table_name::text as table, event_prefix, operations from webhooks.tracked_tables order by table_name::text`;
  const custom = await conn.sql<{ type: string }[]>`select type from webhooks.event_types_seen order by type`;
  const out: EventTypeInfo[] = [];
  for (const t of tables) {
    for (const op of ["insert", "update", "delete"]) {
      if (t.operations.includes(op)) out.push({ type: `${t.event_prefix}.${SUFFIX[op]}`, source: "table", table: t.table });
    }
  }
  for (const c of custom) out.push({ type: c.type, source: "custom" });
  return out;
}
