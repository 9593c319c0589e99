-- Capture speed (issue 5, write path): a capture function generated per tracked table with
-- its options as literals, a NOTIFY claimed once per 10 ms instead of once per
-- writer, no unique index on outbox.event_id, and captured events get their event_id from
-- the dispatcher at fanout instead of from the writer. Tables tracked before this migration
-- are moved to generated functions at the end of this file.

-- ---------------------------------------------------------------------------------------
-- Outbox
-- ---------------------------------------------------------------------------------------

-- Nothing looks events up by event_id, and gen_random_uuid() values do not collide in
-- practice; the unique index cost a btree insert on a random page for every event.
alter table webhooks.outbox drop constraint outbox_event_id_key;

-- gen_random_uuid() draws from the strong random source: 100,000 of them take about 250 ms,
-- a quarter of what a bulk capture costs the writer. Captured rows leave event_id null and
-- fanout assigns it in the update that marks the row dispatched (which rewrites the row
-- anyway), before any delivery or request carries it. emit() and direct inserts still get
-- the default.
alter table webhooks.outbox alter column event_id drop not null;
comment on column webhooks.outbox.event_id is
  'The event''s id (webhook-id header). Null until fanout for captured rows; set at insert for emitted ones.';

-- ---------------------------------------------------------------------------------------
-- Wake-up
-- ---------------------------------------------------------------------------------------

-- NOTIFY holds a cluster-wide lock from commit until the commit record is flushed, so
-- writers that all NOTIFY commit one at a time instead of sharing WAL flushes (with one
-- NOTIFY per millisecond, 4 writers still lost a third of their throughput; with one per
-- 10 ms, a few per cent). One NOTIFY per 10 ms wakes a dispatcher as well: a transaction
-- claims the current 10 ms window with an advisory lock, and the writers that find it taken skip theirs, relying on the
-- claimer's NOTIFY at its commit (should the claimer roll back, or commit only after the
-- dispatcher has looked, their events wait for the next writer's NOTIFY or the dispatcher's
-- poll). A transaction claims at most once, so it never holds more than one such lock.
create function webhooks.claim_wake() returns boolean
language sql volatile as $$
  select case
           when current_setting('pg_webhooks.wake_claimed', true) = 'on' then false
           when pg_try_advisory_xact_lock(hashtext('pg_webhooks.wake'),
                  ((extract(epoch from clock_timestamp()) * 100)::bigint % 2147483647)::integer)
             then set_config('pg_webhooks.wake_claimed', 'on', true) = 'on'
           else false
         end
$$;
comment on function webhooks.claim_wake() is
  'Internal to wake() and the capture functions: true when this transaction should NOTIFY, at most once per 10 ms window across all writers. A plain SQL expression, so PL/pgSQL inlines it.';

create or replace function webhooks.wake() returns void
language plpgsql as $$
begin
  if (select idle from webhooks.dispatcher_wakeup) then
    if webhooks.claim_wake() then
      perform pg_notify('pg_webhooks', '');
    end if;
  end if;
end
$$;
comment on function webhooks.wake() is
  'Notifies a sleeping dispatcher that new events exist; while many transactions write, one of them per 10 ms does. Cheap when no dispatcher sleeps.';

-- ---------------------------------------------------------------------------------------
-- Capture
-- ---------------------------------------------------------------------------------------

-- Writes the capture function of one tracked table from its tracked_tables row and points
-- the table's pg_webhooks_* triggers at it. The generated code reads rows only through
-- to_jsonb(), never by column name, so renaming or dropping a column cannot make a write
-- fail; it computes exactly what webhooks.capture() computes from its trigger arguments.
create function webhooks.install_capture(tbl regclass) returns void
language plpgsql as $$
declare
  t webhooks.tracked_tables;
  by_row boolean;
  fn text;
  op text;
  minus text;
  key_expr text;
  branches text[] := '{}';
