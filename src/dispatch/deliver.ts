// Deliver: claims a batch of due deliveries, sends each signed request, and records every
// attempt; then marks each delivery succeeded, schedules its next attempt, or fails it.
import type { Queryable } from "../db/connection";
import type { DeliverContext } from "./context";
import type { RetryPolicy } from "./retry-policy";
import { nextDelay, retryPolicySchema, DEFAULT_RETRY_POLICY } from "./retry-policy";
import { enqueueDeliveries, type QueuedDelivery } from "./enqueue";
import { renderBody } from "../delivery/render";
import { buildRequest, type TargetSpec } from "../delivery/request";
import type { AttemptOutcome } from "../delivery/client";

/** Requests of one batch in flight at once (a batch belongs to one webhook). */
export const BATCH_CONCURRENCY = 10;
/** How long a claimed delivery stays claimed beyond the time its batch may take to send. */
const LEASE_GRACE_MS = 5_000;

interface ClaimedDelivery extends TargetSpec {
  id: string;
  subscription_id: string;
  attempts: number;
  retry: unknown;
  is_active: boolean;
  event_id: string;
  type: string;
  occurred_at: Date;
  data: unknown;
  previous_attributes: unknown;
  tenant: string | null;
}

interface Recorded {
  d: ClaimedDelivery;
  requestHeaders: Record<string, string>;
  requestBody: string;
  url: string;
  method: string;
  outcome: AttemptOutcome;
}

export interface AttemptOptions {
  /** false: a failed attempt ends the delivery (test sends). Default true. */
  retry?: boolean;
  /** Send even when the webhook is inactive (test sends). */
  force?: boolean;
}

async function claim(sql: Queryable, ids: string[]): Promise<{ claimed: ClaimedDelivery[]; later: (QueuedDelivery & { at: Date })[] }> {
  // A lease (next_attempt_at pushed past the timeout) keeps a second job from sending
  // the same delivery while this one is in flight.
  const claimed = await sql<ClaimedDelivery[]>`
    with due as (
      select d.id
        from webhooks.deliveries d
       where d.id = any(${ids}::uuid[])
         and d.status in ('pending', 'retrying')
         and (d.next_attempt_at is null or d.next_attempt_at <= now() + interval '1 second')
         for update skip locked
    ), leased as (
      update webhooks.deliveries d
         set next_attempt_at = now() + (s.timeout_ms * ${Math.ceil(ids.length / BATCH_CONCURRENCY)} + ${LEASE_GRACE_MS}) * interval '1 millisecond'
        from due, webhooks.subscriptions s
       where d.id = due.id and s.id = d.subscription_id
      returning d.id, d.subscription_id, d.attempts, d.outbox_id
    )
    select l.id, l.subscription_id, l.attempts,
           s.url, s.method, s.auth, s.headers, s.signature_scheme, s.signature_header,
           s.secret, s.previous_secret, s.previous_secret_expires_at, s.timeout_ms, s.retry, s.is_active,
           o.event_id, o.type, o.occurred_at, o.data, o.previous_attributes, o.tenant
      from leased l
      join webhooks.subscriptions s on s.id = l.subscription_id
      join webhooks.outbox o on o.id = l.outbox_id`;
  // Anything still owed but not due (or leased by a sender that may have died) gets a job
  // for when it falls due, so no delivery is left without one.
  const claimedIds = new Set(claimed.map((c) => c.id));
  const rest = ids.filter((id) => !claimedIds.has(id));
  const later =
    rest.length === 0
      ? []
      : (
          await sql<{ id: string; subscription_id: string; at: Date }[]>`
            select id, subscription_id, coalesce(next_attempt_at, now()) as at
              from webhooks.deliveries
             where id = any(${rest}::uuid[]) and status in ('pending', 'retrying')`
        );
  return { claimed, later };
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  });
  await Promise.all(workers);
  return out;
}

/** Parses each webhook's stored policy once per batch; an unreadable one is logged, not hidden. */
function policyReader(logger: DeliverContext["logger"]): (d: ClaimedDelivery) => RetryPolicy {
  const cache = new Map<string, RetryPolicy>();
  return (d) => {
    let policy = cache.get(d.subscription_id);
    if (policy === undefined) {
      const parsed = retryPolicySchema.safeParse(d.retry);
      if (!parsed.success) {
        logger.warn({ webhook: d.subscription_id, issues: parsed.error.issues }, "stored retry policy is invalid; using the default");
      }
      policy = parsed.success ? parsed.data : DEFAULT_RETRY_POLICY;
      cache.set(d.subscription_id, policy);
    }
    return policy;
  };
}

async function send(ctx: DeliverContext, d: ClaimedDelivery, bodies: Map<string, string>): Promise<Recorded> {
  let body = bodies.get(d.event_id);
  if (body === undefined) {
    body = renderBody(d);
    bodies.set(d.event_id, body);
  }
  const { request, loggedHeaders } = buildRequest(d, { event_id: d.event_id, type: d.type, body }, d.id, new Date());
  const outcome = await ctx.sender.send(request);
  return { d, requestHeaders: loggedHeaders, requestBody: body, url: request.url, method: request.method, outcome };
}

