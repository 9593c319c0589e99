// /admin/webhooks/new and /admin/webhooks/:id/edit: one form for both, validated by the same
// zod schemas as the API, with each error next to its field, and a preview of the real retry
// schedule (computed by model/retry-policy.ts). Works without JavaScript (the preview then shows
// the schedule as saved, or as sent when the form comes back with errors); htmx refreshes it as
// it is typed.
import type { FastifyInstance } from "fastify";
import type { ApiOptions } from "../../api/app";
import { DomainError } from "../../errors";
import type { EventTypeInfo } from "../../model/event-type";
import { HTTP_METHODS, SIGNATURE_SCHEMES } from "../../model/enums";
import { payloadSchema } from "../../model/payload";
import { webhookCreateSchema, webhookPatchSchema, type WebhookView } from "../../model/webhook";
import { parseInput } from "../../model/validation";
import { listEventTypes } from "../../services/event-types";
import { checkPayload, renderPreview, type PreviewItem } from "../../services/preview";
import type { Scope } from "../../services/scope";
import { createWebhook, getWebhook, updateWebhook } from "../../services/webhooks";
import { errorsByField, field, formOf, type Form } from "../forms";
import { adminScope, pageContext, seeOther } from "../http";
import { CsrfField, FieldError, Layout, sendHtml, type PageContext } from "../layout";
import {
  PAYLOAD_CHOICES, blankValues, eventsOf, inputFromForm, payloadOfValues, retryPreview, valuesFromForm, valuesOf, type WebhookFormValues,
} from "../webhook-form";
import { webhookLabel } from "../components";

/** The form field a validation error's path belongs to. */
export function fieldFor(path: string): string {
  const [head, sub] = path.split(".");
  switch (head) {
    case "auth":
      return sub === undefined || sub === "type" ? "auth_type" : `auth_${sub === "name" ? "header_name" : sub === "value" ? "header_value" : sub}`;
    case "signature":
      return sub === "header" ? "signature_header" : "signature_scheme";
    case "retry":
      return "retry_schedule";
    case "events":
      return "events_text";
    case "payload":
      return sub === "template" ? "payload_template" : "payload_preset";
    default:
      return head ?? "";
  }
}

function eventOptions(types: EventTypeInfo[]): { group: string; values: string[] }[] {
  const groups = new Map<string, string[]>();
  for (const t of types) {
    const group = t.source === "table" ? (t.table ?? t.type.split(".")[0] ?? "") : "custom";
    const list = groups.get(group) ?? [];
    if (t.source === "table" && list.length === 0) list.push(`${t.type.split(".").slice(0, -1).join(".")}.*`);
    list.push(t.type);
    groups.set(group, list);
  }
  return [{ group: "everything", values: ["*"] }, ...[...groups].map(([group, values]) => ({ group, values }))];
}

/** A rendered payload preview: the bodies, or why the payload cannot be rendered; null: not asked for yet. */
export type PayloadPreviewState = { items: PreviewItem[] } | { error: string } | null;

interface FormProps {
  ctx: PageContext;
  values: WebhookFormValues;
  errors: Map<string, string>;
  editing: WebhookView | null;
  eventTypes: EventTypeInfo[];
  preview: PayloadPreviewState;
}

/** The payload preview: each body as it would be sent (exact bytes), for recent real events or made-up ones. */
export function PayloadPreview({ state }: { state: PayloadPreviewState }) {
  return (
    <output id="payload-preview" for="payload_preset payload_template" aria-live="polite">
      {state === null ? (
        <span class="hint">Press Preview payload to see the body for recent events of the chosen types (nothing is sent).</span>
      ) : "error" in state ? (
        <span class="error">{state.error}</span>
      ) : (
        state.items.map((item) => (
          <div class="preview-item">
            <div class="hint">
              {item.type} · {item.sample ? "a made-up event (no real one of these types yet)" : `event ${item.event_id ?? ""}`}
            </div>
            {item.error !== null ? <span class="error">{item.error}</span> : <pre>{item.body}</pre>}
          </div>
        ))
      )}
    </output>
  );
}

