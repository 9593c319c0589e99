// Inbound events (rows of webhooks.inbound_events): listing with the deliveries' filters, one
// event with its headers and body, and replay: back to pending for SQL workers, or through the
// relay again for a relaying source. A tenant sees the events of its own tenant only.
import { sql, type Kysely } from "kysely";
import { z } from "zod";
import type { Connection } from "../db/connection";
import type { Database } from "../db/schema";
import { DomainError, notFound } from "../errors";
import { INBOUND_STATUSES, type InboundStatus } from "../model/inbound";
import type { Scope } from "./scope";

export const inboundEventViewSchema = z
  .object({
    id: z.string(),
    source_id: z.string(),
    source_slug: z.string(),
    tenant: z.string().nullable(),
    event_name: z.string().nullable(),
    status: z.enum(INBOUND_STATUSES),
    attempts: z.number().int(),
    last_error: z.string().nullable(),
    dedupe_key: z.string().nullable(),
    body_bytes: z.number().int(),
    relayed_event_id: z.string().nullable(),
    received_at: z.date(),
    processed_at: z.date().nullable(),
  })
  .meta({ id: "InboundEvent" });
export type InboundEventView = z.output<typeof inboundEventViewSchema>;

export const inboundEventDetailSchema = inboundEventViewSchema
  .extend({
    headers: z.record(z.string(), z.string()),
    body: z.string().meta({ description: "The body as received, in base64 (the exact bytes)." }),
    body_text: z.string().nullable().meta({ description: "The body as UTF-8 text, when it is valid UTF-8." }),
    payload_json: z.string().nullable().meta({ description: "The stored jsonb as Postgres writes it (numbers exact); null when the body was not storable JSON." }),
  })
  .meta({ id: "InboundEventDetail" });
export type InboundEventDetail = z.output<typeof inboundEventDetailSchema>;

const eventNotFound = (id: string) => notFound("inbound_event_not_found", "inbound event", id);

const VIEW_COLUMNS = [
  "e.id",
  "e.source_id",
  "s.slug as source_slug",
  "e.tenant",
  "e.event_name",
  "e.status",
  "e.attempts",
  "e.last_error",
  "e.dedupe_key",
  "e.relayed_event_id",
  "e.received_at",
  "e.processed_at",
] as const;

function visibleEvents(db: Kysely<Database>, scope: Scope) {
  return db
    .selectFrom("webhooks.inbound_events as e")
    .innerJoin("webhooks.inbound_sources as s", "s.id", "e.source_id")
    .$if(scope.tenant !== null, (q) => q.where("e.tenant", "=", scope.tenant));
}

const ID = /^[1-9][0-9]{0,18}$/;

function checkId(id: string, path: string): string {
  if (!ID.test(id) || BigInt(id) > 9223372036854775807n) {
    const message = "expected an inbound event id (a whole number)";
    throw new DomainError("invalid_input", `${path}: ${message}`, [{ path, message }]);
  }
  return id;
}

export interface InboundEventQuery {
  /** A source slug. */
  source?: string | undefined;
  status?: InboundStatus | undefined;
  /** An exact event name, or a prefix ending in * (contact.*). */
  event?: string | undefined;
  tenant?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  limit: number;
  /** The last id of the previous page (newest first). */
  cursor?: string | undefined;
}

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function filtered(db: Kysely<Database>, scope: Scope, q: Omit<InboundEventQuery, "limit" | "cursor">) {
  const { source, status, event, tenant, since, until } = q;
  return visibleEvents(db, scope)
    // The live source of that slug: a deleted one's events are not mixed in when its slug is reused.
    .$if(source !== undefined, (b) => b.where("s.slug", "=", source ?? "").where("s.deleted_at", "is", null))
    .$if(status !== undefined, (b) => b.where("e.status", "=", status ?? "pending"))
    .$if(event !== undefined && event !== "*", (b) =>
      event?.endsWith("*")
        ? b.where(sql<boolean>`e.event_name like ${`${escapeLike(event.slice(0, -1))}%`}`)
        : b.where("e.event_name", "=", event ?? ""),
    )
    .$if(tenant !== undefined, (b) => b.where("e.tenant", "=", tenant ?? ""))
    .$if(since !== undefined, (b) => b.where("e.received_at", ">=", since ?? new Date(0)))
    .$if(until !== undefined, (b) => b.where("e.received_at", "<", until ?? new Date(0)));
}

type ViewRow = Omit<InboundEventView, "body_bytes"> & { body_bytes: number };