begin
  select * into t from webhooks.tracked_tables where table_name = tbl;
  if not found then
    raise exception 'table: % is not tracked', tbl using errcode = '22023';
  end if;
  -- Updates are paired by primary key; a table without one has them captured row by row.
  by_row := cardinality(t.primary_key) = 0;
  minus := case when cardinality(t.excluded_columns) = 0 then '' else format(' - %L::text[]', t.excluded_columns) end;

  if 'insert' = any(t.operations) then
    branches := branches || format($f$tg_op = 'INSERT' then
    insert into webhooks.outbox (event_id, type, tenant, data, source_table)
    select null, %L, %s, r.j%s, src
      from (select to_jsonb(x.*) as j from new_rows x) r;$f$,
      t.event_prefix || '.created',
      case when t.tenant_column is null then 'null' else format('r.j ->> %L', t.tenant_column) end, minus);
  end if;
  if 'delete' = any(t.operations) then
    branches := branches || format($f$tg_op = 'DELETE' then
    insert into webhooks.outbox (event_id, type, tenant, data, source_table)
    select null, %L, %s, r.j%s, src
      from (select to_jsonb(x.*) as j from old_rows x) r;$f$,
      t.event_prefix || '.deleted',
      case when t.tenant_column is null then 'null' else format('r.j ->> %L', t.tenant_column) end, minus);
  end if;
  if 'update' = any(t.operations) and not by_row then
    -- The primary key values as a JSON array, as webhooks.capture() pairs them.
    select 'jsonb_build_array(' || string_agg(format('r.j -> %L', k), ', ' order by i) || ')'
      into key_expr
      from unnest(t.primary_key) with ordinality as u(k, i);
    branches := branches || format($f$tg_op = 'UPDATE' then
    insert into webhooks.outbox (event_id, type, tenant, data, previous_attributes, source_table)
    select null, %L, p.tenant, p.new_j, p.prev, src
    from (
      select %s as tenant,
             n.j%s as new_j,
             (select jsonb_object_agg(e.key, e.value)
                from jsonb_each(o.j%s) e
               where (n.j%s) -> e.key is distinct from e.value) as prev
      from (select r.j, %s as key from (select to_jsonb(x.*) as j from old_rows x) r) o
      join (select r.j, %s as key from (select to_jsonb(x.*) as j from new_rows x) r) n
        on o.key = n.key
    ) p
    -- An update that changes no (visible) value emits nothing.
    where p.prev is not null;$f$,
      t.event_prefix || '.updated',
      case when t.tenant_column is null then 'null' else format('n.j ->> %L', t.tenant_column) end,
      minus, minus, minus, key_expr, key_expr);
  end if;
  if 'update' = any(t.operations) and by_row then
    branches := branches || format($f$tg_op = 'UPDATE' then
    insert into webhooks.outbox (event_id, type, tenant, data, previous_attributes, source_table)
    select null, %L, u.tenant, u.new_j, u.prev, src
    from (
      select %s as tenant,
             to_jsonb(new)%s as new_j,
             (select jsonb_object_agg(o.key, o.value)
                from jsonb_each(to_jsonb(old)%s) o
               where (to_jsonb(new)%s) -> o.key is distinct from o.value) as prev
    ) u
    where u.prev is not null;$f$,
      t.event_prefix || '.updated',
      case when t.tenant_column is null then 'null' else format('to_jsonb(new) ->> %L', t.tenant_column) end,
      minus, minus, minus);
  end if;

  -- A new name each time: a restored dump keeps its functions' names, so a name derived
  -- from the table's oid could clash with the function of another table.
  fn := format('webhooks.%I',
               'capture_' || left(regexp_replace((select relname from pg_class where oid = tbl), '[^A-Za-z0-9_]', '_', 'g'), 40)
                 || '_' || substr(md5(tbl::oid::text || clock_timestamp()::text || random()::text), 1, 8));
  execute format($f$
create function %s() returns trigger
language plpgsql as $body$
declare
  src text := tg_table_schema || '.' || tg_table_name;
  idle boolean;
begin
  if %s
  end if;
  -- webhooks.wake(), inlined: a call per statement costs as much as the check.
  if found then
    select w.idle into idle from webhooks.dispatcher_wakeup w;
    if idle then
      if webhooks.claim_wake() then
        perform pg_notify('pg_webhooks', '');
      end if;
    end if;
  end if;
  return null;
end
$body$
$f$, fn, array_to_string(branches, E'\n  elsif '));
  execute format('comment on function %s() is %L', fn,
    format('Capture trigger function of %s with its tracking options as literals, generated by webhooks.track_table(); untrack_table() drops it.', tbl));

  for op in
    select tgname from pg_trigger
     where tgrelid = tbl and tgname in ('pg_webhooks_insert', 'pg_webhooks_update', 'pg_webhooks_delete')
  loop
    execute format('drop trigger %I on %s', op, tbl);
  end loop;
  foreach op in array t.operations loop
    if op = 'update' and by_row then
      execute format('create trigger pg_webhooks_update after update on %s for each row execute function %s()', tbl, fn);
    else
      execute format(
        'create trigger %I after %s on %s referencing %s for each statement execute function %s()',
        'pg_webhooks_' || op, op, tbl,
        case op when 'insert' then 'new table as new_rows'
                when 'delete' then 'old table as old_rows'
                else 'old table as old_rows new table as new_rows' end,
        fn);
    end if;
  end loop;

  perform webhooks.drop_unused_capture_functions();
