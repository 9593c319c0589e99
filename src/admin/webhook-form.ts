// The webhook create/edit form: its fields as text (what the page shows), and the raw input the
// form sends, for the same zod schemas the API validates with (webhookCreateSchema,
// webhookPatchSchema). Problems the form itself finds (a header line without a colon, filter
// JSON that does not parse) become errors on their field, like the schema's own.
import { parseExact } from "../delivery/event-json";
import { MASK } from "../delivery/mask";
import { DomainError, type ErrorDetail } from "../errors";
import { describeRetryPolicy, parseRetrySchedule, retryPolicySchema, type RetryPolicy } from "../model/retry-policy";
import { PAYLOAD_PRESETS, type PayloadSpec } from "../model/payload";
import type { WebhookView } from "../model/webhook";
import { formatDuration } from "../util/duration";
import { field, fields, type Form } from "./forms";

/** The form's fields as text, as the page shows them. */
export interface WebhookFormValues {
  name: string;
  description: string;
  url: string;
  method: string;
  auth_type: string;
  auth_username: string;
  auth_header_name: string;
  headers: string;
  /** The headers text as first shown (edit): unchanged, the headers are left as they are. */
  headers_was: string;
  secret_headers: string;
  events: string[];
  events_text: string;
  filter: string;
  signature_scheme: string;
  signature_header: string;
  retry_schedule: string;
  retry_max_attempts: string;
  timeout_ms: string;
  max_in_flight: string;
  rate_limit_per_s: string;
  tenant: string;
  is_active: boolean;
  /** A preset's name, or "template" (then payload_template holds the JSONata). */
  payload_preset: string;
  payload_template: string;
}

/** The payload field's choices: the presets, then a template of your own. */
export const PAYLOAD_CHOICES = [...PAYLOAD_PRESETS, "template"] as const;

/** "5s,5m,30m": a schedule policy's delays as the form (and the CLI's --retry-schedule) writes them. */
export function scheduleText(policy: RetryPolicy): string {
  if (policy.strategy !== "schedule") return policy.strategy;
  return policy.delays_ms.map((ms) => formatDuration(ms)).join(",");
}

function headersText(headers: Record<string, string>): string {
  return Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join("\n");
}

export function blankValues(): WebhookFormValues {
  return {
    name: "",
    description: "",
    url: "",
    method: "POST",
    auth_type: "none",
    auth_username: "",
    auth_header_name: "",
    headers: "",
    headers_was: "",
    secret_headers: "",
    events: [],
    events_text: "*",
    filter: "",
    signature_scheme: "standard",
    signature_header: "",
    retry_schedule: "5s,5m,30m,2h,5h,10h,10h",
    retry_max_attempts: "8",
    timeout_ms: "15000",
    max_in_flight: "10",
    rate_limit_per_s: "",
    tenant: "",
    is_active: true,
    payload_preset: "standard",
    payload_template: "",
  };
}

/** The form filled with a webhook's settings (secrets are never put back into a page). */
export function valuesOf(w: WebhookView): WebhookFormValues {
  const policy = retryPolicySchema.safeParse(w.retry);
  const headers = headersText(w.headers);
  return {
    name: w.name ?? "",
    description: w.description ?? "",
    url: w.url,
    method: w.method,
    auth_type: w.auth.type,
    auth_username: w.auth.type === "basic" ? w.auth.username : "",
    auth_header_name: w.auth.type === "header" ? w.auth.name : "",
    headers,
    headers_was: headers,
    secret_headers: w.secret_headers.join(", "),
    events: [],
    events_text: w.events.join("\n"),
    filter: w.filter === null ? "" : JSON.stringify(w.filter, null, 2),
    signature_scheme: w.signature_scheme,
    signature_header: w.signature_header ?? "",
    retry_schedule: policy.success ? scheduleText(policy.data) : "",
    retry_max_attempts: policy.success ? String(policy.data.max_attempts) : "",
    timeout_ms: String(w.timeout_ms),
    max_in_flight: String(w.max_in_flight),
    rate_limit_per_s: w.rate_limit_per_s === null ? "" : String(w.rate_limit_per_s),
    tenant: w.tenant ?? "",
    is_active: w.is_active,
    payload_preset: "template" in w.payload ? "template" : w.payload.preset,
    payload_template: "template" in w.payload ? w.payload.template : "",
  };
}

