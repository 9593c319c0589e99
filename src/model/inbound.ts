// Inbound sources (rows of webhooks.inbound_sources) as the API and the CLI take them and show
// them, and what a received request becomes before it is stored: its headers as kept, its
// event name, its dedupe key, its tenant and its body as JSON. All pure.
import { createHash } from "node:crypto";
import { z } from "zod";
import { ExactNumber, parseExact } from "../delivery/event-json";
import { expectedOneOf, jsonProblem, singleLine, strictObject, textProblem } from "./validation";

export const INBOUND_SCHEMES = ["standard", "stripe", "github", "shopify", "slack", "hmac", "api_key", "basic", "none"] as const;
export type InboundScheme = (typeof INBOUND_SCHEMES)[number];

export const INBOUND_STATUSES = ["pending", "processing", "done", "failed"] as const;
export type InboundStatus = (typeof INBOUND_STATUSES)[number];

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** The largest per-source body limit, and what the receive routes buffer at most. */
export const MAX_BODY_LIMIT = 16 * 1024 * 1024;
export const DEFAULT_TOLERANCE_S = 300;

/** Where each scheme's sender puts its own id, used to drop duplicates when `dedupe` is null. */
export const DEFAULT_DEDUPE: Record<InboundScheme, string | null> = {
  standard: "header:webhook-id",
  stripe: "json:id",
  github: "header:x-github-delivery",
  shopify: "header:x-shopify-webhook-id",
  slack: "json:event_id",
  hmac: null,
  api_key: null,
  basic: null,
  none: null,
};

/** Never stored: credentials. A source's key header is dropped too. */
const DROPPED_HEADERS = new Set(["authorization", "cookie", "proxy-authorization", "x-api-key"]);

// ── Input ───────────────────────────────────────────────────────────────────────────────

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
const headerName = z.string().regex(HEADER_NAME, { error: "expected an HTTP header name such as X-Api-Key" });

export const SLUG = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const EVENT_TYPE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

const slugSchema = z
  .string()
  .regex(SLUG, { error: "expected a slug of lower-case letters, digits, - and _ (at most 63), starting with a letter or digit" })
  .meta({ description: "The URL slug: requests go to POST /in/<slug> or /in/<slug>/<event_name>.", examples: ["crm"] });

const secretSchema = z
  .string()
  .min(1, { error: "expected a non-empty secret" })
  .max(4096)
  .check(singleLine());

const secretsSchema = z
  .array(secretSchema)
  .min(1, { error: "expected one secret, or two while rotating" })
  .max(2, { error: "expected at most two secrets (the new one and the one being replaced)" })
  .meta({
    description:
      "The signing secret or key (api_key: the key; basic: user:password; standard: whsec_…), and the previous one while " +
      "rotating. Write-only: views show only how many are set and the last 4 characters of long ones.",
  });

export const hmacOptionsSchema = strictObject({
  header: headerName.meta({ description: "The header carrying the signature." }),
  prefix: z.string().max(100).check(singleLine()).optional().meta({ description: "Text before the signature, e.g. sha256=." }),
  encoding: z.enum(["hex", "base64"]).optional().meta({ description: "Default hex." }),
  algorithm: z.enum(["sha256", "sha1", "sha512"]).optional().meta({ description: "Default sha256." }),
  signed: z.enum(["body", "timestamp.body"]).optional().meta({ description: "What is signed: the body (default) or <timestamp>.<body>." }),
  timestamp_header: headerName.optional().meta({ description: "With signed timestamp.body: the header carrying the Unix timestamp." }),
}).superRefine((o, ctx) => {
  if (o.signed === "timestamp.body" && o.timestamp_header === undefined) {
    ctx.addIssue({ code: "custom", path: ["timestamp_header"], message: "expected a timestamp header when signed is timestamp.body" });
  }
});
export type HmacOptions = z.output<typeof hmacOptionsSchema>;

