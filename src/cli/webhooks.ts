// `pg-webhooks webhooks …`: create, inspect, change, test and delete webhooks. Flags map
// onto the HTTP API's fields and go through the same zod schemas and service functions.
import { readFileSync } from "node:fs";
import { InvalidArgumentError, type Command } from "commander";
import { isSecretHeader } from "../delivery/mask";
import type { Config } from "../config";
import { DomainError } from "../errors";
import { BIG_NUMBERS, HTTP_METHODS, SIGNATURE_SCHEMES, type BigNumbers, type HttpMethod, type SignatureScheme } from "../model/enums";
import { ADMIN } from "../services/scope";
import type * as TestSendService from "../services/test-send";
import { DEFAULT_MAX_IN_FLIGHT, MAX_BREAKER_THRESHOLD, MAX_DISABLE_AFTER_S, MAX_IN_FLIGHT, verificationSnippet, type WebhookView } from "../model/webhook";
import { MAX_RATE_LIMIT_PER_S, MIN_RATE_LIMIT_PER_S } from "../model/rate-limit";
import { PAYLOAD_PRESETS, type PayloadPreset } from "../model/payload";
import type { PreviewItem } from "../services/preview";
import { formatDuration, parseDuration } from "../util/duration";
import type { Cli } from "./context";
import {
  collectHeaders,
  common,
  durationMs,
  integer,
  jsonObject,
  jsonValue,
  list,
  oneOf,
  uuid,
  withFlagNames,
  type CommonOptions,
} from "./options";
import { renderFields, type Column } from "./output";

// The services and the model's zod schemas (and the SSRF guard) load when an action runs.
const service = () => import("../services/webhooks.js");
const model = () => import("../model/webhook.js");

/** API field → the flag that sets it, for error messages. */
const FLAGS: Record<string, string> = {
  url: "--url",
  events: "--events",
  method: "--method",
  auth: "--auth-bearer/--auth-basic/--auth-header",
  headers: "--header/--secret-header",
  secret_headers: "--secret-header",
  filter: "--filter",
  signature: "--signature/--signature-header",
  secret: "--secret",
  retry: "--retry-schedule/--max-attempts",
  timeout_ms: "--timeout",
  max_in_flight: "--max-in-flight",
  rate_limit_per_s: "--rate-limit",
  disable_after_s: "--disable-after",
  breaker_threshold: "--breaker-threshold",
  big_numbers: "--big-numbers",
  payload: "--payload-preset/--payload-template",
  iso_timestamp_header: "--iso-timestamp-header",
  name: "--name",
  description: "--description",
  tenant: "--tenant",
  is_active: "--disabled",
};

/** FLAGS, with payload named by the flag that set it. */
function flagsFor(opts: FieldOptions): Record<string, string> {
  const payload = opts.payloadTemplate !== undefined ? "--payload-template" : opts.payloadPreset !== undefined ? "--payload-preset" : FLAGS.payload;
  return { ...FLAGS, payload: payload ?? "--payload-preset/--payload-template" };
}

interface FieldOptions extends CommonOptions {
  url?: string;
  events?: string[];
  name?: string;
  description?: string;
  tenant?: string;
  method?: HttpMethod;
  authBearer?: string;
  authBasic?: string;
  authHeader?: [string, string];
  auth?: false;
  header?: [string, string][];
  secretHeader?: [string, string][];
  filter?: Record<string, unknown> | false;
  signature?: SignatureScheme;
  signatureHeader?: string;
  secret?: string;
  maxAttempts?: number;
  retrySchedule?: string;
  timeout?: number;
  maxInFlight?: number;
  /** false: --no-rate-limit */
  rateLimit?: number | false;
  /** Seconds; false: --no-disable-after */
  disableAfter?: number | false;
  /** "default": back to the dispatcher's (a parser returning null would read as no value) */
  breakerThreshold?: number | "default";
  bigNumbers?: BigNumbers;
  payloadPreset?: PayloadPreset;
  /** A file holding the JSONata template; - reads standard input. */
  payloadTemplate?: string;
  isoTimestampHeader?: boolean;
  disabled?: boolean;
}

