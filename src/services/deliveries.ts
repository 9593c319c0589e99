// Deliveries and their attempts as the API and CLI show them, and the two ways to send one
// again: retry (one delivery) and replay (every finished delivery matching a query).
// Visibility follows the webhook: a tenant sees the deliveries of its own webhooks only.
import { z } from "zod";
import type { Connection, Queryable } from "../db/connection";
import type { DeliveryStatus } from "../db/schema";
import { DomainError, notFound } from "../errors";
import { enqueueDeliveries, type QueuedDelivery } from "../dispatch/jobs";
import { maskHeaders } from "../delivery/mask";
import { cursorTs, decodeCursor, isUuid, paginate } from "./cursor";
import type { Scope } from "./scope";

export const DELIVERY_STATUSES = ["pending", "retrying", "succeeded", "failed", "cancelled"] as const satisfies readonly DeliveryStatus[];
/** Statuses a replay picks from: finished ones. Pending and retrying deliveries are already owed. */
export const REPLAYABLE_STATUSES = ["failed", "succeeded", "cancelled"] as const;
export type ReplayableStatus = (typeof REPLAYABLE_STATUSES)[number];

// ── Views ───────────────────────────────────────────────────────────────────────────────

const deliveryFields = {
  id: z.uuid(),
  webhook_id: z.uuid(),
  event_id: z.uuid().meta({ description: "Stable across retries and replays: receivers deduplicate on it (webhook-id header)." }),
  event_type: z.string(),
  tenant: z.string().nullable(),
  status: z.enum(DELIVERY_STATUSES),
  last_status_code: z.number().int().nullable(),
  last_duration_ms: z.number().int().nullable(),
  last_error: z.string().nullable(),
  next_attempt_at: z.date().nullable(),
  created_at: z.date(),
  updated_at: z.date(),
  finished_at: z.date().nullable(),
};

export const deliveryViewSchema = z
  .object({ ...deliveryFields, attempts: z.number().int().meta({ description: "HTTP attempts so far." }) })
  .meta({ id: "Delivery" });

export type DeliveryView = z.output<typeof deliveryViewSchema>;

export const attemptViewSchema = z
  .object({
    attempt_number: z.number().int(),
    started_at: z.date(),
    url: z.string(),
    method: z.string(),
    request_headers: z.record(z.string(), z.string()).meta({
      description: "As sent, with the values of auth, signature, secret_headers and credential-like headers masked.",
    }),
    request_body: z.string(),
    response_status: z.number().int().nullable(),
    response_headers: z.record(z.string(), z.string()).nullable(),
    response_body: z.string().nullable().meta({ description: "At most 5,000 characters." }),
    duration_ms: z.number().int(),
    error: z.string().nullable(),
    remote_address: z
      .string()
      .nullable()
      .meta({ description: "The IP address the request was sent to; null when no connection got as far as sending." }),
    note: z.string().nullable().meta({
      description:
        "What was changed to store this attempt: NUL bytes, unpaired surrogates and bytes invalid in the response's charset become U+FFFD, and an attempt that still cannot be stored is kept without its request and response contents. Null when stored as it was.",
    }),
  })
  .meta({ id: "Attempt" });

export type AttemptView = z.output<typeof attemptViewSchema>;

export const deliveryDetailSchema = z
  .object({ ...deliveryFields, attempts: z.array(attemptViewSchema).meta({ description: "Every HTTP attempt, oldest first." }) })
  .meta({ id: "DeliveryDetail" });

export type DeliveryDetail = z.output<typeof deliveryDetailSchema>;

export const circuitNoticeSchema = z
  .object({
    webhook_id: z.uuid(),
    circuit: z.enum(["open", "half_open"]),
    opened_at: z.date().nullable(),
    consecutive_failures: z.number().int(),
    next_probe_at: z.date().nullable().meta({ description: "When the next probe may go out (one waiting delivery is sent to test the endpoint)." }),
    waiting: z.number().int().meta({ description: "Deliveries parked behind the circuit: pending, using up no attempts." }),
    message: z.string().meta({ description: "The same, in a sentence, with what to do." }),
  })
  .meta({
    id: "CircuitNotice",
    description:
      "The webhook's circuit is not closed: its deliveries stay pending until a probe succeeds, whatever their retry schedule says.",
  });

