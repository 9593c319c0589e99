// Endpoint health: the circuit breaker and auto-disable. The state lives in
// webhooks.endpoint_health (no row = healthy) and changes only inside the transaction that
// records attempts, so every dispatcher sees the same circuit.
//
//   closed ──(threshold consecutive failures)──► open ──(probe due)──► half_open
//     ▲                                            ▲                      │
//     └──────────────(any success)─────────────────┴──(probe fails)───────┘
import type { Config } from "../config";
import type { Connection, Queryable } from "../db/connection";
import { enqueueDeliveries, type QueuedDelivery } from "./enqueue";

export interface BreakerSettings {
  /** Consecutive failed attempts that open a circuit; 0: it never opens. */
  threshold: number;
  /** First interval between probes; doubles up to probeMaxMs. */
  probeMinMs: number;
  probeMaxMs: number;
  /** Default for webhooks without disable_after_s. */
  disableAfterS: number;
}

export const DEFAULT_BREAKER: BreakerSettings = {
  threshold: 10,
  probeMinMs: 30_000,
  probeMaxMs: 600_000,
  disableAfterS: 5 * 24 * 3600,
};

export function breakerFromConfig(config: Config): BreakerSettings {
  return {
    threshold: config.WEBHOOKS_BREAKER_THRESHOLD,
    probeMinMs: config.WEBHOOKS_BREAKER_PROBE_MIN_MS,
    probeMaxMs: config.WEBHOOKS_BREAKER_PROBE_MAX_MS,
    disableAfterS: config.WEBHOOKS_DISABLE_AFTER_S,
  };
}

export type Circuit = "closed" | "open" | "half_open";

export interface HealthRow {
  subscription_id: string;
  circuit: Circuit;
  consecutive_failures: number;
  failing_since: Date | null;
  last_success_at: Date | null;
  last_failure_at: Date | null;
  opened_at: Date | null;
  next_probe_at: Date | null;
  probe_interval_ms: number | null;
  probe_delivery_id: string | null;
}

export function healthyRow(subscriptionId: string): HealthRow {
  return {
    subscription_id: subscriptionId,
    circuit: "closed",
    consecutive_failures: 0,
    failing_since: null,
    last_success_at: null,
    last_failure_at: null,
    opened_at: null,
    next_probe_at: null,
    probe_interval_ms: null,
    probe_delivery_id: null,
  };
}

export interface AttemptResult {
  ok: boolean;
  startedAt: Date;
}

/**
 * The health after these attempts (in the order they finished). `closedAgain` is true when a
 * success closed a circuit that was open, so the deliveries parked behind it may flow.
 */
export function nextHealth(
  prev: HealthRow,
  results: AttemptResult[],
  settings: BreakerSettings,
  now: Date,
): { row: HealthRow; closedAgain: boolean } {
  const row: HealthRow = { ...prev };
  let anySuccess = false;
  for (const r of results) {
    if (r.ok) {
      anySuccess = true;
      row.consecutive_failures = 0;
      row.failing_since = null;
      row.last_success_at = now;
    } else {
      row.consecutive_failures += 1;
      row.failing_since ??= r.startedAt;
      row.last_failure_at = now;
    }
  }
  const wasOpen = prev.circuit !== "closed";
  if (anySuccess && row.consecutive_failures === 0) {
    row.circuit = "closed";
    row.opened_at = null;
    row.next_probe_at = null;
    row.probe_interval_ms = null;
    row.probe_delivery_id = null;
    return { row, closedAgain: wasOpen };
  }
  if (results.length === 0 || anySuccess) {
    // Failures after a success: the run starts again; open only past the threshold.
    if (!wasOpen && tripped(row.consecutive_failures, settings.threshold)) openCircuit(row, settings, now);
    return { row, closedAgain: false };
  }
  if (wasOpen) {
    // A failed probe (or a late failure): wait longer before the next one.
    const interval = prev.probe_interval_ms ?? settings.probeMinMs;
    row.circuit = "open";
    row.next_probe_at = new Date(now.getTime() + interval);
    row.probe_interval_ms = Math.min(settings.probeMaxMs, interval * 2);
    row.probe_delivery_id = null;
  } else if (tripped(row.consecutive_failures, settings.threshold)) {
    openCircuit(row, settings, now);
  }
  return { row, closedAgain: false };
}