/** "5d", "12h", "90m", "3600s" or plain seconds ("3600") → whole seconds, 1s to 365d. */
function disableAfterSeconds(text: string): number {
  const t = text.trim();
  let ms: number;
  try {
    ms = /^\d+$/.test(t) ? Number(t) * 1000 : parseDuration(t);
  } catch {
    ms = Number.NaN;
  }
  if (!Number.isSafeInteger(ms) || ms % 1000 !== 0 || ms < 1000 || ms > MAX_DISABLE_AFTER_S * 1000) {
    throw new InvalidArgumentError(
      `expected a duration from 1s to 365d in whole seconds, such as 5d, 12h, 90m, 3600s or 3600, got ${JSON.stringify(text)}`,
    );
  }
  return ms / 1000;
}

/** Requests per second: 0.001 (one every 1000 s) to 10000, fractions allowed. */
function ratePerSecond(text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < MIN_RATE_LIMIT_PER_S || n > MAX_RATE_LIMIT_PER_S) {
    throw new InvalidArgumentError(
      `expected requests per second from ${MIN_RATE_LIMIT_PER_S} (one every 1000 s) to ${MAX_RATE_LIMIT_PER_S}, such as 5 or 0.5, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

/** "off" or 0 (never open the circuit), "default" or consecutive failures from 1 to 1000. */
function breakerThreshold(text: string): number | "default" {
  const t = text.toLowerCase();
  if (t === "off" || t === "0") return 0;
  if (t === "default") return "default";
  if (/^[1-9]\d{0,3}$/.test(t) && Number(t) <= MAX_BREAKER_THRESHOLD) return Number(t);
  throw new InvalidArgumentError(
    `expected consecutive failures from 1 to ${MAX_BREAKER_THRESHOLD}, off (never open the circuit) or default (WEBHOOKS_BREAKER_THRESHOLD), got ${JSON.stringify(text)}`,
  );
}

function addFieldOptions(cmd: Command, creating: boolean): Command {
  // update changes only what it is given: its help names no defaults.
  const dflt = (value: string) => (creating ? ` (default${value.startsWith(":") ? "" : " "}${value})` : "");
  if (creating) {
    cmd
      .requiredOption("--url <url>", "where to send events (https://…)")
      .requiredOption("--events <types>", "comma-separated event types: exact, clients.* or *", list);
  } else {
    cmd.option("--url <url>", "where to send events").option("--events <types>", "replace the event types", list);
  }
  cmd
    .option("--name <name>", "a label")
    .option("--description <text>", "what the webhook is for")
    .option("--method <method>", `HTTP method: ${HTTP_METHODS.join(", ")}${dflt("POST")}`, oneOf(HTTP_METHODS))
    .option("--auth-bearer <token>", "send Authorization: Bearer <token>")
    .option("--auth-basic <user:pass>", "send HTTP basic auth")
    .option("--auth-header <'Name: value'>", "send an API-key header, e.g. 'X-API-Key: abc'", (v) => collectHeaders(v)[0] as [string, string])
    .option("--header <'Name: value'>", `an extra static header (repeatable)${creating ? "" : "; replaces the static headers"}`, collectHeaders)
    .option(
      "--secret-header <'Name: value'>",
      "a static header whose value is a secret: sent as given, shown as **** (repeatable; names like X-Api-Key, *token*, *secret* " +
        `are masked anyway)${creating ? "" : "; with --header, replaces the static headers"}`,
      collectHeaders,
    )
    .option("--filter <json>", 'only events matching this filter, e.g. \'{"data.stage": {"$eq": "won"}}\'', jsonObject)
    .option("--signature <scheme>", `standard (Standard Webhooks${creating ? ", default" : ""}), ed25519 (Standard Webhooks v1a: receivers verify with a public key), hex (X-Webhook-Signature) or sha256 (sha256=<hex>)`, oneOf(SIGNATURE_SCHEMES))
    .option("--signature-header <name>", `with --signature sha256: the header carrying it${dflt("X-Hub-Signature-256")}`)
    .option(
      "--secret <secret>",
      creating
        ? "signing secret (default: a new whsec_… secret)"
        : "replace the signing secret at once; the old one stops working now (rotate-secret keeps it for a grace period)",
    )
    .option("--max-attempts <n>", "attempts before a delivery fails (1-20)", integer(1, 20))
    .option("--retry-schedule <schedule>", "exponential, linear, or delays such as 30s,5m,1h")
    .option("--timeout <duration>", `per-request timeout, e.g. 15s${dflt("15s")}`, durationMs)
    .option("--max-in-flight <n>", `requests to it in flight at once, all dispatchers together (1-${MAX_IN_FLIGHT}${creating ? `, default ${DEFAULT_MAX_IN_FLIGHT}` : ""})`, integer(1, MAX_IN_FLIGHT))
    .option("--rate-limit <per-second>", `at most this many requests per second, all dispatchers together, 0.001-10000, e.g. 5 or 0.5${dflt(": no limit")}`, ratePerSecond)
    .option(
      "--disable-after <duration>",
      `disable it once every attempt has failed this long: 5d, 12h, 90m, 3600s or plain seconds${dflt(": WEBHOOKS_DISABLE_AFTER_S, 5d")}`,
      disableAfterSeconds,
    )
    .option(
      "--breaker-threshold <n|off|default>",
      "consecutive failures that open its circuit (deliveries then wait for a probe, whatever the retry schedule says); " +
        `off: never, so the schedule keeps its timing${dflt(": WEBHOOKS_BREAKER_THRESHOLD, 10")}`,
      breakerThreshold,
    )
    .option(
      "--big-numbers <how>",
      `numbers a double would change (bigint beyond 2^53, over 15 digits): string (${creating ? "default; " : ""}exact digits in a JSON string) ` +
        "or number (exact digits as a JSON number, for parsers that keep them; breaks JSON.stringify-based signature checks)",
      oneOf(BIG_NUMBERS),
    )
    .option(
      "--payload-preset <name>",
      `the body: ${PAYLOAD_PRESETS.join(", ")}${dflt("standard")}; classic has event, organization and metadata, thin only the row's key`,
      oneOf(PAYLOAD_PRESETS),
    )
    .option("--payload-template <file>", "the body built by the JSONata expression in this file (- reads standard input)")
    .option("--iso-timestamp-header", "also send X-Webhook-Timestamp (ISO 8601)");
  if (creating) {
    cmd.option("--disabled", "create it inactive (enable later with webhooks enable)");
    cmd.option("--tenant <tenant>", "the tenant whose events it receives (default: every tenant)");
  } else {
    cmd
      .option("--no-auth", "remove authentication")
      .option("--no-filter", "remove the filter")
      .option("--no-rate-limit", "remove the rate limit")
      .option("--no-disable-after", "use the dispatcher default again (WEBHOOKS_DISABLE_AFTER_S)")
      .option("--no-iso-timestamp-header", "stop sending X-Webhook-Timestamp");
  }
  return cmd;
}

