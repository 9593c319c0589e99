// The default request body: the event as receivers see it.
export interface EventForDelivery {
  event_id: string;
  type: string;
  occurred_at: Date;
  data: unknown;
  previous_attributes: unknown | null;
  tenant: string | null;
}

/** `{"id","type","timestamp","data","previous_attributes"?}`; the tenant is routing, not payload. */
export function renderBody(e: EventForDelivery): string {
  return JSON.stringify({
    id: e.event_id,
    type: e.type,
    timestamp: e.occurred_at.toISOString(),
    // JSON.stringify would drop an undefined key; receivers should always see `data`.
    data: e.data ?? null,
    ...(e.previous_attributes === null || e.previous_attributes === undefined
      ? {}
      : { previous_attributes: e.previous_attributes }),
  });
}