/** What the form holds, as text again (to show it back with its errors). */
export function valuesFromForm(form: Form): WebhookFormValues {
  const text = (name: string) => form.get(name)?.[0] ?? "";
  return {
    name: text("name"),
    description: text("description"),
    url: text("url"),
    method: text("method") || "POST",
    auth_type: text("auth_type") || "none",
    auth_username: text("auth_username"),
    auth_header_name: text("auth_header_name"),
    headers: text("headers"),
    headers_was: text("headers_was"),
    secret_headers: text("secret_headers"),
    events: fields(form, "events"),
    events_text: text("events_text"),
    filter: text("filter"),
    signature_scheme: text("signature_scheme") || "standard",
    signature_header: text("signature_header"),
    retry_schedule: text("retry_schedule"),
    retry_max_attempts: text("retry_max_attempts"),
    timeout_ms: text("timeout_ms"),
    max_in_flight: text("max_in_flight"),
    rate_limit_per_s: text("rate_limit_per_s"),
    tenant: text("tenant"),
    is_active: field(form, "is_active") !== undefined,
    payload_preset: text("payload_preset") || "standard",
    payload_template: text("payload_template"),
  };
}

class FormProblems {
  readonly details: ErrorDetail[] = [];
  add(path: string, message: string): void {
    this.details.push({ path, message });
  }
  throwIfAny(): void {
    if (this.details.length > 0) {
      const first = this.details[0];
      throw new DomainError("invalid_input", first ? `${first.path}: ${first.message}` : "invalid form", this.details);
    }
  }
}

function numberOf(text: string, path: string, problems: FormProblems): number | undefined {
  const t = text.trim();
  if (t === "") return undefined;
  const n = Number(t);
  if (!Number.isFinite(n)) {
    problems.add(path, `expected a number, got ${JSON.stringify(t)}`);
    return undefined;
  }
  return n;
}

/** The retry policy the two retry fields describe, or a problem on retry_schedule. */
export function retryFromForm(schedule: string, maxAttempts: string, problems?: FormProblems): RetryPolicy | undefined {
  const p = problems ?? new FormProblems();
  const max = numberOf(maxAttempts, "retry_max_attempts", p);
  if (schedule.trim() === "") return undefined;
  try {
    return parseRetrySchedule(schedule, max);
  } catch (e) {
    p.add("retry_schedule", e instanceof Error ? e.message : String(e));
    return undefined;
  }
}

/** "8 attempts: now, then after 5s, …", or the problem with the retry fields. */
export function retryPreview(schedule: string, maxAttempts: string): { text: string; ok: boolean } {
  const problems = new FormProblems();
  const policy = retryFromForm(schedule, maxAttempts, problems);
  if (problems.details[0]) return { text: problems.details[0].message, ok: false };
  if (!policy) return { text: "the default schedule: 8 attempts: now, then after 5s, 5m, 30m, 2h, 5h, 10h, 10h; gives up after about 1d 3h", ok: true };
  const total = totalMs(policy);
  return { text: `${describeRetryPolicy(policy)}; gives up after about ${roughly(total)}`, ok: true };
}

/** "1d 4h", "1h 5m", "35s": the two largest units, for a span a person reads. */
export function roughly(ms: number): string {
  const units = [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const;
  const parts: string[] = [];
  let rest = Math.round(ms / 1000) * 1000;
  for (const [unit, size] of units) {
    if (rest >= size || (parts.length > 0 && parts.length < 2)) {
      const n = Math.floor(rest / size);
      if (n > 0) parts.push(`${n}${unit}`);
      rest -= n * size;
    }
    if (parts.length === 2) break;
  }
  return parts.length === 0 ? "0s" : parts.join(" ");
}

function totalMs(policy: RetryPolicy): number {
  let ms = 0;
  for (let made = 1; made < policy.max_attempts; made++) {
    if (policy.strategy === "schedule") ms += policy.delays_ms[Math.min(made, policy.delays_ms.length) - 1] ?? 0;
    else if (policy.strategy === "linear") ms += Math.min(policy.cap_ms, policy.base_ms + policy.step_ms * (made - 1));
    else ms += Math.min(policy.cap_ms, policy.base_ms * policy.factor ** (made - 1));
  }
  return ms;
}

/** The event types and patterns the form picks (checkboxes and the free-text field), once each. */
export function eventsOf(v: WebhookFormValues): string[] {
  return [...new Set([...v.events, ...v.events_text.split(/[\s,]+/).filter((e) => e !== "")])];
}

/** The payload the form describes, unchecked (the schema checks it): a preset or a template. */
export function payloadOfValues(v: WebhookFormValues): PayloadSpec | Record<string, unknown> {
  return v.payload_preset === "template" ? { template: v.payload_template } : { preset: v.payload_preset };
}

function headersFromText(text: string, problems: FormProblems): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) {
      problems.add("headers", `line ${i + 1}: expected Name: value, got ${JSON.stringify(line.slice(0, 80))}`);
      continue;
    }
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (value === MASK) problems.add("headers", `${name}: its value is hidden; type the value again, or leave the headers unchanged`);
    out[name] = value;
  }
  return out;
}

