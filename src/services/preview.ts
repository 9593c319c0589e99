// Previews of a webhook's payload: its body rendered for recent real events of the types it
// subscribes to (or one named event, or made-up samples when there is none), without sending.
// Saving a payload renders one too: a template a guard cuts off is refused there.
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { Connection, Queryable } from "../db/connection";
import type { EventForDelivery } from "../delivery/render";
import { payloadNeeds, renderPayload } from "../delivery/render";
import { readOrganizations } from "../delivery/records";
import { TemplateError, compileTemplate } from "../delivery/template";
import { DomainError, notFound } from "../errors";
import type { BigNumbers } from "../model/enums";
import { typeMatches } from "../model/filter";
import type { PayloadSpec } from "../model/payload";
import { strictObject } from "../model/validation";
import { isUuid } from "./cursor";
import { sampleRow, trackedTableColumns } from "./event-types";

export const previewRequestSchema = strictObject({
  event_id: z.uuid({ error: "expected an event id (a UUID)" }).optional().meta({
    description: "Render for this event (its webhook-id); default: the 3 most recent events of the subscribed types, or samples.",
  }),
});

export const previewItemSchema = z
  .object({
    event_id: z.string().nullable().meta({ description: "The event rendered; null for a made-up sample." }),
    type: z.string(),
    sample: z.boolean().meta({ description: "True when no real event of the subscribed types was found." }),
    body: z.string().nullable().meta({ description: "The exact body that would be sent (signed as is)." }),
    error: z.string().nullable().meta({ description: "Why this event cannot be rendered; its delivery would fail without a request." }),
  })
  .meta({ id: "PayloadPreview" });

export type PreviewItem = z.output<typeof previewItemSchema>;

/** What a preview needs of a webhook (a row, or one about to be written). */
export interface PreviewWebhook {
  id: string;
  name: string | null;
  tenant: string | null;
  events: string[];
  payload: PayloadSpec;
  big_numbers: BigNumbers;
}

/** The delivery id a preview shows (no delivery exists): the same each time, so previews compare. */
export const PREVIEW_DELIVERY_ID = "00000000-0000-0000-0000-000000000000";

/** Recent events to render: at most this many, found among the newest outbox rows. */
const RECENT = 3;
const LOOK_BACK = 10_000;

type OutboxEvent = Omit<EventForDelivery, "big_numbers">;

async function recentEvents(sql: Queryable, w: PreviewWebhook, eventId: string | undefined): Promise<OutboxEvent[]> {
  const cols = sql`coalesce(o.event_id, gen_random_uuid()) as event_id, o.type, o.occurred_at, o.data::text as data,
                   o.previous_attributes::text as previous_attributes, o.tenant, o.source_table`;
  if (eventId !== undefined) {
    const rows = await sql<OutboxEvent[]>`
      select ${cols} from webhooks.outbox o
       where o.event_id = ${eventId} and (${w.tenant}::text is null or o.tenant = ${w.tenant})
       limit 1`;
    if (rows.length === 0) throw notFound("not_found", "event", eventId);
    return rows;
  }
  // The event-pattern match (exact, prefix.*, *) as fanout matches, over the newest rows only.
  return sql<OutboxEvent[]>`
    select ${cols} from webhooks.outbox o
     where o.id > (select coalesce(max(id), 0) - ${LOOK_BACK} from webhooks.outbox)
       and (${w.tenant}::text is null or o.tenant = ${w.tenant})
       and exists (select 1 from unnest(${w.events}::text[]) p
                    where p = '*' or p = o.type
                       or (right(p, 2) = '.*' and length(o.type) > length(p) - 1 and left(o.type, length(p) - 1) = left(p, -1)))
     order by o.id desc
     limit ${RECENT}`;
}

/** Made-up events of the subscribed types tracked tables produce (or one test event). */
async function sampleEvents(conn: Connection, w: PreviewWebhook): Promise<OutboxEvent[]> {
  const out: OutboxEvent[] = [];
  const now = new Date();
  for (const t of await trackedTableColumns(conn)) {
    for (const [op, suffix] of [["insert", "created"], ["update", "updated"], ["delete", "deleted"]] as const) {
      const type = `${t.event_prefix}.${suffix}`;
      if (!t.operations.includes(op) || !typeMatches(w.events, type)) continue;
      const row = sampleRow(t.columns ?? [], now);
      out.push({
        event_id: randomUUID(),
        type,
        occurred_at: now,
        data: JSON.stringify(row),
        previous_attributes: null,
        tenant: w.tenant,
        source_table: t.source,
      });
      if (out.length >= RECENT) return out;
    }
  }
  if (out.length === 0) {
    const type = w.events.find((p) => !p.includes("*")) ?? "webhook.test";
    out.push({ event_id: randomUUID(), type, occurred_at: now, data: JSON.stringify({ id: 42 }), previous_attributes: null, tenant: w.tenant, source_table: null });
  }
  return out;
}

async function primaryKeyOf(sql: Queryable, source: string | null | undefined): Promise<string[] | null> {
  if (source === null || source === undefined) return null;
  const [row] = await sql<{ primary_key: string[] }[]>`
    select t.primary_key from webhooks.tracked_tables t
      join pg_catalog.pg_class c on c.oid = t.table_name
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where n.nspname || '.' || c.relname = ${source}`;
  return row && row.primary_key.length > 0 ? row.primary_key : null;
}

/**
 * Renders the webhook's payload for real events (or samples) without sending anything. A
 * guard cutting the template off is an error of the template, not of one event: with
 * `refuseCutOff` (saving) it throws invalid_input naming payload.template.
 */
export async function renderPreview(
  conn: Connection,
  w: PreviewWebhook,
  opts: { eventId?: string | undefined; refuseCutOff?: boolean } = {},
): Promise<PreviewItem[]> {
  if (opts.eventId !== undefined && !isUuid(opts.eventId)) throw notFound("not_found", "event", opts.eventId);
  const real = await recentEvents(conn.sql, w, opts.eventId);
  const events = real.length > 0 ? real : await sampleEvents(conn, w);
  const needs = payloadNeeds(w.payload);
  const items: PreviewItem[] = [];
  for (const e of events) {
    const organization = needs.organization && e.tenant !== null ? ((await readOrganizations(conn.sql, [e.tenant])).get(e.tenant) ?? null) : null;
    const primaryKey = needs.primaryKey ? await primaryKeyOf(conn.sql, e.source_table) : null;
    const item: PreviewItem = { event_id: real.length > 0 ? e.event_id : null, type: e.type, sample: real.length === 0, body: null, error: null };
    try {
      item.body = await renderPayload(w.payload, { ...e, big_numbers: w.big_numbers }, {
        webhook: { id: w.id, name: w.name },
        deliveryId: PREVIEW_DELIVERY_ID,
        organization,
        primaryKey,
      });
    } catch (err) {
      if (err instanceof TemplateError && err.kind === "limit" && opts.refuseCutOff) throw templateInvalid(`${err.message} (rendering a ${e.type} event)`);
      item.error = err instanceof Error ? err.message : String(err);
    }
    items.push(item);
  }
  return items;
}

function templateInvalid(message: string): DomainError {
  return new DomainError("invalid_input", `payload.template: ${message}`, [{ path: "payload.template", message }]);
}

/** Compiles a template about to be saved, or throws invalid_input naming payload.template and the position. */
export function checkPayload(payload: PayloadSpec): void {
  if (!("template" in payload)) return;
  try {
    compileTemplate(payload.template);
  } catch (e) {
    if (e instanceof TemplateError) throw templateInvalid(e.message);
    throw e;
  }
}
