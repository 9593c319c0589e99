// Send: renders, signs and sends one leased delivery, and returns what the recorder stores.
// Every request goes through here: the lanes' deliveries and test sends alike.
import type { AttemptOutcome, OutgoingRequest } from "../delivery/client";
import { renderBody } from "../delivery/render";
import { buildRequest } from "../delivery/request";
import type { ClaimedDelivery } from "./claim";
import type { DeliverContext } from "./context";

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

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** An attempt that ended with `error` and no response. */
function noResponse(startedAt: Date, error: string): AttemptOutcome {
  return { ok: false, status: null, headers: null, body: null, durationMs: 0, error, retryAfterMs: null, startedAt, remoteAddress: null, notes: [] };
}

/**
 * Renders (once per event and number format, with `bodies`), signs and sends one delivery.
 * Never throws: a delivery that cannot be rendered or signed (an event nested too deep for the
 * renderer, say) comes back as an unsent attempt carrying the error, so it is recorded and
 * never holds its lane.
 */
export async function send(ctx: DeliverContext, d: ClaimedDelivery, bodies?: Map<string, string>): Promise<Recorded> {
  const startedAt = new Date();
  let body = "";
  let built: { request: OutgoingRequest; loggedHeaders: Record<string, string> };
  try {
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