/** True when this run of failures opens a circuit with this threshold (0: never). */
export function tripped(consecutiveFailures: number, threshold: number): boolean {
  return threshold > 0 && consecutiveFailures >= threshold;
}

function openCircuit(row: HealthRow, settings: BreakerSettings, now: Date): void {
  row.circuit = "open";
  row.opened_at = now;
  row.next_probe_at = new Date(now.getTime() + settings.probeMinMs);
  row.probe_interval_ms = Math.min(settings.probeMaxMs, settings.probeMinMs * 2);
  row.probe_delivery_id = null;
}

/** True when every attempt has failed for longer than the webhook allows. */
export function failingTooLong(row: HealthRow, disableAfterS: number, now: Date): boolean {
  return row.failing_since !== null && row.consecutive_failures > 0 && now.getTime() - row.failing_since.getTime() >= disableAfterS * 1000;
}

export async function readHealth(sql: Queryable, ids: string[], lock: boolean): Promise<Map<string, HealthRow>> {
  const rows = lock
    ? await sql<HealthRow[]>`select * from webhooks.endpoint_health where subscription_id = any(${ids}::uuid[]) order by subscription_id for update`
    : await sql<HealthRow[]>`select * from webhooks.endpoint_health where subscription_id = any(${ids}::uuid[])`;
  return new Map(rows.map((r) => [r.subscription_id, r]));
}

export async function writeHealth(sql: Queryable, rows: HealthRow[]): Promise<void> {
  for (const r of rows) {
    await sql`
      insert into webhooks.endpoint_health (subscription_id, circuit, consecutive_failures, failing_since, last_success_at,
                                            last_failure_at, opened_at, next_probe_at, probe_interval_ms, probe_delivery_id, updated_at)
      values (${r.subscription_id}, ${r.circuit}, ${r.consecutive_failures}, ${r.failing_since}, ${r.last_success_at},
              ${r.last_failure_at}, ${r.opened_at}, ${r.next_probe_at}, ${r.probe_interval_ms}, ${r.probe_delivery_id}, now())
      on conflict (subscription_id) do update set
        circuit = excluded.circuit, consecutive_failures = excluded.consecutive_failures,
        failing_since = excluded.failing_since, last_success_at = excluded.last_success_at,
        last_failure_at = excluded.last_failure_at, opened_at = excluded.opened_at,
        next_probe_at = excluded.next_probe_at, probe_interval_ms = excluded.probe_interval_ms,
        probe_delivery_id = excluded.probe_delivery_id, updated_at = now()`;
  }
}

/** Parks deliveries: they wait, without a job, for the circuit to close. */
export async function park(sql: Queryable, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await sql`
    update webhooks.deliveries
       set parked_at = now(), lease_owner = null, next_attempt_at = null, updated_at = now()
     where id = any(${ids}::uuid[]) and status in ('pending', 'retrying')`;
}

/** Gives every parked delivery of these webhooks a job again, oldest first. */
export async function unparkAll(sql: Queryable, webhookIds: string[]): Promise<number> {
  if (webhookIds.length === 0) return 0;
  const rows = await sql<(QueuedDelivery & { created_at: Date; outbox_id: string })[]>`
    update webhooks.deliveries
       set parked_at = null, next_attempt_at = null, updated_at = now()
     where subscription_id = any(${webhookIds}::uuid[]) and parked_at is not null
    returning id, subscription_id, created_at, outbox_id`;
  rows.sort((a, b) => a.created_at.getTime() - b.created_at.getTime() || Number(a.outbox_id) - Number(b.outbox_id));
  await enqueueDeliveries(sql, rows);
  return rows.length;
}

