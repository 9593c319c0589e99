// Fanout: claims a batch of undispatched outbox rows, matches them against the live
// webhooks, and in the same transaction writes the delivery rows, queues the delivery
// jobs and marks the rows dispatched. A crash anywhere rolls all of it back.
import type { Connection, Queryable } from "../db/connection";
import type { Filter } from "./filter";
import { matches, typeMatches } from "./filter";
import { enqueueDeliveries, type QueuedDelivery } from "./enqueue";

export const FANOUT_BATCH = 1000;

interface ClaimedEvent {
  id: string;
  event_id: string;
  type: string;
  tenant: string | null;
  data: unknown;
  previous_attributes: unknown;
  occurred_at: Date;
}

interface LiveSubscription {
  id: string;
  tenant: string | null;
  events: string[];
  filter: Filter | null;
}

export interface FanoutResult {
  events: number;
  deliveries: number;
  /** True when it stopped after maxBatches with more to do. */
  more?: boolean;
}

/** Batches one fanout job claims before it hands over to a fresh job (keeps jobs short). */
export const FANOUT_BATCHES_PER_JOB = 20;

/** True when a webhook wants this event: type pattern, tenant and filter. */
export function subscriptionWants(sub: LiveSubscription, e: ClaimedEvent): boolean {
  if (sub.tenant !== null && sub.tenant !== e.tenant) return false;
  if (!typeMatches(sub.events, e.type)) return false;
  if (sub.filter === null) return true;
  return matches(sub.filter, {
    id: e.event_id,
    type: e.type,
    timestamp: e.occurred_at.toISOString(),
    data: e.data,
    ...(e.previous_attributes === null ? {} : { previous_attributes: e.previous_attributes }),
    tenant: e.tenant,
  });
}

async function fanoutBatch(tx: Queryable, limit: number): Promise<FanoutResult> {
  // SKIP LOCKED lets several dispatchers claim disjoint batches.
  const events = await tx<ClaimedEvent[]>`
    select id, event_id, type, tenant, data, previous_attributes, occurred_at
      from webhooks.outbox
     where dispatched_at is null
     order by id
     limit ${limit}
       for update skip locked`;
  if (events.length === 0) return { events: 0, deliveries: 0 };

  const subs = await tx<LiveSubscription[]>`
    select id, tenant, events, filter
      from webhooks.subscriptions
     where deleted_at is null and is_active`;

  const subIds: string[] = [];
  const outboxIds: string[] = [];
  const eventIds: string[] = [];
  const types: string[] = [];
  const tenants: (string | null)[] = [];
  for (const e of events) {
    for (const s of subs) {
      if (!subscriptionWants(s, e)) continue;
      subIds.push(s.id);
      outboxIds.push(e.id);
      eventIds.push(e.event_id);
      types.push(e.type);
      tenants.push(e.tenant);
    }
  }

  let created: QueuedDelivery[] = [];
  if (subIds.length > 0) {
    created = await tx<QueuedDelivery[]>`
      insert into webhooks.deliveries (subscription_id, outbox_id, event_id, event_type, tenant)
      select * from unnest(${subIds}::uuid[], ${outboxIds}::bigint[], ${eventIds}::uuid[], ${types}::text[], ${tenants}::text[])
      returning id, subscription_id`;
    await enqueueDeliveries(tx, created);
  }
  await tx`
    update webhooks.outbox set dispatched_at = now()
     where id = any(${events.map((e) => e.id)}::bigint[])`;
  return { events: events.length, deliveries: created.length };
}

/** Fans out until the outbox holds nothing claimable, or maxBatches; returns the totals. */
export async function fanout(conn: Connection, limit = FANOUT_BATCH, maxBatches = Infinity): Promise<FanoutResult> {
  const total: FanoutResult = { events: 0, deliveries: 0 };
  for (let batch = 1; ; batch++) {
    const r = await conn.sql.begin((tx) => fanoutBatch(tx, limit));
    total.events += r.events;
    total.deliveries += r.deliveries;
    if (r.events < limit) return total;
    if (batch >= maxBatches) return { ...total, more: true };
  }
}
