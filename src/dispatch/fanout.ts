// Fanout: claims a batch of undispatched outbox rows, matches them against the live
// webhooks, and in the same transaction writes the delivery rows, queues the delivery
// jobs and marks the rows dispatched. A crash anywhere rolls all of it back.
//
// Given the room in a dispatcher's lanes, fanout writes fresh deliveries of healthy webhooks
// already leased to that dispatcher (no job, no claim) and returns them; the dispatcher queues
// them in its lanes once the transaction has committed. Should the dispatcher die first, the
// heartbeat sweep of the others finds the lease of a dead owner and queues jobs for them.
import { randomUUID } from "node:crypto";
import type { Connection, Queryable } from "../db/connection";
import type { Filter, FilterBody } from "../model/filter";
import { matches, typeMatches } from "../model/filter";
import { fanoutRoom } from "../model/window";
import { parseExact } from "../delivery/event-json";
import { enqueueDeliveries, type QueuedDelivery } from "./jobs";
import { eventColumns, freshDelivery, leaseMs, sendColumns, type ClaimedDelivery, type EventColumns, type SendSettings } from "./claim";

/** The room in a dispatcher's lanes when a batch starts: fanout leases that much to `owner`. */
export interface LeaseOffer {
  owner: string;
  /** How many more deliveries the lanes take, all webhooks together. */
  capacity: number;
  /** The room of each webhook that has a lane (0: queue jobs); one without takes fanoutRoom(max_in_flight, 0). */
  room: ReadonlyMap<string, number>;
  /**
   * Webhooks whose lane frees room fast (model/window.ts, drainsSoon): when such a lane is
   * full, waiting a moment for its room is cheaper than queuing jobs.
   */
  soon: ReadonlySet<string>;
}

export const FANOUT_BATCH = 1000;

/** An outbox row claimed by fanout: its id and the event columns of a send. */
interface ClaimedEvent extends EventColumns {
  id: string;
  /** A backfill event's one webhook (sql/0008_backfills_ed25519.sql); null for every other event. */
  target_subscription: string | null;
}

interface LiveSubscription {
  id: string;
  tenant: string | null;
  events: string[];
  filter: Filter | null;
}

/** With lanes to lease to: everything a send needs, and whether the circuit lets requests through. */
type LeasableSubscription = LiveSubscription & SendSettings & { circuit_closed: boolean };

export interface FanoutResult {
  events: number;
  deliveries: number;
  /** True when the batch was full: there may be more to do. */
  more: boolean;
  /** Deliveries written leased to the offer's owner, for its lanes (after the commit). */
  leased: ClaimedDelivery[];
  /** The webhooks this batch wrote deliveries for. */
  webhooks: Set<string>;
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

/**
 * True when a webhook wants this event: type pattern, tenant and filter. A backfill event goes
 * to its target webhook only, whatever that webhook's event types (tenant and filter still apply).
 */
export function subscriptionWants(
  sub: LiveSubscription,
  e: ClaimedEvent,
  parsed = new WeakMap<ClaimedEvent, FilterBody>(),
): boolean {
  if (sub.tenant !== null && sub.tenant !== e.tenant) return false;
  if (e.target_subscription !== null) {
    if (e.target_subscription !== sub.id) return false;
  } else if (!typeMatches(sub.events, e.type)) return false;
  if (sub.filter === null) return true;
  return matches(sub.filter, filterBody(e, parsed));
}

/** Fans out one batch of at most `limit` events, leasing to `offer`'s lanes what fits. */
export async function fanout(conn: Connection, offer?: LeaseOffer, limit = FANOUT_BATCH): Promise<FanoutResult> {
  return conn.sql.begin((tx) => fanoutBatch(tx, limit, offer));
}

async function fanoutBatch(tx: Queryable, limit: number, offer?: LeaseOffer): Promise<FanoutResult> {
  // postgres.js tagged SQL, not Kysely: every event passes through here (measured hot path).
  // SKIP LOCKED lets several dispatchers claim disjoint batches.
  const rows = await tx<(Omit<ClaimedEvent, "event_id"> & { event_id: string | null })[]>`
    select o.id, o.target_subscription, ${eventColumns(tx)}
      from webhooks.outbox o
     where dispatched_at is null
     order by id
     limit ${limit}
       for update skip locked`;
  if (rows.length === 0) return { events: 0, deliveries: 0, more: false, leased: [], webhooks: new Set() };
  // Captured rows come without an event id (see sql/0001_tables.sql, outbox.event_id): they get one here, stored by the
  // update below that marks them dispatched, in this transaction.
  const events: ClaimedEvent[] = rows.map((e) => ({ ...e, event_id: e.event_id ?? randomUUID() }));

  const subs: (LiveSubscription | LeasableSubscription)[] = offer
    ? await tx<LeasableSubscription[]>`
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
  const leaseMsOf: (number | null)[] = [];
  const queued: QueuedDelivery[] = [];
  const leased: ClaimedDelivery[] = [];
  const room = new Map<string, number>();
  let budget = offer?.capacity ?? 0;
  const now = new Date();
  const leasable = (s: LiveSubscription | LeasableSubscription): s is LeasableSubscription => "circuit_closed" in s;
  const parsed = new WeakMap<ClaimedEvent, FilterBody>();
  const fed = new Set<string>();
  for (const e of events) {
    for (const s of subs) {
      if (!subscriptionWants(s, e, parsed)) continue;
      const id = randomUUID();
      fed.add(s.id);
      ids.push(id);
      subIds.push(s.id);
      outboxIds.push(e.id);
      eventIds.push(e.event_id);
      types.push(e.type);
      tenants.push(e.tenant);
      const left =
        offer && budget > 0 && leasable(s) && s.circuit_closed
          ? (room.get(s.id) ?? offer.room.get(s.id) ?? fanoutRoom(s.max_in_flight, 0))
          : 0;
      if (left > 0 && leasable(s)) {
        room.set(s.id, left - 1);
        budget--;
        leaseMsOf.push(leaseMs(s.timeout_ms));
        leased.push(freshDelivery(id, s, e, now));
      } else {
        leaseMsOf.push(null);
        queued.push({ id, subscription_id: s.id });
      }
    }
  }

  if (ids.length > 0) {
    await tx`
      insert into webhooks.deliveries
        (id, subscription_id, outbox_id, event_id, event_type, tenant, lease_owner, next_attempt_at)
      select id, sub, outbox, event, type, tenant,
             case when lease_ms is null then null else ${offer?.owner ?? null}::text end,
             now() + lease_ms * interval '1 millisecond'
        from unnest(${ids}::uuid[], ${subIds}::uuid[], ${outboxIds}::bigint[], ${eventIds}::uuid[], ${types}::text[],
                    ${tenants}::text[], ${leaseMsOf}::int[]) as u(id, sub, outbox, event, type, tenant, lease_ms)`;
    await enqueueDeliveries(tx, queued);
  }
  await tx`
    update webhooks.outbox o set dispatched_at = now(), event_id = coalesce(o.event_id, v.event_id)
      from unnest(${events.map((e) => e.id)}::bigint[], ${events.map((e) => e.event_id)}::uuid[]) as v(id, event_id)
     where o.id = v.id`;
  return { events: events.length, deliveries: ids.length, more: events.length >= limit, leased, webhooks: fed };
}
