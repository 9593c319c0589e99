// Send: renders, signs and sends one leased delivery, and returns what the recorder stores.
// Every request goes through here: the lanes' deliveries and test sends alike.
import type { AttemptOutcome, OutgoingRequest } from "../delivery/client";
import { recordReader } from "../delivery/records";
import { payloadNeeds, renderBody, renderPayload } from "../delivery/render";
import { buildRequest } from "../delivery/request";
import { TemplateError } from "../delivery/template";
import { payloadOf } from "../model/payload";
import type { ClaimedDelivery } from "./claim";
import type { DeliverContext } from "./context";

export interface Recorded {
  d: ClaimedDelivery;
  requestHeaders: Record<string, string>;
  requestBody: string;
  /** The body rendered for this first attempt, to store on the delivery; null when it had one. */
  renderedBody: string | null;
  url: string;
  method: string;
  outcome: AttemptOutcome;
  /**
   * No request was made: the delivery could not be rendered or signed (outcome.error says
   * why). Such an attempt fails its delivery at once and says nothing about the endpoint.
   */
  unsent?: boolean;
  /**
   * With unsent: what stopped it may pass (the records a body needs could not be read), so the
   * delivery is retried on its schedule instead of failing now.
   */
  transient?: boolean;
}

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** An attempt that ended with `error` and no response. */
function noResponse(startedAt: Date, error: string): AttemptOutcome {
  return { ok: false, status: null, headers: null, body: null, durationMs: 0, error, retryAfterMs: null, startedAt, remoteAddress: null, notes: [] };
}

/** Thrown when the records a body needs could not be read: a database hiccup, not the delivery's fault. */
class RecordsUnavailable extends Error {
  override name = "RecordsUnavailable";
}

/**
 * The delivery's body: the one stored by its first attempt, else rendered now from its
 * webhook's payload (standard bodies once per event and number format, with `bodies`).
 */
async function bodyOf(ctx: DeliverContext, d: ClaimedDelivery, bodies?: Map<string, string>): Promise<string> {
  if (d.body !== null) return d.body;
  const spec = payloadOf(d.payload);
  if ("preset" in spec && spec.preset === "standard") {
    const key = `${d.event_id} ${d.big_numbers}`;
    const body = bodies?.get(key) ?? renderBody(d);
    bodies?.set(key, body);
    return body;
  }
  const needs = payloadNeeds(spec);
  const reader = recordReader(ctx.conn.sql);
  let organization = null;
  let primaryKey = null;
  try {
    if (needs.organization) organization = await reader.organization(d.tenant);
    if (needs.primaryKey) primaryKey = await reader.primaryKey(d.source_table ?? null);
  } catch (e) {
    throw new RecordsUnavailable(`could not read the tenant record or table key the body needs: ${errorText(e)}`);
  }
  return renderPayload(spec, d, { webhook: { id: d.subscription_id, name: d.name }, deliveryId: d.id, organization, primaryKey });
}

/**
 * Renders (the first attempt only; later ones send the stored body), signs and sends one
 * delivery. Never throws: a delivery that cannot be rendered or signed (a template that fails
 * or is cut off, an event nested too deep for the renderer) comes back as an unsent attempt
 * carrying the error, so it is recorded and never holds its lane.
 */
export async function send(ctx: DeliverContext, d: ClaimedDelivery, bodies?: Map<string, string>): Promise<Recorded> {
  const startedAt = new Date();
  let body = "";
  let built: { request: OutgoingRequest; loggedHeaders: Record<string, string> };
  try {
    body = await bodyOf(ctx, d, bodies);
    built = buildRequest(d, { event_id: d.event_id, type: d.type, body }, d.id, startedAt);
  } catch (e) {
    // Records that could not be read, or a template the overloaded machine could not finish: tried again later.
    const transient = e instanceof RecordsUnavailable || (e instanceof TemplateError && e.kind === "slow");
    const what =
      e instanceof TemplateError
        ? `could not render the body, so no request was sent: ${e.message}`
        : e instanceof RecordsUnavailable
          ? `${e.message}; no request was sent`
          : `could not build the request, so none was sent: ${errorText(e)}`;
    ctx.logger.warn({ delivery: d.id, webhook: d.subscription_id, error: what }, transient ? "delivery cannot be rendered now; retrying it" : "delivery cannot be sent; failing it");
    return {
      d,
      requestHeaders: {},
      requestBody: "",
      renderedBody: null,
      url: d.url,
      method: d.method,
      outcome: noResponse(startedAt, what),
      unsent: true,
      ...(transient ? { transient: true } : {}),
    };
  }
  const { request, loggedHeaders } = built;
  let outcome: AttemptOutcome;
  try {
    outcome = await ctx.sender.send(request);
  } catch (e) {
    // The sender reports instead of throwing; should it throw, the attempt is still a row.
    outcome = noResponse(startedAt, errorText(e));
  }
  return {
    d,
    requestHeaders: loggedHeaders,
    requestBody: body,
    renderedBody: d.body === null ? body : null,
    url: request.url,
    method: request.method,
    outcome,
  };
}