function usage(message: string): DomainError {
  return new DomainError("invalid_input", message);
}

/** Turns flags into the API's input shape; only the flags given appear in it. */
async function fieldsFromOptions(opts: FieldOptions, current?: WebhookView): Promise<Record<string, unknown>> {
  const raw: Record<string, unknown> = {};
  if (opts.url !== undefined) raw.url = opts.url;
  if (opts.events !== undefined) raw.events = opts.events;
  if (opts.name !== undefined) raw.name = opts.name;
  if (opts.description !== undefined) raw.description = opts.description;
  if (opts.tenant !== undefined) raw.tenant = opts.tenant;
  if (opts.method !== undefined) raw.method = opts.method;

  const auths = [opts.authBearer, opts.authBasic, opts.authHeader].filter((a) => a !== undefined);
  if (auths.length > 1) throw usage("--auth-bearer, --auth-basic and --auth-header: choose one");
  if (opts.authBearer !== undefined) raw.auth = { type: "bearer", token: opts.authBearer };
  if (opts.authBasic !== undefined) {
    const i = opts.authBasic.indexOf(":");
    if (i < 1) throw usage(`--auth-basic: expected user:password, got ${JSON.stringify(opts.authBasic)}`);
    raw.auth = { type: "basic", username: opts.authBasic.slice(0, i), password: opts.authBasic.slice(i + 1) };
  }
  if (opts.authHeader !== undefined) raw.auth = { type: "header", name: opts.authHeader[0], value: opts.authHeader[1] };
  if (opts.auth === false) {
    if (auths.length > 0) throw usage("--no-auth cannot be combined with another --auth-* flag");
    raw.auth = { type: "none" };
  }

  if (opts.header !== undefined || opts.secretHeader !== undefined) {
    raw.headers = Object.fromEntries([...(opts.header ?? []), ...(opts.secretHeader ?? [])]);
    // --header alone leaves the marks as they are: a header once marked secret stays masked.
    if (opts.secretHeader !== undefined) raw.secret_headers = opts.secretHeader.map(([name]) => name);
  }
  if (opts.filter !== undefined) raw.filter = opts.filter === false ? null : opts.filter;
  if (opts.signature !== undefined || opts.signatureHeader !== undefined) {
    const scheme = opts.signature ?? current?.signature_scheme ?? "standard";
    raw.signature = { scheme, header: opts.signatureHeader };
  }
  if (opts.secret !== undefined) raw.secret = opts.secret;
  // Its bounds are the schema's (timeout_ms), named --timeout by withFlagNames.
  if (opts.timeout !== undefined) raw.timeout_ms = opts.timeout;
  if (opts.maxInFlight !== undefined) raw.max_in_flight = opts.maxInFlight;
  if (opts.rateLimit !== undefined) raw.rate_limit_per_s = opts.rateLimit === false ? null : opts.rateLimit;
  if (opts.disableAfter !== undefined) raw.disable_after_s = opts.disableAfter === false ? null : opts.disableAfter;
  if (opts.breakerThreshold !== undefined) raw.breaker_threshold = opts.breakerThreshold === "default" ? null : opts.breakerThreshold;
  if (opts.bigNumbers !== undefined) raw.big_numbers = opts.bigNumbers;
  if (opts.payloadPreset !== undefined && opts.payloadTemplate !== undefined) throw usage("--payload-preset and --payload-template: choose one");
  if (opts.payloadPreset !== undefined) raw.payload = { preset: opts.payloadPreset };
  if (opts.payloadTemplate !== undefined) raw.payload = { template: readTemplate(opts.payloadTemplate) };
  if (opts.isoTimestampHeader !== undefined) raw.iso_timestamp_header = opts.isoTimestampHeader;
  if (opts.disabled) raw.is_active = false;

  if (opts.retrySchedule !== undefined) {
    const { parseRetrySchedule } = await import("../model/retry-policy.js");
    try {
      raw.retry = parseRetrySchedule(opts.retrySchedule, opts.maxAttempts);
    } catch (e) {
      throw usage(`--retry-schedule: ${e instanceof Error ? e.message : String(e)}`);
    }
  } else if (opts.maxAttempts !== undefined) {
    // Keep the current strategy and delays; change only how many attempts it makes.
    const base = current?.retry && typeof current.retry === "object" ? (current.retry as Record<string, unknown>) : {};
    raw.retry = { ...base, max_attempts: opts.maxAttempts };
  }
  return raw;
}