export type CircuitNotice = z.output<typeof circuitNoticeSchema>;

// ── Queries ─────────────────────────────────────────────────────────────────────────────

const deliveryNotFound = (id: string) => notFound("delivery_not_found", "delivery", id);

const VIEW_COLUMNS = `
  d.id, d.subscription_id as webhook_id, d.event_id, d.event_type, d.tenant, d.status, d.attempts,
  d.last_status_code, d.last_duration_ms, d.last_error, d.next_attempt_at, d.created_at, d.updated_at, d.finished_at`;

function visibleTo(sql: Queryable, scope: Scope) {
  return sql`(${scope.tenant}::text is null or s.tenant = ${scope.tenant})`;
}

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** An event type or pattern (exact, `clients.*`, `*`) as a condition on d.event_type. */
function eventCondition(sql: Queryable, pattern: string | undefined) {
  if (pattern === undefined || pattern === "*") return sql``;
  if (pattern.endsWith(".*")) return sql`and d.event_type like ${escapeLike(pattern.slice(0, -1)) + "_%"}`;
  return sql`and d.event_type = ${pattern}`;
}

function timeConditions(sql: Queryable, since: Date | undefined, until: Date | undefined) {
  return sql`
    ${since === undefined ? sql`` : sql`and d.created_at >= ${since}`}
    ${until === undefined ? sql`` : sql`and d.created_at < ${until}`}`;
}

export interface DeliveryListQuery {
  webhook_id?: string;
  status?: DeliveryStatus;
  /** An event type or pattern: exact, `clients.*` or `*`. */
  event?: string;
  /** Created at or after. */
  since?: Date;
  /** Created before. */
  until?: Date;
  limit: number;
  cursor?: string;
}

/** Newest first, `limit` per page. */
export async function listDeliveries(
  conn: Connection,
  scope: Scope,
  q: DeliveryListQuery,
): Promise<{ items: DeliveryView[]; next_cursor: string | null }> {
  const { sql } = conn;
  if (q.webhook_id !== undefined && !isUuid(q.webhook_id)) return { items: [], next_cursor: null };
  const before = q.cursor === undefined ? null : decodeCursor(q.cursor);
  const rows = await sql<(DeliveryView & { cursor_ts: string })[]>`
    select ${sql.unsafe(VIEW_COLUMNS)}, ${sql.unsafe(cursorTs("d.created_at"))} as cursor_ts
      from webhooks.deliveries d
      join webhooks.subscriptions s on s.id = d.subscription_id
     where ${visibleTo(sql, scope)}
       ${q.webhook_id === undefined ? sql`` : sql`and d.subscription_id = ${q.webhook_id}`}
       ${q.status === undefined ? sql`` : sql`and d.status = ${q.status}`}
       ${eventCondition(sql, q.event)}
       ${timeConditions(sql, q.since, q.until)}
       ${before === null ? sql`` : sql`and (d.created_at, d.id) < (${before.ts}::text::timestamptz, ${before.id}::uuid)`}
     order by d.created_at desc, d.id desc
     limit ${q.limit + 1}`;
  const { page, next_cursor } = paginate(rows, q.limit);
  return { items: page.map(({ cursor_ts: _, ...view }) => view), next_cursor };
}

/**
 * A jsonb column that may hold an object encoded as a JSON string (as attempts recorded by
 * passing JSON text to a jsonb[] parameter are), read back as the object.
 */
function unwrapJson(sql: Queryable, column: "request_headers" | "response_headers") {
  return sql`case jsonb_typeof(${sql(column)}) when 'string' then (${sql(column)} #>> '{}')::jsonb else ${sql(column)} end`;
}