function Field(props: {
  id: string;
  label: string;
  errors: Map<string, string>;
  hint?: string;
  type?: string;
  value: string;
  required?: boolean;
  autocomplete?: string;
}) {
  const error = props.errors.get(props.id);
  const described = [props.hint ? `${props.id}-hint` : null, error ? `${props.id}-error` : null].filter(Boolean).join(" ");
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        name={props.id}
        type={props.type ?? "text"}
        value={props.value}
        required={props.required}
        autocomplete={props.autocomplete ?? "off"}
        aria-invalid={error ? "true" : undefined}
        aria-describedby={described || undefined}
      />
      {props.hint ? (
        <span class="hint" id={`${props.id}-hint`}>
          {props.hint}
        </span>
      ) : null}
      <FieldError id={`${props.id}-error`} message={error} />
    </div>
  );
}

function TextArea(props: { id: string; label: string; errors: Map<string, string>; hint?: string; value: string; rows?: number }) {
  const error = props.errors.get(props.id);
  const described = [props.hint ? `${props.id}-hint` : null, error ? `${props.id}-error` : null].filter(Boolean).join(" ");
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      <textarea id={props.id} name={props.id} rows={props.rows ?? 3} aria-invalid={error ? "true" : undefined} aria-describedby={described || undefined}>
        {props.value}
      </textarea>
      {props.hint ? (
        <span class="hint" id={`${props.id}-hint`}>
          {props.hint}
        </span>
      ) : null}
      <FieldError id={`${props.id}-error`} message={error} />
    </div>
  );
}

function Select(props: { id: string; label: string; options: readonly string[]; value: string; errors: Map<string, string>; hint?: string }) {
  const error = props.errors.get(props.id);
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      <select id={props.id} name={props.id} aria-invalid={error ? "true" : undefined} aria-describedby={error ? `${props.id}-error` : undefined}>
        {props.options.map((o) => (
          <option value={o} selected={o === props.value}>
            {o}
          </option>
        ))}
      </select>
      {props.hint ? <span class="hint">{props.hint}</span> : null}
      <FieldError id={`${props.id}-error`} message={error} />
    </div>
  );
}

export function RetryPreview({ schedule, maxAttempts }: { schedule: string; maxAttempts: string }) {
  const p = retryPreview(schedule, maxAttempts);
  return (
    <output id="retry-preview" for="retry_schedule retry_max_attempts" aria-live="polite" class={p.ok ? "hint" : "error"}>
      {p.ok ? `Schedule: ${p.text}` : p.text}
    </output>
  );
}

