// Record: stores the results of sends in bulk. One transaction per batch writes every attempt,
// settles each delivery (succeeded, retrying with its next job, failed), moves each webhook's
// circuit (model/circuit.ts decides), disables webhooks that answered 410 or failed too long,
// and parks or hands back what the lanes give up. The recorder batches results from all lanes
// and keeps trying through a database outage; test sends record through the same path.
import { setTimeout as sleep } from "node:timers/promises";
import type { Queryable } from "../db/connection";
import { nextDelay, retryPolicySchema, DEFAULT_RETRY_POLICY, type RetryPolicy } from "../model/retry-policy";
import {
  DEFAULT_BREAKER,
  breakerFor,
  disableReason,
  healthyRow,
  nextHealth,
  type BreakerSettings,
  type HealthRow,
} from "../model/circuit";
import type { DeliverContext, SettledStatus } from "./context";
import { enqueueDeliveries, type QueuedDelivery } from "./jobs";
import { releaseLeases, type AttemptOptions } from "./claim";
import { disableWebhook, park, readHealth, unparkAll, writeHealth } from "./health";
import type { Recorded } from "./send";
import { StorableRow } from "./storable";
import { storeBatch, type Batch } from "./store-batch";

/**
 * Parses stored retry policies, each distinct one once (keyed by its JSON text, so a changed
 * policy is parsed again); an unreadable one is logged once, not hidden.
 */
export function policyReader(logger: DeliverContext["logger"]): (retryText: string) => RetryPolicy {
  const cache = new Map<string, RetryPolicy>();
  return (text) => {
    let policy = cache.get(text);
    if (policy === undefined) {
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        raw = undefined;
      }
      const parsed = retryPolicySchema.safeParse(raw);
      if (!parsed.success) {
        logger.warn({ retry: text.slice(0, 200), issues: parsed.error.issues }, "stored retry policy is invalid; using the default");
      }
      policy = parsed.success ? parsed.data : DEFAULT_RETRY_POLICY;
      if (cache.size >= 1000) cache.clear();
      cache.set(text, policy);
    }
    return policy;
  };
}

/** The webhook settings a result is settled by, read in the recording transaction. */
interface LiveSettings {
  id: string;
  retry: string;
  is_active: boolean;
  disable_after_s: number | null;
  breaker_threshold: number | null;
}

export interface RecordSummary {
  statuses: { webhookId: string; status: SettledStatus }[];
  disabled: string[];
  opened: string[];
  closed: string[];
}

/**
 * Records attempts in bulk, settles each delivery, moves each webhook's circuit, disables
 * webhooks that answered 410 or failed for too long, and queues retries. Runs in `tx`.
 */