const dedupeSchema = z
  .string()
  .max(300)
  .regex(/^(header:[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}|json:[^\u0000-\u001f]{1,256}|none)$/, {
    error: "expected header:<name>, json:<dotted.path> or none",
  })
  .meta({ description: "Where the sender's id is (duplicates answer 200 and store nothing): header:<name>, json:<dotted.path>, or none. Default: the scheme's." });

const tenantName = z.string().min(1).max(200).check(singleLine());

const sourceFields = {
  name: z.string().max(200).check(singleLine()).nullable().optional(),
  enabled: z.boolean().optional(),
  secrets: secretsSchema.optional(),
  hmac: hmacOptionsSchema.nullable().optional(),
  key_header: headerName.nullable().optional().meta({ description: "api_key: the header carrying the key (default X-API-Key)." }),
  tolerance_s: z.number().int().min(1).max(86400).optional().meta({ description: "Timestamps older or newer than this are refused (default 300)." }),
  dedupe: dedupeSchema.nullable().optional(),
  allowed_tenants: z
    .array(tenantName)
    .min(1)
    .max(1000)
    .nullable()
    .optional()
    .meta({ description: "Only for a source without tenant (admin keys): X-Tenant-ID must be one of these, and the event takes it as its tenant." }),
  max_body_bytes: z.number().int().min(1).max(MAX_BODY_LIMIT).optional().meta({ description: "Larger bodies get 413 (default 1 MiB)." }),
  rate_limit_per_s: z.number().min(0.001).max(100000).nullable().optional().meta({ description: "Requests per second per server process; more get 429 (null: no limit)." }),
  relay_prefix: z
    .string()
    .max(200)
    .regex(EVENT_TYPE, { error: "expected a dotted event-type prefix such as inbound.stripe" })
    .nullable()
    .optional()
    .meta({ description: "Relay each event into the outbound pipeline as <relay_prefix>.<event name> (null: no relay)." }),
};

export const sourceCreateSchema = strictObject({
  slug: slugSchema,
  tenant: tenantName.nullable().optional(),
  verify: z.enum(INBOUND_SCHEMES, { error: expectedOneOf("verify", INBOUND_SCHEMES) }).meta({ description: "How requests are verified; none must be chosen explicitly." }),
  ...sourceFields,
});
export type SourceCreateInput = z.output<typeof sourceCreateSchema>;

export const sourcePatchSchema = strictObject({ slug: slugSchema.optional(), ...sourceFields });
export type SourcePatch = z.output<typeof sourcePatchSchema>;

// ── View ────────────────────────────────────────────────────────────────────────────────

export const sourceViewSchema = z
  .object({
    id: z.string(),
    slug: z.string(),
    name: z.string().nullable(),
    tenant: z.string().nullable(),
    enabled: z.boolean(),
    verify: z.enum(INBOUND_SCHEMES),
    secrets_set: z.number().int().meta({ description: "How many secrets are set (2 while rotating)." }),
    secret_hints: z.array(z.string()).meta({ description: "…wxyz: the last 4 characters of each secret of 16 or more characters; **** otherwise." }),
    hmac: hmacOptionsSchema.nullable(),
    key_header: z.string().nullable(),
    tolerance_s: z.number().int(),
    dedupe: z.string().nullable().meta({ description: "As configured; null: the scheme's default (see dedupe_effective)." }),
    dedupe_effective: z.string().nullable(),
    allowed_tenants: z.array(z.string()).nullable(),
    max_body_bytes: z.number().int(),
    rate_limit_per_s: z.number().nullable(),
    relay_prefix: z.string().nullable(),
    url_path: z.string().meta({ description: "Where senders POST: /in/<slug> (or /in/<slug>/<event_name>)." }),
    created_at: z.date(),
    updated_at: z.date(),
  })
  .meta({ id: "InboundSource" });
export type SourceView = z.output<typeof sourceViewSchema>;

export interface SourceRow {
  id: string;
  tenant: string | null;
  slug: string;
  name: string | null;
  enabled: boolean;
  verify: InboundScheme;
  secrets: string[];
  hmac: HmacOptions | null;
  key_header: string | null;
  tolerance_s: number;
  dedupe: string | null;
  allowed_tenants: string[] | null;
  max_body_bytes: number;
  rate_limit_per_s: number | null;
  relay_prefix: string | null;
  created_at: Date;
  updated_at: Date;
}