/** One delivery with every attempt; another tenant's delivery does not exist. */
export async function getDelivery(conn: Connection, scope: Scope, id: string): Promise<DeliveryDetail> {
  const { sql } = conn;
  if (!isUuid(id)) throw deliveryNotFound(id);
  const [delivery] = await sql<(DeliveryView & { secret_headers: string[] })[]>`
    select ${sql.unsafe(VIEW_COLUMNS)}, s.secret_headers
      from webhooks.deliveries d
      join webhooks.subscriptions s on s.id = d.subscription_id
     where d.id = ${id} and ${visibleTo(sql, scope)}`;
  if (!delivery) throw deliveryNotFound(id);
  const attempts = await sql<AttemptView[]>`
    select attempt_number, started_at, url, method, ${unwrapJson(sql, "request_headers")} as request_headers, request_body,
           response_status, ${unwrapJson(sql, "response_headers")} as response_headers, response_body, duration_ms, error,
           host(remote_address) as remote_address, note
      from webhooks.attempts
     where delivery_id = ${id}
     order by attempt_number, id`;
  const { attempts: _, secret_headers: secretHeaders, ...rest } = delivery;
  // Masked at recording too; masked again here for headers marked secret after the attempt.
  return { ...rest, attempts: attempts.map((a) => ({ ...a, request_headers: maskHeaders(a.request_headers, secretHeaders) })) };
}

/**
 * Queues one delivery again now. A delivery still pending or retrying is already owed and is
 * left alone ({queued: false}); a deleted or disabled webhook's delivery is refused.
 */
export async function retryDelivery(conn: Connection, scope: Scope, id: string): Promise<{ queued: boolean }> {
  const { sql } = conn;
  if (!isUuid(id)) throw deliveryNotFound(id);
  const [row] = await sql<{ status: DeliveryStatus; deleted: boolean; is_active: boolean; webhook_id: string }[]>`
    select d.status, s.deleted_at is not null as deleted, s.is_active, s.id as webhook_id
      from webhooks.deliveries d
      join webhooks.subscriptions s on s.id = d.subscription_id
     where d.id = ${id} and ${visibleTo(sql, scope)}`;
  if (!row) throw deliveryNotFound(id);
  if (row.deleted) throw new DomainError("conflict", `delivery ${id} belongs to a deleted webhook; it cannot be sent again`);
  if (!row.is_active) {
    throw new DomainError("conflict", `webhook ${row.webhook_id} is disabled; enable it (is_active: true) before retrying its deliveries`);
  }
  if (row.status === "pending" || row.status === "retrying") return { queued: false };
  return { queued: (await queueReplay(conn, [id])) === 1 };
}

export interface ReplayQuery {
  webhook_id?: string;
  /** Default failed. */
  status?: ReplayableStatus;
  event?: string;
  since?: Date;
  until?: Date;
  delivery_ids?: string[];
}

/**
 * Ids of the finished deliveries a replay would queue, oldest first. Never pending or retrying
 * ones, and none of deleted or disabled webhooks (a disabled webhook would fail them at once).
 */
export async function findReplayable(conn: Connection, scope: Scope, q: ReplayQuery): Promise<string[]> {
  const { sql } = conn;
  if (q.webhook_id !== undefined && !isUuid(q.webhook_id)) return [];
  const ids = q.delivery_ids?.filter(isUuid);
  if (ids !== undefined && ids.length === 0) return [];
  const rows = await sql<{ id: string }[]>`
    select d.id
      from webhooks.deliveries d
      join webhooks.subscriptions s on s.id = d.subscription_id
     where ${visibleTo(sql, scope)}
       and s.deleted_at is null and s.is_active
       and d.status = ${q.status ?? "failed"}
       ${q.webhook_id === undefined ? sql`` : sql`and d.subscription_id = ${q.webhook_id}`}
       ${ids === undefined ? sql`` : sql`and d.id = any(${ids}::uuid[])`}
       ${eventCondition(sql, q.event)}
       ${timeConditions(sql, q.since, q.until)}
     order by d.created_at, d.id`;
  return rows.map((r) => r.id);
}

/**
 * Makes these deliveries pending and due now, and queues their jobs, in one transaction.
 * Deliveries already pending or retrying are skipped, so replaying twice queues nothing twice.
 * Returns how many were queued.
 */