export async function record(
  tx: Queryable,
  results: Recorded[],
  opts: AttemptOptions,
  policyOf: (retryText: string) => RetryPolicy,
  settings: BreakerSettings = DEFAULT_BREAKER,
): Promise<RecordSummary> {
  const summary: RecordSummary = { statuses: [], disabled: [], opened: [], closed: [] };
  if (results.length === 0) return summary;
  const now = new Date();
  // A delivery can vanish while in flight (its webhook pruned); its attempt has no row to
  // belong to. Locking the rest keeps a concurrent replay from reading a half-settled row.
  // The webhook's settings are read here, not taken from the copy the send used: a retry
  // policy, threshold or disable changed meanwhile applies to this result.
  const live = new Map(
    (
      await tx<LiveSettings[]>`
        select d.id, s.retry::text as retry, s.is_active, s.disable_after_s, s.breaker_threshold
          from webhooks.deliveries d join webhooks.subscriptions s on s.id = d.subscription_id
         where d.id = any(${results.map((r) => r.d.id)}::uuid[]) order by d.id for update of d`
    ).map((r) => [r.id, r]),
  );
  if (live.size < results.length) results = results.filter((r) => live.has(r.d.id));
  if (results.length === 0) return summary;
  const settingsOfResult = (r: Recorded): LiveSettings => live.get(r.d.id) as LiveSettings;

  // Health first: a webhook disabled by this batch retries nothing.
  const byWebhook = new Map<string, Recorded[]>();
  for (const r of results) {
    // An unsent attempt never reached the endpoint: it moves no circuit.
    if (r.unsent) continue;
    const list = byWebhook.get(r.d.subscription_id) ?? [];
    list.push(r);
    byWebhook.set(r.d.subscription_id, list);
  }
  const webhookIds = [...byWebhook.keys()].sort();
  const health = await readHealth(tx, webhookIds, true);
  const disabling = new Map<string, string>();
  const changed: HealthRow[] = [];
  const closedAgain: string[] = [];
  for (const w of webhookIds) {
    const list = byWebhook.get(w) ?? [];
    const first = list[0];
    const current = first ? settingsOfResult(first) : undefined;
    const prev = health.get(w) ?? healthyRow(w);
    const { row, closedAgain: closed } = nextHealth(
      prev,
      list.map((r) => ({ ok: r.outcome.ok, startedAt: r.outcome.startedAt })),
      breakerFor(settings, current?.breaker_threshold),
      now,
    );
    changed.push(row);
    if (closed) closedAgain.push(w);
    if (prev.circuit === "closed" && row.circuit === "open") summary.opened.push(w);
    const reason = disableReason(list.map((r) => r.outcome), row, current, settings, now);
    if (reason !== null) disabling.set(w, reason);
  }
  await writeHealth(tx, changed);

  const cols = {
    id: [] as string[],
    attempt: [] as number[],
    status: [] as string[],
    next: [] as (string | null)[],
    code: [] as (number | null)[],
    duration: [] as number[],
    error: [] as (string | null)[],
    started: [] as string[],
    url: [] as string[],
    method: [] as string[],
    reqHeaders: [] as string[],
    reqBody: [] as (string | null)[],
    body: [] as (string | null)[],
    resHeaders: [] as (string | null)[],
    resBody: [] as (string | null)[],
    address: [] as (string | null)[],
    note: [] as (string | null)[],
  };
  const retries = new Map<number, QueuedDelivery[]>();
  for (const r of results) {
    const attempt = r.d.attempts + 1;
    let status: SettledStatus;
    let next: Date | null = null;
    if (r.outcome.ok) status = "succeeded";
    else if ((r.unsent && !r.transient) || opts.retry === false || !settingsOfResult(r).is_active || disabling.has(r.d.subscription_id)) {
      status = "failed";
    } else {
      const delay = nextDelay(policyOf(settingsOfResult(r).retry), attempt, r.outcome.retryAfterMs);
      if (delay === null) status = "failed";
      else {
        status = "retrying";
        next = new Date(now.getTime() + delay);
        // Group retries by the second they fall due: one job per group.
        const key = Math.ceil(next.getTime() / 1000) * 1000;
        const group = retries.get(key) ?? [];
        group.push({ id: r.d.id, subscription_id: r.d.subscription_id });
        retries.set(key, group);
      }
    }
    summary.statuses.push({ webhookId: r.d.subscription_id, status });
    // Whatever the receiver sent, every text is made storable here, with a note of what changed.
    const row = new StorableRow(r.outcome.notes);
    cols.id.push(r.d.id);
    cols.attempt.push(attempt);
    cols.status.push(status);
    cols.next.push(next?.toISOString() ?? null);
    cols.code.push(r.outcome.status);
    cols.duration.push(Math.round(r.outcome.durationMs));
    cols.error.push(row.text("error", r.outcome.error));
    cols.started.push(r.outcome.startedAt.toISOString());
    cols.url.push(row.text("url", r.url));
    cols.method.push(r.method);
    cols.reqHeaders.push(row.headers("request headers", r.requestHeaders) ?? "{}");
    // The body is stored once, on the delivery, by its first attempt; an attempt keeps one
    // of its own only when it sent something else (nothing does today).
    const sentStored = r.renderedBody !== null || (r.d.body !== null && r.requestBody === r.d.body) || (r.unsent && r.requestBody === "");
    cols.reqBody.push(sentStored ? null : row.text("request body", r.requestBody));
    cols.body.push(row.text("body", r.renderedBody));
    cols.resHeaders.push(row.headers("response headers", r.outcome.headers));
    cols.resBody.push(row.text("response body", r.outcome.body));
    cols.address.push(row.address(r.outcome.remoteAddress));
    cols.note.push(row.note());
  }
  // postgres.js tagged SQL with unnest, not Kysely: one statement per batch on the hot path (measured).
  await tx`
    insert into webhooks.attempts (delivery_id, attempt_number, started_at, url, method, request_headers, request_body,
                                   response_status, response_headers, response_body, duration_ms, error, remote_address, note)
    select id, attempt, started, url, method, req_headers::jsonb, req_body, code, res_headers::jsonb, res_body, duration, error,
           address, note
      from unnest(${cols.id}::uuid[], ${cols.attempt}::int[], ${cols.started}::timestamptz[], ${cols.url}::text[],
                  ${cols.method}::text[], ${cols.reqHeaders}::text[], ${cols.reqBody}::text[], ${cols.code}::int[],
                  ${cols.resHeaders}::text[], ${cols.resBody}::text[], ${cols.duration}::int[], ${cols.error}::text[],
                  ${cols.address}::inet[], ${cols.note}::text[])
           as u(id, attempt, started, url, method, req_headers, req_body, code, res_headers, res_body, duration, error,
                address, note)`;
  await tx`
    update webhooks.deliveries d
       set status = u.status,
           attempts = u.attempt,
           next_attempt_at = u.next,
           lease_owner = null,
           last_status_code = u.code,
           last_duration_ms = u.duration,
           last_error = u.error,
           body = coalesce(d.body, u.body),
           updated_at = now(),
           finished_at = case when u.status in ('succeeded', 'failed') then now() end
      from unnest(${cols.id}::uuid[], ${cols.attempt}::int[], ${cols.status}::text[], ${cols.next}::timestamptz[],
                  ${cols.code}::int[], ${cols.duration}::int[], ${cols.error}::text[], ${cols.body}::text[])
           as u(id, attempt, status, next, code, duration, error, body)
     where d.id = u.id`;
  for (const [at, group] of retries) await enqueueDeliveries(tx, group, new Date(at));
  for (const [w, reason] of disabling) {
    if (await disableWebhook(tx, w, reason)) summary.disabled.push(w);
  }
  const reopen = closedAgain.filter((w) => !disabling.has(w));
  await unparkAll(tx, reopen);
  summary.closed = reopen;
  return summary;
}

