// Endpoint health in the database: reads and writes webhooks.endpoint_health (no row =
// healthy), parks deliveries behind an open circuit, lets probes through (half-open), and
// disables a webhook, failing what waits behind its circuit. The state changes only inside the
// transaction that records attempts, so every dispatcher sees the same circuit; when it opens,
// probes, closes and when a webhook is disabled is decided by model/circuit.ts.
import type { Connection, Queryable } from "../db/connection";
import { enqueueDeliveries, type QueuedDelivery } from "./jobs";
import { DEFAULT_BREAKER, probeIntervalMs, type HealthRow } from "../model/circuit";

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

/** An open circuit lets `probeId` through: half-open until it is recorded or the next probe is due. */
export async function halfOpen(sql: Queryable, webhookId: string, probeId: string, intervalMs: number): Promise<void> {
  await sql`
    update webhooks.endpoint_health
       set circuit = 'half_open', probe_delivery_id = ${probeId},
           next_probe_at = now() + ${intervalMs} * interval '1 millisecond',
           updated_at = now()
     where subscription_id = ${webhookId}`;
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
  await failParked(sql, webhookId, reason);
  await sql`
    select webhooks.emit('webhook.disabled',
      jsonb_build_object('webhook_id', ${w.id}::text, 'name', ${w.name}::text, 'url', ${w.url}::text,
                         'reason', ${reason}::text, 'disabled_at', ${w.disabled_at.toISOString()}::text),
      ${w.tenant}::text)`;
  return true;
}

/**
 * Fails the deliveries parked behind a disabled webhook's circuit (they have no job, and nothing
 * else would finish them); failed, they stay replayable. Runs in the transaction that disables
 * the webhook, whoever does (a user; the dispatcher on a 410 or after disable_after_s), with the
 * disabled_reason. Returns how many it failed.
 */
export async function failParked(sql: Queryable, webhookId: string, reason: string): Promise<number> {
  const rows = await sql`
    update webhooks.deliveries
       set status = 'failed', parked_at = null, lease_owner = null, next_attempt_at = null,
           finished_at = now(), updated_at = now(), last_error = 'webhook disabled: ' || ${reason}::text
     where subscription_id = ${webhookId} and parked_at is not null and status in ('pending', 'retrying')`;
  return rows.count;
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
    await halfOpen(tx, h.subscription_id, probe.id, probeIntervalMs(h, DEFAULT_BREAKER));
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
