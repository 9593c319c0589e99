// A delivery and its attempts as the API and the CLI show them, and the notice shown beside
// deliveries held back by an open circuit.
import { z } from "zod";
import { CIRCUIT_STATES, DELIVERY_STATUSES } from "./enums";

const deliveryFields = {
  id: z.uuid(),
  webhook_id: z.uuid(),
  webhook_name: z.string().nullable().meta({ description: "The webhook's name, beside its id (null when it has none)." }),
  event_id: z.uuid().meta({ description: "Stable across retries and replays: receivers deduplicate on it (webhook-id header)." }),
  event_type: z.string(),
  tenant: z.string().nullable(),
  status: z.enum(DELIVERY_STATUSES),
  last_status_code: z.number().int().nullable(),
  last_duration_ms: z.number().int().nullable(),
  last_error: z.string().nullable(),
  next_attempt_at: z.date().nullable(),
  created_at: z.date(),
  updated_at: z.date(),
  finished_at: z.date().nullable(),
};

export const deliveryViewSchema = z
  .object({ ...deliveryFields, attempts: z.number().int().meta({ description: "HTTP attempts so far." }) })
  .meta({ id: "Delivery" });

export type DeliveryView = z.output<typeof deliveryViewSchema>;

export const attemptViewSchema = z
  .object({
    attempt_number: z.number().int(),
    started_at: z.date(),
    url: z.string(),
    method: z.string(),
    request_headers: z.record(z.string(), z.string()).meta({
      description: "As sent, with the values of auth, signature, secret_headers and credential-like headers masked.",
    }),
    request_body: z.string(),
    response_status: z.number().int().nullable(),
    response_headers: z.record(z.string(), z.string()).nullable(),
    response_body: z.string().nullable().meta({ description: "At most 5,000 characters." }),
    duration_ms: z.number().int(),
    error: z.string().nullable(),
    remote_address: z
      .string()
      .nullable()
      .meta({ description: "The IP address the request was sent to; null when no connection got as far as sending." }),
    note: z.string().nullable().meta({
      description:
        "What was changed to store this attempt: NUL bytes, unpaired surrogates and bytes invalid in the response's charset become U+FFFD, and an attempt that still cannot be stored is kept without its request and response contents. Null when stored as it was.",
    }),
  })
  .meta({ id: "Attempt" });

export type AttemptView = z.output<typeof attemptViewSchema>;

export const deliveryDetailSchema = z
  .object({ ...deliveryFields, attempts: z.array(attemptViewSchema).meta({ description: "Every HTTP attempt, oldest first." }) })
  .meta({ id: "DeliveryDetail" });

export type DeliveryDetail = z.output<typeof deliveryDetailSchema>;

export const circuitNoticeSchema = z
  .object({
    webhook_id: z.uuid(),
    circuit: z.enum(CIRCUIT_STATES).exclude(["closed"]),
    opened_at: z.date().nullable(),
    consecutive_failures: z.number().int(),
    next_probe_at: z.date().nullable().meta({ description: "When the next probe may go out (one waiting delivery is sent to test the endpoint)." }),
    waiting: z.number().int().meta({ description: "Deliveries parked behind the circuit: pending, using up no attempts." }),
    message: z.string().meta({ description: "The same, in a sentence, with what to do." }),
  })
  .meta({
    id: "CircuitNotice",
    description:
      "The webhook's circuit is not closed: its deliveries stay pending until a probe succeeds, whatever their retry schedule says.",
  });

export type CircuitNotice = z.output<typeof circuitNoticeSchema>;

/** The notice's sentence: what the circuit is doing and what to do about it. */
export function circuitMessage(n: Omit<CircuitNotice, "message">, now = new Date()): string {
  const state =
    n.circuit === "half_open"
      ? "is half-open: one probe delivery is on its way"
      : `is open${n.opened_at ? ` since ${n.opened_at.toISOString()}` : ""} after ${n.consecutive_failures} failed attempts in a row`;
  const probe =
    n.circuit === "half_open" || n.next_probe_at === null
      ? ""
      : n.next_probe_at.getTime() <= now.getTime()
        ? "; a probe goes out within seconds"
        : `; the next probe goes out at ${n.next_probe_at.toISOString()}`;
  return (
    `webhook ${n.webhook_id}: circuit ${state}; ${n.waiting > 0 ? `${n.waiting} deliveries` : "its deliveries"} ` +
    `wait (pending) until a probe succeeds${probe}. ` +
    "Fix the endpoint, or change its url, auth, headers or signature (that resets the circuit and sends them at once)."
  );
}
