// Fanout: claims a batch of undispatched outbox rows, matches them against the live
// webhooks, and in the same transaction writes the delivery rows, queues the delivery
// jobs and marks the rows dispatched. A crash anywhere rolls all of it back.
//
// Run by a dispatcher, fanout hands fresh deliveries of healthy webhooks straight to that
// dispatcher's lanes instead: they are written already leased to it (no job, no claim), and
// queued in memory once the transaction commits. Should the dispatcher die first, the
// heartbeat sweep of the others finds the lease of a dead owner and queues jobs for them.
import { randomUUID } from "node:crypto";
import type { Connection, Queryable } from "../db/connection";
import type { Filter, FilterBody } from "../model/filter";
import { matches, typeMatches } from "../model/filter";
import { parseExact } from "../delivery/event-json";
import { enqueueDeliveries, type QueuedDelivery } from "./enqueue";
import { LEASE_GRACE_MS, eventColumns, sendColumns, type ClaimedDelivery } from "./deliver";

/** A dispatcher's lanes, as fanout sees them. */
export interface LocalLanes {
  owner: string;
  /** How many more deliveries the lanes take now, all webhooks together. */
  capacity(): number;
  /** How many more deliveries of this webhook its lane would take now (0: queue jobs). */
  room(webhookId: string, maxInFlight: number): number;
  /** Takes deliveries leased to `owner` by a committed transaction. */
  take(deliveries: ClaimedDelivery[]): void;
}

export const FANOUT_BATCH = 1000;

interface ClaimedEvent {
  id: string;
  event_id: string;
  type: string;
  tenant: string | null;
  /** jsonb as text (see eventColumns); parsed exactly, and only when a filter needs it. */
  data: string;
  previous_attributes: string | null;
  occurred_at: Date;
}

interface LiveSubscription {
  id: string;
  tenant: string | null;
  events: string[];
  filter: Filter | null;
}

/** With local lanes: everything a send needs, and whether the circuit lets requests through. */
type FullSubscription = LiveSubscription &
  Omit<ClaimedDelivery, "id" | "subscription_id" | "attempts" | "created_at" | keyof ClaimedEvent | "data"> & {
    circuit_closed: boolean;
  };

export interface FanoutResult {
  events: number;
  deliveries: number;
  /** True when it stopped after maxBatches with more to do. */
  more?: boolean;
}

/** The body filters see, its numbers exact; parsed once per event. */
function filterBody(e: ClaimedEvent, parsed: WeakMap<ClaimedEvent, FilterBody>): FilterBody {
  let body = parsed.get(e);
  if (body === undefined) {
    const previous = e.previous_attributes === null ? null : parseExact(e.previous_attributes).value;
    body = {
      id: e.event_id,
      type: e.type,
      timestamp: e.occurred_at.toISOString(),
      data: parseExact(e.data).value,
      ...(previous === null ? {} : { previous_attributes: previous }),
      tenant: e.tenant,
    };
    parsed.set(e, body);
  }
  return body;
}

/** True when a webhook wants this event: type pattern, tenant and filter. */
export function subscriptionWants(
  sub: LiveSubscription,
  e: ClaimedEvent,
  parsed = new WeakMap<ClaimedEvent, FilterBody>(),
): boolean {
  if (sub.tenant !== null && sub.tenant !== e.tenant) return false;
  if (!typeMatches(sub.events, e.type)) return false;
  if (sub.filter === null) return true;
  return matches(sub.filter, filterBody(e, parsed));
}

interface BatchResult extends FanoutResult {
  leased: ClaimedDelivery[];
}