function inactiveOutcome(): AttemptOutcome {
  return {
    ok: false,
    status: null,
    headers: null,
    body: null,
    durationMs: 0,
    error: "webhook is disabled; replay the delivery after enabling it",
    retryAfterMs: null,
    startedAt: new Date(),
  };
}

async function record(
  sql: Queryable,
  results: Recorded[],
  opts: AttemptOptions,
  policyOf: (d: ClaimedDelivery) => RetryPolicy,
): Promise<void> {
  if (results.length === 0) return;
  const now = Date.now();
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
    reqBody: [] as string[],
    resHeaders: [] as (string | null)[],
    resBody: [] as (string | null)[],
  };
  const retries = new Map<number, QueuedDelivery[]>();
  for (const r of results) {
    const attempt = r.d.attempts + 1;
    let status: string;
    let next: Date | null = null;
    if (r.outcome.ok) status = "succeeded";
    else if (opts.retry === false || !r.d.is_active) status = "failed";
    else {
      const delay = nextDelay(policyOf(r.d), attempt, r.outcome.retryAfterMs);
      if (delay === null) status = "failed";
      else {
        status = "retrying";
        next = new Date(now + delay);
        // Group retries by the second they fall due: one job per group.
        const key = Math.ceil(next.getTime() / 1000) * 1000;
        const group = retries.get(key) ?? [];
        group.push({ id: r.d.id, subscription_id: r.d.subscription_id });
        retries.set(key, group);
      }
    }
    cols.id.push(r.d.id);
    cols.attempt.push(attempt);
    cols.status.push(status);
    cols.next.push(next?.toISOString() ?? null);
    cols.code.push(r.outcome.status);
    cols.duration.push(Math.round(r.outcome.durationMs));
    cols.error.push(r.outcome.error);
    cols.started.push(r.outcome.startedAt.toISOString());
    cols.url.push(r.url);
    cols.method.push(r.method);
    cols.reqHeaders.push(JSON.stringify(r.requestHeaders));
    cols.reqBody.push(r.requestBody);
    cols.resHeaders.push(r.outcome.headers === null ? null : JSON.stringify(r.outcome.headers));
    cols.resBody.push(r.outcome.body);
  }
  await sql`
    insert into webhooks.attempts (delivery_id, attempt_number, started_at, url, method, request_headers,
                                   request_body, response_status, response_headers, response_body, duration_ms, error)
    select id, attempt, started, url, method, req_headers::jsonb, req_body, code, res_headers::jsonb, res_body, duration, error
      from unnest(${cols.id}::uuid[], ${cols.attempt}::int[], ${cols.started}::timestamptz[], ${cols.url}::text[],
                  ${cols.method}::text[], ${cols.reqHeaders}::text[], ${cols.reqBody}::text[], ${cols.code}::int[],
                  ${cols.resHeaders}::text[], ${cols.resBody}::text[], ${cols.duration}::int[], ${cols.error}::text[])
           as u(id, attempt, started, url, method, req_headers, req_body, code, res_headers, res_body, duration, error)`;
  await sql`
    update webhooks.deliveries d
       set status = u.status,
           attempts = u.attempt,
           next_attempt_at = u.next,
           last_status_code = u.code,
           last_duration_ms = u.duration,
           last_error = u.error,
           updated_at = now(),
           finished_at = case when u.status in ('succeeded', 'failed') then now() end
      from unnest(${cols.id}::uuid[], ${cols.attempt}::int[], ${cols.status}::text[], ${cols.next}::timestamptz[],
                  ${cols.code}::int[], ${cols.duration}::int[], ${cols.error}::text[])
           as u(id, attempt, status, next, code, duration, error)
     where d.id = u.id`;
  for (const [at, group] of retries) await enqueueDeliveries(sql, group, new Date(at));
}

/** Sends these deliveries now (those still owed and due) and records the outcomes. */
export async function attemptDeliveries(ctx: DeliverContext, ids: string[], opts: AttemptOptions = {}): Promise<void> {
  if (ids.length === 0) return;
  const { claimed, later } = await ctx.conn.sql.begin(async (tx) => {
    const c = await claim(tx, ids);
    for (const l of c.later) await enqueueDeliveries(tx, [l], l.at);
    return c;
  });
  if (later.length > 0) ctx.logger.debug({ count: later.length }, "deliveries not yet due; rescheduled");
  if (claimed.length === 0) return;
  const bodies = new Map<string, string>();
  const results = await mapLimit(claimed, BATCH_CONCURRENCY, async (d) => {
    if (!d.is_active && !opts.force) {
      return { d, requestHeaders: {}, requestBody: "", url: d.url, method: d.method, outcome: inactiveOutcome() };
    }
    return send(ctx, d, bodies);
  });
  const policyOf = policyReader(ctx.logger);
  await ctx.conn.sql.begin((tx) => record(tx, results, opts, policyOf));
  for (const r of results) {
    ctx.logger.debug(
      { delivery: r.d.id, event: r.d.event_id, status: r.outcome.status, ms: r.outcome.durationMs, error: r.outcome.error },
      "attempt",
    );
  }
}
