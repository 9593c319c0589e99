// Who leases a delivery: a delivery is sent only by the dispatcher whose id is in its
// lease_owner (or, with no owner, by whoever holds its time lease: a test send). This file
// claims due deliveries (deliver jobs), gives the lease of fresh deliveries to fanout, hands
// leases back, and frees those of dead dispatchers. It also owns the columns every send reads.
import type { Queryable } from "../db/connection";
import type { Subscription } from "../db/schema";
import type { TargetSpec } from "../delivery/request";
import type { EventForDelivery } from "../delivery/render";
import { probeDue, probeIntervalMs, type BreakerSettings } from "../model/circuit";
import { enqueueDeliveries, type QueuedDelivery } from "./jobs";
import { halfOpen, park, readHealth } from "./health";

/** How long a delivery claimed without an owner stays claimed beyond its timeout. */
export const LEASE_GRACE_MS = 5_000;

/** How long a lease on a delivery to a webhook with this timeout lasts. */
export const leaseMs = (timeoutMs: number): number => timeoutMs + LEASE_GRACE_MS;

/**
 * What a send needs from the webhook: claims, fanout and the lanes' settings refresh select
 * these columns, so a delivery always carries one consistent copy of its webhook's settings.
 */
export const SEND_COLUMNS = [
  "url", "method", "auth", "headers", "secret_headers", "signature_scheme", "signature_header", "secret", "previous_secret",
  "previous_secret_expires_at", "timeout_ms", "retry", "is_active", "max_in_flight", "rate_limit_per_s",
  "disable_after_s", "breaker_threshold", "big_numbers", "name", "payload", "iso_timestamp_header", "settings_version",
] as const satisfies readonly (keyof Subscription)[];

/**
 * A webhook's settings as a delivery carries them (the SEND_COLUMNS of its row); the request's
 * part typed as delivery/request.ts reads it, settings_version as a number (it counts updates).
 */
export type SendSettings = TargetSpec &
  Omit<Pick<Subscription, (typeof SEND_COLUMNS)[number]>, keyof TargetSpec | "settings_version"> & { settings_version: number };

/** The event part of a send: the outbox row as render.ts reads it. */
export type EventColumns = Omit<EventForDelivery, "big_numbers">;

/** A delivery leased for sending, with its webhook's settings and its event. */
export type ClaimedDelivery = SendSettings &
  EventColumns & {
    id: string;
    subscription_id: string;
    attempts: number;
    created_at: Date;
    /** The body its first attempt rendered and sent (every later attempt sends it); null before that. */
    body: string | null;
  };

/** SEND_COLUMNS of the subscriptions row `s`; settings_version read as a number (it counts updates). */
export const sendColumns = (sql: Queryable) =>
  sql.unsafe(SEND_COLUMNS.map((c) => (c === "settings_version" ? `s.${c}::float8 as ${c}` : `s.${c}`)).join(", "));

/** The settings part of a delivery (or of a row holding SEND_COLUMNS), and nothing else. */
export function settingsOf(d: SendSettings): SendSettings {
  const out: Record<string, unknown> = {};
  for (const c of SEND_COLUMNS) out[c] = d[c];
  return out as unknown as SendSettings;
}

/** The event columns of a send (outbox as `o`): jsonb as text, parsed exactly by render.ts. */
export const eventColumns = (sql: Queryable) => sql`
  o.event_id, o.type, o.occurred_at, o.data::text as data, o.previous_attributes::text as previous_attributes, o.tenant,
  o.source_table`;

/** A fresh delivery that fanout wrote leased to a dispatcher: no attempt yet. */
export function freshDelivery(id: string, webhook: SendSettings & { id: string }, event: EventColumns, createdAt: Date): ClaimedDelivery {
  return {
    ...settingsOf(webhook),
    id,
    subscription_id: webhook.id,
    attempts: 0,
    created_at: createdAt,
    body: null,
    event_id: event.event_id,
    type: event.type,
    occurred_at: event.occurred_at,
    data: event.data,
    previous_attributes: event.previous_attributes,
    tenant: event.tenant,
    source_table: event.source_table,
  };
}

/** Options of a claim and of its recording. */
export interface AttemptOptions {
  /** false: a failed attempt ends the delivery (test sends). Default true. */
  retry?: boolean;
  /** Send even when the webhook is inactive (test sends). */
  force?: boolean;
}

export interface Claim {
  /** To send now. */
  send: ClaimedDelivery[];
  /** The delivery allowed through a half-open circuit, if it is among `send`. */
  probeIds: Set<string>;
  parked: number;
  disabled: number;
}

/** The error a delivery to a disabled webhook ends with (no request is made). */
const DISABLED_ERROR = "webhook is disabled; replay the delivery after enabling it";

/**
 * Claims the due deliveries among `ids` for `owner` (a dispatcher id; null for a direct send,
 * which holds a time lease instead). A delivery owned by a live dispatcher is left to it.
 * Deliveries not yet due get a job for when they are. Behind an open circuit, deliveries are
 * parked, except one probe when a probe is due. Deliveries of a disabled webhook fail.
 */
