// How each webhook's deliveries have been ending over a recent window: counts by outcome, the
// success rate, and the last answer its endpoint gave. The admin's lists show it; it reads
// deliveries through deliveries_by_subscription (subscription_id, created_at desc) include
// (status), one index-only range per webhook, so it stays cheap with millions of deliveries.
import { sql } from "kysely";
import type { Connection } from "../db/connection";
import { isUuid } from "./cursor";
import type { Scope } from "./scope";

export interface WebhookRate {
  webhook_id: string;
  webhook_name: string | null;
  /** Deliveries created in the window. */
  total: number;
  succeeded: number;
  failed: number;
  /** Pending or retrying. */
  open: number;
  /** succeeded / (succeeded + failed); null when none finished. */
  success_rate: number | null;
  /** The newest delivery's last HTTP status (null: no answer, e.g. a timeout), and when it was tried. */
  last_status_code: number | null;
  last_error: string | null;
  last_at: Date | null;
}

/**
 * Rates of the given webhooks (null: every live webhook) that this scope sees, over the last
 * `windowHours`.
 */
export async function webhookRates(conn: Connection, scope: Scope, webhookIds: string[] | null, windowHours = 24): Promise<Map<string, WebhookRate>> {
  const ids = webhookIds?.filter(isUuid) ?? null;
  const out = new Map<string, WebhookRate>();
  if (ids !== null && ids.length === 0) return out;
  const rows = await conn.db
    .selectFrom("webhooks.subscriptions as s")
    .leftJoinLateral(
      (eb) =>
        eb
          .selectFrom("webhooks.deliveries as d")
          .select([
            sql<number>`count(*)::int`.as("total"),
            sql<number>`(count(*) filter (where d.status = 'succeeded'))::int`.as("succeeded"),
            sql<number>`(count(*) filter (where d.status = 'failed'))::int`.as("failed"),
            sql<number>`(count(*) filter (where d.status in ('pending', 'retrying')))::int`.as("open"),
          ])
          .whereRef("d.subscription_id", "=", "s.id")
          .where("d.created_at", ">", sql<Date>`now() - make_interval(hours => ${windowHours})`)
          .as("c"),
      (join) => join.onTrue(),
    )
    .leftJoinLateral(
      (eb) =>
        eb
          .selectFrom("webhooks.deliveries as l")
          .select(["l.last_status_code", "l.last_error", "l.updated_at"])
          .whereRef("l.subscription_id", "=", "s.id")
          .where("l.attempts", ">", 0)
          .orderBy("l.created_at", "desc")
          .limit(1)
          .as("l"),
      (join) => join.onTrue(),
    )
    .select(["s.id", "s.name", "c.total", "c.succeeded", "c.failed", "c.open", "l.last_status_code", "l.last_error", "l.updated_at"])
    .$if(ids !== null, (q) => q.where("s.id", "=", sql<string>`any(${ids}::uuid[])`))
    .$if(ids === null, (q) => q.where("s.deleted_at", "is", null))
    .orderBy("s.created_at")
    .orderBy("s.id")
    .$if(scope.tenant !== null, (q) => q.where("s.tenant", "=", scope.tenant))
    .execute();
  for (const r of rows) {
    const succeeded = r.succeeded ?? 0;
    const failed = r.failed ?? 0;
    out.set(r.id, {
      webhook_id: r.id,
      webhook_name: r.name,
      total: r.total ?? 0,
      succeeded,
      failed,
      open: r.open ?? 0,
      success_rate: succeeded + failed === 0 ? null : succeeded / (succeeded + failed),
      last_status_code: r.last_status_code ?? null,
      last_error: r.last_error ?? null,
      last_at: r.updated_at ?? null,
    });
  }
  return out;
}
