-- pg-webhooks tables: the outbox that capture triggers and emit() write to, the tables they
-- read their options from, the webhooks (subscriptions) with their endpoints' health, the
-- deliveries and their attempts, API keys and the dispatcher registry. Functions that write
-- these tables are in 0002_events.sql and 0003_live_settings.sql.

create schema if not exists webhooks;

-- ---------------------------------------------------------------------------------------
-- Events
-- ---------------------------------------------------------------------------------------

-- No unique index on event_id: nothing looks events up by it, gen_random_uuid() values do
-- not collide in practice, and the index cost a btree insert on a random page per event.
create table webhooks.outbox (
  id bigint generated always as identity primary key,
  event_id uuid default gen_random_uuid(),
  type text not null,
  tenant text,
  data jsonb not null,
  previous_attributes jsonb,
  source_table text,
  occurred_at timestamptz not null default now(),
  dispatched_at timestamptz
);
comment on table webhooks.outbox is
  'A row is one event, written in the same transaction as the change it describes. dispatched_at is set once the dispatcher has created its deliveries.';
-- gen_random_uuid() draws from the strong random source: 100,000 of them take about 250 ms,
-- a quarter of what a bulk capture costs the writer. So capture functions leave event_id
-- null and fanout assigns it in the update that marks the row dispatched (which rewrites the
-- row anyway), before any delivery or request carries it.
comment on column webhooks.outbox.event_id is
  'The event''s id (webhook-id header). Null until fanout for captured rows; set at insert for emitted ones.';
-- The dispatcher claims undispatched rows in id order; this index holds only those.
create index outbox_undispatched on webhooks.outbox (id) where dispatched_at is null;
create index outbox_dispatched_at on webhooks.outbox (dispatched_at) where dispatched_at is not null;

create table webhooks.event_types_seen (
  type text primary key,
  first_seen_at timestamptz not null default now()
);
comment on table webhooks.event_types_seen is
  'A row is a custom event type that webhooks.emit() has produced at least once.';

-- Options are kept by name and by column number, so that a renamed tenant or excluded
-- column is followed rather than lost (see webhooks.refresh_tracking()).
create table webhooks.tracked_tables (
  table_name regclass primary key,
  event_prefix text not null,
  operations text[] not null,
  tenant_column text,
  excluded_columns text[] not null default '{}',
  primary_key text[] not null default '{}',
  tracked_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  tenant_attnum smallint,
  excluded_attnums smallint[] not null default '{}'
);
comment on table webhooks.tracked_tables is
  'A row is a table whose changes become events, with the options track_table() was given.';
comment on column webhooks.tracked_tables.tenant_attnum is
  'Column number of tenant_column when it was set: a renamed tenant column is followed by its number.';
comment on column webhooks.tracked_tables.excluded_attnums is
  'Column numbers of excluded_columns: a renamed excluded column stays excluded.';

-- Set by a dispatcher that has found nothing to do and waits for a NOTIFY; writers only
-- NOTIFY while it is set, because NOTIFY takes a global lock at commit.
create table webhooks.dispatcher_wakeup (
  id boolean primary key default true check (id),
  idle boolean not null default true
);
comment on table webhooks.dispatcher_wakeup is
  'One row: idle is true while some dispatcher sleeps and wants a NOTIFY on new events.';
insert into webhooks.dispatcher_wakeup default values;

-- ---------------------------------------------------------------------------------------
-- Webhooks and their endpoints' health
-- ---------------------------------------------------------------------------------------

create table webhooks.subscriptions (
  id uuid primary key default gen_random_uuid(),
  tenant text,
  name text,
  description text,
  url text not null,
  method text not null default 'POST' check (method in ('POST', 'PUT', 'PATCH')),
  auth jsonb not null default '{"type":"none"}',
  headers jsonb not null default '{}',
  events text[] not null,
  filter jsonb,
  signature_scheme text not null default 'standard' check (signature_scheme in ('standard', 'hex', 'sha256')),
  signature_header text,
  secret text not null,
  previous_secret text,
  previous_secret_expires_at timestamptz,
  retry jsonb not null,
  timeout_ms integer not null default 15000 check (timeout_ms between 100 and 300000),
  is_active boolean not null default true,
  disabled_reason text,
  disabled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  max_in_flight integer not null default 10 check (max_in_flight between 1 and 1000),
  rate_limit_per_s double precision check (rate_limit_per_s > 0 and rate_limit_per_s <= 10000),
  disable_after_s integer check (disable_after_s between 1 and 31536000),
  breaker_threshold integer check (breaker_threshold between 0 and 1000),
  settings_version bigint not null default 0,
  secret_headers text[] not null default '{}',
  big_numbers text not null default 'string' check (big_numbers in ('string', 'number')),
  -- Below one request per 1,000 s the spacing between requests overflows Node's timer into
  -- a busy loop.
  constraint subscriptions_rate_limit_floor check (rate_limit_per_s >= 0.001)
);
comment on table webhooks.subscriptions is
  'A row is a webhook: which events (types, tenant, filter) go to which URL, how they are signed and retried. Deleted webhooks keep their row (deleted_at) so their history stays readable until pruned.';
comment on column webhooks.subscriptions.max_in_flight is
  'Requests to this webhook in flight at once, per dispatcher. Work over the cap waits in the queue, not in a worker.';