function WebhookForm({ ctx, values: v, errors, editing, eventTypes, preview }: FormProps) {
  const action = editing ? `/admin/webhooks/${editing.id}/edit` : "/admin/webhooks/new";
  const options = eventOptions(eventTypes);
  const known = new Set(options.flatMap((o) => o.values));
  const chosen = new Set([...v.events, ...v.events_text.split(/[\s,]+/).filter((e) => e !== "")]);
  const otherEvents = [...chosen].filter((e) => !known.has(e)).join("\n");
  const secretHint = editing ? "Leave blank to keep the current one." : undefined;
  const general = errors.get("");
  return (
    <form method="post" action={action} novalidate>
      <CsrfField ctx={ctx} />
      {general ? (
        <p class="notice bad" role="alert">
          {general}
        </p>
      ) : errors.size > 0 ? (
        <p class="notice bad" role="alert">
          Some fields need attention: see the messages next to them.
        </p>
      ) : null}
      <fieldset>
        <legend>Endpoint</legend>
        <Field id="name" label="Name" value={v.name} errors={errors} />
        <TextArea id="description" label="Description" value={v.description} errors={errors} rows={2} />
        <Field id="url" label="URL" type="url" value={v.url} errors={errors} required hint="Where events are sent: an http:// or https:// URL." />
        <Select id="method" label="Method" options={HTTP_METHODS} value={v.method} errors={errors} />
        {ctx.session?.tenant === null ? (
          <Field id="tenant" label="Tenant" value={v.tenant} errors={errors} hint="Only this tenant's events; blank: every tenant's." />
        ) : null}
      </fieldset>
      <fieldset>
        <legend>Authentication</legend>
        <Select
          id="auth_type"
          label="Type"
          options={["none", "bearer", "basic", "header"]}
          value={v.auth_type}
          errors={errors}
          hint="Fill in the fields of the type chosen; the others are ignored."
        />
        <Field id="auth_token" label="Bearer token (bearer)" type="password" value="" errors={errors} hint={secretHint} />
        <Field id="auth_username" label="Username (basic)" value={v.auth_username} errors={errors} />
        <Field id="auth_password" label="Password (basic)" type="password" value="" errors={errors} hint={secretHint} />
        <Field id="auth_header_name" label="Header name (header)" value={v.auth_header_name} errors={errors} />
        <Field id="auth_header_value" label="Header value (header)" type="password" value="" errors={errors} hint={secretHint} />
      </fieldset>
      <fieldset>
        <legend>Headers</legend>
        <TextArea id="headers" label="Static headers" value={v.headers} errors={errors} hint="One per line: Name: value. Secret values show as ****." />
        {editing ? <input type="hidden" name="headers_was" value={v.headers_was} /> : null}
        <Field id="secret_headers" label="Secret header names" value={v.secret_headers} errors={errors} hint="Comma-separated: their values are masked everywhere." />
      </fieldset>
      <fieldset>
        <legend>Events</legend>
        {options.map((o) => (
          <div role="group" aria-label={`Events: ${o.group}`}>
            <span class="hint">{o.group}</span>{" "}
            {o.values.map((value, i) => {
              const id = `ev-${o.group}-${i}`.replace(/[^A-Za-z0-9_-]/g, "_");
              return (
                <span class="field row">
                  <input type="checkbox" id={id} name="events" value={value} checked={chosen.has(value)} />
                  <label for={id}>{value}</label>
                </span>
              );
            })}
          </div>
        ))}
        <TextArea
          id="events_text"
          label="Other event types or patterns"
          value={otherEvents}
          errors={errors}
          hint="One per line: clients.created, clients.* or *."
        />
        <TextArea
          id="filter"
          label="Filter (JSON)"
          value={v.filter}
          errors={errors}
          rows={4}
          hint='Only events whose body matches, e.g. {"data.stage": {"$eq": "won"}}. Blank: every event of those types.'
        />
      </fieldset>
      <fieldset>
        <legend>Payload</legend>
        <Select
          id="payload_preset"
          label="Payload"
          options={PAYLOAD_CHOICES}
          value={v.payload_preset}
          errors={errors}
          hint="standard: {id, type, timestamp, data}; classic: event, data, changes, organization, metadata; thin: the row's key only; slack, discord: a chat message; template: the JSONata template below."
        />
        <TextArea
          id="payload_template"
          label="JSONata template (for the template payload)"
          value={v.payload_template}
          errors={errors}
          rows={5}
          hint={'Any JSON built from the event, e.g. {"text": type & " " & $string(data.id)}. Checked when saved.'}
        />
        <div class="actions">
          <button
            type="submit"
            name="_action"
            value="preview"
            hx-post="/admin/webhooks/payload-preview"
            hx-target="#payload-preview"
            hx-swap="outerHTML"
            hx-include="closest form"
          >
            Preview payload
          </button>
        </div>
        <PayloadPreview state={preview} />
      </fieldset>
      <fieldset>
        <legend>Signing</legend>
        <Select id="signature_scheme" label="Signature scheme" options={SIGNATURE_SCHEMES} value={v.signature_scheme} errors={errors} hint="standard: Standard Webhooks; hex: X-Webhook-Signature; sha256: sha256=<hex> in a header you name." />
        <Field id="signature_header" label="Signature header (sha256 only)" value={v.signature_header} errors={errors} hint="Default X-Hub-Signature-256." />
      </fieldset>
      <fieldset>
        <legend>Delivery</legend>
        <div class="field">
          <label for="retry_schedule">Retry schedule</label>
          <input
            id="retry_schedule"
            name="retry_schedule"
            type="text"
            value={v.retry_schedule}
            autocomplete="off"
            aria-invalid={errors.has("retry_schedule") ? "true" : undefined}
            aria-describedby="retry-preview retry_schedule-error"
            hx-post="/admin/webhooks/retry-preview"
            hx-trigger="input changed delay:400ms"
            hx-target="#retry-preview"
            hx-swap="outerHTML"
            hx-include="#retry_max_attempts"
          />
          <span class="hint">Delays between attempts (30s,5m,1h), or exponential or linear.</span>
          <RetryPreview schedule={v.retry_schedule} maxAttempts={v.retry_max_attempts} />
          <FieldError id="retry_schedule-error" message={errors.get("retry_schedule")} />
        </div>
        <div class="field">
          <label for="retry_max_attempts">Attempts at most</label>
          <input
            id="retry_max_attempts"
            name="retry_max_attempts"
            type="number"
            min="1"
            max="20"
            value={v.retry_max_attempts}
            hx-post="/admin/webhooks/retry-preview"
            hx-trigger="input changed delay:400ms"
            hx-target="#retry-preview"
            hx-swap="outerHTML"
            hx-include="#retry_schedule"
            aria-invalid={errors.has("retry_max_attempts") ? "true" : undefined}
          />
          <FieldError id="retry_max_attempts-error" message={errors.get("retry_max_attempts")} />
        </div>
        <Field id="timeout_ms" label="Timeout (ms)" type="number" value={v.timeout_ms} errors={errors} hint="100 to 300000." />
        <Field id="max_in_flight" label="Requests in flight at most" type="number" value={v.max_in_flight} errors={errors} />
        <Field id="rate_limit_per_s" label="Requests per second at most" type="number" value={v.rate_limit_per_s} errors={errors} hint="Blank: no limit." />
        {editing ? null : (
          <div class="field row">
            <input type="checkbox" id="is_active" name="is_active" value="on" checked={v.is_active} />
            <label for="is_active">Active (deliver events from now on)</label>
          </div>
        )}
      </fieldset>
      <div class="actions">
        <button type="submit" class="primary">
          {editing ? "Save changes" : "Create webhook"}
        </button>
        <a href={editing ? `/admin/webhooks/${editing.id}` : "/admin/webhooks"}>Cancel</a>
      </div>
    </form>
  );
}

