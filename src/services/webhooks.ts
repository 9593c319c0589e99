// Webhooks (rows of webhooks.subscriptions): the input shapes the API and the CLI accept, the
// view they show (with the endpoint's health), and the tenant-scoped operations on them (CRUD,
// enabling and disabling, secrets, rotation).
import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import type { Connection, Queryable } from "../db/connection";
import type { Subscription } from "../db/schema";
import { DomainError, notFound } from "../errors";
import { maskHeaders } from "../delivery/mask";
import { generateSecret, signingSecrets } from "../delivery/sign";
import { assertUrlAllowed } from "../delivery/ssrf";
import { enqueueDeliveries, type QueuedDelivery } from "../dispatch/enqueue";
import { eventPatternSchema, filterSchema } from "../dispatch/filter";
import { MAX_RATE_LIMIT_PER_S, MIN_RATE_LIMIT_PER_S } from "../dispatch/rate-limit";
import { BIG_NUMBERS } from "../delivery/event-json";
import { DEFAULT_RETRY_POLICY, retryPolicySchema } from "../dispatch/retry-policy";
import { cursorTs, decodeCursor, isUuid, paginate } from "./cursor";
import type { Scope } from "./scope";
import { parseInput, singleLine, storable, storableJson, strictObject } from "../model/validation";

// ── Input ───────────────────────────────────────────────────────────────────────────────

export const METHODS = ["POST", "PUT", "PATCH"] as const;
export const SIGNATURE_SCHEMES = ["standard", "hex", "sha256"] as const;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Set by the HTTP client or by our signing; a static copy would break the request or the signature.
const RESERVED_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "webhook-id",
  "webhook-timestamp",
  "webhook-signature",
  "x-webhook-event",
  "x-webhook-delivery-id",
]);

function headerNameProblem(name: string): string | null {
  if (!HEADER_NAME.test(name) || name.length > 256) return `expected an HTTP header name such as X-Api-Key, got ${JSON.stringify(name)}`;
  if (RESERVED_HEADERS.has(name.toLowerCase())) return `${name} is set by pg-webhooks and cannot be overridden`;
  return null;
}

const headerName = z.string().superRefine((name, ctx) => {
  const problem = headerNameProblem(name);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

// What an HTTP header can carry (undici refuses the rest at send time, so every attempt would fail).
const HEADER_TEXT = /^[\t\x20-\x7e\x80-\xff]*$/;
const HEADER_TEXT_MESSAGE = "expected printable ASCII or Latin-1 characters (an HTTP header carries nothing else)";

const headerValue = z
  .string({ error: "expected a header value (a string)" })
  .max(8192, { error: "expected a header value of at most 8192 characters" })
  .check(singleLine({ tab: true }))
  .regex(HEADER_TEXT, { error: HEADER_TEXT_MESSAGE });

const headersSchema = z
  .record(z.string(), headerValue, { error: 'expected an object of header names to values, such as {"X-Source": "crm"}' })
  .superRefine((headers, ctx) => {
    const names = Object.keys(headers);
    if (names.length > 50) ctx.addIssue({ code: "custom", message: "expected at most 50 headers" });
    for (const name of names) {
      const problem = headerNameProblem(name);
      if (problem) ctx.addIssue({ code: "custom", path: [name], message: problem });
    }
  })
  .meta({ description: "Static headers sent with every request.", examples: [{ "X-Source": "crm" }] });

const secretHeadersSchema = z
  .array(headerName, { error: 'expected an array of header names, such as ["X-Auth"]' })
  .max(50, { error: "expected at most 50 header names" })
  .meta({
    description:
      "Names of static headers whose values are secrets: shown as **** in views, listings and attempt logs. " +
      "Names that look like credentials (auth, token, key, secret, password, signature, cookie, session, credential, …) are masked anyway.",
    examples: [["X-Tenant-Pass"]],
  });

export const authSchema = z
  .discriminatedUnion(
    "type",
    [
      strictObject({ type: z.literal("none") }),
      strictObject({ type: z.literal("bearer"), token: z.string().min(1).max(4096).check(singleLine()).regex(HEADER_TEXT, { error: HEADER_TEXT_MESSAGE }) }),
      strictObject({
        type: z.literal("basic"),
        username: z
          .string()
          .min(1)
          .max(512)
          .regex(/^[^:]*$/, { error: "expected a username without a colon" })
          .check(singleLine()),
        password: z.string().max(4096).check(singleLine()),
      }),
      strictObject({ type: z.literal("header"), name: headerName, value: headerValue.min(1) }),
    ],
    {
      error: (issue) =>
        issue.code === "invalid_union" ? 'expected auth type "none", "bearer", "basic" or "header"' : undefined,
    },
  )
  .meta({ description: "How requests authenticate to the receiver. Secrets are write-only: responses omit them." });

export type Auth = z.output<typeof authSchema>;

const urlSchema = z
  .string({ error: "expected an absolute http:// or https:// URL" })
  .max(2048, { error: "expected a URL of at most 2048 characters" })
  // URL parsing drops tabs and line breaks silently, but the raw text is what is stored and listed.
  .check(singleLine())
  .superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: "custom", message: `expected an absolute http:// or https:// URL, got ${JSON.stringify(value)}` });
      return;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      ctx.addIssue({ code: "custom", message: `expected an http:// or https:// URL, got ${url.protocol}` });
    } else if (url.username !== "" || url.password !== "") {
      ctx.addIssue({ code: "custom", message: 'credentials in the URL would show in listings; use auth {"type": "basic", …} instead' });
    }
  })
  .meta({ format: "uri", examples: ["https://hooks.example.com/crm"] });

