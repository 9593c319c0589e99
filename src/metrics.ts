// Prometheus metrics: counters and a histogram fed by the dispatcher's observer, gauges read
// from the database at scrape time, and Node's process metrics, all in one registry per call.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Connection } from "./db/connection";
import type { DispatchObserver } from "./dispatch/context";
import type { InboundObserver } from "./api/inbound";
import type { Logger } from "./logger";
import type { CircuitState } from "./model/enums";

/** A scrape-time query that takes longer than this is dropped from the scrape. */
export const METRICS_QUERY_TIMEOUT_MS = 2000;

/** Attempt durations from a fast local receiver (5 ms) up to a slow one near its timeout. */
export const ATTEMPT_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** circuit_state values: closed rows are not exported, so 0 never appears in practice. */
const CIRCUIT_STATE = { closed: 0, half_open: 1, open: 2 } as const satisfies Record<CircuitState, number>;

export interface Metrics {
  registry: Registry;
  /** Give this to the DeliverContext; every call becomes a sample. */
  observer: DispatchObserver;
  /** Give this to the inbound routes: each request they answer becomes a sample. */
  inbound: InboundObserver;
  /** The Content-Type for render()'s output (Prometheus text format 0.0.4). */
  contentType: string;
  /** Runs the scrape-time queries and returns every series as text. */
  render(): Promise<string>;
}

export function createMetrics(conn: Connection, opts: { logger?: Logger } = {}): Metrics {
  const { sql } = conn;
  const registry = new Registry();
  const registers = [registry];

  // Labels are webhook ids only: URLs can carry credentials and payloads carry user data.
  const attempts = new Counter({
    name: "pgwebhooks_attempts_total",
    help: "HTTP attempts finished, by webhook id and outcome (success: a 2xx answer).",
    labelNames: ["webhook", "outcome"] as const,
    registers,
  });
  const deliveries = new Counter({
    name: "pgwebhooks_deliveries_total",
    help: "Delivery outcomes, by webhook id: succeeded, failed (retries exhausted) or retrying (another attempt scheduled).",
    labelNames: ["webhook", "status"] as const,
    registers,
  });
  const duration = new Histogram({
    name: "pgwebhooks_attempt_duration_seconds",
    help: "How long each HTTP attempt took, by webhook id.",
    labelNames: ["webhook"] as const,
    buckets: ATTEMPT_DURATION_BUCKETS,
    registers,
  });

  // Labels are source slugs (unknown slugs share "unknown"), never header or body values.
  const inboundRequests = new Counter({
    name: "pgwebhooks_inbound_requests_total",
    help: "Inbound requests answered, by source slug and result (stored, duplicate, challenge, unverified, not_found, too_large, rate_limited, unavailable, error).",
    labelNames: ["source", "result"] as const,
    registers,
  });

  /**
   * Runs one gauge's query; on failure or timeout logs a warning and returns null, so the
   * scrape still answers (with that gauge's samples left out) instead of failing whole.
   */
  async function query<T>(gauge: string, run: () => Promise<T>): Promise<T | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${METRICS_QUERY_TIMEOUT_MS} ms`)), METRICS_QUERY_TIMEOUT_MS);
    });
    try {
      return await Promise.race([run(), timeout]);
    } catch (e) {
      opts.logger?.warn({ gauge, err: e }, "metrics: database query failed; the scrape leaves this gauge out");
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  new Gauge({
    name: "pgwebhooks_outbox_lag_seconds",
    help: "Age of the oldest event not yet fanned out to deliveries (0 when there is none).",
    registers,
    async collect() {
      // The oldest by id, not min(occurred_at): the partial index finds it without scanning
      // the backlog, and id order is the order the dispatcher claims rows in.
      const rows = await query("outbox_lag_seconds", () => sql<{ lag: number }[]>`
        select greatest(0, extract(epoch from now() - occurred_at))::float8 as lag
          from webhooks.outbox where dispatched_at is null order by id limit 1`);
      this.reset();
      if (rows === null) this.remove();
      else this.set(rows[0]?.lag ?? 0);
    },
  });

  new Gauge({
    name: "pgwebhooks_deliveries_waiting",
    help: "Deliveries pending or retrying, by webhook id (webhooks with none are left out).",
    labelNames: ["webhook"] as const,
    registers,
    async collect() {
      const rows = await query("deliveries_waiting", () => sql<{ webhook: string; n: number }[]>`
        select subscription_id::text as webhook, count(*)::int as n
          from webhooks.deliveries where status in ('pending', 'retrying')
         group by subscription_id`);
      this.reset();
      for (const r of rows ?? []) this.set({ webhook: r.webhook }, r.n);
    },
  });

  new Gauge({
    name: "pgwebhooks_circuits_open",
    help: "Webhooks whose circuit breaker is open or half-open.",
    registers,
    async collect() {
      const rows = await query("circuits_open", () => sql<{ n: number }[]>`
        select count(*)::int as n from webhooks.endpoint_health where circuit <> 'closed'`);
      this.reset();
      if (rows === null) this.remove();
      else this.set(rows[0]?.n ?? 0);
    },
  });

  new Gauge({
    name: "pgwebhooks_circuit_state",
    help: "Circuit breaker state by webhook id: 1 half-open, 2 open (closed circuits are left out; 0 would mean closed).",
    labelNames: ["webhook"] as const,
    registers,
    async collect() {
      const rows = await query("circuit_state", () => sql<{ webhook: string; circuit: CircuitState }[]>`
        select subscription_id::text as webhook, circuit
          from webhooks.endpoint_health where circuit <> 'closed'`);
      this.reset();
      for (const r of rows ?? []) this.set({ webhook: r.webhook }, CIRCUIT_STATE[r.circuit]);
    },
  });

  new Gauge({
    name: "pgwebhooks_inbound_pending_lag_seconds",
    help: "Age of the oldest inbound event still pending, by source slug (sources with none are left out).",
    labelNames: ["source"] as const,
    registers,
    async collect() {
      // One index probe per source with pending events (inbound_events_pending is (source_id, id)).
      const rows = await query("inbound_pending_lag_seconds", () => sql<{ source: string; lag: number }[]>`
        select s.slug as source, greatest(0, extract(epoch from now() - e.received_at))::float8 as lag
          from webhooks.inbound_sources s
          cross join lateral (select received_at from webhooks.inbound_events e
                               where e.source_id = s.id and e.status = 'pending' order by e.id limit 1) e`);
      this.reset();
      for (const r of rows ?? []) this.set({ source: r.source }, r.lag);
    },
  });

  // Node's own series (process_cpu_*, process_resident_memory_bytes, nodejs_eventloop_lag_*…)
  // keep their standard names so the usual Node.js dashboards work unchanged.
  collectDefaultMetrics({ register: registry });

  const observer: DispatchObserver = {
    attempt(webhookId, outcome, durationMs) {
      attempts.inc({ webhook: webhookId, outcome });
      // A refused attempt may report no duration worth keeping; never throw into the dispatcher.
      if (Number.isFinite(durationMs) && durationMs >= 0) duration.observe({ webhook: webhookId }, durationMs / 1000);
    },
    delivery(webhookId, status) {
      deliveries.inc({ webhook: webhookId, status });
    },
  };

  const inbound: InboundObserver = {
    request(source, result) {
      inboundRequests.inc({ source, result });
    },
  };

  return {
    registry,
    observer,
    inbound,
    contentType: registry.contentType,
    render: () => registry.metrics(),
  };
}