/** A secret as views show it: never more than its last 4 characters, and those only of a long one. */
export const secretHint = (s: string): string => (s.length >= 16 ? `…${s.slice(-4)}` : "****");

export const effectiveDedupe = (s: Pick<SourceRow, "dedupe" | "verify">): string | null =>
  s.dedupe === "none" ? null : (s.dedupe ?? DEFAULT_DEDUPE[s.verify]);

export function toSourceView(r: SourceRow): SourceView {
  return {
    id: r.id,
    slug: r.slug,
    name: r.name,
    tenant: r.tenant,
    enabled: r.enabled,
    verify: r.verify,
    secrets_set: r.secrets.length,
    secret_hints: r.secrets.map(secretHint),
    hmac: r.hmac,
    key_header: r.key_header,
    tolerance_s: r.tolerance_s,
    dedupe: r.dedupe,
    dedupe_effective: effectiveDedupe(r),
    allowed_tenants: r.allowed_tenants,
    max_body_bytes: r.max_body_bytes,
    rate_limit_per_s: r.rate_limit_per_s,
    relay_prefix: r.relay_prefix,
    url_path: `/in/${r.slug}`,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

/** Schemes whose secret pg-webhooks may generate when none is given (the sender is told it). */
export const GENERATED_SECRET_SCHEMES: ReadonlySet<InboundScheme> = new Set(["standard", "api_key", "hmac"]);

/** Why a source's settings do not fit together; null when they do. */
export function sourceProblem(s: {
  verify: InboundScheme;
  secrets: string[];
  hmac: HmacOptions | null;
  tenant: string | null;
  allowed_tenants: string[] | null;
}): { path: string; message: string } | null {
  if (s.verify === "none" && s.secrets.length > 0) return { path: "secrets", message: "verify none takes no secret" };
  if (s.verify !== "none" && s.secrets.length === 0) return { path: "secrets", message: `verify ${s.verify} needs a secret` };
  if (s.verify === "hmac" && s.hmac === null) return { path: "hmac", message: "verify hmac needs hmac options ({header, …})" };
  if (s.verify !== "hmac" && s.hmac !== null) return { path: "hmac", message: "hmac options apply to verify hmac only" };
  if (s.verify === "standard") {
    for (const secret of s.secrets) {
      if (!/^whsec_[A-Za-z0-9+/]+={0,2}$/.test(secret) || Buffer.from(secret.slice(6), "base64").length < 16) {
        return { path: "secrets", message: "a standard secret is whsec_ followed by at least 16 bytes in base64" };
      }
    }
  }
  if (s.verify === "basic" && s.secrets.some((x) => !x.includes(":") || x.indexOf(":") === 0 || x.indexOf(":") === x.length - 1)) {
    return { path: "secrets", message: "a basic secret is user:password, both non-empty" };
  }
  if (s.allowed_tenants !== null && s.tenant !== null) {
    return { path: "allowed_tenants", message: "a source with a tenant takes no allowed_tenants (X-Tenant-ID must then equal its tenant)" };
  }
  return null;
}

// ── A received request ──────────────────────────────────────────────────────────────────

/** Node's headers (lower-case names; repeated ones as arrays) as one string each. */
export function flatHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
}

/** The headers as stored: credentials and the source's key header left out. */
export function storedHeaders(headers: Record<string, string>, keyHeader: string | null): Record<string, string> {
  const drop = keyHeader?.toLowerCase();
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (DROPPED_HEADERS.has(k) || k === drop) continue;
    out[k] = v;
  }
  return out;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

export interface ParsedBody {
  /** The body's text, to be cast to jsonb by Postgres (numbers exact); null when not storable JSON. */
  jsonText: string | null;
  /** The parsed value (numbers a double would change as ExactNumber), for names and dedupe keys. */
  value: unknown;
}

/** The body as JSON when it is JSON jsonb can hold unchanged; otherwise jsonText null. */
export function parseBody(raw: Buffer): ParsedBody {
  if (raw.length === 0) return { jsonText: null, value: undefined };
  let text: string;
  try {
    text = UTF8.decode(raw);
  } catch {
    return { jsonText: null, value: undefined };
  }
  let value: unknown;
  try {
    value = parseExact(text).value;
  } catch {
    return { jsonText: null, value: undefined };
  }
  // jsonb holds neither \u0000 nor a lone surrogate, and nesting deeper than this risks
  // Postgres's stack: such a body is kept as bytes only.
  return { jsonText: jsonProblem(value) === null ? text : null, value };
}

function at(value: unknown, path: string[]): unknown {
  let v = value;
  for (const key of path) {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

const scalarText = (v: unknown): string | null =>
  typeof v === "string" ? v : typeof v === "number" && Number.isFinite(v) ? String(v) : v instanceof ExactNumber ? v.digits : null;

/** A key for the unique index: long ones or ones text cannot hold become their SHA-256. */
function indexable(key: string): string {
  if (key.length <= 200 && textProblem(key) === null) return key;
  return `sha256:${createHash("sha256").update(key, "utf8").digest("hex")}`;
}

/** The sender's id per the dedupe spec (header:<name> | json:<path>), or null. */
export function dedupeKey(spec: string | null, headers: Record<string, string>, body: unknown): string | null {
  if (spec === null || spec === "none") return null;
  let key: string | null = null;
  if (spec.startsWith("header:")) key = headers[spec.slice(7).toLowerCase()] ?? null;
  else if (spec.startsWith("json:")) key = scalarText(at(body, spec.slice(5).split(".")));
  return key === null || key === "" ? null : indexable(key);
}

/** The event name: the path's, else the sender's own (per scheme), else the body's type or event; null when none. */
export function eventName(scheme: InboundScheme, pathName: string | undefined, headers: Record<string, string>, body: unknown): string | null {
  const clip = (s: string | null): string | null => (s === null || s === "" || textProblem(s) !== null ? null : s.slice(0, 200));
  if (pathName !== undefined && pathName !== "") return clip(pathName);
  if (scheme === "github") return clip(headers["x-github-event"] ?? null);
  if (scheme === "shopify") return clip(headers["x-shopify-topic"] ?? null);
  if (scheme === "slack") return clip(scalarText(at(body, ["event", "type"])) ?? scalarText(at(body, ["type"])));
  const type = at(body, ["type"]);
  if (typeof type === "string") return clip(type);
  const event = at(body, ["event"]);
  return typeof event === "string" ? clip(event) : null;
}

/** Slack's url_verification request: its challenge, to echo once the request is verified. */
export function slackChallenge(scheme: InboundScheme, body: unknown): string | null {
  if (scheme !== "slack" || at(body, ["type"]) !== "url_verification") return null;
  const c = at(body, ["challenge"]);
  return typeof c === "string" ? c : null;
}

export type TenantVerdict = { ok: true; tenant: string | null } | { ok: false; reason: string };

/**
 * The event's tenant. A source with a tenant: that one (an X-Tenant-ID naming another is refused).
 * A source without tenant but with allowed_tenants: X-Tenant-ID is required and must be listed.
 * Otherwise no tenant (X-Tenant-ID is kept with the headers only).
 */
export function resolveTenant(source: Pick<SourceRow, "tenant" | "allowed_tenants">, headers: Record<string, string>): TenantVerdict {
  const given = headers["x-tenant-id"]?.trim();
  if (source.tenant !== null) {
    if (given !== undefined && given !== "" && given !== source.tenant) return { ok: false, reason: "X-Tenant-ID names another tenant than this source's" };
    return { ok: true, tenant: source.tenant };
  }
  if (source.allowed_tenants !== null) {
    if (given === undefined || given === "") return { ok: false, reason: "missing X-Tenant-ID (this source takes the tenant from it)" };
    if (!source.allowed_tenants.includes(given)) return { ok: false, reason: "X-Tenant-ID is not one of this source's allowed tenants" };
    return { ok: true, tenant: given };
  }
  return { ok: true, tenant: null };
}