async function fanoutBatch(tx: Queryable, limit: number, local?: LocalLanes): Promise<BatchResult> {
  // SKIP LOCKED lets several dispatchers claim disjoint batches.
  const rows = await tx<(Omit<ClaimedEvent, "event_id"> & { event_id: string | null })[]>`
    select o.id, ${eventColumns(tx)}
      from webhooks.outbox o
     where dispatched_at is null
     order by id
     limit ${limit}
       for update skip locked`;
  if (rows.length === 0) return { events: 0, deliveries: 0, leased: [] };
  // Captured rows come without an event id (see sql/0003): they get one here, stored by the
  // update below that marks them dispatched, in this transaction.
  const events: ClaimedEvent[] = rows.map((e) => ({ ...e, event_id: e.event_id ?? randomUUID() }));

  const subs: (LiveSubscription | FullSubscription)[] = local
    ? await tx<FullSubscription[]>`
        select s.id, s.tenant, s.events, s.filter, ${sendColumns(tx)},
               coalesce(h.circuit, 'closed') = 'closed' as circuit_closed
          from webhooks.subscriptions s
          left join webhooks.endpoint_health h on h.subscription_id = s.id
         where s.deleted_at is null and s.is_active`
    : await tx<LiveSubscription[]>`
        select id, tenant, events, filter
          from webhooks.subscriptions
         where deleted_at is null and is_active`;

  const ids: string[] = [];
  const subIds: string[] = [];
  const outboxIds: string[] = [];
  const eventIds: string[] = [];
  const types: string[] = [];
  const tenants: (string | null)[] = [];
  const leaseMs: (number | null)[] = [];
  const queued: QueuedDelivery[] = [];
  const leased: ClaimedDelivery[] = [];
  const room = new Map<string, number>();
  let budget = local?.capacity() ?? 0;
  const now = new Date();
  const full = (s: LiveSubscription | FullSubscription): s is FullSubscription => "circuit_closed" in s;
  const parsed = new WeakMap<ClaimedEvent, FilterBody>();
  for (const e of events) {
    for (const s of subs) {
      if (!subscriptionWants(s, e, parsed)) continue;
      const id = randomUUID();
      ids.push(id);
      subIds.push(s.id);
      outboxIds.push(e.id);
      eventIds.push(e.event_id);
      types.push(e.type);
      tenants.push(e.tenant);
      const left = local && budget > 0 && full(s) && s.circuit_closed ? (room.get(s.id) ?? local.room(s.id, s.max_in_flight)) : 0;
      if (left > 0 && full(s)) {
        room.set(s.id, left - 1);
        budget--;
        leaseMs.push(s.timeout_ms + LEASE_GRACE_MS);
        const { circuit_closed: _, events: _e, filter: _f, tenant: _t, ...target } = s;
        leased.push({
          ...target,
          id,
          subscription_id: s.id,
          attempts: 0,
          created_at: now,
          event_id: e.event_id,
          type: e.type,
          occurred_at: e.occurred_at,
          data: e.data,
          previous_attributes: e.previous_attributes,
          tenant: e.tenant,
        });
      } else {
        leaseMs.push(null);
        queued.push({ id, subscription_id: s.id });
      }
    }
  }

  if (ids.length > 0) {
    await tx`
      insert into webhooks.deliveries
        (id, subscription_id, outbox_id, event_id, event_type, tenant, lease_owner, next_attempt_at)
      select id, sub, outbox, event, type, tenant,
             case when lease_ms is null then null else ${local?.owner ?? null}::text end,
             now() + lease_ms * interval '1 millisecond'
        from unnest(${ids}::uuid[], ${subIds}::uuid[], ${outboxIds}::bigint[], ${eventIds}::uuid[], ${types}::text[],
                    ${tenants}::text[], ${leaseMs}::int[]) as u(id, sub, outbox, event, type, tenant, lease_ms)`;
    await enqueueDeliveries(tx, queued);
  }
  await tx`
    update webhooks.outbox o set dispatched_at = now(), event_id = coalesce(o.event_id, v.event_id)
      from unnest(${events.map((e) => e.id)}::bigint[], ${events.map((e) => e.event_id)}::uuid[]) as v(id, event_id)
     where o.id = v.id`;
  return { events: events.length, deliveries: ids.length, leased };
}

/** Fans out until the outbox holds nothing claimable, or maxBatches; returns the totals. */
export async function fanout(
  conn: Connection,
  limit = FANOUT_BATCH,
  maxBatches = Infinity,
  local?: LocalLanes,
): Promise<FanoutResult> {
  const total: FanoutResult = { events: 0, deliveries: 0 };
  for (let batch = 1; ; batch++) {
    const r = await conn.sql.begin((tx) => fanoutBatch(tx, limit, local));
    if (r.leased.length > 0) local?.take(r.leased);
    total.events += r.events;
    total.deliveries += r.deliveries;
    if (r.events < limit) return total;
    if (batch >= maxBatches) return { ...total, more: true };
  }
}