/**
 * The raw input of a create (`editing` null) or a patch (`editing`: the webhook as it is): only
 * what the form changes goes into a patch, so secrets left blank are kept.
 */
export function inputFromForm(form: Form, editing: WebhookView | null, isAdminKey: boolean): Record<string, unknown> {
  const v = valuesFromForm(form);
  const problems = new FormProblems();
  const raw: Record<string, unknown> = {};
  const optionalText = (name: "name" | "description") => {
    const t = v[name].trim();
    if (t !== "") raw[name] = t;
    else if (editing) raw[name] = null;
  };
  optionalText("name");
  optionalText("description");
  raw.url = v.url.trim();
  raw.method = v.method;

  // Auth: a secret left blank on edit keeps the current one when the type is unchanged.
  const token = form.get("auth_token")?.[0] ?? "";
  const password = form.get("auth_password")?.[0] ?? "";
  const headerValue = form.get("auth_header_value")?.[0] ?? "";
  const sameType = editing !== null && editing.auth.type === v.auth_type;
  switch (v.auth_type) {
    case "none":
      if (!sameType) raw.auth = { type: "none" };
      break;
    case "bearer":
      if (token !== "" || !sameType) raw.auth = { type: "bearer", token };
      break;
    case "basic":
      if (password !== "" || !sameType || (editing?.auth.type === "basic" && editing.auth.username !== v.auth_username.trim())) {
        if (sameType && password === "") problems.add("auth_password", "type the password again to change the username");
        raw.auth = { type: "basic", username: v.auth_username.trim(), password };
      }
      break;
    case "header":
      if (headerValue !== "" || !sameType || (editing?.auth.type === "header" && editing.auth.name !== v.auth_header_name.trim())) {
        if (sameType && headerValue === "") problems.add("auth_header_value", "type the header value again to change the header name");
        raw.auth = { type: "header", name: v.auth_header_name.trim(), value: headerValue };
      }
      break;
    default:
      raw.auth = { type: v.auth_type };
  }

  if (!editing || v.headers !== v.headers_was) raw.headers = headersFromText(v.headers, problems);
  const secretHeaders = v.secret_headers
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (!editing || secretHeaders.join(",") !== editing.secret_headers.join(",")) raw.secret_headers = secretHeaders;

  raw.events = eventsOf(v);
  const payload = payloadOfValues(v);
  if (!editing || JSON.stringify(payload) !== JSON.stringify(editing.payload)) raw.payload = payload;

  const filterText = v.filter.trim();
  if (filterText === "") {
    if (editing) raw.filter = null;
  } else {
    try {
      raw.filter = parseExact(filterText).value;
    } catch (e) {
      problems.add("filter", `invalid JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  const header = v.signature_header.trim();
  raw.signature = { scheme: v.signature_scheme, ...(v.signature_scheme === "sha256" && header !== "" ? { header } : {}) };

  const retry = retryFromForm(v.retry_schedule, v.retry_max_attempts, problems);
  if (retry) raw.retry = retry;
  const timeout = numberOf(v.timeout_ms, "timeout_ms", problems);
  if (timeout !== undefined) raw.timeout_ms = timeout;
  const inFlight = numberOf(v.max_in_flight, "max_in_flight", problems);
  if (inFlight !== undefined) raw.max_in_flight = inFlight;
  const rate = numberOf(v.rate_limit_per_s, "rate_limit_per_s", problems);
  if (rate !== undefined) raw.rate_limit_per_s = rate;
  else if (editing) raw.rate_limit_per_s = null;

  if (isAdminKey) {
    const t = v.tenant.trim();
    if (t !== "") raw.tenant = t;
    else if (editing) raw.tenant = null;
  }
  if (!editing) raw.is_active = v.is_active;
  problems.throwIfAny();
  return raw;
}