function FormPage(props: FormProps) {
  const title = props.editing ? `Edit ${webhookLabel(props.editing)}` : "New webhook";
  return (
    <Layout ctx={props.ctx} title={title} section="webhooks">
      <h1>{title}</h1>
      <WebhookForm {...props} />
    </Layout>
  );
}

/** Validates and saves the form; the webhook's id, or the errors by field. */
async function save(
  opts: ApiOptions,
  scope: { tenant: string | null },
  form: Form,
  editing: WebhookView | null,
): Promise<{ id: string } | { errors: Map<string, string> }> {
  const writeOpts = { allowPrivateTargets: opts.config.WEBHOOKS_ALLOW_PRIVATE_TARGETS };
  try {
    const raw = inputFromForm(form, editing, scope.tenant === null);
    if (editing) {
      const patch = parseInput(webhookPatchSchema, raw);
      return { id: (await updateWebhook(opts.conn, scope, editing.id, patch, writeOpts)).id };
    }
    const input = parseInput(webhookCreateSchema, raw);
    return { id: (await createWebhook(opts.conn, scope, input, writeOpts)).webhook.id };
  } catch (e) {
    if (!(e instanceof DomainError) || e.httpStatus !== 400) throw e;
    const errors = new Map<string, string>();
    for (const [path, message] of errorsByField(e)) {
      const name = path === "" ? "" : fieldFor(path);
      if (!errors.has(name)) errors.set(name, message);
    }
    return { errors };
  }
}

