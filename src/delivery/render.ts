// The default request body: the event as receivers see it, its numbers exactly as stored.
import type { BigNumbers } from "../model/enums";
import { parseExact, stringifyExact } from "./event-json";

export interface EventForDelivery {
  event_id: string;
  type: string;
  occurred_at: Date;
  /** The event's jsonb as Postgres writes it (data::text): parsed here so no number changes. */
  data: string;
  previous_attributes: string | null;
  tenant: string | null;
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
