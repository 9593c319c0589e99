-- Endpoint health: per-webhook back-pressure settings, the circuit breaker's state, and the
-- lease a dispatcher holds on a delivery while it is queued in its memory or in flight.

alter table webhooks.subscriptions
  add column max_in_flight integer not null default 10 check (max_in_flight between 1 and 1000),
  add column rate_limit_per_s double precision check (rate_limit_per_s > 0 and rate_limit_per_s <= 10000),
  add column disable_after_s integer check (disable_after_s between 1 and 31536000);
comment on column webhooks.subscriptions.max_in_flight is
  'Requests to this webhook in flight at once, per dispatcher. Work over the cap waits in the queue, not in a worker.';
comment on column webhooks.subscriptions.rate_limit_per_s is
  'At most this many requests per second, per dispatcher; null means no limit. Deliveries wait for their turn instead of failing.';
comment on column webhooks.subscriptions.disable_after_s is
  'Disable the webhook once every attempt has failed for this long; null means the dispatcher default (WEBHOOKS_DISABLE_AFTER_S, 5 days).';

create table webhooks.endpoint_health (
  subscription_id uuid primary key references webhooks.subscriptions (id) on delete cascade,
  circuit text not null default 'closed' check (circuit in ('closed', 'open', 'half_open')),
  consecutive_failures integer not null default 0,
  -- First failure since the last success; the auto-disable clock.
  failing_since timestamptz,
  last_success_at timestamptz,
  last_failure_at timestamptz,
  opened_at timestamptz,
  -- While open: when the next probe may go out, and the interval after that one.
  next_probe_at timestamptz,
  probe_interval_ms integer,
  -- The one delivery allowed through while the circuit is half-open.
  probe_delivery_id uuid,
  updated_at timestamptz not null default now()
);
comment on table webhooks.endpoint_health is
  'A row is the health of one webhook''s endpoint: its circuit breaker and the run of failures behind it. No row means healthy (circuit closed). Enabling a webhook deletes its row.';
create index endpoint_health_probes on webhooks.endpoint_health (next_probe_at) where circuit <> 'closed';

alter table webhooks.deliveries
  add column lease_owner text,
  add column parked_at timestamptz;
comment on column webhooks.deliveries.lease_owner is
  'The dispatcher holding this delivery in memory (queued or in flight). No other dispatcher sends it while that one lives.';
comment on column webhooks.deliveries.parked_at is
  'Set while the delivery waits for its webhook''s circuit to close; it has no job then and uses up no attempts.';
create index deliveries_leased on webhooks.deliveries (lease_owner) where lease_owner is not null;
create index deliveries_parked on webhooks.deliveries (subscription_id, created_at) where parked_at is not null;