const signatureSchema = strictObject({
  scheme: z
    .enum(SIGNATURE_SCHEMES, { error: 'expected scheme "standard", "hex" or "sha256"' })
    .default("standard")
    .meta({
      description:
        "standard: Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature: v1,<base64>); " +
        "hex: hex HMAC-SHA256 of the body in X-Webhook-Signature; sha256: sha256=<hex> in `header` (default X-Hub-Signature-256).",
    }),
  header: headerName.nullable().optional().meta({ description: "sha256 scheme only: the header carrying the signature." }),
}).superRefine((s, ctx) => {
  if (s.header !== undefined && s.header !== null && s.scheme !== "sha256") {
    ctx.addIssue({ code: "custom", path: ["header"], message: `only the sha256 scheme takes a header name; ${s.scheme} uses fixed headers` });
  }
});

const STANDARD_SECRET = /^whsec_((?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)$/;

/** A Standard Webhooks secret: `whsec_` + base64 of 16 to 64 bytes. */
export function isStandardSecret(secret: string): boolean {
  const m = STANDARD_SECRET.exec(secret);
  if (!m || m[1] === undefined) return false;
  const bytes = Buffer.from(m[1], "base64").length;
  return bytes >= 16 && bytes <= 64;
}

const STANDARD_SECRET_MESSAGE =
  "the standard scheme needs a secret of the form whsec_<base64 of 16 to 64 bytes>; leave it out to have one generated";

const secretSchema = z
  .string({ error: "expected a secret (a string)" })
  .min(8, { error: "expected a secret of at least 8 characters" })
  .max(512, { error: "expected a secret of at most 512 characters" })
  .check(storable)
  .meta({ description: "Signing secret; generated (whsec_…) when absent. Write-only." });

const tenantSchema = z
  .string({ error: "expected a tenant (a string)" })
  .min(1, { error: "expected a non-empty tenant" })
  .max(200, { error: "expected a tenant of at most 200 characters" })
  .check(storable);

export const DEFAULT_MAX_IN_FLIGHT = 10;
const MAX_IN_FLIGHT_MESSAGE = "expected a whole number of requests from 1 to 1000";
const RATE_LIMIT_MESSAGE = `expected requests per second from ${MIN_RATE_LIMIT_PER_S} (one every 1000 s) to ${MAX_RATE_LIMIT_PER_S}, or null for no limit`;
const BREAKER_THRESHOLD_MESSAGE =
  "expected a whole number of consecutive failures from 1 to 1000, 0 to never open the circuit, or null for the dispatcher default";
const DISABLE_AFTER_MESSAGE = "expected whole seconds from 1 to 31536000 (a year), or null for the dispatcher default";

const base = {
  name: z.string().max(200).check(singleLine()).nullable(),
  description: z.string().max(2000).check(storable).nullable(),
  url: urlSchema,
  method: z.enum(METHODS, { error: 'expected method "POST", "PUT" or "PATCH"' }),
  auth: authSchema,
  headers: headersSchema,
  secret_headers: secretHeadersSchema,
  events: z
    .array(eventPatternSchema, { error: 'expected an array of event types such as ["clients.created", "invoices.*"]' })
    .min(1, { error: "expected at least one event type or pattern (use * for every event)" })
    .max(100, { error: "expected at most 100 event types" })
    .meta({ description: "Exact types (clients.created), prefixes (clients.*) or * for everything." }),
  filter: filterSchema.check(storableJson).nullable(),
  signature: signatureSchema,
  secret: secretSchema,
  retry: retryPolicySchema,
  timeout_ms: z
    .number({ error: "expected milliseconds from 100 to 300000" })
    .int({ error: "expected milliseconds from 100 to 300000" })
    .min(100, { error: "expected milliseconds from 100 to 300000" })
    .max(300000, { error: "expected milliseconds from 100 to 300000" }),
  max_in_flight: z
    .number({ error: MAX_IN_FLIGHT_MESSAGE })
    .int({ error: MAX_IN_FLIGHT_MESSAGE })
    .min(1, { error: MAX_IN_FLIGHT_MESSAGE })
    .max(1000, { error: MAX_IN_FLIGHT_MESSAGE })
    .meta({ description: "Requests to this webhook in flight at once, per dispatcher (1-1000, default 10). More wait their turn." }),
  rate_limit_per_s: z
    .number({ error: RATE_LIMIT_MESSAGE })
    .min(MIN_RATE_LIMIT_PER_S, { error: RATE_LIMIT_MESSAGE })
    .max(MAX_RATE_LIMIT_PER_S, { error: RATE_LIMIT_MESSAGE })
    .nullable()
    .meta({
      description:
        "At most this many requests per second, per dispatcher, from 0.001 (one every 1000 s) to 10000 (fractions allowed: 0.5 is one every 2 s); null: no limit.",
    }),
  disable_after_s: z
    .number({ error: DISABLE_AFTER_MESSAGE })
    .int({ error: DISABLE_AFTER_MESSAGE })
    .min(1, { error: DISABLE_AFTER_MESSAGE })
    .max(31536000, { error: DISABLE_AFTER_MESSAGE })
    .nullable()
    .meta({
      description:
        "Disable the webhook once every attempt has failed for this many seconds; null: the dispatcher default (WEBHOOKS_DISABLE_AFTER_S, 5 days).",
    }),
  breaker_threshold: z
    .number({ error: BREAKER_THRESHOLD_MESSAGE })
    .int({ error: BREAKER_THRESHOLD_MESSAGE })
    .min(0, { error: BREAKER_THRESHOLD_MESSAGE })
    .max(1000, { error: BREAKER_THRESHOLD_MESSAGE })
    .nullable()
    .meta({
      description:
        "Consecutive failed attempts (across this webhook's deliveries) that open its circuit: deliveries then wait for a probe, " +
        "whatever their retry schedule says. 0: the circuit never opens, so retry schedules keep their timing. " +
        "null: the dispatcher default (WEBHOOKS_BREAKER_THRESHOLD, 10).",
    }),
  big_numbers: z.enum(BIG_NUMBERS, { error: 'expected big_numbers "string" or "number"' }).meta({
    description:
      "How the body carries a number that a double-based JSON parser would change (more than 15 significant digits: " +
      "bigint beyond 2^53, long numeric values, such numbers inside json/jsonb). string (default): a JSON string of its exact " +
      "digits, so JSON.stringify(JSON.parse(body)) === body still holds. number: a JSON number with Postgres's digits, for " +
      "receivers whose parser keeps them; a hex or sha256 signature checked over JSON.stringify of the parsed body then fails.",
  }),
  is_active: z.boolean({ error: "expected true or false" }),
  tenant: tenantSchema.nullable().meta({ description: "Admin keys only: the tenant whose events the webhook receives (null: every tenant)." }),
};

export const webhookCreateSchema = strictObject({
  name: base.name.optional(),
  description: base.description.optional(),
  url: base.url,
  method: base.method.default("POST"),
  auth: base.auth.default({ type: "none" }),
  headers: base.headers.default({}),
  secret_headers: base.secret_headers.default([]),
  events: base.events,
  filter: base.filter.optional(),
  signature: base.signature.default({ scheme: "standard" }),
  secret: base.secret.optional(),
  retry: base.retry.default(DEFAULT_RETRY_POLICY),
  timeout_ms: base.timeout_ms.default(15000),
  max_in_flight: base.max_in_flight.default(DEFAULT_MAX_IN_FLIGHT),
  rate_limit_per_s: base.rate_limit_per_s.optional(),
  disable_after_s: base.disable_after_s.optional(),
  breaker_threshold: base.breaker_threshold.optional(),
  big_numbers: base.big_numbers.default("string"),
  is_active: base.is_active.default(true),
  tenant: base.tenant.optional(),
}).superRefine((w, ctx) => {
  if (w.secret !== undefined && w.signature.scheme === "standard" && !isStandardSecret(w.secret)) {
    ctx.addIssue({ code: "custom", path: ["secret"], message: STANDARD_SECRET_MESSAGE });
  }
}).meta({ id: "WebhookCreate" });

export const webhookPatchSchema = strictObject({
  name: base.name.optional(),
  description: base.description.optional(),
  url: base.url.optional(),
  method: base.method.optional(),
  auth: base.auth.optional(),
  headers: base.headers.optional(),
  secret_headers: base.secret_headers.optional(),
  events: base.events.optional(),
  filter: base.filter.optional(),
  signature: base.signature.optional(),
  secret: base.secret.optional(),
  retry: base.retry.optional(),
  timeout_ms: base.timeout_ms.optional(),
  max_in_flight: base.max_in_flight.optional(),
  rate_limit_per_s: base.rate_limit_per_s.optional(),
  disable_after_s: base.disable_after_s.optional(),
  breaker_threshold: base.breaker_threshold.optional(),
  big_numbers: base.big_numbers.optional(),
  is_active: base.is_active.optional(),
  tenant: base.tenant.optional(),
}).meta({
  id: "WebhookPatch",
  description:
    "Only the fields given change, and the next attempt on every running dispatcher uses them; null clears name, " +
    "description, filter and tenant, removes the rate limit and returns disable_after_s and breaker_threshold to the " +
    "dispatcher defaults. A new url, auth, headers, signature or secret is a new endpoint: its circuit closes and " +
    "the deliveries waiting behind it go out at once.",
});

export type WebhookCreateInput = z.output<typeof webhookCreateSchema>;
export type WebhookPatch = z.output<typeof webhookPatchSchema>;

/** Parses raw input (an API body, CLI flags) or throws invalid_input / invalid_filter naming each field. */
export function parseWebhookInput<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  return parseInput(schema, raw);
}