/** The payload the form describes, rendered for the events its types match (within the key's tenant), sending nothing. */
async function previewOfForm(opts: ApiOptions, scope: Scope, form: Form, editing: WebhookView | null): Promise<PayloadPreviewState> {
  const v = valuesFromForm(form);
  try {
    const payload = parseInput(payloadSchema, payloadOfValues(v));
    checkPayload(payload);
    const tenant = scope.tenant ?? (v.tenant.trim() === "" ? null : v.tenant.trim());
    const items = await renderPreview(opts.conn, {
      id: editing?.id ?? PREVIEW_WEBHOOK_ID,
      name: v.name.trim() === "" ? null : v.name.trim(),
      tenant,
      events: eventsOf(v),
      payload,
      big_numbers: editing?.big_numbers ?? "string",
    });
    return { items };
  } catch (e) {
    if (e instanceof DomainError && e.httpStatus === 400) return { error: e.message.replace(/^payload(\.template)?: /, "") };
    throw e;
  }
}

/** The id a new webhook's preview shows ($webhook.id): none exists yet. */
const PREVIEW_WEBHOOK_ID = "00000000-0000-0000-0000-000000000000";

function wantsPreview(form: Form): boolean {
  return field(form, "_action") === "preview";
}

export function registerWebhookEditPages(app: FastifyInstance, opts: ApiOptions): void {
  const { conn } = opts;

  app.post("/webhooks/payload-preview", async (request, reply) => {
    const scope = adminScope(request);
    const state = await previewOfForm(opts, scope, formOf(request), null);
    return sendHtml(reply, <PayloadPreview state={state} />, 200, true);
  });

  app.post("/webhooks/retry-preview", async (request, reply) => {
    const form = formOf(request);
    const v = valuesFromForm(form);
    return sendHtml(reply, <RetryPreview schedule={v.retry_schedule} maxAttempts={v.retry_max_attempts} />, 200, true);
  });

  app.get("/webhooks/new", async (request, reply) => {
    const scope = adminScope(request);
    const eventTypes = await listEventTypes(conn, scope);
    return sendHtml(
      reply,
      <FormPage ctx={pageContext(request)} values={blankValues()} errors={new Map()} editing={null} eventTypes={eventTypes} preview={null} />,
    );
  });

  app.post("/webhooks/new", async (request, reply) => {
    const scope = adminScope(request);
    const form = formOf(request);
    const ctx = pageContext(request);
    const values = valuesFromForm(form);
    if (wantsPreview(form)) {
      const preview = await previewOfForm(opts, scope, form, null);
      return sendHtml(reply, <FormPage ctx={ctx} values={values} errors={new Map()} editing={null} eventTypes={await listEventTypes(conn, scope)} preview={preview} />);
    }
    const r = await save(opts, scope, form, null);
    if ("id" in r) return seeOther(request, reply, `/admin/webhooks/${r.id}?created=1`);
    return sendHtml(
      reply,
      <FormPage ctx={ctx} values={values} errors={r.errors} editing={null} eventTypes={await listEventTypes(conn, scope)} preview={null} />,
      400,
    );
  });

  app.get<{ Params: { id: string } }>("/webhooks/:id/edit", async (request, reply) => {
    const scope = adminScope(request);
    const w = await getWebhook(conn, scope, request.params.id);
    const eventTypes = await listEventTypes(conn, scope);
    const preview: PayloadPreviewState = { items: await renderPreview(conn, w) };
    return sendHtml(reply, <FormPage ctx={pageContext(request)} values={valuesOf(w)} errors={new Map()} editing={w} eventTypes={eventTypes} preview={preview} />);
  });

  app.post<{ Params: { id: string } }>("/webhooks/:id/edit", async (request, reply) => {
    const scope = adminScope(request);
    const w = await getWebhook(conn, scope, request.params.id);
    const form = formOf(request);
    const ctx = pageContext(request);
    const values = valuesFromForm(form);
    if (wantsPreview(form)) {
      const preview = await previewOfForm(opts, scope, form, w);
      return sendHtml(reply, <FormPage ctx={ctx} values={values} errors={new Map()} editing={w} eventTypes={await listEventTypes(conn, scope)} preview={preview} />);
    }
    const r = await save(opts, scope, form, w);
    if ("id" in r) return seeOther(request, reply, `/admin/webhooks/${r.id}?saved=1`);
    return sendHtml(
      reply,
      <FormPage ctx={ctx} values={values} errors={r.errors} editing={w} eventTypes={await listEventTypes(conn, scope)} preview={null} />,
      400,
    );
  });
}