/** Logs and counts what a recorded batch did. */
export function report(ctx: DeliverContext, results: Recorded[], summary: RecordSummary): void {
  for (const r of results) {
    ctx.observer?.attempt(r.d.subscription_id, r.outcome.ok ? "success" : "failure", r.outcome.durationMs);
    ctx.logger.debug(
      { delivery: r.d.id, event: r.d.event_id, status: r.outcome.status, ms: r.outcome.durationMs, error: r.outcome.error },
      "attempt",
    );
  }
  for (const s of summary.statuses) ctx.observer?.delivery(s.webhookId, s.status);
  for (const w of summary.opened) ctx.logger.warn({ webhook: w }, "circuit opened: deliveries to this webhook wait for a probe to succeed");
  for (const w of summary.closed) ctx.logger.info({ webhook: w }, "circuit closed: waiting deliveries flow again");
  for (const w of summary.disabled) ctx.logger.warn({ webhook: w }, "webhook disabled");
}

/** How a batch is written: by whom (the lease owner; null for a test send) and with which policy. */
export interface RecordOptions {
  owner: string | null;
  attempt: AttemptOptions;
  policyOf: (retryText: string) => RetryPolicy;
  breaker: BreakerSettings;
}

/** Writes one batch in one transaction: the results, then what is parked and handed back. */
function writeBatch(ctx: DeliverContext, b: Batch, o: RecordOptions): Promise<RecordSummary> {
  return ctx.conn.sql.begin(async (tx) => {
    const s = await record(tx, b.results, o.attempt, o.policyOf, o.breaker);
    await park(tx, b.park);
    await releaseLeases(tx, b.release, o.owner);
    return s;
  });
}

