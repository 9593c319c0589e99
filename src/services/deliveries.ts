// Deliveries: listing and showing them with their attempts, and the two ways to send one again:
// retry (one delivery) and replay (every finished delivery matching a query). Visibility follows
// the webhook: a tenant sees the deliveries of its own webhooks only. Views live in model/delivery.ts.
import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool } from "kysely";
import type { Connection } from "../db/connection";
import type { Database, DeliveryTable, SubscriptionTable } from "../db/schema";
import { DomainError, notFound } from "../errors";
import { enqueueDeliveries, type QueuedDelivery } from "../dispatch/jobs";
import { maskHeaders } from "../delivery/mask";
import type { DeliveryStatus, REPLAYABLE_STATUSES } from "../model/enums";
import {
  circuitMessage,
  type AttemptView,
  type CircuitNotice,
  type DeliveryDetail,
  type DeliveryView,
} from "../model/delivery";
import { cursorTs, decodeCursor, isUuid, paginate, pastCursor } from "./cursor";
import { all, build } from "./query";
import type { WebhookView } from "../model/webhook";
import { getWebhook } from "./webhooks";
import type { Scope } from "./scope";

export type ReplayableStatus = (typeof REPLAYABLE_STATUSES)[number];

const deliveryNotFound = (id: string) => notFound("delivery_not_found", "delivery", id);

/** The columns of a DeliveryView. */
const VIEW_COLUMNS = [
  "d.id",
  "d.subscription_id as webhook_id",
  "s.name as webhook_name",
  "d.event_id",
  "d.event_type",
  "d.tenant",
  "d.status",
  "d.attempts",
  "d.last_status_code",
  "d.last_duration_ms",
  "d.last_error",
  "d.next_attempt_at",
  "d.created_at",
  "d.updated_at",
  "d.finished_at",
] as const;

type DeliveryJoin = Database & { d: DeliveryTable; s: SubscriptionTable };

/** Deliveries (`d`) with their webhook (`s`), as far as this scope sees them. */
function visibleDeliveries(db: Kysely<Database>, scope: Scope) {
  return db
    .selectFrom("webhooks.deliveries as d")
    .innerJoin("webhooks.subscriptions as s", "s.id", "d.subscription_id")
    .$if(scope.tenant !== null, (q) => q.where("s.tenant", "=", scope.tenant));
}

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** What lists and replays select deliveries by. */
interface DeliveryFilters {
  webhook_id?: string | undefined;
  /** An event type or pattern: exact, `clients.*` or `*`. */
  event?: string | undefined;
  /** Created at or after. */
  since?: Date | undefined;
  /** Created before. */
  until?: Date | undefined;
  /** Only this tenant's deliveries (an admin narrowing down; a tenant key sees its own anyway). */
  tenant?: string | undefined;
  /** Only this event's deliveries (one per webhook that received it). */
  event_id?: string | undefined;
  /** The receiver's last answer: 2xx, 3xx, 4xx, 5xx, or none (no answer: a timeout, a refused connection). */
  response_class?: ResponseClass | undefined;
}

export const RESPONSE_CLASSES = ["2xx", "3xx", "4xx", "5xx", "none"] as const;
export type ResponseClass = (typeof RESPONSE_CLASSES)[number];

/** The filters given, as one condition on `d`. */
function matching(eb: ExpressionBuilder<DeliveryJoin, "d" | "s">, q: DeliveryFilters): Expression<SqlBool> {
  const conditions: Expression<SqlBool>[] = [];
  if (q.webhook_id !== undefined) conditions.push(eb("d.subscription_id", "=", q.webhook_id));
  if (q.event !== undefined && q.event !== "*") {
    conditions.push(
      q.event.endsWith(".*")
        ? eb("d.event_type", "like", escapeLike(q.event.slice(0, -1)) + "_%")
        : eb("d.event_type", "=", q.event),
    );
  }
  if (q.since !== undefined) conditions.push(eb("d.created_at", ">=", q.since));
  if (q.until !== undefined) conditions.push(eb("d.created_at", "<", q.until));
  if (q.tenant !== undefined) conditions.push(eb("d.tenant", "=", q.tenant));
  if (q.event_id !== undefined) conditions.push(eb("d.event_id", "=", q.event_id));
  if (q.response_class === "none") {
    conditions.push(eb.and([eb("d.attempts", ">", 0), eb("d.last_status_code", "is", null)]));
  } else if (q.response_class !== undefined) {
    const low = Number(q.response_class[0]) * 100;
    conditions.push(eb.and([eb("d.last_status_code", ">=", low), eb("d.last_status_code", "<", low + 100)]));
  }
  return eb.and(conditions);
}