/** Newest first, `limit` per page. */
export async function listInboundEvents(
  conn: Connection,
  scope: Scope,
  q: InboundEventQuery,
): Promise<{ items: InboundEventView[]; next_cursor: string | null }> {
  const cursor = q.cursor === undefined ? undefined : checkId(q.cursor, "cursor");
  const rows = (await filtered(conn.db, scope, q)
    .select(VIEW_COLUMNS)
    .select(sql<number>`octet_length(e.body)`.as("body_bytes"))
    .$if(cursor !== undefined, (b) => b.where(sql<boolean>`e.id < ${cursor ?? "0"}::bigint`))
    .orderBy("e.id", "desc")
    .limit(q.limit + 1)
    .execute()) as ViewRow[];
  const page = rows.slice(0, q.limit).map((r) => ({ ...r, id: String(r.id) }));
  const last = page[page.length - 1];
  return { items: page, next_cursor: rows.length > q.limit && last ? last.id : null };
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

export async function getInboundEvent(conn: Connection, scope: Scope, id: string): Promise<InboundEventDetail> {
  if (!ID.test(id)) throw eventNotFound(id);
  checkId(id, "id");
  const row = await visibleEvents(conn.db, scope)
    .select(VIEW_COLUMNS)
    .select(["e.headers", "e.body", sql<number>`octet_length(e.body)`.as("body_bytes"), sql<string | null>`e.payload::text`.as("payload_json")])
    .where("e.id", "=", id)
    .executeTakeFirst();
  if (!row) throw eventNotFound(id);
  const body = Buffer.from(row.body);
  let text: string | null;
  try {
    text = UTF8.decode(body);
  } catch {
    text = null;
  }
  const { body: _b, ...rest } = row;
  return { ...rest, id: String(row.id), body: body.toString("base64"), body_text: text, payload_json: row.payload_json };
}

/** "Matched 2 events: 1 back to pending, 0 relayed again, 1 failed again (its last error says why)." */
export function replaySummary(r: InboundReplayResult): string {
  const failed = r.failed > 0 ? `, ${r.failed} failed again (inbound events show <id>: its last error says why)` : "";
  return `Matched ${r.matched} event${r.matched === 1 ? "" : "s"}: ${r.pending} back to pending, ${r.relayed} relayed again${failed}.`;
}

export interface InboundReplayResult {
  matched: number;
  /** Returned to pending, for SQL workers to claim again. */
  pending: number;
  /** Emitted again through the relay (relaying sources). */
  relayed: number;
  /** Relaying ones that failed again (no JSON payload, or no event type in their name): their last_error says why. */
  failed: number;
}

/**
 * Processes the events again: a relaying source's events go through the relay once more (a new
 * outbound event each); the others return to pending. Events being processed are left alone.
 */
export async function replayInboundEvents(
  conn: Connection,
  scope: Scope,
  q: Omit<InboundEventQuery, "limit" | "cursor"> & { ids?: string[] | undefined },
): Promise<InboundReplayResult> {
  const ids = q.ids?.map((id) => checkId(id, "ids"));
  if (q.status === "processing") {
    const message =
      "events being processed cannot be replayed; a worker's next webhooks.inbound_claim() for their source returns those held over 5 minutes to pending, or webhooks.inbound_release_stuck() does at once";
    throw new DomainError("invalid_input", `status: ${message}`, [{ path: "status", message }]);
  }
  const rows = (await filtered(conn.db, scope, { ...q, status: q.status ?? (ids === undefined ? "failed" : undefined) })
    .select(["e.id", sql<boolean>`s.relay_prefix is not null`.as("relays")])
    .where("e.status", "<>", "processing")
    .$if(ids !== undefined, (b) => b.where(sql<boolean>`e.id = any(${ids ?? []}::bigint[])`))
    .execute()) as { id: string; relays: boolean }[];
  const relay = rows.filter((r) => r.relays).map((r) => String(r.id));
  const back = rows.filter((r) => !r.relays).map((r) => String(r.id));
  let relayed = 0;
  let pending = 0;
  await conn.sql.begin(async (tx) => {
    if (back.length > 0) {
      const r = await tx`
        update webhooks.inbound_events
           set status = 'pending', locked_at = null, processed_at = null, last_error = null
         where id = any(${back}::bigint[]) and status <> 'processing'`;
      pending = r.count;
    }
    if (relay.length > 0) {
      const [r] = await tx<{ n: number }[]>`select webhooks.inbound_relay(${relay}::bigint[]) as n`;
      relayed = r?.n ?? 0;
    }
  });
  return { matched: rows.length, pending, relayed, failed: relay.length - relayed };
}