export interface WriteOptions {
  /** WEBHOOKS_ALLOW_PRIVATE_TARGETS: accept loopback and private-network URLs. */
  allowPrivateTargets: boolean;
}

// ── View ────────────────────────────────────────────────────────────────────────────────

export const authViewSchema = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("none") }),
    z.object({ type: z.literal("bearer") }),
    z.object({ type: z.literal("basic"), username: z.string() }),
    z.object({ type: z.literal("header"), name: z.string() }),
  ])
  .meta({ description: "The auth type, without its secret parts." });

export const CIRCUITS = ["closed", "open", "half_open"] as const;
export type Circuit = (typeof CIRCUITS)[number];

export const endpointHealthSchema = z
  .object({
    circuit: z.enum(CIRCUITS).meta({
      description:
        "closed: deliveries flow. open: the endpoint kept failing; deliveries wait (parked) until a probe succeeds. " +
        "half_open: one probe delivery is in flight.",
    }),
    consecutive_failures: z.number().int().meta({ description: "Failed attempts since the last success." }),
    failing_since: z.date().nullable().meta({ description: "First failure since the last success; the auto-disable clock." }),
    last_success_at: z.date().nullable(),
    last_failure_at: z.date().nullable(),
    next_probe_at: z.date().nullable().meta({ description: "While open: when the next probe may go out." }),
  })
  .meta({ id: "EndpointHealth", description: "The endpoint's circuit breaker. Enabling the webhook resets it." });

