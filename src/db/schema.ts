// Table shapes of the `webhooks` schema (sql/schema.sql), declared once for kysely. A column with
// a default is Generated (or takes undefined on insert); bigint columns read as strings.
import type { ColumnType, Generated, Selectable } from "kysely";
import type { BackfillState, BigNumbers, CircuitState, DeliveryStatus, HttpMethod, SignatureScheme } from "../model/enums";
import type { HmacOptions, InboundScheme, InboundStatus } from "../model/inbound";
import type { PayloadSpec } from "../model/payload";

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T = unknown> = ColumnType<T, string | T, string | T>;
/** A jsonb column with a default. */
type JsonWithDefault<T = unknown> = ColumnType<T, string | T | undefined, string | T>;

export interface OutboxTable {
  id: Generated<string>;
  /** Null for a captured row until fanout; set at insert by emit(). */
  event_id: ColumnType<string | null, string | null | undefined, string>;
  type: string;
  tenant: string | null;
  data: Json;
  previous_attributes: Json | null;
  source_table: string | null;
  occurred_at: Timestamp;
  dispatched_at: NullableTimestamp;
  /** Backfill events only: the one webhook that receives it. */
  target_subscription: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface SubscriptionTable {
  id: Generated<string>;
  tenant: string | null;
  name: string | null;
  description: string | null;
  url: string;
  method: Generated<HttpMethod>;
  auth: JsonWithDefault;
  headers: JsonWithDefault<Record<string, string>>;
  /** Lower-cased names of static headers marked secret. */
  secret_headers: Generated<string[]>;
  events: string[];
  filter: Json | null;
  signature_scheme: Generated<SignatureScheme>;
  signature_header: string | null;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: NullableTimestamp;
  retry: Json;
  timeout_ms: Generated<number>;
  max_in_flight: Generated<number>;
  rate_limit_per_s: number | null;
  disable_after_s: number | null;
  /** 0: the circuit never opens; null: WEBHOOKS_BREAKER_THRESHOLD. */
  breaker_threshold: number | null;
  /** Raised by a trigger on every update (bigint, read as a string). */
  settings_version: Generated<string>;
  /** How bodies carry numbers a double would change: a string of the digits, or the digits as a number. */
  big_numbers: Generated<BigNumbers>;
  /** {"preset": …} or {"template": …} (model/payload.ts). */
  payload: JsonWithDefault<PayloadSpec>;
  /** Also send X-Webhook-Timestamp (ISO 8601). */
  iso_timestamp_header: Generated<boolean>;
  is_active: Generated<boolean>;
  disabled_reason: string | null;
  disabled_at: NullableTimestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: NullableTimestamp;
}

export type { DeliveryStatus };

export interface DeliveryTable {
  id: Generated<string>;
  subscription_id: string;
  outbox_id: string;
  event_id: string;
  event_type: string;
  tenant: string | null;
  status: Generated<DeliveryStatus>;
  attempts: Generated<number>;
  next_attempt_at: NullableTimestamp;
  last_status_code: number | null;
  last_duration_ms: number | null;
  last_error: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  finished_at: NullableTimestamp;
  /** The dispatcher holding it in memory (queued or in flight), if any. */
  lease_owner: string | null;
  /** Set while it waits behind an open circuit. */
  parked_at: NullableTimestamp;
  /** The body as first rendered and sent; every later attempt and replay sends it. */
  body: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface AttemptTable {
  id: Generated<string>;
  delivery_id: string;
  attempt_number: number;
  started_at: Timestamp;
  url: string;
  method: string;
  request_headers: Json<Record<string, string>>;
  /** Null: the delivery's body. */
  request_body: string | null;
  response_status: number | null;
  response_headers: Json<Record<string, string>> | null;
  response_body: string | null;
  duration_ms: number;
  error: string | null;
  /** The IP address the request was sent to. */
  remote_address: string | null;
  /** What was replaced or left out to store this attempt. */
  note: string | null;
}

export interface TrackedTable {
  table_name: string;
  event_prefix: string;
  operations: string[];
  tenant_column: string | null;
  excluded_columns: Generated<string[]>;
  primary_key: Generated<string[]>;
  tenant_attnum: number | null;
  excluded_attnums: Generated<number[]>;
  tracked_at: Timestamp;
  updated_at: Timestamp;
}

export interface EventRuleTable {
  table_name: string;
  event_type: string;
  operations: Generated<string[]>;
  on_change: string[] | null;
  condition: unknown;
  sql_condition: string | null;
  sql_function: string | null;
  disabled_reason: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ApiKeyTable {
  id: Generated<string>;
  name: string | null;
  tenant: string | null;
  key_prefix: string;
  key_hash: string;
  created_at: Timestamp;
  last_used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
}

export interface TenantTable {
  id: string;
  name: string | null;
  slug: string | null;
  metadata: JsonWithDefault;
}

export interface TenantSourceTable {
  id: Generated<boolean>;
  relation: string;
}

export interface DispatcherTable {
  id: string;
  hostname: string;
  pid: number;
  worker_ids: Generated<string[]>;
  started_at: Timestamp;
  heartbeat_at: Timestamp;
}

/** One dispatcher's share of one webhook's limits (sql/0004_dispatcher_grants.sql). */
export interface DispatcherGrantTable {
  subscription_id: string;
  dispatcher_id: string;
  slots: number;
  rate_share: number | null;
  wants: number;
  granted_at: Generated<Timestamp>;
}

export interface EndpointHealthTable {
  subscription_id: string;
  circuit: Generated<CircuitState>;
  consecutive_failures: Generated<number>;
  failing_since: NullableTimestamp;
  last_success_at: NullableTimestamp;
  last_failure_at: NullableTimestamp;
  opened_at: NullableTimestamp;
  next_probe_at: NullableTimestamp;
  probe_interval_ms: number | null;
  probe_delivery_id: string | null;
  updated_at: Timestamp;
}

export interface EventTypeSeenTable {
  type: string;
  first_seen_at: Timestamp;
}

/** One row: idle is true while some dispatcher sleeps and wants a NOTIFY on new events. */
export interface DispatcherWakeupTable {
  id: Generated<boolean>;
  idle: Generated<boolean>;
}

export interface BackfillTable {
  id: Generated<string>;
  subscription_id: string;
  tenant: string | null;
  /** A regclass, read as its name. */
  table_name: string;
  where_sql: string | null;
  rate_per_s: number | null;
  key_columns: string[];
  cursor: Json | null;
  rows_total: ColumnType<string | null, string | number | null | undefined, string | number | null>;
  rows_sent: ColumnType<string, string | number | undefined, string | number>;
  state: Generated<BackfillState>;
  error: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  finished_at: NullableTimestamp;
}

/** An inbound source (sql/0007_inbound.sql): POST /in/<slug>. */
export interface InboundSourceTable {
  id: Generated<string>;
  tenant: string | null;
  slug: string;
  name: string | null;
  enabled: Generated<boolean>;
  verify: InboundScheme;
  /** Write-only outside this table: views show a count and hints. */
  secrets: Generated<string[]>;
  hmac: Json<HmacOptions> | null;
  key_header: string | null;
  tolerance_s: Generated<number>;
  dedupe: string | null;
  allowed_tenants: string[] | null;
  max_body_bytes: Generated<number>;
  rate_limit_per_s: number | null;
  relay_prefix: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: NullableTimestamp;
}

/** One accepted inbound request. */
export interface InboundEventTable {
  id: Generated<string>;
  source_id: string;
  tenant: string | null;
  event_name: string | null;
  headers: Json<Record<string, string>>;
  body: Buffer;
  payload: Json | null;
  dedupe_key: string | null;
  status: Generated<InboundStatus>;
  attempts: Generated<number>;
  last_error: string | null;
  locked_at: NullableTimestamp;
  received_at: Timestamp;
  processed_at: NullableTimestamp;
  relayed_event_id: string | null;
}

export interface SchemaMigrationTable {
  name: string;
  applied_at: Timestamp;
}

export interface Database {
  "webhooks.outbox": OutboxTable;
  "webhooks.subscriptions": SubscriptionTable;
  "webhooks.deliveries": DeliveryTable;
  "webhooks.attempts": AttemptTable;
  "webhooks.tracked_tables": TrackedTable;
  "webhooks.event_rules": EventRuleTable;
  "webhooks.event_types_seen": EventTypeSeenTable;
  "webhooks.api_keys": ApiKeyTable;
  "webhooks.dispatchers": DispatcherTable;
  "webhooks.dispatcher_grants": DispatcherGrantTable;
  "webhooks.endpoint_health": EndpointHealthTable;
  "webhooks.dispatcher_wakeup": DispatcherWakeupTable;
  "webhooks.schema_migrations": SchemaMigrationTable;
  "webhooks.backfills": BackfillTable;
  "webhooks.inbound_sources": InboundSourceTable;
  "webhooks.inbound_events": InboundEventTable;
  "webhooks.tenants": TenantTable;
  "webhooks.tenant_source": TenantSourceTable;
}

export type Subscription = Selectable<SubscriptionTable>;
export type Delivery = Selectable<DeliveryTable>;
export type Attempt = Selectable<AttemptTable>;
export type OutboxRow = Selectable<OutboxTable>;