export interface DeliveryListQuery extends DeliveryFilters {
  status?: DeliveryStatus | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** Newest first, `limit` per page. */
export async function listDeliveries(
  conn: Connection,
  scope: Scope,
  q: DeliveryListQuery,
): Promise<{ items: DeliveryView[]; next_cursor: string | null }> {
  if (q.webhook_id !== undefined && !isUuid(q.webhook_id)) return { items: [], next_cursor: null };
  if (q.event_id !== undefined && !isUuid(q.event_id)) return { items: [], next_cursor: null };
  const before = q.cursor === undefined ? null : decodeCursor(q.cursor);
  const { status } = q;
  // One webhook's, or a status deliveries_by_status (status, created_at) orders: one index range.
  const indexed = q.webhook_id !== undefined || status === "pending" || status === "retrying" || status === "failed";
  const rows =
    indexed
      ? await visibleDeliveries(conn.db, scope)
          .select(VIEW_COLUMNS)
          .select(cursorTs("d").as("cursor_ts"))
          .where((eb) => matching(eb, q))
          .$call((qb) => (status === undefined ? qb : qb.where("d.status", "=", status)))
          .$call((qb) => (before === null ? qb : qb.where(pastCursor("d", "<", before))))
          .orderBy("d.created_at", "desc")
          .orderBy("d.id", "desc")
          .limit(q.limit + 1)
          .execute()
      : // Across webhooks: each webhook's newest page through deliveries_by_subscription, then
        // the newest of those. No index orders all deliveries by time, and one would cost every
        // write; this reads limit+1 rows per webhook instead of sorting the whole table.
        await conn.db
          .selectFrom("webhooks.subscriptions as s")
          .$if(scope.tenant !== null, (qb) => qb.where("s.tenant", "=", scope.tenant))
          .innerJoinLateral(
            (eb) =>
              eb
                .selectFrom("webhooks.deliveries as d")
                .select(VIEW_COLUMNS)
                .select(cursorTs("d").as("cursor_ts"))
                .whereRef("d.subscription_id", "=", "s.id")
                .where((inner) => matching(inner, q))
                .$call((qb) => (status === undefined ? qb : qb.where("d.status", "=", status)))
                .$call((qb) => (before === null ? qb : qb.where(pastCursor("d", "<", before))))
                .orderBy("d.created_at", "desc")
                .orderBy("d.id", "desc")
                .limit(q.limit + 1)
                .as("x"),
            (join) => join.onTrue(),
          )
          .selectAll("x")
          .orderBy("x.created_at", "desc")
          .orderBy("x.id", "desc")
          .limit(q.limit + 1)
          .execute();
  const { page, next_cursor } = paginate(rows, q.limit);
  return { items: page.map(({ cursor_ts: _, ...view }) => view), next_cursor };
}

/**
 * One webhook's deliveries, newest first, with the notice of its circuit while that is not
 * closed. A webhook this scope does not see is not found.
 */
export async function listWebhookDeliveries(
  conn: Connection,
  scope: Scope,
  webhookId: string,
  q: Omit<DeliveryListQuery, "webhook_id">,
): Promise<{ items: DeliveryView[]; next_cursor: string | null; circuit: CircuitNotice | null }> {
  const webhook = await getWebhook(conn, scope, webhookId);
  const [page, circuits] = await Promise.all([
    listDeliveries(conn, scope, { ...q, webhook_id: webhook.id }),
    circuitNotices(conn, scope, { webhookIds: [webhook.id] }),
  ]);
  return { ...page, circuit: circuits[0] ?? null };
}

/** One delivery with every attempt; another tenant's delivery does not exist. */
export async function getDelivery(conn: Connection, scope: Scope, id: string): Promise<DeliveryDetail> {
  if (!isUuid(id)) throw deliveryNotFound(id);
  const delivery = await visibleDeliveries(conn.db, scope)
    .select(VIEW_COLUMNS)
    .select("s.secret_headers")
    .where("d.id", "=", id)
    .executeTakeFirst();
  if (!delivery) throw deliveryNotFound(id);
  const attempts: AttemptView[] = await conn.db
    .selectFrom("webhooks.attempts")
    .select([
      "attempt_number",
      "started_at",
      "url",
      "method",
      "request_headers",
      // Stored once per delivery; an attempt keeps a body of its own only when it sent another.
      sql<string>`coalesce(request_body, (select d.body from webhooks.deliveries d where d.id = delivery_id), '')`.as("request_body"),
      "response_status",
      "response_headers",
      "response_body",
      "duration_ms",
      "error",
      sql<string | null>`host(remote_address)`.as("remote_address"),
      "note",
    ])
    .where("delivery_id", "=", id)
    .orderBy("attempt_number")
    .orderBy("id")
    .execute();
  const { attempts: _, secret_headers: secretHeaders, ...rest } = delivery;
  // Request headers are masked at recording too; masked again here for headers marked secret
  // after the attempt. A receiver's answer may carry credentials of its own (Set-Cookie, a
  // token it hands out): the same rule masks them in the log.
  return {
    ...rest,
    attempts: attempts.map((a) => ({
      ...a,
      request_headers: maskHeaders(a.request_headers, secretHeaders),
      response_headers: a.response_headers === null ? null : maskHeaders(a.response_headers),
    })),
  };
}

/**
 * Queues one delivery again now. A delivery still pending or retrying is already owed and is
 * left alone ({queued: false}); a deleted or disabled webhook's delivery is refused.
 */
export async function retryDelivery(conn: Connection, scope: Scope, id: string): Promise<{ queued: boolean }> {
  if (!isUuid(id)) throw deliveryNotFound(id);
  const row = await visibleDeliveries(conn.db, scope)
    .select(["d.status", "s.deleted_at", "s.is_active", "s.id as webhook_id"])
    .where("d.id", "=", id)
    .executeTakeFirst();
  if (!row) throw deliveryNotFound(id);
  if (row.deleted_at !== null) throw new DomainError("conflict", `delivery ${id} belongs to a deleted webhook; it cannot be sent again`);
  if (!row.is_active) {
    throw new DomainError("conflict", `webhook ${row.webhook_id} is disabled; enable it (is_active: true) before retrying its deliveries`);
  }
  if (row.status === "pending") return { queued: false };
  if (row.status === "retrying") return { queued: (await retryNow(conn, id)) === 1 };
  return { queued: (await queueReplay(conn, [id])) === 1 };
}

/**
 * Makes a retrying delivery due now instead of at its next_attempt_at, and queues its job: the
 * attempt it waits for is made at once (the attempt count and the policy's limit are kept). Not
 * one held by a dispatcher right now, nor one parked behind an open circuit (its probe decides).
 */
async function retryNow(conn: Connection, id: string): Promise<number> {
  return conn.sql.begin(async (tx) => {
    const rows: QueuedDelivery[] = await all(
      tx,
      build
        .updateTable("webhooks.deliveries")
        .set({ next_attempt_at: sql`now()`, updated_at: sql`now()` })
        .where("id", "=", id)
        .where("status", "=", "retrying")
        .where("lease_owner", "is", null)
        .where("parked_at", "is", null)
        .returning(["id", "subscription_id"]),
    );
    await enqueueDeliveries(tx, rows);
    return rows.length;
  });
}

export interface ReplayQuery extends DeliveryFilters {
  /** Default failed. */
  status?: ReplayableStatus | undefined;
  delivery_ids?: string[] | undefined;
}

/**
 * Ids of the finished deliveries a replay would queue, oldest first. Never pending or retrying
 * ones, and none of deleted or disabled webhooks (a disabled webhook would fail them at once).
 */
export async function findReplayable(conn: Connection, scope: Scope, q: ReplayQuery): Promise<string[]> {
  if (q.webhook_id !== undefined && !isUuid(q.webhook_id)) return [];
  if (q.event_id !== undefined && !isUuid(q.event_id)) return [];
  const ids = q.delivery_ids?.filter(isUuid);
  if (ids !== undefined && ids.length === 0) return [];
  const rows = await visibleDeliveries(conn.db, scope)
    .select("d.id")
    .where("s.deleted_at", "is", null)
    .where("s.is_active", "=", true)
    .where("d.status", "=", q.status ?? "failed")
    .where((eb) => matching(eb, q))
    .$call((qb) => (ids === undefined ? qb : qb.where("d.id", "=", sql<string>`any(${ids}::uuid[])`)))
    .orderBy("d.created_at")
    .orderBy("d.id")
    .execute();
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
  // postgres.js transaction: enqueueDeliveries (dispatch/jobs.ts) adds the jobs in it.
  return conn.sql.begin(async (tx) => {
    const rows: QueuedDelivery[] = await all(
      tx,
      build
        .updateTable("webhooks.deliveries as d")
        .set({ status: "pending", next_attempt_at: sql`now()`, finished_at: null, updated_at: sql`now()` })
        .from("webhooks.subscriptions as s")
        .where("d.id", "=", sql<string>`any(${valid}::uuid[])`)
        .whereRef("s.id", "=", "d.subscription_id")
        .where("s.deleted_at", "is", null)
        .where("s.is_active", "=", true)
        .where("d.status", "not in", ["pending", "retrying"])
        .returning(["d.id", "d.subscription_id"]),
    );
    await enqueueDeliveries(tx, rows);
    return rows.length;
  });
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
  const webhookIds = (of.webhookIds ?? []).filter(isUuid);
  const deliveryIds = (of.deliveryIds ?? []).filter(isUuid);
  if (webhookIds.length === 0 && deliveryIds.length === 0) return [];
  const rows = await conn.db
    .selectFrom("webhooks.subscriptions as s")
    .innerJoin("webhooks.endpoint_health as h", (join) =>
      join.onRef("h.subscription_id", "=", "s.id").on("h.circuit", "<>", "closed"),
    )
    .select([
      "s.id as webhook_id",
      "h.circuit",
      "h.opened_at",
      "h.consecutive_failures",
      "h.next_probe_at",
      (eb) =>
        eb
          .selectFrom("webhooks.deliveries as p")
          .select(sql<number>`count(*)::int`.as("n"))
          .whereRef("p.subscription_id", "=", "s.id")
          .where("p.parked_at", "is not", null)
          .as("waiting"),
    ])
    .$if(scope.tenant !== null, (q) => q.where("s.tenant", "=", scope.tenant))
    .where("s.deleted_at", "is", null)
    .where((eb) =>
      eb.or([
        eb("s.id", "=", sql<string>`any(${webhookIds}::uuid[])`),
        eb(
          "s.id",
          "in",
          eb.selectFrom("webhooks.deliveries as d").select("d.subscription_id").where("d.id", "=", sql<string>`any(${deliveryIds}::uuid[])`),
        ),
      ]),
    )
    .orderBy("s.id")
    .execute();
  return rows.map((r) => {
    // The join keeps open and half-open circuits only; the subquery always counts.
    const n = { ...r, circuit: r.circuit === "half_open" ? ("half_open" as const) : ("open" as const), waiting: r.waiting ?? 0 };
    return { ...n, message: circuitMessage(n) };
  });
}

/** Deliveries per queueReplay transaction: keeps each one short. */
export const REPLAY_CHUNK = 500;

export interface ReplayPace {
  /** At most this many deliveries queued per second, so a recovering endpoint is not flooded. */
  ratePerS?: number | undefined;
  /** After each chunk: how many of the ids were handled so far. */
  onProgress?: (done: number) => void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * queueReplay over `ids` in chunks, at `ratePerS` when given (then chunks of about a quarter
 * second's worth keep the pace smooth). Returns how many were queued; the others were pending
 * again already (queued by someone else meanwhile).
 */
export async function queueReplayPaced(conn: Connection, ids: string[], pace: ReplayPace = {}): Promise<number> {
  const { ratePerS, onProgress } = pace;
  const chunk = ratePerS ? Math.max(1, Math.min(REPLAY_CHUNK, Math.floor(ratePerS / 4))) : REPLAY_CHUNK;
  const started = Date.now();
  let queued = 0;
  for (let done = 0; done < ids.length; ) {
    const part = ids.slice(done, done + chunk);
    queued += await queueReplay(conn, part);
    done += part.length;
    onProgress?.(done);
    if (ratePerS && done < ids.length) {
      const wait = started + (done / ratePerS) * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
    }
  }
  return queued;
}

/** The circuits holding back deliveries a replay of `q` queued (`ids`, as findReplayable found them). */
export async function replayCircuits(conn: Connection, scope: Scope, q: ReplayQuery, ids: string[]): Promise<CircuitNotice[]> {
  if (ids.length === 0) return [];
  return circuitNotices(conn, scope, q.webhook_id !== undefined ? { webhookIds: [q.webhook_id] } : { deliveryIds: ids });
}

/**
 * findReplayable then queueReplayPaced: how many matched and how many were queued, and the
 * circuits that will hold the queued ones back.
 */
export async function replayDeliveries(
  conn: Connection,
  scope: Scope,
  q: ReplayQuery,
  pace: ReplayPace = {},
): Promise<{ matched: number; queued: number; circuits: CircuitNotice[] }> {
  const ids = await findReplayable(conn, scope, q);
  const queued = await queueReplayPaced(conn, ids, pace);
  const circuits = queued === 0 ? [] : await replayCircuits(conn, scope, q, ids);
  return { matched: ids.length, queued, circuits };
}

/**
 * Replays one webhook's deliveries. A webhook this scope does not see is not found; a disabled
 * one is a conflict (its deliveries would fail at once).
 */
export async function replayWebhookDeliveries(
  conn: Connection,
  scope: Scope,
  webhookId: string,
  q: Omit<ReplayQuery, "webhook_id">,
): Promise<{ matched: number; queued: number; circuits: CircuitNotice[] }> {
  const webhook = await replayableWebhook(conn, scope, webhookId);
  return replayDeliveries(conn, scope, { ...q, webhook_id: webhook.id });
}

/**
 * The webhook a replay names, if its deliveries can be replayed: one this scope does not see
 * is not found; a disabled one is a conflict (its deliveries would fail at once). The API and
 * the CLI both ask this before replaying one webhook's deliveries.
 */
export async function replayableWebhook(conn: Connection, scope: Scope, webhookId: string): Promise<WebhookView> {
  const webhook = await getWebhook(conn, scope, webhookId);
  if (!webhook.is_active) {
    throw new DomainError(
      "conflict",
      `webhook ${webhook.id} is disabled; enable it (PATCH is_active: true, or pg-webhooks webhooks enable ${webhook.id}) before replaying`,
    );
  }
  return webhook;
}

/**
 * Cancels a delivery still owed (pending or retrying): it is never sent again, and stays
 * replayable. One a dispatcher is sending right now (leased) is a conflict: its attempt is
 * already on the wire and will be recorded. Returns the delivery as cancelled.
 */
export async function cancelDelivery(conn: Connection, scope: Scope, id: string): Promise<{ cancelled: boolean }> {
  if (!isUuid(id)) throw deliveryNotFound(id);
  const row = await visibleDeliveries(conn.db, scope).select(["d.status", "d.lease_owner"]).where("d.id", "=", id).executeTakeFirst();
  if (!row) throw deliveryNotFound(id);
  if (row.status !== "pending" && row.status !== "retrying") return { cancelled: false };
  const done = await conn.db
    .updateTable("webhooks.deliveries")
    .set({
      status: "cancelled",
      next_attempt_at: null,
      parked_at: null,
      finished_at: sql`now()`,
      updated_at: sql`now()`,
      last_error: sql`coalesce(last_error, 'cancelled by a user')`,
    })
    .where("id", "=", id)
    .where("status", "in", ["pending", "retrying"])
    .where("lease_owner", "is", null)
    .returning("id")
    .executeTakeFirst();
  if (!done) throw new DomainError("conflict", `delivery ${id} is being sent right now; its attempt will be recorded. Try again in a moment.`);
  return { cancelled: true };
}
