// The dispatcher's graphile-worker jobs: their name, their payload (checked by zod when a job
// runs), and queuing them, in the caller's transaction when given one. A job carries a batch
// of delivery ids of one webhook, so one job sends many requests.
import { z } from "zod";
import type { Queryable } from "../db/connection";

export const DELIVER_TASK = "pgw_deliver";
/** Deliveries per deliver job: big enough to amortise the job, small enough to spread. */
export const DELIVER_BATCH = 50;

export const deliverPayloadSchema = z.object({
  ids: z.array(z.guid()),
  /** The webhook all of `ids` belong to. */
  w: z.guid(),
});

export type DeliverPayload = z.infer<typeof deliverPayloadSchema>;

export interface QueuedDelivery {
  id: string;
  subscription_id: string;
}

/** Adds deliver jobs for these deliveries, grouped by webhook, to run at `runAt` (now when absent). */
export async function enqueueDeliveries(sql: Queryable, deliveries: QueuedDelivery[], runAt?: Date | null): Promise<number> {
  if (deliveries.length === 0) return 0;
  const bySubscription = new Map<string, string[]>();
  for (const d of deliveries) {
    const list = bySubscription.get(d.subscription_id) ?? [];
    list.push(d.id);
    bySubscription.set(d.subscription_id, list);
  }
  const payloads: string[] = [];
  for (const [w, ids] of bySubscription) {
    for (let i = 0; i < ids.length; i += DELIVER_BATCH) {
      payloads.push(JSON.stringify({ ids: ids.slice(i, i + DELIVER_BATCH), w } satisfies DeliverPayload));
    }
  }
  await sql`
    select graphile_worker.add_jobs(array_agg(
      row(${DELIVER_TASK}, p::json, null, ${runAt ?? null}::timestamptz, 25, null, null, null)::graphile_worker.job_spec
    ))
    from unnest(${payloads}::text[]) p`;
  return payloads.length;
}

/** Runs a slice of one backfill (dispatch/backfill.ts), then queues the next slice. */
export const BACKFILL_TASK = "pgw_backfill";

export const backfillPayloadSchema = z.object({ b: z.guid() });

/**
 * Queues the next slice of a backfill at `runAt` (now when absent). The job key keeps one
 * waiting job per backfill: queuing again moves it instead of adding another.
 */
export async function enqueueBackfill(sql: Queryable, backfillId: string, runAt?: Date | null): Promise<void> {
  await sql`
    select graphile_worker.add_job(${BACKFILL_TASK}, json_build_object('b', ${backfillId}::text),
                                   run_at => ${runAt ?? null}::timestamptz, max_attempts => 25,
                                   job_key => ${"pgw_backfill:" + backfillId})`;
}