/**
 * Disables a webhook (if still active): records the reason, fails the deliveries waiting on
 * its circuit (they stay replayable), and emits `webhook.disabled` through the normal
 * pipeline so another webhook can alert a person. Returns false when it was already disabled.
 */
export async function disableWebhook(sql: Queryable, webhookId: string, reason: string): Promise<boolean> {
  const [w] = await sql<{ id: string; tenant: string | null; name: string | null; url: string; disabled_at: Date }[]>`
    update webhooks.subscriptions
       set is_active = false, disabled_reason = ${reason}, disabled_at = now(), updated_at = now()
     where id = ${webhookId} and is_active and deleted_at is null
    returning id, tenant, name, url, disabled_at`;
  if (!w) return false;
  await failParked(sql, webhookId, `webhook disabled: ${reason}`);
  await sql`
    select webhooks.emit('webhook.disabled',
      jsonb_build_object('webhook_id', ${w.id}::text, 'name', ${w.name}::text, 'url', ${w.url}::text,
                         'reason', ${reason}::text, 'disabled_at', ${w.disabled_at.toISOString()}::text),
      ${w.tenant}::text)`;
  return true;
}

/** Fails the deliveries parked behind a webhook's circuit, so they can be replayed later. */
export async function failParked(sql: Queryable, webhookId: string, error: string): Promise<number> {
  const rows = await sql`
    update webhooks.deliveries
       set status = 'failed', parked_at = null, lease_owner = null, next_attempt_at = null,
           finished_at = now(), updated_at = now(), last_error = ${error}
     where subscription_id = ${webhookId} and parked_at is not null and status in ('pending', 'retrying')
    returning id`;
  return rows.length;
}

/**
 * Sends a probe for every open circuit whose probe is due: its oldest parked delivery gets a
 * job, and the circuit goes half-open. Also unparks deliveries left parked behind a circuit
 * that has closed meanwhile. Safe to run in every dispatcher at once (SKIP LOCKED).
 */
export async function releaseProbes(conn: Connection): Promise<{ probes: number; unparked: number }> {
  return conn.sql.begin((tx) => probeTick(tx));
}

async function probeTick(tx: Queryable): Promise<{ probes: number; unparked: number }> {
  const due = await tx<{ subscription_id: string; probe_interval_ms: number | null }[]>`
    select subscription_id, probe_interval_ms
      from webhooks.endpoint_health
     where circuit <> 'closed' and next_probe_at <= now()
     order by next_probe_at
     limit 100
       for update skip locked`;
  let probes = 0;
  for (const h of due) {
    const [probe] = await tx<QueuedDelivery[]>`
      update webhooks.deliveries
         set parked_at = null, next_attempt_at = null, updated_at = now()
       where id = (select id from webhooks.deliveries
                    where subscription_id = ${h.subscription_id} and parked_at is not null
                    order by created_at, outbox_id limit 1 for update skip locked)
      returning id, subscription_id`;
    if (!probe) continue; // nothing waiting: the next delivery to arrive becomes the probe
    await tx`
      update webhooks.endpoint_health
         set circuit = 'half_open', probe_delivery_id = ${probe.id},
             next_probe_at = now() + ${h.probe_interval_ms ?? DEFAULT_BREAKER.probeMinMs} * interval '1 millisecond',
             updated_at = now()
       where subscription_id = ${h.subscription_id}`;
    await enqueueDeliveries(tx, [probe]);
    probes++;
  }
  // A circuit can close (a success elsewhere, a user enabling the webhook) after a dispatcher
  // parked deliveries it had already claimed; those flow again here.
  const orphaned = await tx<{ subscription_id: string }[]>`
    select s.id as subscription_id
      from webhooks.subscriptions s
     where s.is_active and s.deleted_at is null
       and exists (select 1 from webhooks.deliveries d where d.subscription_id = s.id and d.parked_at is not null)
       and not exists (select 1 from webhooks.endpoint_health h where h.subscription_id = s.id and h.circuit <> 'closed')`;
  const unparked = await unparkAll(tx, orphaned.map((o) => o.subscription_id));
  return { probes, unparked };
}