export type EndpointHealth = z.output<typeof endpointHealthSchema>;

export const webhookViewSchema = z
  .object({
    id: z.uuid(),
    tenant: z.string().nullable(),
    name: z.string().nullable(),
    description: z.string().nullable(),
    url: z.string(),
    method: z.enum(METHODS),
    auth: authViewSchema,
    headers: z.record(z.string(), z.string()).meta({
      description: "Static headers; the values of those in secret_headers and of credential-like names show as ****.",
    }),
    secret_headers: z.array(z.string()).meta({ description: "Static headers marked secret (lower case)." }),
    events: z.array(z.string()),
    filter: z.record(z.string(), z.unknown()).nullable(),
    signature_scheme: z.enum(SIGNATURE_SCHEMES),
    signature_header: z.string().nullable(),
    previous_secret_expires_at: z.date().nullable().meta({
      description:
        "While a secret rotation runs: when the previous secret stops signing (standard: alongside the new one until then; " +
        "hex and sha256: alone until then, the new one from then on). See secret_rotation.",
    }),
    secret_rotation: z.string().nullable().meta({ description: "While a rotation runs, what receivers holding the old or the new secret get; else null." }),
    retry: z.record(z.string(), z.unknown()),
    timeout_ms: z.number().int(),
    max_in_flight: z.number().int(),
    rate_limit_per_s: z.number().nullable(),
    disable_after_s: z.number().int().nullable().meta({ description: "null: the dispatcher default (WEBHOOKS_DISABLE_AFTER_S)." }),
    breaker_threshold: z
      .number()
      .int()
      .nullable()
      .meta({ description: "Consecutive failures that open the circuit; 0: never; null: the dispatcher default (WEBHOOKS_BREAKER_THRESHOLD)." }),
    big_numbers: z.enum(BIG_NUMBERS),
    is_active: z.boolean(),
    disabled_reason: z.string().nullable(),
    disabled_at: z.date().nullable(),
    health: endpointHealthSchema,
    created_at: z.date(),
    updated_at: z.date(),
  })
  .meta({ id: "Webhook" });

export type WebhookView = z.output<typeof webhookViewSchema>;

function authView(raw: unknown): WebhookView["auth"] {
  const parsed = authSchema.safeParse(raw);
  if (!parsed.success) return { type: "none" };
  const a = parsed.data;
  switch (a.type) {
    case "none":
    case "bearer":
      return { type: a.type };
    case "basic":
      return { type: "basic", username: a.username };
    case "header":
      return { type: "header", name: a.name };
  }
}

/** A subscription row with its endpoint_health row joined in (h_*; all null without one). */
export interface WebhookRow extends Subscription {
  h_circuit: Circuit | null;
  h_consecutive_failures: number | null;
  h_failing_since: Date | null;
  h_last_success_at: Date | null;
  h_last_failure_at: Date | null;
  h_next_probe_at: Date | null;
}

// Select list and join that read `s` (a subscriptions row, or a CTE of them) as a WebhookRow.
const VIEW_SELECT = `s.*, h.circuit as h_circuit, h.consecutive_failures as h_consecutive_failures,
  h.failing_since as h_failing_since, h.last_success_at as h_last_success_at,
  h.last_failure_at as h_last_failure_at, h.next_probe_at as h_next_probe_at`;
const HEALTH_JOIN = "left join webhooks.endpoint_health h on h.subscription_id = s.id";

