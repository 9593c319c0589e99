// The closed sets of values the product knows, each written once. Schemas (zod), row types
// (db/schema.ts), the CLI's choices and the OpenAPI document all derive from these.

/** HTTP methods a webhook may send with. */
export const HTTP_METHODS = ["POST", "PUT", "PATCH"] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/**
 * How requests are signed: Standard Webhooks (symmetric v1 with a whsec_ secret, or asymmetric
 * v1a with an ed25519 key pair), or the older hex / `sha256=` styles.
 */
export const SIGNATURE_SCHEMES = ["standard", "ed25519", "hex", "sha256"] as const;
export type SignatureScheme = (typeof SIGNATURE_SCHEMES)[number];

/** States of a webhook's circuit breaker. */
export const CIRCUIT_STATES = ["closed", "open", "half_open"] as const;
export type CircuitState = (typeof CIRCUIT_STATES)[number];

/** Life of a delivery. */
export const DELIVERY_STATUSES = ["pending", "retrying", "succeeded", "failed", "cancelled"] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** Deliveries that can be sent again. */
export const REPLAYABLE_STATUSES = ["failed", "succeeded", "cancelled"] as const satisfies readonly DeliveryStatus[];

/**
 * How numbers a double-based JSON parser would change are sent: as strings holding their
 * exact digits, or as JSON numbers with Postgres's digits.
 */
export const BIG_NUMBERS = ["string", "number"] as const;
export type BigNumbers = (typeof BIG_NUMBERS)[number];

/** Life of a backfill (webhooks.backfills.state). */
export const BACKFILL_STATES = ["running", "paused", "done", "cancelled", "failed"] as const;
export type BackfillState = (typeof BACKFILL_STATES)[number];