/** The template file's text (- is standard input). */
function readTemplate(file: string): string {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    throw usage(`--payload-template: cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function describePayload(p: WebhookView["payload"]): string {
  if ("preset" in p) return p.preset;
  const firstLine = p.template.split("\n")[0] ?? "";
  return `template (${p.template.length} characters): ${firstLine.length > 60 ? `${firstLine.slice(0, 59)}…` : firstLine}`;
}

/** Preview items as lines: each event's body, or why it cannot be rendered. */
function previewLines(items: PreviewItem[]): string {
  return items
    .map((i) => `${i.sample ? "sample " : ""}${i.type}${i.event_id ? ` (${i.event_id})` : ""}:\n  ${i.error === null ? i.body : `error: ${i.error}`}`)
    .join("\n");
}

function describeAuth(auth: unknown): string {
  const a = (auth ?? {}) as { type?: string; name?: string; username?: string };
  switch (a.type) {
    case "bearer":
      return "bearer token";
    case "basic":
      return `basic (${a.username ?? "?"})`;
    case "header":
      return `header ${a.name ?? "?"}`;
    default:
      return "none";
  }
}

/** The endpoint's health as key/value lines; the probe time only while the circuit is not closed. */
function healthFields(h: WebhookView["health"]): [string, unknown][] {
  return [
    ["circuit", h.circuit],
    ["failures in a row", h.consecutive_failures],
    ["failing since", h.failing_since],
    ["last success", h.last_success_at],
    ["last failure", h.last_failure_at],
    ...(h.circuit === "closed" ? [] : [["next probe", h.next_probe_at] as [string, unknown]]),
  ];
}

/** `defaults`: the dispatcher's, shown when the webhook has no disable_after_s or breaker_threshold of its own. */
function webhookFields(
  w: WebhookView,
  defaults: Pick<Config, "WEBHOOKS_DISABLE_AFTER_S" | "WEBHOOKS_BREAKER_THRESHOLD">,
): [string, unknown][] {
  const defaultDisableAfterS = defaults.WEBHOOKS_DISABLE_AFTER_S;
  return [
    ["id", w.id],
    ["name", w.name],
    ["url", `${w.method} ${w.url}`],
    ["events", w.events],
    ["active", w.is_active ? "yes" : `no${w.disabled_reason ? ` (${w.disabled_reason})` : ""}`],
    ["tenant", w.tenant ?? "(all tenants)"],
    ["filter", w.filter],
    ["auth", describeAuth(w.auth)],
    ["headers", Object.keys(w.headers).map((h) => (isSecretHeader(h, w.secret_headers) ? `${h} (secret)` : h)).join(", ") || null],
    ["signature", `${w.signature_scheme}${w.signature_header ? ` in ${w.signature_header}` : ""}`],
    ...(w.public_key === null ? [] : [["public key", w.public_key] as [string, unknown]]),
    ...(w.previous_public_key === null ? [] : [["old public key", w.previous_public_key] as [string, unknown]]),
    ...(w.secret_rotation === null ? [] : [["secret rotation", w.secret_rotation] as [string, unknown]]),
    ["retry", w.retry],
    ["timeout", `${w.timeout_ms}ms`],
    ["max in flight", w.max_in_flight],
    ["rate limit", w.rate_limit_per_s === null ? "none" : `${w.rate_limit_per_s}/s`],
    ["big numbers", w.big_numbers === "string" ? "as strings of their digits" : "as JSON numbers"],
    ["payload", describePayload(w.payload)],
    ...(w.iso_timestamp_header ? [["x-webhook-timestamp", "sent (ISO 8601)"] as [string, unknown]] : []),
    [
      "disable after",
      w.disable_after_s === null
        ? `${formatDuration(defaultDisableAfterS * 1000)} (default)`
        : formatDuration(w.disable_after_s * 1000),
    ],
    [
      "breaker",
      w.breaker_threshold === null
        ? `opens after ${defaults.WEBHOOKS_BREAKER_THRESHOLD} failures in a row (default)`
        : w.breaker_threshold === 0
          ? "off (never opens)"
          : `opens after ${w.breaker_threshold} failures in a row`,
    ],
    ...healthFields(w.health),
    ["created", w.created_at],
    ["updated", w.updated_at],
  ];
}

const listColumns: Column<WebhookView>[] = [
  { header: "id", value: (w) => w.id },
  { header: "name", value: (w) => w.name, max: 24 },
  { header: "url", value: (w) => w.url, max: 48 },
  { header: "events", value: (w) => w.events, max: 32 },
  { header: "active", value: (w) => (w.is_active ? "yes" : "no") },
  { header: "circuit", value: (w) => w.health.circuit },
  { header: "tenant", value: (w) => w.tenant },
  { header: "created", value: (w) => w.created_at },
];

export function registerWebhooks(program: Command, cli: Cli): void {
  const webhooks = program.command("webhooks").description("manage webhooks (subscriptions): where events go and how");
  webhooks.addHelpText("after", "\nExample:\n  $ pg-webhooks webhooks create --url https://hooks.zapier.com/… --events 'clients.*,notes.created'\n");

  common(
    addFieldOptions(webhooks.command("create").description("create a webhook and print it with its secret"), true),
    "pg-webhooks webhooks create --url https://example.com/hook --events 'clients.*,notes.created'",
    `pg-webhooks webhooks create --url https://api.example.com/in --events deals.updated --filter '{"data.stage": {"$eq": "won"}}' --auth-header 'X-API-Key: k3y' --retry-schedule 30s,5m,1h --timeout 10s`,
  ).action((opts: FieldOptions) =>
    cli.run(opts, async ({ conn, out, config }) => {
      const [{ createWebhook }, { parseWebhookInput, webhookCreateSchema }] = await Promise.all([service(), model()]);
      let result: Awaited<ReturnType<typeof createWebhook>>;
      try {
        const input = parseWebhookInput(webhookCreateSchema, await fieldsFromOptions(opts));
        result = await createWebhook(conn, ADMIN, input, { allowPrivateTargets: config.WEBHOOKS_ALLOW_PRIVATE_TARGETS });
      } catch (e) {
        throw withFlagNames(e, flagsFor(opts));
      }
      const { webhook, secret, preview } = result;
      out.result({ ...webhook, secret, preview }, () => {
        if (webhook.public_key !== null) {
          // ed25519: receivers need only the public key; the private signing key stays with pg-webhooks.
          out.say(renderFields(webhookFields(webhook, config)));
          out.say(`\nPreview of the body:\n${previewLines(preview)}`);
          out.say(`\nVerifying on the receiver:\n${verificationSnippet(webhook.public_key)}`);
          out.notice("Give receivers the public key; the private signing key stays here (webhooks show --show-secret prints it).");
          return;
        }
        out.say(renderFields([...webhookFields(webhook, config), ["secret", secret]]));
        out.say(`\nPreview of the body:\n${previewLines(preview)}`);
        out.notice("Keep the secret: receivers verify signatures with it (webhooks show --show-secret prints it again).");
      });
    }),
  );

  common(
    webhooks
      .command("list")
      .description("list webhooks, oldest first")
      .option("--active", "only active webhooks")
      .option("--inactive", "only inactive (disabled) webhooks")
      .option("--event <type>", "only webhooks that receive this event type")
      .option("--limit <n>", "at most this many (1-1000)", integer(1, 1000), 100)
      .option("--cursor <cursor>", "continue from a previous page"),
    "pg-webhooks webhooks list --event clients.created",
  ).action((opts: CommonOptions & { active?: boolean; inactive?: boolean; event?: string; limit: number; cursor?: string }) =>
    cli.run(opts, async ({ conn, out }) => {
      if (opts.active && opts.inactive) throw usage("--active and --inactive: choose one");
      const { listWebhooks } = await service();
      const page = await listWebhooks(conn, ADMIN, {
        is_active: opts.active ? true : opts.inactive ? false : undefined,
        event: opts.event,
        limit: opts.limit,
        cursor: opts.cursor,
      });
      out.list(page.items, listColumns, { empty: "No webhooks. Create one with: pg-webhooks webhooks create --url URL --events TYPES" });
      if (page.next_cursor) out.notice(`More webhooks: add --cursor ${page.next_cursor}`);
    }),
  );

  common(
    webhooks
      .command("show")
      .description("show one webhook (without its secret unless asked)")
      .argument("<id>", "webhook id", uuid)
      .option("--show-secret", "also print the signing secret"),
    "pg-webhooks webhooks show 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f",
  ).action((id: string, opts: CommonOptions & { showSecret?: boolean }) =>
    cli.run(opts, async ({ conn, out, config }) => {
      const { getWebhook, getWebhookSecret } = await service();
      const w = await getWebhook(conn, ADMIN, id);
      const secret = opts.showSecret ? await getWebhookSecret(conn, ADMIN, id) : undefined;
      out.result(secret === undefined ? w : { ...w, secret }, () =>
        out.say(
          renderFields([
            ...webhookFields(w, config),
            ...(secret === undefined ? [] : [["secret", secret] as [string, unknown]]),
          ]),
        ),
      );
    }),
  );

  common(
    addFieldOptions(
      webhooks.command("update").description("change a webhook; only the flags given change").argument("<id>", "webhook id", uuid),
      false,
    ),
    "pg-webhooks webhooks update 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f --events 'clients.*' --max-attempts 5",
  ).action((id: string, opts: FieldOptions) =>
    cli.run(opts, async ({ conn, out, config }) => {
      const [{ getWebhook, updateWebhook }, { parseWebhookInput, webhookPatchSchema }] = await Promise.all([service(), model()]);
      let w: WebhookView & { preview?: PreviewItem[] };
      try {
        // Flags that change part of a field (attempts of the retry policy, the header of the
        // signature) need the rest of it from the webhook as it is.
        const partial =
          (opts.maxAttempts !== undefined && opts.retrySchedule === undefined) ||
          (opts.signatureHeader !== undefined && opts.signature === undefined);
        const current = partial ? await getWebhook(conn, ADMIN, id) : undefined;
        const raw = await fieldsFromOptions(opts, current);
        if (Object.keys(raw).length === 0) throw usage("nothing to change: give at least one flag such as --url or --events");
        const patch = parseWebhookInput(webhookPatchSchema, raw);
        w = await updateWebhook(conn, ADMIN, id, patch, { allowPrivateTargets: config.WEBHOOKS_ALLOW_PRIVATE_TARGETS });
      } catch (e) {
        throw withFlagNames(e, flagsFor(opts));
      }
      const { preview } = w;
      out.result(w, () => {
        out.say(renderFields(webhookFields(w, config)));
        if (preview !== undefined) out.say(`\nPreview of the body:\n${previewLines(preview)}`);
      });
    }),
  );

  common(
    webhooks
      .command("preview")
      .description("render the webhook's body for recent events of its types (or one event) without sending anything")
      .argument("<id>", "webhook id", uuid)
      .option("--event <id>", "render for this event (its id, the webhook-id header)", uuid),
    "pg-webhooks webhooks preview 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f",
  ).action((id: string, opts: CommonOptions & { event?: string }) =>
    cli.run(opts, async ({ conn, out }) => {
      const { previewWebhook } = await service();
      const items = await previewWebhook(conn, ADMIN, id, { event_id: opts.event });
      out.result({ items }, () => out.say(previewLines(items)));
      if (items.some((i) => i.error !== null)) process.exitCode = 1;
    }),
  );

  for (const [verb, active] of [["enable", true], ["disable", false]] as const) {
    common(
      webhooks
        .command(verb)
        .description(
          active
            ? "start delivering to a webhook again; resets its endpoint health (circuit closed, failure count 0)"
            : "stop sending to a webhook (new events skip it; queued and parked deliveries fail and stay replayable)",
        )
        .argument("<id>", "webhook id", uuid),
      `pg-webhooks webhooks ${verb} 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f`,
    ).action((id: string, opts: CommonOptions) =>
      cli.run(opts, async ({ conn, out }) => {
        const { setWebhookActive } = await service();
        const w = await setWebhookActive(conn, ADMIN, id, active);
        out.result(w, () => out.say(`${active ? "Enabled" : "Disabled"} webhook ${id}.`));
      }),
    );
  }

  common(
    webhooks
      .command("delete")
      .description("delete a webhook; its pending deliveries are cancelled, its history stays until pruned")
      .argument("<id>", "webhook id", uuid),
    "pg-webhooks webhooks delete 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f",
  ).action((id: string, opts: CommonOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      const { deleteWebhook } = await service();
      await deleteWebhook(conn, ADMIN, id);
      out.result({ id, deleted: true }, () => out.say(`Deleted webhook ${id}.`));
    }),
  );

  common(
    webhooks
      .command("test")
      .description("send a signed test event now and print the receiver's answer (exit 1 unless it answers 2xx)")
      .argument("<id>", "webhook id", uuid)
      .option("--event-type <type>", "event type to send (default: a test event type)")
      .option("--data <json>", "the event's data as JSON (numbers kept exactly, 2^53 + 1 too)", (text) => jsonValue(text)),
    "pg-webhooks webhooks test 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f --event-type clients.created --data '{\"id\": 1}'",
  ).action((id: string, opts: CommonOptions & { eventType?: string; data?: unknown }) =>
    cli.run(opts, async ({ core, out }) => {
      // Loaded on use: sending pulls in undici and pino, which other commands never need.
      const { sendTest } = await import("../services/test-send.js");
      const { ctx } = core.sending();
      let r: Awaited<ReturnType<typeof TestSendService.sendTest>>;
      try {
        r = await sendTest(ctx, ADMIN, id, {
          ...(opts.eventType !== undefined ? { event_type: opts.eventType } : {}),
          ...(opts.data !== undefined ? { data: opts.data } : {}),
        });
      } catch (e) {
        throw withFlagNames(e, { event_type: "--event-type", data: "--data" });
      }
      out.result(r, () =>
        out.say(
          renderFields([
            ["result", r.ok ? "delivered" : "failed"],
            ["status code", r.status_code],
            ["duration", `${r.duration_ms}ms`],
            ["error", r.error],
            ["response", r.response_excerpt],
            ["delivery", r.delivery_id],
          ]),
        ),
      );
      if (!r.ok) process.exitCode = 1;
    }),
  );

  common(
    webhooks
      .command("rotate-secret")
      .description(
        "replace the signing secret (ed25519: the key pair); the old one keeps signing until the grace period ends (standard and ed25519: alongside the new one; " +
          "hex and sha256: alone, then the new one takes over at that instant)",
      )
      .argument("<id>", "webhook id", uuid)
      .option("--grace <duration>", "how long the old secret keeps signing, e.g. 24h; 0s: switch now (default 24h)", durationMs)
      .option("--at <time>", "instead of --grace: the instant the old secret stops signing, an ISO timestamp within 30 days, such as 2027-01-04T22:00:00Z"),
    "pg-webhooks webhooks rotate-secret 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f --grace 24h",
    "pg-webhooks webhooks rotate-secret 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f --at \"$(date -u -d +2days +%Y-%m-%dT22:00:00Z)\"",
  ).action((id: string, opts: CommonOptions & { grace?: number; at?: string }) =>
    cli.run(opts, async ({ conn, out }) => {
      const { rotateSecret } = await service();
      let r: Awaited<ReturnType<typeof rotateSecret>>;
      try {
        r = await rotateSecret(conn, ADMIN, id, { grace_ms: opts.grace, switch_at: opts.at });
      } catch (e) {
        throw withFlagNames(e, { grace_ms: "--grace", switch_at: "--at" });
      }
      out.result(r, () => {
        out.say(
          renderFields([
            ["id", r.id],
            ...(r.public_key === null ? [["secret", r.secret] as [string, unknown]] : [["public key", r.public_key] as [string, unknown]]),
            ["old secret signs until", r.previous_secret_expires_at ?? "(no longer)"],
          ]),
        );
        out.notice(`Receivers: ${r.receivers_see}`);
      });
    }),
  );
}