/**
 * Stores a batch, split around whatever cannot be stored (store-batch.ts), and reports what
 * each part did. `transient` decides about a failure that may pass (see BatchWriter).
 */
export function storeResults(
  ctx: DeliverContext,
  batch: Batch,
  o: RecordOptions,
  transient: (e: unknown, b: Batch, tries: number) => Promise<boolean>,
): Promise<void> {
  return storeBatch(
    { write: (b) => writeBatch(ctx, b, o), written: (b, summary) => report(ctx, b.results, summary), transient, logger: ctx.logger },
    batch,
  );
}

/** Results recorded per transaction at most, and the longest a result waits to be recorded. */
const FLUSH_MAX = 500;
const FLUSH_DELAY_MS = 15;

/** The dispatcher's one recorder: every lane's results, parks and hand-backs, written in bulk. */
export interface Recorder {
  /** A result to record (within FLUSH_DELAY_MS, or at once when FLUSH_MAX are waiting). */
  add(r: Recorded): void;
  /** Deliveries to park behind an open circuit, with the next flush. */
  park(ids: string[]): void;
  /** Deliveries to hand back to the job queue, with the next flush. */
  release(deliveries: QueuedDelivery[]): void;
  /** Writes everything waiting; resolves when it is written (or given up). */
  flush(): Promise<void>;
  /** Stopping: a write still failing after `giveUpAt` (a Date.now() value) is given up. */
  stopBy(giveUpAt: number): void;
}

export function createRecorder(ctx: DeliverContext, owner: string, breaker: BreakerSettings): Recorder {
  const o: RecordOptions = { owner, attempt: {}, policyOf: policyReader(ctx.logger), breaker };
  let pending: Recorded[] = [];
  let toPark: string[] = [];
  let toRelease: QueuedDelivery[] = [];
  let flushing: Promise<void> | null = null;
  let flushTimer: NodeJS.Timeout | null = null;
  let giveUpAt: number | null = null;

  const flushOnce = async (): Promise<void> => {
    const batch: Batch = { results: pending, park: toPark, release: toRelease };
    pending = [];
    toPark = [];
    toRelease = [];
    await storeResults(ctx, batch, o, async (e, b, tries) => {
      // The database is away (restart, failover): keep the results and try again. Sent
      // requests are never forgotten while this process lives.
      if (giveUpAt !== null && Date.now() > giveUpAt) {
        ctx.logger.error({ err: e, results: b.results.length }, "could not record attempts before stopping; those deliveries will be sent again");
        return false;
      }
      const delay = Math.min(100 * 2 ** Math.min(tries - 1, 6), 5000);
      ctx.logger.warn({ err: e, results: b.results.length, retryInMs: delay }, "could not record attempts; retrying");
      await sleep(delay);
      return true;
    });
  };

  const flush = (): Promise<void> => {
    if (flushTimer) {
      clearTimeout(flushTimer);
      flushTimer = null;
    }
    if (flushing) return flushing;
    // Assigned before the loop starts (await first): a loop that finished synchronously
    // would otherwise clear `flushing` before it was set, and no flush would run again.
    let run: Promise<void> | undefined = undefined;
    run = (async () => {
      await null;
      try {
        while (pending.length > 0 || toPark.length > 0 || toRelease.length > 0) await flushOnce();
      } finally {
        if (flushing === run) flushing = null;
      }
    })();
    flushing = run;
    return run;
  };

  return {
    add(r) {
      pending.push(r);
      if (pending.length >= FLUSH_MAX) void flush();
      else flushTimer ??= setTimeout(() => void flush(), FLUSH_DELAY_MS);
    },
    park(ids) {
      toPark.push(...ids);
    },
    release(deliveries) {
      toRelease.push(...deliveries);
    },
    flush,
    stopBy(at) {
      giveUpAt = at;
    },
  };
}