end
$$;
comment on function webhooks.install_capture(regclass) is
  'Internal to track_table(): (re)writes a tracked table''s generated capture function and triggers from its tracked_tables row.';

-- Generated capture functions that no trigger uses any more: the previous one of a table
-- tracked again, or those of tables dropped since they were tracked.
create function webhooks.drop_unused_capture_functions() returns void
language plpgsql as $$
declare
  f regprocedure;
begin
  for f in
    select p.oid from pg_proc p
     where p.pronamespace = 'webhooks'::regnamespace and p.proname like 'capture\_%' and p.pronargs = 0
       and p.prorettype = 'trigger'::regtype
       and not exists (select from pg_trigger t where t.tgfoid = p.oid)
  loop
    execute format('drop function %s', f);
  end loop;
end
$$;
comment on function webhooks.drop_unused_capture_functions() is
  'Internal to track_table() and untrack_table(): drops generated capture functions no trigger uses.';

create or replace function webhooks.track_table(
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
  insert into webhooks.tracked_tables (table_name, event_prefix, operations, tenant_column, excluded_columns, primary_key)
  values (tbl, prefix, operations, tenant_column, coalesce(excluded_columns, '{}'), pk);
  perform webhooks.install_capture(tbl);
end
$$;
comment on function webhooks.track_table(regclass, text, text[], text, text[]) is
  'Starts emitting <prefix>.created|updated|deleted events for a table. Calling it again replaces the options; it never stacks triggers. Example: select webhooks.track_table(''public.clients'', tenant_column => ''account_id'', excluded_columns => array[''password_hash'']);';

create or replace function webhooks.untrack_table(tbl regclass) returns boolean
language plpgsql as $$
declare
  op text;
begin
  foreach op in array array['insert', 'update', 'delete'] loop
    execute format('drop trigger if exists %I on %s', 'pg_webhooks_' || op, tbl);
  end loop;
  perform webhooks.drop_unused_capture_functions();
  delete from webhooks.tracked_tables where table_name = tbl;
  return found;
end
$$;
comment on function webhooks.untrack_table(regclass) is
  'Stops emitting events for a table. Returns false when it was not tracked. Events already in the outbox are still delivered.';

comment on function webhooks.capture() is
  'Generic capture trigger function (options as trigger arguments). track_table() now installs a generated per-table function instead; this one stays for triggers made before migration 0003.';

-- Tables tracked before this migration move to generated functions, with their stored
-- options (not re-validated: a column dropped since must not stop the migration).
do $$
declare
  tbl regclass;
begin
  for tbl in
    select t.table_name from webhooks.tracked_tables t
     where exists (select from pg_class c where c.oid = t.table_name)
     order by t.table_name::oid
  loop
    perform webhooks.install_capture(tbl);
  end loop;
end
$$;
