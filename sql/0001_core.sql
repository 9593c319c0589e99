-- pg-webhooks core schema: the outbox that triggers write to, the subscriptions (webhooks),
-- the deliveries and their attempts, API keys and the dispatcher registry.

create schema if not exists webhooks;

-- ---------------------------------------------------------------------------------------
-- Events
-- ---------------------------------------------------------------------------------------

create table webhooks.outbox (
  id bigint generated always as identity primary key,
  event_id uuid not null default gen_random_uuid() unique,
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
-- The dispatcher claims undispatched rows in id order; this index holds only those.
create index outbox_undispatched on webhooks.outbox (id) where dispatched_at is null;
create index outbox_dispatched_at on webhooks.outbox (dispatched_at) where dispatched_at is not null;

create table webhooks.tracked_tables (
  table_name regclass primary key,
  event_prefix text not null,
  operations text[] not null,
  tenant_column text,
  excluded_columns text[] not null default '{}',
  primary_key text[] not null default '{}',
  tracked_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table webhooks.tracked_tables is
  'A row is a table whose changes become events, with the options track_table() was given.';

create table webhooks.event_types_seen (
  type text primary key,
  first_seen_at timestamptz not null default now()
);
comment on table webhooks.event_types_seen is
  'A row is a custom event type that webhooks.emit() has produced at least once.';

-- Set by a dispatcher that has found nothing to do and waits for a NOTIFY; writers only
-- NOTIFY while it is set, because NOTIFY takes a global lock at commit.
create table webhooks.dispatcher_wakeup (
  id boolean primary key default true check (id),
  idle boolean not null default true
);
comment on table webhooks.dispatcher_wakeup is
  'One row: idle is true while some dispatcher sleeps and wants a NOTIFY on new events.';
insert into webhooks.dispatcher_wakeup default values;

create function webhooks.wake() returns void
language plpgsql as $$
begin
  if (select idle from webhooks.dispatcher_wakeup) then
    perform pg_notify('pg_webhooks', '');
  end if;
end
$$;
comment on function webhooks.wake() is
  'Notifies a sleeping dispatcher that new events exist. Cheap when no dispatcher sleeps.';

-- ---------------------------------------------------------------------------------------
-- Capture
-- ---------------------------------------------------------------------------------------

-- Trigger arguments: prefix, tenant column ('' for none), excluded columns, primary key
-- columns (both as text[] literals). Statement-level triggers read transition tables, so
-- a bulk write costs one trigger call, not one per row.
create function webhooks.capture() returns trigger
language plpgsql as $$
declare
  prefix text := tg_argv[0];
  tenant_col text := nullif(tg_argv[1], '');
  excluded text[] := tg_argv[2]::text[];
  pk text[] := tg_argv[3]::text[];
  n integer;
begin
  if tg_level = 'ROW' then
    -- Row-level fallback for UPDATE on tables without a primary key (old and new rows
    -- cannot be paired from transition tables without one).
    insert into webhooks.outbox (type, tenant, data, previous_attributes, source_table)
    select prefix || '.updated', t.tenant, t.new_j, t.prev, tg_table_schema || '.' || tg_table_name
    from (
      select
        case when tenant_col is null then null else to_jsonb(new) ->> tenant_col end as tenant,
        to_jsonb(new) - excluded as new_j,
        (select jsonb_object_agg(o.key, o.value)
           from jsonb_each(to_jsonb(old) - excluded) o
          where (to_jsonb(new) - excluded) -> o.key is distinct from o.value) as prev
    ) t
    where t.prev is not null;
    get diagnostics n = row_count;
    if n > 0 then perform webhooks.wake(); end if;
    return null;
  end if;

  if tg_op = 'INSERT' then
    insert into webhooks.outbox (type, tenant, data, source_table)
    select prefix || '.created',
           case when tenant_col is null then null else r.j ->> tenant_col end,
           r.j - excluded,
           tg_table_schema || '.' || tg_table_name
    from (select to_jsonb(x) as j from new_rows x) r;
  elsif tg_op = 'DELETE' then
    insert into webhooks.outbox (type, tenant, data, source_table)
    select prefix || '.deleted',
           case when tenant_col is null then null else r.j ->> tenant_col end,
           r.j - excluded,
           tg_table_schema || '.' || tg_table_name
    from (select to_jsonb(x) as j from old_rows x) r;
  else
    insert into webhooks.outbox (type, tenant, data, previous_attributes, source_table)
    select prefix || '.updated', p.tenant, p.new_j, p.prev, tg_table_schema || '.' || tg_table_name
    from (
      select
        case when tenant_col is null then null else n.j ->> tenant_col end as tenant,
        n.j - excluded as new_j,
        (select jsonb_object_agg(e.key, e.value)
           from jsonb_each(o.j - excluded) e
          where (n.j - excluded) -> e.key is distinct from e.value) as prev
      from (select r.j, (select jsonb_agg(r.j -> k) from unnest(pk) k) as key
              from (select to_jsonb(x) as j from old_rows x) r) o
      join (select r.j, (select jsonb_agg(r.j -> k) from unnest(pk) k) as key
              from (select to_jsonb(x) as j from new_rows x) r) n
        on o.key = n.key
    ) p
    -- An update that changes no (visible) value emits nothing.
    where p.prev is not null;
  end if;
  get diagnostics n = row_count;
  if n > 0 then perform webhooks.wake(); end if;
  return null;
end
$$;
comment on function webhooks.capture() is
  'Trigger function installed by webhooks.track_table(); writes one outbox row per changed row.';

create function webhooks.track_table(
  tbl regclass,
  event_prefix text default null,
  operations text[] default array['insert', 'update', 'delete'],
  tenant_column text default null,
  excluded_columns text[] default '{}'
) returns void
language plpgsql as $$
declare
  prefix text;
  pk text[];
  op text;
  bad text;
  relname text;
begin
  select c.relname into relname from pg_class c where c.oid = tbl;
  prefix := coalesce(nullif(event_prefix, ''), relname);
  if prefix !~ '^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$' then
    raise exception 'event_prefix: expected letters, digits, _ or - separated by dots, got %', quote_literal(prefix)
      using errcode = '22023';
  end if;
  operations := array(select distinct lower(o) from unnest(operations) o order by 1);
  if operations is null or cardinality(operations) = 0 then
    raise exception 'operations: expected at least one of insert, update, delete' using errcode = '22023';
  end if;
  select o into bad from unnest(operations) o where o not in ('insert', 'update', 'delete') limit 1;
  if bad is not null then
    raise exception 'operations: expected insert, update or delete, got %', quote_literal(bad) using errcode = '22023';
  end if;
  if tenant_column is not null and not exists (
    select 1 from pg_attribute where attrelid = tbl and attname = tenant_column and attnum > 0 and not attisdropped
  ) then
    raise exception 'tenant_column: % has no column %', tbl, quote_ident(tenant_column) using errcode = '42703';
  end if;
  select c into bad from unnest(coalesce(excluded_columns, '{}')) c
   where not exists (select 1 from pg_attribute where attrelid = tbl and attname = c and attnum > 0 and not attisdropped)
   limit 1;
  if bad is not null then
    raise exception 'excluded_columns: % has no column %', tbl, quote_ident(bad) using errcode = '42703';
  end if;

  select coalesce(array_agg(a.attname::text order by a.attname), '{}') into pk
    from pg_index i
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
   where i.indrelid = tbl and i.indisprimary;

  perform webhooks.untrack_table(tbl);

  foreach op in array operations loop
    if op = 'update' and cardinality(pk) = 0 then
      execute format(
        'create trigger pg_webhooks_update after update on %s for each row execute function webhooks.capture(%L, %L, %L, %L)',
        tbl, prefix, coalesce(tenant_column, ''), coalesce(excluded_columns, '{}'), pk);
    else
      execute format(
        'create trigger %I after %s on %s referencing %s for each statement execute function webhooks.capture(%L, %L, %L, %L)',
        'pg_webhooks_' || op, op, tbl,
        case op when 'insert' then 'new table as new_rows'
                when 'delete' then 'old table as old_rows'
                else 'old table as old_rows new table as new_rows' end,
        prefix, coalesce(tenant_column, ''), coalesce(excluded_columns, '{}'), pk);
    end if;
  end loop;

  insert into webhooks.tracked_tables (table_name, event_prefix, operations, tenant_column, excluded_columns, primary_key)
  values (tbl, prefix, operations, tenant_column, coalesce(excluded_columns, '{}'), pk);
end
$$;
comment on function webhooks.track_table(regclass, text, text[], text, text[]) is
  'Starts emitting <prefix>.created|updated|deleted events for a table. Calling it again replaces the options; it never stacks triggers. Example: select webhooks.track_table(''public.clients'', tenant_column => ''account_id'', excluded_columns => array[''password_hash'']);';

create function webhooks.untrack_table(tbl regclass) returns boolean
language plpgsql as $$
declare
  op text;
begin
  foreach op in array array['insert', 'update', 'delete'] loop
    execute format('drop trigger if exists %I on %s', 'pg_webhooks_' || op, tbl);
  end loop;
  delete from webhooks.tracked_tables where table_name = tbl;
  return found;
end
$$;
comment on function webhooks.untrack_table(regclass) is
  'Stops emitting events for a table. Returns false when it was not tracked. Events already in the outbox are still delivered.';

create function webhooks.emit(type text, data jsonb, tenant text default null) returns uuid
language plpgsql as $$
declare
  new_id uuid;
begin
  if type is null or type !~ '^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-*]+)*$' or position('*' in type) > 0 then
    raise exception 'type: expected a dotted event name such as invoice.paid, got %', coalesce(quote_literal(type), 'null')
      using errcode = '22023';
  end if;
  if data is null then
    raise exception 'data: expected a JSON value, got null' using errcode = '22023';
  end if;
  insert into webhooks.outbox (type, tenant, data) values (type, tenant, data) returning event_id into new_id;
  insert into webhooks.event_types_seen (type) values (type) on conflict do nothing;
  perform webhooks.wake();
  return new_id;
end
$$;
comment on function webhooks.emit(text, jsonb, text) is
  'Emits a custom event inside the caller''s transaction; it is delivered only if that transaction commits. Returns the event id. Example: select webhooks.emit(''invoice.paid'', jsonb_build_object(''id'', 42), tenant => ''acme'');';

-- ---------------------------------------------------------------------------------------
-- Subscriptions, deliveries, attempts
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
  deleted_at timestamptz
);
comment on table webhooks.subscriptions is
  'A row is a webhook: which events (types, tenant, filter) go to which URL, how they are signed and retried. Deleted webhooks keep their row (deleted_at) so their history stays readable until pruned.';
create index subscriptions_live on webhooks.subscriptions (created_at, id) where deleted_at is null;

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
  finished_at timestamptz
);
comment on table webhooks.deliveries is
  'A row is one event owed to one webhook. It ends succeeded or failed (or cancelled when its webhook is deleted); failed ones can be replayed.';
create index deliveries_by_subscription on webhooks.deliveries (subscription_id, created_at desc);
create index deliveries_by_status on webhooks.deliveries (status, created_at) where status in ('pending', 'retrying', 'failed');
create index deliveries_finished on webhooks.deliveries (finished_at) where finished_at is not null;
create index deliveries_outbox on webhooks.deliveries (outbox_id);

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
  error text
);
comment on table webhooks.attempts is
  'A row is one HTTP request made for a delivery, with what was sent and what came back (bodies truncated to 5,000 characters). Auth and signature header values are masked.';
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
