-- Dispatcher grants: a webhook's max_in_flight and rate_limit_per_s hold for the webhook as a
-- whole, however many dispatchers run. A dispatcher sends to a webhook only within the share of
-- its limits it has leased here; the shares of one webhook never add up to more than the limits.
-- Shares are taken and changed under the webhook's row lock (select ... for no key update on
-- webhooks.subscriptions, which FK checks and readers do not wait for), so two dispatchers
-- cannot both take the same slot. The split itself is computed by src/model/grant.ts.

create table webhooks.dispatcher_grants (
  subscription_id uuid not null references webhooks.subscriptions (id) on delete cascade,
  -- A dispatcher swept as dead loses its grants with its registry row: its share returns at once.
  dispatcher_id text not null references webhooks.dispatchers (id) on delete cascade,
  -- Requests this dispatcher may keep open to the webhook at once.
  slots integer not null check (slots >= 0),
  -- Requests per second it may start; null while the webhook has no rate limit.
  rate_share double precision check (rate_share >= 0),
  -- Requests it could keep open now (queued and in flight, up to max_in_flight). A row that
  -- wants more than it holds is waiting: holders above their fair share give the surplus back.
  wants integer not null check (wants >= 0),
  -- When its share last grew, or when it first asked: the odd slot goes to the longest waiting.
  granted_at timestamptz not null default now(),
  primary key (subscription_id, dispatcher_id)
);
comment on table webhooks.dispatcher_grants is
  'A row is the share of one webhook''s limits (max_in_flight, rate_limit_per_s) that one running dispatcher may use. The shares of a webhook add up to at most its limits; a dispatcher without a row sends nothing to that webhook.';
-- The cascade from webhooks.dispatchers, and a dispatcher reading its own grants.
create index dispatcher_grants_dispatcher on webhooks.dispatcher_grants (dispatcher_id);

comment on column webhooks.subscriptions.max_in_flight is
  'Requests to this webhook in flight at once, all dispatchers together (each leases a share: webhooks.dispatcher_grants). Work over the cap waits in the queue, not in a worker.';
comment on column webhooks.subscriptions.rate_limit_per_s is
  'At most this many requests per second, all dispatchers together (each leases a share: webhooks.dispatcher_grants); null means no limit. Deliveries wait for their turn instead of failing.';
