// The circuit policy: when a webhook's circuit opens, when it probes, when it closes, and when
// the webhook is disabled. Pure: dispatch/health.ts reads and writes the rows these compute.
//
//   closed ──(threshold consecutive failures)──► open ──(probe due)──► half_open
//     ▲                                            ▲                      │
//     └──────────────(any success)─────────────────┴──(probe fails)───────┘
import type { Selectable } from "kysely";
import { DEFAULTS, type Config } from "../config";
// A type only: the row shape is declared once, with the table.
import type { EndpointHealthTable } from "../db/schema";

export interface BreakerSettings {
  /** Consecutive failed attempts that open a circuit; 0: it never opens. */
  threshold: number;
  /** First interval between probes; doubles up to probeMaxMs. */
  probeMinMs: number;
  probeMaxMs: number;
  /** Default for webhooks without disable_after_s. */
  disableAfterS: number;
}

export function breakerFromConfig(config: Config): BreakerSettings {
  return {
    threshold: config.WEBHOOKS_BREAKER_THRESHOLD,
    probeMinMs: config.WEBHOOKS_BREAKER_PROBE_MIN_MS,
    probeMaxMs: config.WEBHOOKS_BREAKER_PROBE_MAX_MS,
    disableAfterS: config.WEBHOOKS_DISABLE_AFTER_S,
  };
}

/** The breaker with the config schema's defaults (for callers given no settings). */
export const DEFAULT_BREAKER: BreakerSettings = breakerFromConfig(DEFAULTS);

/** A webhook's endpoint_health row as the policy sees it (no row: healthyRow). */
export type HealthRow = Omit<Selectable<EndpointHealthTable>, "updated_at">;

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

/** The breaker settings for one webhook: its own threshold when it has one (0: never opens). */
export function breakerFor(settings: BreakerSettings, threshold: number | null | undefined): BreakerSettings {
  return threshold === null || threshold === undefined ? settings : { ...settings, threshold };
}

/** True when this run of failures opens a circuit with this threshold (0: never). */
export function tripped(consecutiveFailures: number, threshold: number): boolean {
  return threshold > 0 && consecutiveFailures >= threshold;
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
    const interval = probeIntervalMs(prev, settings);
    row.circuit = "open";
    row.next_probe_at = new Date(now.getTime() + interval);
    row.probe_interval_ms = Math.min(settings.probeMaxMs, interval * 2);
    row.probe_delivery_id = null;
  } else if (tripped(row.consecutive_failures, settings.threshold)) {
    openCircuit(row, settings, now);
  }
  return { row, closedAgain: false };
}

function openCircuit(row: HealthRow, settings: BreakerSettings, now: Date): void {
  row.circuit = "open";
  row.opened_at = now;
  row.next_probe_at = new Date(now.getTime() + settings.probeMinMs);
  row.probe_interval_ms = Math.min(settings.probeMaxMs, settings.probeMinMs * 2);
  row.probe_delivery_id = null;
}

/** How long after a probe the next one is due: the row's interval, or the first one. */
export function probeIntervalMs(row: Pick<HealthRow, "probe_interval_ms">, settings: Pick<BreakerSettings, "probeMinMs">): number {
  return row.probe_interval_ms ?? settings.probeMinMs;
}

/** True when an open circuit may let one probe through now. */
export function probeDue(row: Pick<HealthRow, "circuit" | "next_probe_at">, now: number): boolean {
  return row.circuit === "open" && row.next_probe_at !== null && row.next_probe_at.getTime() <= now;
}

// ---- when a webhook is disabled -------------------------------------------------------------

/** Why a response disables its webhook at once, or null. */
export function disablingResponse(outcome: { status: number | null }): string | null {
  return outcome.status === 410 ? "the endpoint answered 410 Gone" : null;
}

/** True when every attempt has failed for longer than the webhook allows. */
export function failingTooLong(row: HealthRow, disableAfterS: number, now: Date): boolean {
  return row.failing_since !== null && row.consecutive_failures > 0 && now.getTime() - row.failing_since.getTime() >= disableAfterS * 1000;
}

/**
 * Why these attempts disable an active webhook, or null: a 410 among them, or every attempt
 * failing for longer than disable_after_s (the webhook's, else the settings') by `row`, the
 * health after them. A disabled webhook stays so until a person enables it.
 */
export function disableReason(
  outcomes: readonly { status: number | null }[],
  row: HealthRow,
  webhook: { is_active: boolean; disable_after_s: number | null } | undefined,
  settings: BreakerSettings,
  now: Date,
): string | null {
  for (const o of outcomes) {
    const gone = disablingResponse(o);
    if (gone !== null) return gone;
  }
  if (webhook && webhook.is_active && failingTooLong(row, webhook.disable_after_s ?? settings.disableAfterS, now)) {
    return `every attempt has failed since ${row.failing_since?.toISOString()}`;
  }
  return null;
}