comment on column webhooks.subscriptions.rate_limit_per_s is
  'At most this many requests per second, per dispatcher; null means no limit. Deliveries wait for their turn instead of failing.';
comment on column webhooks.subscriptions.disable_after_s is
  'Disable the webhook once every attempt has failed for this long; null means the dispatcher default (WEBHOOKS_DISABLE_AFTER_S, 5 days).';
comment on column webhooks.subscriptions.breaker_threshold is
  'Consecutive failed attempts that open this webhook''s circuit; 0 means never (retry schedules keep their timing); null means the dispatcher default (WEBHOOKS_BREAKER_THRESHOLD, 10).';
comment on column webhooks.subscriptions.settings_version is
  'Raised by every update of the row. Dispatchers compare it with the copy they hold in memory, so an older copy never overwrites a newer one.';
comment on column webhooks.subscriptions.secret_headers is
  'Names (lower case) of static headers whose values are secrets: shown as **** in webhook views, listings and attempt logs.';
-- big_numbers says how bodies carry a number that a double-based JSON parser would change:
-- a bigint above 2^53, a numeric with more than 15 significant digits, jsonb holding such.
comment on column webhooks.subscriptions.big_numbers is
  'string: such a number is sent as a JSON string of its exact digits, so JSON.stringify(JSON.parse(body)) is the body; '
  'number: as a JSON number with Postgres''s digits, for receivers whose JSON parser keeps them.';
create index subscriptions_live on webhooks.subscriptions (created_at, id) where deleted_at is null;

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

-- ---------------------------------------------------------------------------------------
-- Deliveries and attempts
-- ---------------------------------------------------------------------------------------

create table webhooks.deliveries (
  id uuid primary key default gen_random_uuid(),
  subscription_id uuid not null references webhooks.subscriptions (id) on delete cascade,
  outbox_id bigint not null references webhooks.outbox (id),
  event_id uuid not null,
  event_type text not null,
  tenant text,
  status text not null default 'pending'
    check (status in ('pending', 'retrying', 'succeeded', 'failed', 'cancelled')),
  attempts integer not null default 0,
  next_attempt_at timestamptz,
  last_status_code integer,
  last_duration_ms integer,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  lease_owner text,
  parked_at timestamptz
);
comment on table webhooks.deliveries is
  'A row is one event owed to one webhook. It ends succeeded or failed (or cancelled when its webhook is deleted); failed ones can be replayed.';
comment on column webhooks.deliveries.lease_owner is
  'The dispatcher holding this delivery in memory (queued or in flight). No other dispatcher sends it while that one lives.';
comment on column webhooks.deliveries.parked_at is
  'Set while the delivery waits for its webhook''s circuit to close; it has no job then and uses up no attempts.';
create index deliveries_by_subscription on webhooks.deliveries (subscription_id, created_at desc);
create index deliveries_by_status on webhooks.deliveries (status, created_at) where status in ('pending', 'retrying', 'failed');
create index deliveries_finished on webhooks.deliveries (finished_at) where finished_at is not null;
create index deliveries_outbox on webhooks.deliveries (outbox_id);
create index deliveries_leased on webhooks.deliveries (lease_owner) where lease_owner is not null;
create index deliveries_parked on webhooks.deliveries (subscription_id, created_at) where parked_at is not null;

create table webhooks.attempts (
  id bigint generated always as identity primary key,
  delivery_id uuid not null references webhooks.deliveries (id) on delete cascade,
  attempt_number integer not null,
  started_at timestamptz not null,
  url text not null,
  method text not null,
  request_headers jsonb not null,
  request_body text not null,
  response_status integer,
  response_headers jsonb,
  response_body text,
  duration_ms integer not null,
  error text,
  remote_address inet,
  note text
);
comment on table webhooks.attempts is
  'A row is one HTTP request made for a delivery, with what was sent and what came back (bodies truncated to 5,000 characters). Auth and signature header values are masked.';
comment on column webhooks.attempts.remote_address is
  'The IP address the request was sent to (the connected socket''s peer); null when no connection got as far as sending.';
comment on column webhooks.attempts.note is
  'What was changed to store this attempt: NUL bytes, unpaired surrogates and bytes invalid in the response''s charset become U+FFFD; an attempt that still cannot be stored is kept without its request and response contents. Null when stored as it was.';
create index attempts_by_delivery on webhooks.attempts (delivery_id, attempt_number);

-- ---------------------------------------------------------------------------------------
-- API keys and dispatchers
-- ---------------------------------------------------------------------------------------

create table webhooks.api_keys (
  id uuid primary key default gen_random_uuid(),
  name text,
  tenant text,
  key_prefix text not null,
  key_hash text not null unique,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
comment on table webhooks.api_keys is
  'A row is an API key: only its SHA-256 hash is kept. A key with no tenant is an admin key.';

create table webhooks.dispatchers (
  id text primary key,
  hostname text not null,
  pid integer not null,
  worker_ids text[] not null default '{}',
  started_at timestamptz not null default now(),
  heartbeat_at timestamptz not null default now()
);
comment on table webhooks.dispatchers is
  'A row is a running dispatcher process. One whose heartbeat stops is presumed dead, and the jobs it held are released for the others.';