export function toWebhookView(row: WebhookRow): WebhookView {
  const secretHeaders = row.secret_headers ?? [];
  const headers = maskHeaders(row.headers ?? {}, secretHeaders);
  return {
    id: row.id,
    tenant: row.tenant,
    name: row.name,
    description: row.description,
    url: row.url,
    method: row.method,
    auth: authView(row.auth),
    headers,
    secret_headers: secretHeaders,
    events: row.events,
    filter: (row.filter ?? null) as Record<string, unknown> | null,
    signature_scheme: row.signature_scheme,
    signature_header: row.signature_header,
    previous_secret_expires_at: row.previous_secret_expires_at,
    secret_rotation: rotationSummary(row.signature_scheme, row.previous_secret_expires_at),
    retry: (row.retry ?? {}) as Record<string, unknown>,
    timeout_ms: row.timeout_ms,
    max_in_flight: row.max_in_flight,
    rate_limit_per_s: row.rate_limit_per_s,
    disable_after_s: row.disable_after_s,
    breaker_threshold: row.breaker_threshold,
    big_numbers: row.big_numbers,
    is_active: row.is_active,
    disabled_reason: row.disabled_reason,
    disabled_at: row.disabled_at,
    // No endpoint_health row: healthy.
    health: {
      circuit: row.h_circuit ?? "closed",
      consecutive_failures: row.h_consecutive_failures ?? 0,
      failing_since: row.h_failing_since,
      last_success_at: row.h_last_success_at,
      last_failure_at: row.h_last_failure_at,
      next_probe_at: row.h_next_probe_at,
    },
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

// ── Queries ─────────────────────────────────────────────────────────────────────────────

const webhookNotFound = (id: string) => notFound("webhook_not_found", "webhook", id);

/** The live row as this scope sees it: another tenant's or a deleted webhook does not exist. */
async function findRow(sql: Queryable, scope: Scope, id: string, lock = false): Promise<WebhookRow> {
  if (!isUuid(id)) throw webhookNotFound(id);
  const [row] = await sql<WebhookRow[]>`
    select ${sql.unsafe(VIEW_SELECT)}
      from webhooks.subscriptions s ${sql.unsafe(HEALTH_JOIN)}
     where s.id = ${id} and s.deleted_at is null
       and (${scope.tenant}::text is null or s.tenant = ${scope.tenant})
     ${lock ? sql`for update of s` : sql``}`;
  if (!row) throw webhookNotFound(id);
  return row;
}

function checkUrl(url: string, opts: WriteOptions): void {
  try {
    assertUrlAllowed(url, opts.allowPrivateTargets);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const code = e instanceof DomainError ? e.code : "invalid_input";
    throw new DomainError(code, `url: ${message}`, [{ path: "url", message }]);
  }
}

function tenantFor(scope: Scope, requested: string | null | undefined): string | null | undefined {
  if (scope.tenant === null) return requested;
  if (requested !== undefined && requested !== scope.tenant) {
    const message = "a tenant key manages its own tenant's webhooks only; leave tenant out";
    throw new DomainError("invalid_input", `tenant: ${message}`, [{ path: "tenant", message }]);
  }
  return scope.tenant;
}

/** Stored lower-cased and once each: header names are case-insensitive. */
const secretHeaderNames = (names: string[]) => [...new Set(names.map((n) => n.toLowerCase()))];

/** A jsonb parameter. (A JSON.stringify'd string cast to ::jsonb would be stored as a JSON string.) */
const jsonb = (sql: Queryable, v: unknown) => sql.json(v as Parameters<Queryable["json"]>[0]);

export async function createWebhook(
  conn: Connection,
  scope: Scope,
  input: WebhookCreateInput,
  opts: WriteOptions,
): Promise<{ webhook: WebhookView; secret: string }> {
  const tenant = tenantFor(scope, input.tenant) ?? null;
  checkUrl(input.url, opts);
  const secret = input.secret ?? generateSecret();
  const events = [...new Set(input.events)];
  const [row] = await conn.sql<WebhookRow[]>`
    with s as (
      insert into webhooks.subscriptions (
        tenant, name, description, url, method, auth, headers, secret_headers, events, filter,
        signature_scheme, signature_header, secret, retry, timeout_ms, max_in_flight, rate_limit_per_s, disable_after_s,
        breaker_threshold, big_numbers, is_active, disabled_at, disabled_reason)
      values (
        ${tenant}, ${input.name ?? null}, ${input.description ?? null}, ${input.url}, ${input.method},
        ${jsonb(conn.sql, input.auth)}, ${jsonb(conn.sql, input.headers)}, ${secretHeaderNames(input.secret_headers)}::text[],
        ${events}::text[],
        ${input.filter === undefined || input.filter === null ? null : jsonb(conn.sql, input.filter)},
        ${input.signature.scheme}, ${input.signature.header ?? null}, ${secret}, ${jsonb(conn.sql, input.retry)},
        ${input.timeout_ms}, ${input.max_in_flight}, ${input.rate_limit_per_s ?? null}, ${input.disable_after_s ?? null},
        ${input.breaker_threshold ?? null}, ${input.big_numbers}, ${input.is_active}, ${input.is_active ? null : new Date()}, ${input.is_active ? null : "created disabled"})
      returning *)
    select ${conn.sql.unsafe(VIEW_SELECT)} from s ${conn.sql.unsafe(HEALTH_JOIN)}`;
  if (!row) throw new Error("insert into webhooks.subscriptions returned no row");
  return { webhook: toWebhookView(row), secret };
}

export interface WebhookListQuery {
  is_active?: boolean;
  /** Only webhooks that would receive this event type. */
  event?: string;
  limit: number;
  cursor?: string;
}

/** Oldest first, `limit` per page. */
export async function listWebhooks(
  conn: Connection,
  scope: Scope,
  q: WebhookListQuery,
): Promise<{ items: WebhookView[]; next_cursor: string | null }> {
  const { sql } = conn;
  const after = q.cursor === undefined ? null : decodeCursor(q.cursor);
  const rows = await sql<(WebhookRow & { cursor_ts: string })[]>`
    select ${sql.unsafe(VIEW_SELECT)}, ${sql.unsafe(cursorTs("created_at"))} as cursor_ts
      from webhooks.subscriptions s ${sql.unsafe(HEALTH_JOIN)}
     where s.deleted_at is null
       and (${scope.tenant}::text is null or s.tenant = ${scope.tenant})
       ${q.is_active === undefined ? sql`` : sql`and s.is_active = ${q.is_active}`}
       ${
         q.event === undefined
           ? sql``
           : sql`and exists (
               select 1 from unnest(s.events) p
                where p = '*' or p = ${q.event}
                   or (right(p, 2) = '.*' and length(${q.event}) > length(p) - 1
                       and left(${q.event}, length(p) - 1) = left(p, -1)))`
       }
       ${after === null ? sql`` : sql`and (s.created_at, s.id) > (${after.ts}::text::timestamptz, ${after.id}::uuid)`}
     order by s.created_at, s.id
     limit ${q.limit + 1}`;
  const { page, next_cursor } = paginate(rows, q.limit);
  return { items: page.map(toWebhookView), next_cursor };
}

export async function getWebhook(conn: Connection, scope: Scope, id: string): Promise<WebhookView> {
  return toWebhookView(await findRow(conn.sql, scope, id));
}

function invalid(path: string, message: string): DomainError {
  return new DomainError("invalid_input", `${path}: ${message}`, [{ path, message }]);
}

/** Applies the fields present in the patch; absent fields keep their values. */
export async function updateWebhook(
  conn: Connection,
  scope: Scope,
  id: string,
  patch: WebhookPatch,
  opts: WriteOptions,
): Promise<WebhookView> {
  if (patch.url !== undefined) checkUrl(patch.url, opts);
  const tenant = patch.tenant === undefined ? undefined : tenantFor(scope, patch.tenant);
  return conn.sql.begin(async (tx) => {
    const current = await findRow(tx, scope, id, true);
    const scheme = patch.signature?.scheme ?? current.signature_scheme;
    if (scheme === "standard") {
      if (patch.secret !== undefined && !isStandardSecret(patch.secret)) throw invalid("secret", STANDARD_SECRET_MESSAGE);
      if (patch.secret === undefined && current.signature_scheme !== "standard" && !isStandardSecret(current.secret)) {
        throw invalid("secret", `switching to the standard scheme needs a new secret: ${STANDARD_SECRET_MESSAGE}`);
      }
    }
    const sets = [tx`updated_at = now()`];
    if (patch.name !== undefined) sets.push(tx`name = ${patch.name}`);
    if (patch.description !== undefined) sets.push(tx`description = ${patch.description}`);
    if (patch.url !== undefined) sets.push(tx`url = ${patch.url}`);
    if (patch.method !== undefined) sets.push(tx`method = ${patch.method}`);
    if (patch.auth !== undefined) sets.push(tx`auth = ${jsonb(tx, patch.auth)}`);
    if (patch.headers !== undefined) sets.push(tx`headers = ${jsonb(tx, patch.headers)}`);
    if (patch.secret_headers !== undefined) sets.push(tx`secret_headers = ${secretHeaderNames(patch.secret_headers)}::text[]`);
    if (patch.events !== undefined) sets.push(tx`events = ${[...new Set(patch.events)]}::text[]`);
    if (patch.filter !== undefined) sets.push(tx`filter = ${patch.filter === null ? null : jsonb(tx, patch.filter)}`);
    if (patch.signature !== undefined) {
      sets.push(tx`signature_scheme = ${patch.signature.scheme}, signature_header = ${patch.signature.header ?? null}`);
    }
    if (patch.secret !== undefined) {
      // A secret set by hand replaces the old one at once; rotate-secret is the way with a grace period.
      sets.push(tx`secret = ${patch.secret}, previous_secret = null, previous_secret_expires_at = null`);
    }
    if (patch.retry !== undefined) sets.push(tx`retry = ${jsonb(tx, patch.retry)}`);
    if (patch.timeout_ms !== undefined) sets.push(tx`timeout_ms = ${patch.timeout_ms}`);
    if (patch.max_in_flight !== undefined) sets.push(tx`max_in_flight = ${patch.max_in_flight}`);
    if (patch.rate_limit_per_s !== undefined) sets.push(tx`rate_limit_per_s = ${patch.rate_limit_per_s}`);
    if (patch.disable_after_s !== undefined) sets.push(tx`disable_after_s = ${patch.disable_after_s}`);
    if (patch.breaker_threshold !== undefined) sets.push(tx`breaker_threshold = ${patch.breaker_threshold}`);
    if (patch.big_numbers !== undefined) sets.push(tx`big_numbers = ${patch.big_numbers}`);
    if (patch.is_active !== undefined && patch.is_active !== current.is_active) {
      sets.push(activeSets(tx, patch.is_active));
      await onActiveChange(tx, current.id, patch.is_active);
    } else if (current.is_active && (patch.is_active ?? true)) {
      if (isNewEndpoint(current, patch)) await resetHealth(tx, current.id, "forget");
      else if (patch.breaker_threshold === 0 && current.breaker_threshold !== 0) await resetHealth(tx, current.id, "close");
    }
    if (tenant !== undefined) sets.push(tx`tenant = ${tenant}`);
    const assignments = sets.reduce((acc, s) => tx`${acc}, ${s}`);
    const [row] = await tx<WebhookRow[]>`
      with s as (update webhooks.subscriptions set ${assignments} where id = ${current.id} returning *)
      select ${tx.unsafe(VIEW_SELECT)} from s ${tx.unsafe(HEALTH_JOIN)}`;
    if (!row) throw webhookNotFound(id);
    return toWebhookView(row);
  });
}

const USER_DISABLED_REASON = "disabled by a user";

function activeSets(sql: Queryable, active: boolean) {
  return active
    ? sql`is_active = true, disabled_reason = null, disabled_at = null`
    : sql`is_active = false, disabled_reason = ${USER_DISABLED_REASON}, disabled_at = now()`;
}

/**
 * True when the patch points the webhook at a different endpoint as far as health goes: another
 * URL, credentials, static headers, signature or secret. The old endpoint's failures say nothing
 * about the new one.
 */
function isNewEndpoint(current: WebhookRow, patch: WebhookPatch): boolean {
  const differs = <T>(next: T | undefined, now: T) => next !== undefined && !isDeepStrictEqual(next, now);
  return (
    differs(patch.url, current.url) ||
    differs(patch.auth, current.auth) ||
    differs(patch.headers, current.headers ?? {}) ||
    differs(patch.signature?.scheme, current.signature_scheme) ||
    differs(patch.signature === undefined ? undefined : (patch.signature.header ?? null), current.signature_header) ||
    differs(patch.secret, current.secret)
  );
}

/**
 * Closes the webhook's circuit and gives the deliveries parked behind it a job now, in the
 * caller's transaction. "forget" also drops the run of failures and the auto-disable clock (a
 * new endpoint, or a user enabling the webhook); "close" keeps them (the breaker turned off).
 */
async function resetHealth(tx: Queryable, webhookId: string, how: "forget" | "close"): Promise<void> {
  if (how === "forget") await tx`delete from webhooks.endpoint_health where subscription_id = ${webhookId}`;
  else {
    await tx`
      update webhooks.endpoint_health
         set circuit = 'closed', opened_at = null, next_probe_at = null, probe_interval_ms = null,
             probe_delivery_id = null, updated_at = now()
       where subscription_id = ${webhookId}`;
  }
  const unparked = await tx<QueuedDelivery[]>`
    update webhooks.deliveries
       set parked_at = null, next_attempt_at = now(), updated_at = now()
     where subscription_id = ${webhookId} and parked_at is not null and status in ('pending', 'retrying')
    returning id, subscription_id`;
  await enqueueDeliveries(tx, unparked);
}

/**
 * What goes with a user's change of is_active, in its transaction. Enabling resets the endpoint's
 * health: a closed circuit, no run of failures, a fresh auto-disable clock. Disabling fails the
 * deliveries parked behind an open circuit, which no job would ever finish otherwise.
 */
async function onActiveChange(tx: Queryable, webhookId: string, active: boolean): Promise<void> {
  if (!active) {
    await failParkedDeliveries(tx, webhookId, USER_DISABLED_REASON);
    return;
  }
  // Disabling failed the parked ones, but one parked since (a job that raced the disable) would
  // now wait for a probe that no health row will schedule: resetHealth queues it instead.
  await resetHealth(tx, webhookId, "forget");
}

/**
 * Fails a webhook's parked deliveries (waiting for its circuit to close, so without a job): once
 * the webhook is disabled nothing else would finish them. Failed, they stay replayable. Call it in
 * the transaction that disables the webhook, whoever does (a user; the dispatcher on a 410 or
 * after disable_after_s), with the disabled_reason. Returns how many it failed.
 */
export async function failParkedDeliveries(tx: Queryable, webhookId: string, reason: string): Promise<number> {
  const rows = await tx`
    update webhooks.deliveries
       set status = 'failed', parked_at = null, next_attempt_at = null, finished_at = now(), updated_at = now(),
           last_error = 'webhook disabled: ' || ${reason}::text
     where subscription_id = ${webhookId} and parked_at is not null and status in ('pending', 'retrying')`;
  return rows.count;
}

/** Enabling clears disabled_reason and disabled_at and resets health; disabling records when and fails parked deliveries. */
export async function setWebhookActive(conn: Connection, scope: Scope, id: string, active: boolean): Promise<WebhookView> {
  return conn.sql.begin(async (tx) => {
    const current = await findRow(tx, scope, id, true);
    if (current.is_active === active) return toWebhookView(current);
    await onActiveChange(tx, current.id, active);
    const [row] = await tx<WebhookRow[]>`
      with s as (
        update webhooks.subscriptions set ${activeSets(tx, active)}, updated_at = now()
         where id = ${current.id} returning *)
      select ${tx.unsafe(VIEW_SELECT)} from s ${tx.unsafe(HEALTH_JOIN)}`;
    if (!row) throw webhookNotFound(id);
    return toWebhookView(row);
  });
}

/** Soft delete: the row stays for its delivery history; deliveries still owed (parked ones too) are cancelled. */
export async function deleteWebhook(conn: Connection, scope: Scope, id: string): Promise<void> {
  await conn.sql.begin(async (tx) => {
    const current = await findRow(tx, scope, id, true);
    await tx`update webhooks.subscriptions set deleted_at = now(), updated_at = now() where id = ${current.id}`;
    await tx`
      update webhooks.deliveries
         set status = 'cancelled', next_attempt_at = null, parked_at = null, finished_at = now(), updated_at = now(),
             last_error = coalesce(last_error, 'webhook deleted')
       where subscription_id = ${current.id} and status in ('pending', 'retrying')`;
  });
}

export async function getWebhookSecret(conn: Connection, scope: Scope, id: string): Promise<string> {
  return (await findRow(conn.sql, scope, id)).secret;
}

export const DEFAULT_ROTATION_GRACE_MS = 24 * 60 * 60 * 1000;
export const MAX_ROTATION_GRACE_MS = 30 * 24 * 60 * 60 * 1000;

const GRACE_MESSAGE = `expected milliseconds from 0 to ${MAX_ROTATION_GRACE_MS} (30 days)`;
const SWITCH_AT_MESSAGE = "expected an ISO timestamp with a time zone within the next 30 days, such as 2026-01-31T22:00:00Z";

/** Date.parse rolls 2024-02-30 over to March 1; a switch-over instant must name a real day. */
function isCalendarDate(iso: string): boolean {
  const [y, m, d] = iso.slice(0, 10).split("-").map(Number) as [number, number, number];
  const day = new Date(Date.UTC(y, m - 1, d));
  return day.getUTCFullYear() === y && day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
}

export const rotateSecretSchema = strictObject({
  grace_ms: z
    .number({ error: GRACE_MESSAGE })
    .int({ error: GRACE_MESSAGE })
    .min(0, { error: GRACE_MESSAGE })
    .max(MAX_ROTATION_GRACE_MS, { error: GRACE_MESSAGE })
    .optional()
    .meta({
      description:
        "How long the old secret keeps signing (default 24 h): standard alongside the new one; hex and sha256 alone, " +
        "until the new one takes over when it ends. 0: the new secret signs alone from now on.",
    }),
  switch_at: z
    .string({ error: SWITCH_AT_MESSAGE })
    .max(64, { error: SWITCH_AT_MESSAGE })
    .pipe(z.iso.datetime({ offset: true, error: SWITCH_AT_MESSAGE }))
    .refine(isCalendarDate, { error: SWITCH_AT_MESSAGE })
    .optional()
    .meta({ description: "Instead of grace_ms: the instant the old secret stops signing (within the next 30 days)." }),
})
  .refine((r) => r.grace_ms === undefined || r.switch_at === undefined, {
    path: ["switch_at"],
    error: "give grace_ms or switch_at, not both",
  })
  .meta({ id: "RotateSecret" });

export const rotatedSecretSchema = z.object({
  id: z.uuid(),
  secret: z.string(),
  previous_secret_expires_at: z
    .date()
    .nullable()
    .meta({ description: "When the old secret stops signing (null: it already has). See receivers_see." }),
  receivers_see: z.string().meta({ description: "What a receiver holding the old secret, and one holding the new, gets and when." }),
});

export type RotatedSecret = z.output<typeof rotatedSecretSchema>;

/**
 * What receivers see while the old secret still signs (until `until`), for the webhook's scheme;
 * the rule itself is signingSecrets() in delivery/sign.ts. Null when no rotation is in progress.
 */
export function rotationSummary(scheme: (typeof SIGNATURE_SCHEMES)[number], until: Date | null, now = new Date()): string | null {
  if (until === null || until.getTime() <= now.getTime()) return null;
  const at = until.toISOString();
  return scheme === "standard"
    ? `until ${at} every request carries two signatures, one made with the new secret and one with the old: ` +
        "receivers holding either verify. From then on only the new secret signs."
    : `until ${at} requests are signed with the old secret alone; from ${at} on with the new secret alone ` +
        `(${scheme} carries one signature). A receiver holding only the old secret rejects requests from then on; ` +
        "one holding only the new secret rejects them until then. Switch receivers at that instant, or let them accept either meanwhile.";
}

const SWITCHED_NOW = "the new secret signs every request from now on: receivers still holding the old secret reject them.";

/**
 * A new secret. The old one keeps signing until the grace period ends (or switch_at): with the
 * standard scheme alongside the new one (the spec allows several signatures); with hex and
 * sha256, which carry one signature, alone, so the new secret takes over at that instant.
 */
export async function rotateSecret(
  conn: Connection,
  scope: Scope,
  id: string,
  opts: { grace_ms?: number; switch_at?: string } = {},
): Promise<RotatedSecret> {
  const input = parseInput(rotateSecretSchema, opts);
  let switchAt: Date | null = null;
  if (input.switch_at !== undefined) {
    switchAt = new Date(input.switch_at);
    const ahead = switchAt.getTime() - Date.now();
    if (!(ahead > 0 && ahead <= MAX_ROTATION_GRACE_MS)) throw invalid("switch_at", SWITCH_AT_MESSAGE);
  }
  const graceMs = input.grace_ms ?? DEFAULT_ROTATION_GRACE_MS;
  const secret = generateSecret();
  return conn.sql.begin(async (tx) => {
    const current = await findRow(tx, scope, id, true);
    // The secret signing right now is the one receivers hold; during a hex/sha256 switch-over
    // that is still the previous one, which keeps signing until the new switch.
    const inEffect = signingSecrets(
      current.signature_scheme,
      current.secret,
      { previousSecret: current.previous_secret, previousSecretExpiresAt: current.previous_secret_expires_at },
      new Date(),
    ).secret;
    const keepOld = switchAt !== null || graceMs > 0;
    const until = switchAt === null ? tx`now() + ${graceMs} * interval '1 millisecond'` : tx`${switchAt}::timestamptz`;
    const [row] = await tx<{ id: string; secret: string; previous_secret_expires_at: Date | null }[]>`
      update webhooks.subscriptions
         set previous_secret = ${keepOld ? inEffect : null},
             previous_secret_expires_at = ${keepOld ? until : null},
             secret = ${secret}, updated_at = now()
       where id = ${current.id}
      returning id, secret, previous_secret_expires_at`;
    if (!row) throw webhookNotFound(id);
    const receivers_see = rotationSummary(current.signature_scheme, row.previous_secret_expires_at) ?? SWITCHED_NOW;
    return { ...row, receivers_see };
  });
}
