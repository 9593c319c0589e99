// Pruning history: finished deliveries and their attempts, then dispatched outbox rows and
// deleted webhooks nothing refers to any more; inbound events done or failed before the cut-off
// (pending and processing ones are still owed) and deleted inbound sources without events. Batched so no statement holds locks for long.
// Tagged SQL: each batch is one statement of writable CTEs (select ... skip locked, delete,
// count), which reads best as the SQL it is; nothing in them is optional.
import type { Connection } from "../db/connection";
import { REPLAYABLE_STATUSES } from "../model/enums";

export const PRUNE_BATCH = 5000;

export interface PruneOptions {
  /** Rows finished (deliveries) or dispatched (outbox) before this instant go. */
  olderThan: Date;
  /** Count what would go, delete nothing. */
  dryRun: boolean;
  batchSize?: number;
}

export interface PruneResult {
  cutoff: Date;
  dry_run: boolean;
  deliveries: number;
  attempts: number;
  outbox: number;
  webhooks: number;
  inbound_events: number;
  inbound_sources: number;
}

/** Finished deliveries: the statuses a replay picks from. */
const FINISHED: string[] = [...REPLAYABLE_STATUSES];

async function count(conn: Connection, cutoff: Date): Promise<Omit<PruneResult, "cutoff" | "dry_run">> {
  const [inbound] = await conn.sql<{ events: string; sources: string }[]>`
    select (select count(*) from webhooks.inbound_events
             where processed_at < ${cutoff} and status in ('done', 'failed')) as events,
           (select count(*) from webhooks.inbound_sources s
             where s.deleted_at < ${cutoff}
               and not exists (select 1 from webhooks.inbound_events e
                                where e.source_id = s.id
                                  and not (e.processed_at < ${cutoff} and e.status in ('done', 'failed')))) as sources`;
  const [row] = await conn.sql<{ deliveries: string; attempts: string; outbox: string; webhooks: string }[]>`
    with doomed as (
      select id from webhooks.deliveries
       where finished_at < ${cutoff} and status = any(${FINISHED}::text[])
    )
    select
      (select count(*) from doomed) as deliveries,
      (select count(*) from webhooks.attempts a where a.delivery_id in (select id from doomed)) as attempts,
      (select count(*) from webhooks.outbox o
        where o.dispatched_at < ${cutoff}
          and not exists (select 1 from webhooks.deliveries d
                           where d.outbox_id = o.id and d.id not in (select id from doomed))) as outbox,
      (select count(*) from webhooks.subscriptions s
        where s.deleted_at < ${cutoff}
          and not exists (select 1 from webhooks.deliveries d
                           where d.subscription_id = s.id and d.id not in (select id from doomed))) as webhooks`;
  return {
    deliveries: Number(row?.deliveries ?? 0),
    attempts: Number(row?.attempts ?? 0),
    outbox: Number(row?.outbox ?? 0),
    webhooks: Number(row?.webhooks ?? 0),
    inbound_events: Number(inbound?.events ?? 0),
    inbound_sources: Number(inbound?.sources ?? 0),
  };
}

/** Deletes in batches until a batch comes back short; each statement is its own transaction. */
async function inBatches(batch: number, step: () => Promise<{ n: number; extra?: number }>): Promise<[number, number]> {
  let total = 0;
  let extra = 0;
  for (;;) {
    const r = await step();
    total += r.n;
    extra += r.extra ?? 0;
    if (r.n < batch) return [total, extra];
  }
}

export async function prune(conn: Connection, opts: PruneOptions): Promise<PruneResult> {
  const cutoff = opts.olderThan;
  const batch = opts.batchSize ?? PRUNE_BATCH;
  if (opts.dryRun) return { cutoff, dry_run: true, ...(await count(conn, cutoff)) };

  // Deliveries first (their attempts with them): outbox rows become unreferenced only then.
  const [deliveries, attempts] = await inBatches(batch, async () => {
    const [row] = await conn.sql<{ deliveries: string; attempts: string }[]>`
      with doomed as (
        select id from webhooks.deliveries
         where finished_at < ${cutoff} and status = any(${FINISHED}::text[])
         limit ${batch}
           for update skip locked
      ), gone_attempts as (
        delete from webhooks.attempts a using doomed where a.delivery_id = doomed.id returning 1
      ), gone as (
        delete from webhooks.deliveries d using doomed where d.id = doomed.id returning 1
      )
      select (select count(*) from gone) as deliveries, (select count(*) from gone_attempts) as attempts`;
    return { n: Number(row?.deliveries ?? 0), extra: Number(row?.attempts ?? 0) };
  });

  const [outbox] = await inBatches(batch, async () => {
    const [row] = await conn.sql<{ n: string }[]>`
      with doomed as (
        select o.id from webhooks.outbox o
         where o.dispatched_at < ${cutoff}
           and not exists (select 1 from webhooks.deliveries d where d.outbox_id = o.id)
         limit ${batch}
           for update skip locked
      ), gone as (
        delete from webhooks.outbox o using doomed where o.id = doomed.id returning 1
      )
      select count(*) as n from gone`;
    return { n: Number(row?.n ?? 0) };
  });

  const [webhooks] = await inBatches(batch, async () => {
    const [row] = await conn.sql<{ n: string }[]>`
      with doomed as (
        select s.id from webhooks.subscriptions s
         where s.deleted_at < ${cutoff}
           and not exists (select 1 from webhooks.deliveries d where d.subscription_id = s.id)
         limit ${batch}
           for update skip locked
      ), gone as (
        delete from webhooks.subscriptions s using doomed where s.id = doomed.id returning 1
      )
      select count(*) as n from gone`;
    return { n: Number(row?.n ?? 0) };
  });

  const [inboundEvents] = await inBatches(batch, async () => {
    const [row] = await conn.sql<{ n: string }[]>`
      with doomed as (
        select id from webhooks.inbound_events
         where processed_at < ${cutoff} and status in ('done', 'failed')
         limit ${batch}
           for update skip locked
      ), gone as (
        delete from webhooks.inbound_events e using doomed where e.id = doomed.id returning 1
      )
      select count(*) as n from gone`;
    return { n: Number(row?.n ?? 0) };
  });

  const [inboundSources] = await inBatches(batch, async () => {
    const [row] = await conn.sql<{ n: string }[]>`
      with doomed as (
        select s.id from webhooks.inbound_sources s
         where s.deleted_at < ${cutoff}
           and not exists (select 1 from webhooks.inbound_events e where e.source_id = s.id)
         limit ${batch}
           for update skip locked
      ), gone as (
        delete from webhooks.inbound_sources s using doomed where s.id = doomed.id returning 1
      )
      select count(*) as n from gone`;
    return { n: Number(row?.n ?? 0) };
  });

  return { cutoff, dry_run: false, deliveries, attempts, outbox, webhooks, inbound_events: inboundEvents, inbound_sources: inboundSources };
}
