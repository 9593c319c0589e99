-- Inbound webhooks: other systems POST to /in/<slug>; the request is verified over its exact
-- bytes, stored as a row of webhooks.inbound_events (committed before the sender hears 200),
-- announced with NOTIFY webhooks_inbound, and then either claimed by SQL workers
-- (inbound_claim / inbound_done / inbound_failed) or relayed into the outbound pipeline
-- (webhooks.emit) in the same transaction as the insert.

create table webhooks.inbound_sources (
  id uuid primary key default gen_random_uuid(),
  tenant text,
  slug text not null check (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  name text,
  enabled boolean not null default true,
  verify text not null
    check (verify in ('standard', 'stripe', 'github', 'shopify', 'slack', 'hmac', 'api_key', 'basic', 'none')),
  secrets text[] not null default '{}' check (cardinality(secrets) <= 2),
  hmac jsonb,
  key_header text,
  tolerance_s integer not null default 300 check (tolerance_s between 1 and 86400),
  dedupe text check (dedupe ~ '^(header|json):.+$' or dedupe = 'none'),
  allowed_tenants text[],
  max_body_bytes integer not null default 1048576 check (max_body_bytes between 1 and 16777216),
  rate_limit_per_s double precision check (rate_limit_per_s >= 0.001 and rate_limit_per_s <= 100000),
  relay_prefix text check (relay_prefix ~ '^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz
);
comment on table webhooks.inbound_sources is
  'A row is an inbound source: POST /in/<slug> (or /in/<slug>/<event_name>) is verified by `verify` with one of `secrets` (two during rotation) and stored in webhooks.inbound_events. Deleted sources keep their row (deleted_at) so their events stay readable until pruned.';
comment on column webhooks.inbound_sources.tenant is
  'The tenant the source''s events belong to. Null: no tenant, unless allowed_tenants lets X-Tenant-ID choose one.';
comment on column webhooks.inbound_sources.secrets is
  'Signing secrets or keys (api_key: the key; basic: user:password). Write-only in the API, CLI and admin UI. Anyone who can read this table can read them.';
comment on column webhooks.inbound_sources.hmac is
  'verify = hmac: {header, prefix, encoding: hex|base64, algorithm: sha256|sha1|sha512, timestamp_header, signed: body|timestamp.body}.';
comment on column webhooks.inbound_sources.key_header is
  'verify = api_key: the header carrying the key (null: x-api-key).';
comment on column webhooks.inbound_sources.dedupe is
  'Where the sender''s id is: header:<name> or json:<dotted.path>, none to keep every request; null: the scheme''s default (webhook-id, Stripe''s body id, X-GitHub-Delivery, X-Shopify-Webhook-Id, Slack''s event_id).';
comment on column webhooks.inbound_sources.allowed_tenants is
  'Only for a source without tenant: X-Tenant-ID is required and must be one of these; the event takes that tenant.';
comment on column webhooks.inbound_sources.rate_limit_per_s is
  'Requests per second accepted, per server process (a token bucket in memory); more get 429 with Retry-After. Null: no limit.';
comment on column webhooks.inbound_sources.relay_prefix is
  'When set, each event is also emitted into the outbound pipeline as <relay_prefix>.<event name> (webhooks.emit) in the transaction that stores it, and is done.';
create unique index inbound_sources_slug on webhooks.inbound_sources (slug) where deleted_at is null;
create index inbound_sources_live on webhooks.inbound_sources (created_at, id) where deleted_at is null;

create table webhooks.inbound_events (
  id bigint generated always as identity primary key,
  source_id uuid not null references webhooks.inbound_sources (id),
  tenant text,
  event_name text,
  headers jsonb not null,
  body bytea not null,
  payload jsonb,
  dedupe_key text,
  status text not null default 'pending' check (status in ('pending', 'processing', 'done', 'failed')),
  attempts integer not null default 0,
  last_error text,
  locked_at timestamptz,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  relayed_event_id uuid,
  -- NULL keys are never equal: requests without a sender id are all kept.
  constraint inbound_events_dedupe unique (source_id, dedupe_key)
);
comment on table webhooks.inbound_events is
  'A row is one request an inbound source accepted: its headers (lower-cased; authorization, cookie, proxy-authorization, x-api-key and the source''s key header left out), the exact body bytes, the body as jsonb when it is JSON, and its processing state.';
comment on column webhooks.inbound_events.event_name is
  'From the path (/in/<slug>/<event_name>), else the sender''s own (Stripe and Standard Webhooks body type, X-GitHub-Event, X-Shopify-Topic, Slack event.type), else the body''s type or event field; null when none.';
comment on column webhooks.inbound_events.payload is
  'The body as jsonb, numbers exact; null when the body is not JSON or holds what jsonb cannot (\u0000, a lone surrogate, nesting over 100 levels). body always has the bytes.';
comment on column webhooks.inbound_events.relayed_event_id is
  'The outbound event id (webhooks.outbox.event_id) the relay emitted, when the source relays.';
create index inbound_events_pending on webhooks.inbound_events (source_id, id) where status = 'pending';
create index inbound_events_processing on webhooks.inbound_events (locked_at) where status = 'processing';
create index inbound_events_by_source on webhooks.inbound_events (source_id, received_at desc);
create index inbound_events_received on webhooks.inbound_events (received_at);
create index inbound_events_processed on webhooks.inbound_events (processed_at) where processed_at is not null;

-- SQL workers LISTEN webhooks_inbound. NOTIFY serializes commits (see webhooks.claim_wake):
-- with one per request, receiving ran at half its rate. So at most one transaction per slug
-- and 10 ms window NOTIFYs (an advisory lock claims the window); the others rely on its
-- NOTIFY, and a worker that also polls every second or so misses nothing when that
-- claimer rolls back or commits after the worker has looked.
create function webhooks.inbound_notify() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  s text;
begin
  for s in select distinct src.slug from new_rows n join webhooks.inbound_sources src on src.id = n.source_id loop
    if pg_try_advisory_xact_lock(hashtext('pg_webhooks.inbound:' || s),
         ((extract(epoch from clock_timestamp()) * 100)::bigint % 2147483647)::integer) then
      perform pg_notify('webhooks_inbound', s);
    end if;
  end loop;
  return null;
end
$$;
comment on function webhooks.inbound_notify() is
  'Trigger function: after an insert into webhooks.inbound_events, NOTIFY webhooks_inbound with each source''s slug, at most once per slug per 10 ms across all writers.';
revoke all on function webhooks.inbound_notify() from public;
create trigger inbound_events_notify after insert on webhooks.inbound_events
  referencing new table as new_rows for each statement execute function webhooks.inbound_notify();

-- ---------------------------------------------------------------------------------------
-- For SQL workers. Security definer: a worker role needs USAGE on schema webhooks and
-- EXECUTE on these functions, and no rights on the tables.
-- ---------------------------------------------------------------------------------------

create function webhooks.inbound_release_stuck(stuck_after interval default '5 minutes', source_slug text default null)
returns integer
language sql security definer set search_path = pg_catalog, pg_temp as $$
  with released as (
    update webhooks.inbound_events e set status = 'pending', locked_at = null
     where e.status = 'processing' and e.locked_at < now() - stuck_after
       and (source_slug is null
            or e.source_id in (select id from webhooks.inbound_sources where slug = source_slug and deleted_at is null))
    returning 1)
  select count(*)::int from released
$$;
comment on function webhooks.inbound_release_stuck(interval, text) is
  'Returns events stuck in processing for longer than stuck_after (a worker died holding them) to pending; of one source when source_slug is given. inbound_claim() calls it first. Returns how many.';
revoke all on function webhooks.inbound_release_stuck(interval, text) from public;

create function webhooks.inbound_claim(source_slug text, n integer default 100, stuck_after interval default '5 minutes')
returns table (id bigint, event_name text, tenant text, payload jsonb, body bytea, headers jsonb, attempts integer, received_at timestamptz)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
#variable_conflict use_column
begin
  if n is null or n < 1 or n > 10000 then
    raise exception 'n: expected a batch size from 1 to 10000, got %', coalesce(n::text, 'null') using errcode = '22023';
  end if;
  -- Below a minute a worker would take back rows another worker is still processing.
  if stuck_after is null or stuck_after < interval '1 minute' then
    raise exception 'stuck_after: expected at least 1 minute, got %', coalesce(stuck_after::text, 'null') using errcode = '22023';
  end if;
  -- A typo in a worker's slug would otherwise poll an empty queue forever.
  if not exists (select 1 from webhooks.inbound_sources s where s.slug = source_slug and s.deleted_at is null) then
    raise exception 'source_slug: no inbound source %', coalesce(quote_literal(source_slug), 'null') using errcode = '22023';
  end if;
  perform webhooks.inbound_release_stuck(stuck_after, source_slug);
  return query
    -- SKIP LOCKED lets several workers claim disjoint batches.
    with batch as (
      select e.id from webhooks.inbound_events e
       where e.status = 'pending'
         and e.source_id in (select s.id from webhooks.inbound_sources s where s.slug = source_slug and s.deleted_at is null)
       order by e.id
       limit n
         for update skip locked
    )
    update webhooks.inbound_events e
       set status = 'processing', attempts = e.attempts + 1, locked_at = now()
      from batch where e.id = batch.id
    returning e.id, e.event_name, e.tenant, e.payload, e.body, e.headers, e.attempts, e.received_at;
end
$$;
comment on function webhooks.inbound_claim(text, integer, interval) is
  'Claims up to n pending events of the source with this slug, oldest first, for the caller: sets processing, attempts + 1 and locked_at. Several workers may call it at once (SKIP LOCKED). Rows stuck in processing longer than stuck_after return to pending first. Then call inbound_done(ids) or inbound_failed(ids, error). Needs: grant usage on schema webhooks, grant execute on this function. Example: select * from webhooks.inbound_claim(''crm'', 50);';
revoke all on function webhooks.inbound_claim(text, integer, interval) from public;

create function webhooks.inbound_done(ids bigint[]) returns integer
language sql security definer set search_path = pg_catalog, pg_temp as $$
  with done as (
    update webhooks.inbound_events
       set status = 'done', processed_at = now(), locked_at = null, last_error = null
     where id = any(ids) and status = 'processing'
    returning 1)
  select count(*)::int from done
$$;
comment on function webhooks.inbound_done(bigint[]) is
  'Marks claimed (processing) events done. Returns how many changed; an event no longer processing (released after a timeout, claimed again) is left alone. Example: select webhooks.inbound_done(array[41, 42]);';
revoke all on function webhooks.inbound_done(bigint[]) from public;

create function webhooks.inbound_failed(ids bigint[], error text) returns integer
language sql security definer set search_path = pg_catalog, pg_temp as $$
  with failed as (
    update webhooks.inbound_events
       set status = 'failed', processed_at = now(), locked_at = null, last_error = left(error, 5000)
     where id = any(ids) and status = 'processing'
    returning 1)
  select count(*)::int from failed
$$;
comment on function webhooks.inbound_failed(bigint[], text) is
  'Marks claimed (processing) events failed with an error text (first 5,000 characters kept). `pg-webhooks inbound events replay` returns them to pending. Example: select webhooks.inbound_failed(array[43], ''contact not found'');';
revoke all on function webhooks.inbound_failed(bigint[], text) from public;

-- ---------------------------------------------------------------------------------------
-- Relay into the outbound pipeline
-- ---------------------------------------------------------------------------------------

-- The event name as a dotted type emit() accepts: Shopify's orders/create becomes
-- orders.create, other characters become _; null when nothing is left.
create function webhooks.inbound_relay_type(prefix text, event_name text) returns text
language sql immutable set search_path = pg_catalog, pg_temp as $$
  select case
    when event_name is null or btrim(event_name) = '' then prefix
    else nullif(prefix || '.' || btrim(regexp_replace(
           regexp_replace(regexp_replace(event_name, '[/:]', '.', 'g'), '[^A-Za-z0-9_.\-]', '_', 'g'),
           '\.{2,}', '.', 'g'), '.'), prefix || '.')
  end
$$;
comment on function webhooks.inbound_relay_type(text, text) is
  'Internal to inbound_relay(): the outbound event type of a relayed event, <prefix>.<event name> made a dotted name.';

create function webhooks.inbound_relay(ids bigint[]) returns integer
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r record;
  t text;
  n integer := 0;
begin
  for r in
    select e.id, e.tenant, e.event_name, e.payload, s.relay_prefix
      from webhooks.inbound_events e join webhooks.inbound_sources s on s.id = e.source_id
     where e.id = any(ids) and s.relay_prefix is not null
     order by e.id
       for update of e
  loop
    t := webhooks.inbound_relay_type(r.relay_prefix, r.event_name);
    if r.payload is null then
      update webhooks.inbound_events set status = 'failed', processed_at = now(), locked_at = null,
             last_error = 'relay: the body is not JSON that jsonb can hold, so it has no payload to emit'
       where id = r.id;
    elsif t is null or t !~ '^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$' then
      update webhooks.inbound_events set status = 'failed', processed_at = now(), locked_at = null,
             last_error = format('relay: %s does not make an event type', quote_literal(r.event_name))
       where id = r.id;
    else
      update webhooks.inbound_events
         set status = 'done', processed_at = now(), locked_at = null, last_error = null, attempts = attempts + 1,
             relayed_event_id = webhooks.emit(t, r.payload, r.tenant)
       where id = r.id;
      n := n + 1;
    end if;
  end loop;
  return n;
end
$$;
comment on function webhooks.inbound_relay(bigint[]) is
  'Internal to receiving and `inbound events replay`: emits each event of a relaying source as <relay_prefix>.<event name> (webhooks.emit) and marks it done, or failed when it has no JSON payload or name to emit. Returns how many were emitted.';
revoke all on function webhooks.inbound_relay(bigint[]) from public;
