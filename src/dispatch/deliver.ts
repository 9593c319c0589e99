// Deliver: claims due deliveries, sends each signed request, and records every attempt; then
// marks each delivery succeeded, schedules its next attempt, or fails it, and moves the
// webhook's circuit breaker. The dispatcher runs these steps through its lanes (lanes.ts);
// test sends run them directly with attemptDeliveries().
import type { Queryable } from "../db/connection";
import type { DeliverContext } from "./context";
import type { RetryPolicy } from "../model/retry-policy";
import { nextDelay, retryPolicySchema, DEFAULT_RETRY_POLICY } from "../model/retry-policy";
import { enqueueDeliveries, type QueuedDelivery } from "./enqueue";
import { renderBody } from "../delivery/render";
import type { BigNumbers } from "../delivery/event-json";
import { buildRequest, type TargetSpec } from "../delivery/request";
import type { AttemptOutcome, OutgoingRequest } from "../delivery/client";
import { StorableRow } from "./storable";
import { storeBatch } from "./store-batch";
import { disableWebhook, halfOpen, park, readHealth, unparkAll, writeHealth } from "./health";
import {
  DEFAULT_BREAKER,
  breakerFor,
  disableReason,
  healthyRow,
  nextHealth,
  probeDue,
  probeIntervalMs,
  type BreakerSettings,
  type HealthRow,
} from "../model/circuit";

/** Requests in flight at once for a direct (test) send. */
const DIRECT_CONCURRENCY = 10;
/** How long a delivery claimed without an owner stays claimed beyond its timeout. */
export const LEASE_GRACE_MS = 5_000;

export interface ClaimedDelivery extends TargetSpec {
  id: string;
  subscription_id: string;
  attempts: number;
  retry: unknown;
  is_active: boolean;
  max_in_flight: number;
  rate_limit_per_s: number | null;
  disable_after_s: number | null;
  /** 0: never open the circuit; null: the dispatcher's threshold. */
  breaker_threshold: number | null;
  /** Counts updates of the webhook row: a higher one is a newer copy of its settings. */
  settings_version: number;
  event_id: string;
  type: string;
  occurred_at: Date;
  /** The event's jsonb as text (data::text), so that no number changes before rendering. */
  data: string;
  previous_attributes: string | null;
  big_numbers: BigNumbers;
  tenant: string | null;
  created_at: Date;
}

export interface Recorded {
  d: ClaimedDelivery;
  requestHeaders: Record<string, string>;
  requestBody: string;
  url: string;
  method: string;
  outcome: AttemptOutcome;
  /**
   * No request was made: the delivery could not be rendered or signed (outcome.error says
   * why). Such an attempt fails its delivery at once and says nothing about the endpoint.
   */
  unsent?: boolean;
}

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

/**
 * What a send needs from the webhook: claims, fanout and the lanes' settings refresh select
 * these columns, so a delivery always carries one consistent copy of its webhook's settings.
 */
export const SEND_COLUMNS = [
  "url", "method", "auth", "headers", "secret_headers", "signature_scheme", "signature_header", "secret", "previous_secret",
  "previous_secret_expires_at", "timeout_ms", "retry", "is_active", "max_in_flight", "rate_limit_per_s",
  "disable_after_s", "breaker_threshold", "big_numbers", "settings_version",
] as const;

/** A webhook's settings as a delivery carries them (the SEND_COLUMNS of its row). */
export type SendSettings = Pick<ClaimedDelivery, (typeof SEND_COLUMNS)[number]>;

/** SEND_COLUMNS of the subscriptions row `s`; settings_version read as a number (it counts updates). */
export const sendColumns = (sql: Queryable) =>
  sql.unsafe(SEND_COLUMNS.map((c) => (c === "settings_version" ? `s.${c}::float8 as ${c}` : `s.${c}`)).join(", "));

/** The settings part of a delivery, to copy onto deliveries that carry an older version. */
export function settingsOf(d: SendSettings): SendSettings {
  const out: Record<string, unknown> = {};
  for (const c of SEND_COLUMNS) out[c] = d[c];
  return out as unknown as SendSettings;
}

/** The event columns of a send (outbox as `o`): jsonb as text, parsed exactly by render.ts. */
export const eventColumns = (sql: Queryable) => sql`
  o.event_id, o.type, o.occurred_at, o.data::text as data, o.previous_attributes::text as previous_attributes, o.tenant`;

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
      returning d.id, d.subscription_id, d.attempts, d.outbox_id, d.created_at
    )
    select l.id, l.subscription_id, l.attempts, l.created_at, ${sendColumns(tx)}, ${eventColumns(tx)}
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
      if (probe) {
        await halfOpen(tx, w, probe.id, probeIntervalMs(h, settings));
      }
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

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** An attempt that ended with `error` and no response. */
function noResponse(startedAt: Date, error: string): AttemptOutcome {
  return { ok: false, status: null, headers: null, body: null, durationMs: 0, error, retryAfterMs: null, startedAt, remoteAddress: null, notes: [] };
}

