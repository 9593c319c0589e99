// A webhook (a row of webhooks.subscriptions) as the API and the CLI take it (create and patch
// input) and show it (the view, with the endpoint's health), and the pure mapping from row to view.
import type { Selectable } from "kysely";
import { z } from "zod";
import type { EndpointHealthTable, Subscription } from "../db/schema";
import { maskHeaders } from "../delivery/mask";
import { isSigningKey, publicKeyOf } from "../delivery/sign";
import { eventPatternSchema, filterSchema } from "./filter";
import { DEFAULT_PAYLOAD, PAYLOAD_PRESETS, payloadOf, payloadSchema } from "./payload";
import { MAX_RATE_LIMIT_PER_S, MIN_RATE_LIMIT_PER_S } from "./rate-limit";
import { DEFAULT_RETRY_POLICY, retryPolicySchema } from "./retry-policy";
import { BIG_NUMBERS, CIRCUIT_STATES, HTTP_METHODS, SIGNATURE_SCHEMES } from "./enums";
import { rotationSummary } from "./rotation";
import { expectedOneOf, parseInput, singleLine, storable, storableJson, strictObject } from "./validation";

// ── Input ───────────────────────────────────────────────────────────────────────────────

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
    .enum(SIGNATURE_SCHEMES, { error: expectedOneOf("scheme", SIGNATURE_SCHEMES) })
    .default("standard")
    .meta({
      description:
        "standard: Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature: v1,<base64>); " +
        "ed25519: Standard Webhooks asymmetric (webhook-signature: v1a,<base64>), signed with a private key, verified with the public_key (whpk_…); " +
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

export const SIGNING_KEY_MESSAGE =
  "the ed25519 scheme needs a signing key of the form whsk_<base64 of the 32-byte ed25519 seed, or of the 64-byte libsodium secret key>; leave it out to have one generated";

/** Why `secret` cannot sign with `scheme`, or null. */
export function secretProblem(scheme: string, secret: string): string | null {
  if (scheme === "standard" && !isStandardSecret(secret)) return STANDARD_SECRET_MESSAGE;
  if (scheme === "ed25519" && !isSigningKey(secret)) return SIGNING_KEY_MESSAGE;
  return null;
}

export const STANDARD_SECRET_MESSAGE =
  "the standard scheme needs a secret of the form whsec_<base64 of 16 to 64 bytes>; leave it out to have one generated";

const secretSchema = z
  .string({ error: "expected a secret (a string)" })
  .min(8, { error: "expected a secret of at least 8 characters" })
  .max(512, { error: "expected a secret of at most 512 characters" })
  .check(storable)
  .meta({ description: "Signing secret; generated (whsec_…, or an ed25519 signing key whsk_… for the ed25519 scheme) when absent. Write-only." });

const tenantSchema = z
  .string({ error: "expected a tenant (a string)" })
  .min(1, { error: "expected a non-empty tenant" })
  .max(200, { error: "expected a tenant of at most 200 characters" })
  .check(storable);

export const DEFAULT_MAX_IN_FLIGHT = 10;
/** Upper bounds of the per-webhook settings, shared with the CLI's option parsers. */
export const MAX_IN_FLIGHT = 1000;
export const MAX_BREAKER_THRESHOLD = 1000;
export const MAX_DISABLE_AFTER_S = 365 * 24 * 3600;
const MAX_IN_FLIGHT_MESSAGE = `expected a whole number of requests from 1 to ${MAX_IN_FLIGHT}`;
const RATE_LIMIT_MESSAGE = `expected requests per second from ${MIN_RATE_LIMIT_PER_S} (one every 1000 s) to ${MAX_RATE_LIMIT_PER_S}, or null for no limit`;
const BREAKER_THRESHOLD_MESSAGE =
  `expected a whole number of consecutive failures from 1 to ${MAX_BREAKER_THRESHOLD}, 0 to never open the circuit, or null for the dispatcher default`;
const DISABLE_AFTER_MESSAGE = `expected whole seconds from 1 to ${MAX_DISABLE_AFTER_S} (a year), or null for the dispatcher default`;

const base = {
  name: z.string().max(200).check(singleLine()).nullable(),
  description: z.string().max(2000).check(storable).nullable(),
  url: urlSchema,
  method: z.enum(HTTP_METHODS, { error: expectedOneOf("method", HTTP_METHODS) }),
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
    .max(MAX_IN_FLIGHT, { error: MAX_IN_FLIGHT_MESSAGE })
    .meta({ description: "Requests to this webhook in flight at once, all dispatchers together (1-1000, default 10). More wait their turn." }),
  rate_limit_per_s: z
    .number({ error: RATE_LIMIT_MESSAGE })
    .min(MIN_RATE_LIMIT_PER_S, { error: RATE_LIMIT_MESSAGE })
    .max(MAX_RATE_LIMIT_PER_S, { error: RATE_LIMIT_MESSAGE })
    .nullable()
    .meta({
      description:
        "At most this many requests per second, all dispatchers together, from 0.001 (one every 1000 s) to 10000 (fractions allowed: 0.5 is one every 2 s); null: no limit.",
    }),
  disable_after_s: z
    .number({ error: DISABLE_AFTER_MESSAGE })
    .int({ error: DISABLE_AFTER_MESSAGE })
    .min(1, { error: DISABLE_AFTER_MESSAGE })
    .max(MAX_DISABLE_AFTER_S, { error: DISABLE_AFTER_MESSAGE })
    .nullable()
    .meta({
      description:
        "Disable the webhook once every attempt has failed for this many seconds; null: the dispatcher default (WEBHOOKS_DISABLE_AFTER_S, 5 days).",
    }),
  breaker_threshold: z
    .number({ error: BREAKER_THRESHOLD_MESSAGE })
    .int({ error: BREAKER_THRESHOLD_MESSAGE })
    .min(0, { error: BREAKER_THRESHOLD_MESSAGE })
    .max(MAX_BREAKER_THRESHOLD, { error: BREAKER_THRESHOLD_MESSAGE })
    .nullable()
    .meta({
      description:
        "Consecutive failed attempts (across this webhook's deliveries) that open its circuit: deliveries then wait for a probe, " +
        "whatever their retry schedule says. 0: the circuit never opens, so retry schedules keep their timing. " +
        "null: the dispatcher default (WEBHOOKS_BREAKER_THRESHOLD, 10).",
    }),
  big_numbers: z.enum(BIG_NUMBERS, { error: expectedOneOf("big_numbers", BIG_NUMBERS) }).meta({
    description:
      "How the body carries a number that a double-based JSON parser would change (more than 15 significant digits: " +
      "bigint beyond 2^53, long numeric values, such numbers inside json/jsonb). string (default): a JSON string of its exact " +
      "digits, so JSON.stringify(JSON.parse(body)) === body still holds. number: a JSON number with Postgres's digits, for " +
      "receivers whose parser keeps them; a hex or sha256 signature checked over JSON.stringify of the parsed body then fails.",
  }),
  payload: payloadSchema,
  iso_timestamp_header: z.boolean({ error: "expected true or false" }).meta({
    description: "Also send X-Webhook-Timestamp: the signing time as ISO 8601 (webhook-timestamp carries it in Unix seconds). Default false.",
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
  payload: base.payload.default(DEFAULT_PAYLOAD),
  iso_timestamp_header: base.iso_timestamp_header.default(false),
  is_active: base.is_active.default(true),
  tenant: base.tenant.optional(),
}).superRefine((w, ctx) => {
  const problem = w.secret === undefined ? null : secretProblem(w.signature.scheme, w.secret);
  if (problem !== null) ctx.addIssue({ code: "custom", path: ["secret"], message: problem });
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
  payload: base.payload.optional(),
  iso_timestamp_header: base.iso_timestamp_header.optional(),
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

// ── View ────────────────────────────────────────────────────────────────────────────────

export const authViewSchema = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("none") }),
    z.object({ type: z.literal("bearer") }),
    z.object({ type: z.literal("basic"), username: z.string() }),
    z.object({ type: z.literal("header"), name: z.string() }),
  ])
  .meta({ description: "The auth type, without its secret parts." });

export const endpointHealthSchema = z
  .object({
    circuit: z.enum(CIRCUIT_STATES).meta({
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
    method: z.enum(HTTP_METHODS),
    auth: authViewSchema,
    headers: z.record(z.string(), z.string()).meta({
      description: "Static headers; the values of those in secret_headers and of credential-like names show as ****.",
    }),
    secret_headers: z.array(z.string()).meta({ description: "Static headers marked secret (lower case)." }),
    events: z.array(z.string()),
    filter: z.record(z.string(), z.unknown()).nullable(),
    signature_scheme: z.enum(SIGNATURE_SCHEMES),
    signature_header: z.string().nullable(),
    public_key: z.string().nullable().meta({
      description:
        "ed25519 only: the public key (whpk_ + base64 of 32 bytes) receivers verify v1a signatures with. Not a secret; the private key never shows here.",
      examples: ["whpk_VOhz2CvJvK0v0m6VMJgq7N6F9U3c2rN2ZQ6ZtP1i8E4="],
    }),
    previous_public_key: z.string().nullable().meta({
      description: "ed25519, while a rotation runs: the public key of the old signing key, which still signs alongside the new one.",
    }),
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
    payload: z
      .union([z.object({ preset: z.enum(PAYLOAD_PRESETS) }), z.object({ template: z.string() })])
      .meta({ description: "The body requests carry: a preset, or a JSONata template (see WebhookCreate.payload)." }),
    iso_timestamp_header: z.boolean(),
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
/** The endpoint_health columns a view shows, joined in as h_* (all null without a health row). */
type HealthColumns = Pick<
  Selectable<EndpointHealthTable>,
  "circuit" | "consecutive_failures" | "failing_since" | "last_success_at" | "last_failure_at" | "next_probe_at"
>;

/** A subscription row with its endpoint_health row joined in (h_*; all null without one). */
export type WebhookRow = Subscription & { [K in keyof HealthColumns as `h_${K}`]: HealthColumns[K] | null };

/** The old signing key's public key while an ed25519 rotation still signs with it. */
function rotatingPublicKey(row: WebhookRow, now = new Date()): string | null {
  if (row.signature_scheme !== "ed25519" || row.previous_secret === null || row.previous_secret_expires_at === null) return null;
  if (row.previous_secret_expires_at.getTime() <= now.getTime()) return null;
  return publicKeyOf(row.previous_secret);
}

/** What a receiver runs to check a v1a signature with the public key (Node, no dependency). */
export function verificationSnippet(publicKey: string): string {
  return `// Node 18+, no dependency: verify a pg-webhooks ed25519 (Standard Webhooks v1a) signature.
const { createPublicKey, verify } = require("node:crypto");
const PUBLIC_KEY = ${JSON.stringify(publicKey)};
const key = createPublicKey({
  key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(PUBLIC_KEY.slice(5), "base64").toString("base64url") },
  format: "jwk",
});
// rawBody: the request body exactly as received (a string or Buffer, not re-serialised JSON).
function verified(headers, rawBody) {
  const id = headers["webhook-id"], ts = headers["webhook-timestamp"];
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false; // replayed or stale
  const signed = Buffer.concat([Buffer.from(\`\${id}.\${ts}.\`), Buffer.from(rawBody)]);
  return String(headers["webhook-signature"]).split(" ").some((s) =>
    s.startsWith("v1a,") && verify(null, signed, key, Buffer.from(s.slice(4), "base64")));
}`;
}

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
    public_key: row.signature_scheme === "ed25519" ? publicKeyOf(row.secret) : null,
    previous_public_key: rotatingPublicKey(row),
    previous_secret_expires_at: row.previous_secret_expires_at,
    secret_rotation: rotationSummary(row.signature_scheme, row.previous_secret_expires_at),
    retry: (row.retry ?? {}) as Record<string, unknown>,
    timeout_ms: row.timeout_ms,
    max_in_flight: row.max_in_flight,
    rate_limit_per_s: row.rate_limit_per_s,
    disable_after_s: row.disable_after_s,
    breaker_threshold: row.breaker_threshold,
    big_numbers: row.big_numbers,
    payload: payloadOf(row.payload),
    iso_timestamp_header: row.iso_timestamp_header,
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