export async function claim(
  tx: Queryable,
  ids: string[],
  owner: string | null,
  opts: AttemptOptions,
  settings: BreakerSettings,
): Promise<Claim> {
  // postgres.js tagged SQL, not Kysely: every delivery passes through here (measured hot path).
  const rows = await tx<ClaimedDelivery[]>`
    with due as (
      select d.id
        from webhooks.deliveries d
       where d.id = any(${ids}::uuid[])
         and d.status in ('pending', 'retrying')
         and d.parked_at is null
         and (d.next_attempt_at is null or d.next_attempt_at <= now() + interval '1 second'
              or d.lease_owner is not null)
         and (d.lease_owner is null
              or not exists (select 1 from webhooks.dispatchers x where x.id = d.lease_owner))
         for update of d skip locked
    ), leased as (
      update webhooks.deliveries d
         set lease_owner = ${owner},
             next_attempt_at = now() + (s.timeout_ms + ${LEASE_GRACE_MS}) * interval '1 millisecond'
        from due, webhooks.subscriptions s
       where d.id = due.id and s.id = d.subscription_id
      returning d.id, d.subscription_id, d.attempts, d.outbox_id, d.created_at, d.body
    )
    select l.id, l.subscription_id, l.attempts, l.created_at, l.body, ${sendColumns(tx)}, ${eventColumns(tx)}
      from leased l
      join webhooks.subscriptions s on s.id = l.subscription_id
      join webhooks.outbox o on o.id = l.outbox_id
     order by l.created_at, l.outbox_id`;

  // Anything still owed, not due and not held by anyone gets a job for when it falls due.
  const claimedIds = new Set(rows.map((c) => c.id));
  const rest = ids.filter((id) => !claimedIds.has(id));
  if (rest.length > 0) {
    const later = await tx<(QueuedDelivery & { at: Date })[]>`
      select id, subscription_id, next_attempt_at as at
        from webhooks.deliveries
       where id = any(${rest}::uuid[]) and status in ('pending', 'retrying') and parked_at is null
         and lease_owner is null and next_attempt_at > now() + interval '1 second'`;
    for (const l of later) await enqueueDeliveries(tx, [l], l.at);
  }

  const result: Claim = { send: [], probeIds: new Set(), parked: 0, disabled: 0 };
  const inactive = opts.force ? [] : rows.filter((r) => !r.is_active);
  if (inactive.length > 0) {
    await tx`
      update webhooks.deliveries
         set status = 'failed', lease_owner = null, next_attempt_at = null, finished_at = now(), updated_at = now(),
             last_error = ${DISABLED_ERROR}
       where id = any(${inactive.map((r) => r.id)}::uuid[])`;
    result.disabled = inactive.length;
  }
  const active = opts.force ? rows : rows.filter((r) => r.is_active);
  if (active.length === 0) return result;

  // The circuit: read without a lock first (closed is the common case), lock only when open.
  const webhookIds = [...new Set(active.map((r) => r.subscription_id))];
  let health = await readHealth(tx, webhookIds, false);
  const troubled = webhookIds.filter((w) => (health.get(w)?.circuit ?? "closed") !== "closed");
  if (troubled.length > 0) health = new Map([...health, ...(await readHealth(tx, troubled, true))]);
  const toPark: string[] = [];
  for (const w of webhookIds) {
    const mine = active.filter((r) => r.subscription_id === w);
    const h = health.get(w);
    if (!h || h.circuit === "closed" || opts.force) {
      result.send.push(...mine);
      continue;
    }
    let probe = h.probe_delivery_id ? mine.find((r) => r.id === h.probe_delivery_id) : undefined;
    if (!probe && probeDue(h, Date.now())) {
      probe = mine[0]; // the oldest
      if (probe) await halfOpen(tx, w, probe.id, probeIntervalMs(h, settings));
    }
    for (const r of mine) {
      if (r === probe) {
        result.send.push(r);
        result.probeIds.add(r.id);
      } else toPark.push(r.id);
    }
  }
  await park(tx, toPark);
  result.parked = toPark.length;
  return result;
}

/** Hands deliveries `owner` holds back to the job queue (it stops, or cannot take them). */
export async function releaseLeases(tx: Queryable, deliveries: QueuedDelivery[], owner: string | null): Promise<void> {
  if (deliveries.length === 0) return;
  if (owner !== null) {
    await tx`
      update webhooks.deliveries set lease_owner = null, next_attempt_at = null, updated_at = now()
       where id = any(${deliveries.map((r) => r.id)}::uuid[]) and lease_owner = ${owner}`;
  }
  await enqueueDeliveries(tx, deliveries);
}

/** Deliveries a dead dispatcher held in memory (queued or in flight) get a job again; returns how many. */
export async function releaseDeadOwners(tx: Queryable): Promise<number> {
  const orphans = await tx<QueuedDelivery[]>`
    with orphan as (
      select d.id from webhooks.deliveries d
       where d.lease_owner is not null and d.status in ('pending', 'retrying')
         and not exists (select 1 from webhooks.dispatchers x where x.id = d.lease_owner)
       limit 10000
         for update skip locked
    )
    update webhooks.deliveries d set lease_owner = null, next_attempt_at = null, updated_at = now()
      from orphan where d.id = orphan.id
    returning d.id, d.subscription_id`;
  await enqueueDeliveries(tx, orphans);
  return orphans.length;
}

/** A webhook's live settings and whether its circuit lets requests through (the lanes' refresh). */
export type LiveSendSettings = SendSettings & { id: string; circuit_closed: boolean };

/** The send settings of these webhooks as they are now; deleted ones are missing. */
export async function readSendSettings(sql: Queryable, webhookIds: string[]): Promise<LiveSendSettings[]> {
  return sql<LiveSendSettings[]>`
    select s.id, ${sendColumns(sql)}, coalesce(h.circuit, 'closed') = 'closed' as circuit_closed
      from webhooks.subscriptions s
      left join webhooks.endpoint_health h on h.subscription_id = s.id
     where s.id = any(${webhookIds}::uuid[]) and s.deleted_at is null`;
}