export async function queueReplay(conn: Connection, ids: string[]): Promise<number> {
  const valid = ids.filter(isUuid);
  if (valid.length === 0) return 0;
  return conn.sql.begin(async (tx) => {
    const rows = await tx<QueuedDelivery[]>`
      update webhooks.deliveries d
         set status = 'pending', next_attempt_at = now(), finished_at = null, updated_at = now()
        from webhooks.subscriptions s
       where d.id = any(${valid}::uuid[])
         and s.id = d.subscription_id and s.deleted_at is null and s.is_active
         and d.status not in ('pending', 'retrying')
      returning d.id, d.subscription_id`;
    await enqueueDeliveries(tx, rows);
    return rows.length;
  });
}

function circuitMessage(n: Omit<CircuitNotice, "message">): string {
  const state =
    n.circuit === "half_open"
      ? "is half-open: one probe delivery is on its way"
      : `is open${n.opened_at ? ` since ${n.opened_at.toISOString()}` : ""} after ${n.consecutive_failures} failed attempts in a row`;
  const probe =
    n.circuit === "half_open" || n.next_probe_at === null
      ? ""
      : n.next_probe_at.getTime() <= Date.now()
        ? "; a probe goes out within seconds"
        : `; the next probe goes out at ${n.next_probe_at.toISOString()}`;
  return (
    `webhook ${n.webhook_id}: circuit ${state}; ${n.waiting > 0 ? `${n.waiting} deliveries` : "its deliveries"} ` +
    `wait (pending) until a probe succeeds${probe}. ` +
    "Fix the endpoint, or change its url, auth, headers or signature (that resets the circuit and sends them at once)."
  );
}

/**
 * The webhooks among these (or owning these deliveries) whose circuit is not closed, visible to
 * `scope`: the faces show them so waiting deliveries are not silently pending.
 */
export async function circuitNotices(
  conn: Connection,
  scope: Scope,
  of: { webhookIds?: string[]; deliveryIds?: string[] },
): Promise<CircuitNotice[]> {
  const { sql } = conn;
  const webhookIds = (of.webhookIds ?? []).filter(isUuid);
  const deliveryIds = (of.deliveryIds ?? []).filter(isUuid);
  if (webhookIds.length === 0 && deliveryIds.length === 0) return [];
  const rows = await sql<Omit<CircuitNotice, "message">[]>`
    select s.id as webhook_id, h.circuit, h.opened_at, h.consecutive_failures, h.next_probe_at,
           (select count(*)::int from webhooks.deliveries p where p.subscription_id = s.id and p.parked_at is not null) as waiting
      from webhooks.subscriptions s
      join webhooks.endpoint_health h on h.subscription_id = s.id and h.circuit <> 'closed'
     where ${visibleTo(sql, scope)} and s.deleted_at is null
       and (s.id = any(${webhookIds}::uuid[])
            or s.id in (select d.subscription_id from webhooks.deliveries d where d.id = any(${deliveryIds}::uuid[])))
     order by s.id`;
  return rows.map((r) => ({ ...r, message: circuitMessage(r) }));
}

/** Deliveries per queueReplay transaction: keeps each one short. */
export const REPLAY_CHUNK = 500;

/**
 * findReplayable then queueReplay in chunks: how many matched and how many were queued, and the
 * circuits that will hold the queued ones back.
 */
export async function replayDeliveries(
  conn: Connection,
  scope: Scope,
  q: ReplayQuery,
): Promise<{ matched: number; queued: number; circuits: CircuitNotice[] }> {
  const ids = await findReplayable(conn, scope, q);
  let queued = 0;
  for (let i = 0; i < ids.length; i += REPLAY_CHUNK) queued += await queueReplay(conn, ids.slice(i, i + REPLAY_CHUNK));
  const circuits = queued === 0 ? [] : await circuitNotices(conn, scope, q.webhook_id !== undefined ? { webhookIds: [q.webhook_id] } : { deliveryIds: ids });
  return { matched: ids.length, queued, circuits };
}
