// Request bodies: the standard body (the event as receivers see it, its numbers exactly as
// stored), and the webhook's chosen payload (a preset or a template) built from the same event.
import type { BigNumbers } from "../model/enums";
import type { PayloadSpec } from "../model/payload";
import { parseExact, stringifyExact, unmarkNumbers, withoutExactNumbers } from "./event-json";
import { classicBody, discordBody, slackBody, thinBody, changesOf, type Organization, type RenderInput } from "./presets";
import { MAX_BODY_CHARS, TemplateError, cachedTemplate } from "./template";
import { renderTemplateIsolated } from "./template-runner";

export interface EventForDelivery {
  event_id: string;
  type: string;
  occurred_at: Date;
  /** The event's jsonb as Postgres writes it (data::text): parsed here so no number changes. */
  data: string;
  previous_attributes: string | null;
  tenant: string | null;
  /** The tracked table it came from (schema.table); null for emitted events. */
  source_table?: string | null;
  /** How numbers a double would change are carried (the webhook's big_numbers). */
  big_numbers: BigNumbers;
}

/** `{"id","type","timestamp","data","previous_attributes"?}`; the tenant is routing, not payload. */
export function renderBody(e: EventForDelivery): string {
  const data = parseExact(e.data);
  const previous = e.previous_attributes === null ? null : parseExact(e.previous_attributes);
  return stringifyExact(
    {
      id: e.event_id,
      type: e.type,
      timestamp: e.occurred_at.toISOString(),
      data: data.value,
      ...(previous === null || previous.value === null ? {} : { previous_attributes: previous.value }),
    },
    e.big_numbers,
    data.exact || (previous?.exact ?? false),
  );
}

/** What a payload other than the standard one needs read from the database before rendering. */
export function payloadNeeds(spec: PayloadSpec): { organization: boolean; primaryKey: boolean } {
  if ("template" in spec) return { organization: true, primaryKey: true };
  switch (spec.preset) {
    case "classic":
      return { organization: true, primaryKey: false };
    case "thin":
    case "slack":
    case "discord":
      return { organization: false, primaryKey: true };
    case "standard":
      return { organization: false, primaryKey: false };
  }
}

/** The webhook, delivery and records a payload adds to its event. */
export interface PayloadContext {
  webhook: { id: string; name: string | null };
  deliveryId: string;
  organization: Organization | null;
  primaryKey: string[] | null;
}

/**
 * The body of one delivery as its webhook's payload says. Throws what makes it unrenderable:
 * a TemplateError (the template failed, or a guard cut it off), or a malformed event.
 */
export async function renderPayload(spec: PayloadSpec, e: EventForDelivery, c: PayloadContext): Promise<string> {
  if ("preset" in spec && spec.preset === "standard") return renderBody(e);
  const data = parseExact(e.data);
  const previous = e.previous_attributes === null ? null : parseExact(e.previous_attributes);
  const exact = data.exact || (previous?.exact ?? false);
  const prev = previous !== null && typeof previous.value === "object" && previous.value !== null && !Array.isArray(previous.value)
    ? (previous.value as Record<string, unknown>)
    : null;
  const input: RenderInput = {
    id: e.event_id,
    type: e.type,
    timestamp: e.occurred_at.toISOString(),
    data: data.value,
    previous_attributes: prev,
    tenant: e.tenant,
    webhook: c.webhook,
    deliveryId: c.deliveryId,
    organization: c.organization,
    primaryKey: c.primaryKey,
  };
  if ("template" in spec) {
    cachedTemplate(spec.template); // a template that does not compile fails here, without a trip to the worker
    // Exact numbers become strings of their digits (or marked strings, turned back into numbers after).
    const plain = (v: unknown) => (exact ? withoutExactNumbers(v, e.big_numbers) : v);
    const rendered = await renderTemplateIsolated(
      c.webhook.id,
      spec.template,
      {
        id: input.id,
        type: input.type,
        timestamp: input.timestamp,
        data: plain(input.data),
        ...(prev === null ? {} : { previous_attributes: plain(prev) }),
        changes: plain(changesOf(input.data, prev)),
        tenant: input.tenant,
      },
      {
        webhook: input.webhook,
        delivery: { id: input.deliveryId },
        organization: input.organization === null ? null : plain(input.organization),
      },
    );
    const json = exact && e.big_numbers === "number" ? unmarkNumbers(rendered) : rendered;
    // The limit holds for the body as sent: escaping (\u0001 is six characters) can make it longer than its strings.
    if (json.length > MAX_BODY_CHARS) {
      throw new TemplateError(`template cut off: the body would be ${json.length} characters; at most ${MAX_BODY_CHARS} are allowed`, "limit");
    }
    return json;
  }
  const body =
    spec.preset === "classic" ? classicBody(input) : spec.preset === "thin" ? thinBody(input) : spec.preset === "slack" ? slackBody(input) : discordBody(input);
  return stringifyExact(body, e.big_numbers, exact);
}