/**
 * Renders (once per event), signs and sends one delivery. Never throws: a delivery that
 * cannot be rendered or signed (an event nested too deep for the renderer, say) comes back
 * as an unsent attempt carrying the error, so it is recorded and never holds its lane.
 */
export async function send(ctx: DeliverContext, d: ClaimedDelivery, bodies?: Map<string, string>): Promise<Recorded> {
  const startedAt = new Date();
  let body = "";
  let built: { request: OutgoingRequest; loggedHeaders: Record<string, string> };
  try {
    // Once per event and number format.
    const key = `${d.event_id} ${d.big_numbers}`;
    body = bodies?.get(key) ?? renderBody(d);
    bodies?.set(key, body);
    built = buildRequest(d, { event_id: d.event_id, type: d.type, body }, d.id, startedAt);
  } catch (e) {
    const error = `could not build the request, so none was sent: ${errorText(e)}`;
    ctx.logger.warn({ delivery: d.id, webhook: d.subscription_id, error }, "delivery cannot be sent; failing it");
    return { d, requestHeaders: {}, requestBody: body, url: d.url, method: d.method, outcome: noResponse(startedAt, error), unsent: true };
  }
  const { request, loggedHeaders } = built;
  let outcome: AttemptOutcome;
  try {
    outcome = await ctx.sender.send(request);
  } catch (e) {
    // The sender reports instead of throwing; should it throw, the attempt is still a row.
    outcome = noResponse(startedAt, errorText(e));
  }
  return { d, requestHeaders: loggedHeaders, requestBody: body, url: request.url, method: request.method, outcome };
}

export interface RecordSummary {
  statuses: { webhookId: string; status: "succeeded" | "failed" | "retrying" }[];
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
    reqBody: [] as string[],
    resHeaders: [] as (string | null)[],
    resBody: [] as (string | null)[],
    address: [] as (string | null)[],
    note: [] as (string | null)[],
  };
  const retries = new Map<number, QueuedDelivery[]>();
  for (const r of results) {
    const attempt = r.d.attempts + 1;
    let status: "succeeded" | "failed" | "retrying";
    let next: Date | null = null;
    if (r.outcome.ok) status = "succeeded";
    else if (r.unsent || opts.retry === false || !settingsOfResult(r).is_active || disabling.has(r.d.subscription_id)) {
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
    cols.reqBody.push(row.text("request body", r.requestBody));
    cols.resHeaders.push(row.headers("response headers", r.outcome.headers));
    cols.resBody.push(row.text("response body", r.outcome.body));
    cols.address.push(row.address(r.outcome.remoteAddress));
    cols.note.push(row.note());
  }
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
           updated_at = now(),
           finished_at = case when u.status in ('succeeded', 'failed') then now() end
      from unnest(${cols.id}::uuid[], ${cols.attempt}::int[], ${cols.status}::text[], ${cols.next}::timestamptz[],
                  ${cols.code}::int[], ${cols.duration}::int[], ${cols.error}::text[])
           as u(id, attempt, status, next, code, duration, error)
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

/** Sends these deliveries now (those still owed and due) and records the outcomes. */
export async function attemptDeliveries(ctx: DeliverContext, ids: string[], opts: AttemptOptions = {}): Promise<void> {
  if (ids.length === 0) return;
  const settings = ctx.breaker ?? DEFAULT_BREAKER;
  const c = await ctx.conn.sql.begin((tx) => claim(tx, ids, null, opts, settings));
  if (c.send.length === 0) return;
  const bodies = new Map<string, string>();
  const results = await mapLimit(c.send, DIRECT_CONCURRENCY, (d) => send(ctx, d, bodies));
  const policyOf = policyReader(ctx.logger);
  // Split around what cannot be stored, like the dispatcher's recorder; an outage is the caller's.
  await storeBatch(
    {
      write: (b) =>
        ctx.conn.sql.begin(async (tx) => {
          const s = await record(tx, b.results, opts, policyOf, settings);
          await enqueueDeliveries(tx, b.release);
          return s;
        }),
      written: (b, summary) => report(ctx, b.results, summary),
      transient: (e) => Promise.reject(e),
      logger: ctx.logger,
    },
    { results, park: [], release: [] },
  );
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
