// Health at a glance: how far the dispatcher lags behind the outbox, how much work is owed,
// how each webhook's endpoint has been answering over the last 24 hours, and which webhooks
// need attention (circuit not closed, or disabled).
import type { Connection } from "../db/connection";
import type { CircuitState as Circuit } from "../model/enums";

export const STATUS_WINDOW_HOURS = 24;

export interface WebhookHealth {
  id: string;
  name: string | null;
  url: string;
  is_active: boolean;
  /** HTTP attempts in the window. */
  attempts: number;
  /** Share of those attempts answered 2xx (0–1); null without attempts. */
  success_rate: number | null;
  /** Median attempt duration in ms; null without attempts. */
  median_latency_ms: number | null;
  /** Deliveries that ended failed in the window. */
  failed_deliveries: number;
  /** The endpoint's circuit breaker: closed unless it has an open or half_open endpoint_health row. */
  circuit: Circuit;
}

/** A webhook whose circuit is not closed or that is disabled: why, and since when. */
export interface WebhookAttention {
  id: string;
  name: string | null;
  url: string;
  is_active: boolean;
  disabled_reason: string | null;
  disabled_at: Date | null;
  circuit: Circuit;
  /** Failed attempts since the last success. */
  consecutive_failures: number;
  failing_since: Date | null;
  next_probe_at: Date | null;
}

export interface Status {
  now: Date;
  outbox: {
    undispatched: number;
    oldest_undispatched_at: Date | null;
    /** Age of the oldest undispatched event in ms: 0 when nothing waits. */
    lag_ms: number;
  };
  deliveries: { pending: number; retrying: number; failed: number };
  dispatchers: { id: string; hostname: string; pid: number; heartbeat_at: Date }[];
  window_hours: number;
  webhooks: WebhookHealth[];
  attention: WebhookAttention[];
}

/** Dispatchers that have registered and not yet stopped (or been presumed dead). */
export async function listDispatchers(conn: Connection): Promise<Status["dispatchers"]> {
  return conn.db.selectFrom("webhooks.dispatchers").select(["id", "hostname", "pid", "heartbeat_at"]).orderBy("started_at").execute();
}

/** How far the dispatchers lag behind the outbox (the database's clock). */
export async function outboxLag(conn: Connection): Promise<Status["outbox"] & { now: Date }> {
  const [outbox] = await conn.sql<{ now: Date; undispatched: string; oldest: Date | null; lag_ms: number | null }[]>`
    select now() as now, count(*) as undispatched, min(occurred_at) as oldest,
           (extract(epoch from now() - min(occurred_at)) * 1000)::float8 as lag_ms
      from webhooks.outbox where dispatched_at is null`;
  return {
    now: outbox?.now ?? new Date(),
    undispatched: Number(outbox?.undispatched ?? 0),
    oldest_undispatched_at: outbox?.oldest ?? null,
    lag_ms: Math.max(0, Math.round(outbox?.lag_ms ?? 0)),
  };
}

export async function getStatus(conn: Connection): Promise<Status> {
  const { sql } = conn;
  // Tagged SQL for the aggregates below: they have no optional parts, and read as the report they are.
  const { now, ...outbox } = await outboxLag(conn);
  const counts = await conn.db
    .selectFrom("webhooks.deliveries")
    .select(["status", (eb) => eb.fn.countAll<string>().as("n")])
    .where("status", "in", ["pending", "retrying", "failed"])
    .groupBy("status")
    .execute();
  const byStatus = new Map(counts.map((c) => [c.status, Number(c.n)]));
  const dispatchers = await listDispatchers(conn);
  const rows = await sql<(WebhookAttention & { attempts: string; ok: string; median: number | null; failed: string })[]>`
    select s.id, s.name, s.url, s.is_active, s.disabled_reason, s.disabled_at,
           coalesce(a.attempts, 0) as attempts, coalesce(a.ok, 0) as ok, a.median,
           coalesce(f.failed, 0) as failed,
           -- No endpoint_health row: healthy.
           coalesce(h.circuit, 'closed') as circuit, coalesce(h.consecutive_failures, 0) as consecutive_failures,
           h.failing_since, h.next_probe_at
      from webhooks.subscriptions s
      left join webhooks.endpoint_health h on h.subscription_id = s.id
      left join lateral (
        select count(*) as attempts,
               count(*) filter (where at.response_status between 200 and 299) as ok,
               percentile_cont(0.5) within group (order by at.duration_ms) as median
          from webhooks.deliveries d
          join webhooks.attempts at on at.delivery_id = d.id
         where d.subscription_id = s.id
           and at.started_at > now() - make_interval(hours => ${STATUS_WINDOW_HOURS})
      ) a on true
      left join lateral (
        select count(*) as failed from webhooks.deliveries d
         where d.subscription_id = s.id and d.status = 'failed'
           and d.finished_at > now() - make_interval(hours => ${STATUS_WINDOW_HOURS})
      ) f on true
     where s.deleted_at is null
     order by s.created_at, s.id`;
  return {
    now,
    outbox,
    deliveries: {
      pending: byStatus.get("pending") ?? 0,
      retrying: byStatus.get("retrying") ?? 0,
      failed: byStatus.get("failed") ?? 0,
    },
    dispatchers,
    window_hours: STATUS_WINDOW_HOURS,
    webhooks: rows.map((r) => {
      const attempts = Number(r.attempts);
      return {
        id: r.id,
        name: r.name,
        url: r.url,
        is_active: r.is_active,
        attempts,
        success_rate: attempts === 0 ? null : Number(r.ok) / attempts,
        median_latency_ms: r.median === null ? null : Math.round(Number(r.median)),
        failed_deliveries: Number(r.failed),
        circuit: r.circuit,
      };
    }),
    attention: rows
      .filter((r) => r.circuit !== "closed" || !r.is_active)
      .map((r) => ({
        id: r.id,
        name: r.name,
        url: r.url,
        is_active: r.is_active,
        disabled_reason: r.disabled_reason,
        disabled_at: r.disabled_at,
        circuit: r.circuit,
        consecutive_failures: r.consecutive_failures,
        failing_since: r.failing_since,
        next_probe_at: r.next_probe_at,
      })),
  };
}
