-- How events get into webhooks.outbox: track_table() gives a table generated capture
-- triggers that write one event per changed row, emit() writes a custom event, and both wake
-- a sleeping dispatcher. Everything runs inside the writer's transaction, so an event exists
-- exactly when the change it describes commits.

-- ---------------------------------------------------------------------------------------
-- Wake-up
-- ---------------------------------------------------------------------------------------

-- NOTIFY holds a cluster-wide lock from commit until the commit record is flushed, so
-- writers that all NOTIFY commit one at a time instead of sharing WAL flushes (with one
-- NOTIFY per millisecond, 4 writers lost a third of their throughput; with one per 10 ms, a
-- few per cent). One NOTIFY per 10 ms wakes a dispatcher as well: a transaction claims the
-- current 10 ms window with an advisory lock, and the writers that find it taken skip
-- theirs, relying on the claimer's NOTIFY at its commit (should the claimer roll back, or
-- commit only after the dispatcher has looked, their events wait for the next writer's
-- NOTIFY or the dispatcher's poll). A transaction claims at most once, so it never holds
-- more than one such lock.
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

create function webhooks.wake() returns void
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
-- Rows as JSON, for any column type
-- ---------------------------------------------------------------------------------------

-- Capture functions run with the schema owner's rights, and to_jsonb() calls a cast to json
-- or jsonb if one exists for a column's type. A table owner may create such a cast for a
-- type of its own (an enum, say) with a function of its own, which would then run with
-- those rights. While any cast to json/jsonb has a function not owned by a superuser,
-- capture calls no cast: values of non-built-in types travel as their text.
create function webhooks.json_casts_trusted() returns boolean
language sql stable as $$
  select not exists (
    select from pg_catalog.pg_cast c
      join pg_catalog.pg_proc p on p.oid = c.castfunc
      join pg_catalog.pg_roles o on o.oid = p.proowner
     where c.casttarget in ('pg_catalog.json'::pg_catalog.regtype, 'pg_catalog.jsonb'::pg_catalog.regtype)
       and not o.rolsuper)
$$;
comment on function webhooks.json_casts_trusted() is
  'Internal to capture: false while a cast to json or jsonb has a function not owned by a superuser (capture then calls no cast).';

-- Valid json that jsonb cannot hold (\u0000, a lone surrogate escape, a number beyond
-- numeric's range) must not fail the writer. A column whose to_jsonb() fails travels as
-- {"$text": "<the value as Postgres prints it>"}: for json, its original text. The
-- exception block costs a subtransaction per row, so generated capture functions call this
-- only for tables with a column whose to_jsonb() might fail (json, composite, domain or
-- extension types); other tables use to_jsonb() directly. Columns are read by name from
-- the row's type at run time, so a renamed column cannot make it fail.
create function webhooks.row_jsonb(r anyelement, tbl regclass, casts_trusted boolean) returns jsonb
language plpgsql stable as $$
declare
  rowtype text;
  col record;
  v jsonb;
  j jsonb := '{}';
begin
  if casts_trusted then
    begin
      return pg_catalog.to_jsonb(r);
    exception when others then
      null; -- column by column below
    end;
  end if;
  -- A transition table's row is an anonymous record: read each column back through the
  -- table's row type (the row's text form, which record input always accepts).
  select c.reltype::pg_catalog.regtype::text into rowtype from pg_catalog.pg_class c where c.oid = tbl;
  for col in
    select a.attname,
           -- built-in scalars and arrays of them: no cast can be attached to those
           coalesce(nullif(ty.typelem, 0), nullif(ty.typbasetype, 0), ty.oid) < 16384 and ty.typtype <> 'c' as builtin,
           ty.typtype = 'c' or ty.typcategory = 'A' as nested
      from pg_catalog.pg_attribute a join pg_catalog.pg_type ty on ty.oid = a.atttypid
     where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped order by a.attnum
  loop
    begin
      if casts_trusted or col.builtin then
        execute pg_catalog.format('select pg_catalog.to_jsonb(($1::%s).%I)', rowtype, col.attname) into v using r::text;
      elsif col.nested then
        execute pg_catalog.format('select pg_catalog.jsonb_build_object(''$text'', ($1::%s).%I::text)', rowtype, col.attname)
          into v using r::text;
      else
        execute pg_catalog.format('select pg_catalog.to_jsonb(($1::%s).%I::text)', rowtype, col.attname) into v using r::text;
      end if;
    exception when others then
      begin
        execute pg_catalog.format('select pg_catalog.jsonb_build_object(''$text'', ($1::%s).%I::text)', rowtype, col.attname)
          into v using r::text;
      exception when others then
        v := pg_catalog.jsonb_build_object('$text', null, '$error', sqlerrm);
      end;
    end;
    j := j || pg_catalog.jsonb_build_object(col.attname, v);
  end loop;
  return j;
end
$$;
comment on function webhooks.row_jsonb(anyelement, regclass, boolean) is
  'Internal to capture functions: to_jsonb(row), or, when that fails (or casts are not trusted), the row column by column, each column jsonb cannot hold as {"$text": <its text>}. Never raises.';

-- True when to_jsonb() of every column of the table cannot fail and calls no code a table
-- owner controls: built-in scalar types, their arrays, jsonb, and enums while casts to json
-- are trusted.
create function webhooks.plain_columns(tbl regclass) returns boolean
language sql stable as $$
  select not exists (
    select from pg_catalog.pg_attribute a
      join pg_catalog.pg_type ty on ty.oid = a.atttypid
     where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped
       and not (ty.typtype = 'e' and webhooks.json_casts_trusted())
       and not (ty.oid = any (plain) or (ty.typcategory = 'A' and ty.typelem = any (plain))))
  from (select array[
          'bool', 'int2', 'int4', 'int8', 'float4', 'float8', 'numeric', 'money', 'text', 'varchar',
          'bpchar', 'name', '"char"', 'uuid', 'date', 'time', 'timetz', 'timestamp', 'timestamptz',
          'interval', 'jsonb', 'bytea', 'inet', 'cidr', 'macaddr', 'macaddr8', 'oid', 'bit', 'varbit'
        ]::pg_catalog.regtype[]::pg_catalog.oid[] as plain) p
$$;
comment on function webhooks.plain_columns(regclass) is
  'Internal to install_capture(): true when to_jsonb() cannot fail for any column of the table and calls no cast a table owner controls.';

-- ---------------------------------------------------------------------------------------
-- Capture functions, generated per tracked table
-- ---------------------------------------------------------------------------------------

-- Generated capture functions run as the owner of the webhooks schema (security definer,
-- fixed search_path, everything qualified), so any role that may write a tracked table
-- writes its events without grants on the webhooks schema. They are trigger functions
-- (not callable directly) and PUBLIC may not attach them to other tables.
--
-- Updates are paired with their old rows by position: Postgres appends a row's old and new
-- versions to the statement's transition tables together, so the n-th old row belongs to the
-- n-th new row whatever the key, even when a key changes, a row moves between partitions or
-- the table has no key at all.
create function webhooks.install_capture(tbl regclass) returns void
language plpgsql as $$
declare
  t webhooks.tracked_tables;
  follow boolean := webhooks.follows_ddl();
  conv text;
  tenant_expr text;
  excluded_expr text;
  minus text;
  fn text;
  owner name;
  op text;
  pfx text;
  branches text[] := '{}';
begin
  select * into t from webhooks.tracked_tables where table_name = tbl;
  if not found then
    raise exception 'table: % is not tracked', tbl using errcode = '22023';
  end if;
  pfx := t.event_prefix;
  conv := case when not follow then 'webhooks.row_jsonb(x.*, tg_relid, casts_trusted)'
               when webhooks.plain_columns(tbl) then 'pg_catalog.to_jsonb(x.*)'
               when webhooks.json_casts_trusted() then 'webhooks.row_jsonb(x.*, tg_relid, true)'
               else 'webhooks.row_jsonb(x.*, tg_relid, false)' end;

  -- Options as literals while the event trigger rewrites this function on ALTER TABLE;
  -- otherwise looked up once per statement, by name or by column number.
  if t.tenant_column is null then
    tenant_expr := 'null';
  elsif follow then
    tenant_expr := quote_literal(t.tenant_column);
  else
    tenant_expr := format(
      '(select a.attname::text from pg_catalog.pg_attribute a where a.attrelid = tg_relid and a.attnum > 0 and not a.attisdropped and (a.attname = %L or a.attnum = %s) order by a.attname = %L desc limit 1)',
      t.tenant_column, coalesce(t.tenant_attnum, 0), t.tenant_column);
  end if;
  if cardinality(t.excluded_columns) = 0 and cardinality(t.excluded_attnums) = 0 then
    excluded_expr := '''{}''';
    minus := '';
  elsif follow then
    excluded_expr := quote_literal(t.excluded_columns);
    minus := ' - excluded';
  else
    excluded_expr := format(
      '%L::text[] || array(select a.attname::text from pg_catalog.pg_attribute a where a.attrelid = tg_relid and a.attnum = any(%L::int2[]) and not a.attisdropped)',
      t.excluded_columns, t.excluded_attnums);
    minus := ' - excluded';
  end if;

  if 'insert' = any(t.operations) then
    branches := branches || format($f$tg_op = 'INSERT' then
    insert into webhooks.outbox (event_id, type, tenant, data, source_table)
    select null, %L, r.j ->> tenant_col, r.j%s, src
      from (select %s as j from new_rows x) r;$f$, pfx || '.created', minus, conv);
  end if;
  if 'delete' = any(t.operations) then
    branches := branches || format($f$tg_op = 'DELETE' then
    insert into webhooks.outbox (event_id, type, tenant, data, source_table)
    select null, %L, r.j ->> tenant_col, r.j%s, src
      from (select %s as j from old_rows x) r;$f$, pfx || '.deleted', minus, conv);
    -- TRUNCATE is a delete of every row that names none: one event, without a tenant.
    branches := branches || format($f$tg_op = 'TRUNCATE' then
    insert into webhooks.outbox (event_id, type, tenant, data, source_table)
    values (null, %L, null, pg_catalog.jsonb_build_object('table', src), src);$f$, pfx || '.truncated');
  end if;
  if 'update' = any(t.operations) then
    -- A row whose tenant changes leaves one tenant and joins another: the old tenant gets
    -- <prefix>.deleted with the row as it knew it, the new one <prefix>.created, and neither
    -- sees the other's values.
    branches := branches || format($f$tg_op = 'UPDATE' then
    if (select count(*) from old_rows) = (select count(*) from new_rows) then
      insert into webhooks.outbox (event_id, type, tenant, data, previous_attributes, source_table)
      select null, e.type, e.tenant, e.data, e.prev, src
      from (
        select p.old_tenant, p.new_tenant, p.o, p.n,
               (select pg_catalog.jsonb_object_agg(f.key, f.value)
                  from pg_catalog.jsonb_each(p.o) f
                 where p.n -> f.key is distinct from f.value) as prev
        from (
          select o.j ->> tenant_col as old_tenant, n.j ->> tenant_col as new_tenant, o.j%1$s as o, n.j%1$s as n
            from (select pg_catalog.row_number() over () as i, %2$s as j from old_rows x) o
            join (select pg_catalog.row_number() over () as i, %2$s as j from new_rows x) n on n.i = o.i
        ) p
      ) u
      cross join lateral (values (%3$L, u.new_tenant, u.n, u.prev),
                                 (%4$L, u.old_tenant, u.o, null),
                                 (%5$L, u.new_tenant, u.n, null)) e(type, tenant, data, prev)
      where case when u.old_tenant is not distinct from u.new_tenant
                 then e.type = %3$L and u.prev is not null -- an update that changes no (visible) value emits nothing
                 else e.type <> %3$L end;
    else
      -- Only when a BEFORE trigger on a partition drops a row moving into it: the counts
      -- differ and rows cannot be paired, so each new row is announced without
      -- previous_attributes.
      insert into webhooks.outbox (event_id, type, tenant, data, source_table)
      select null, %3$L, r.j ->> tenant_col, r.j%1$s, src
        from (select %2$s as j from new_rows x) r;
    end if;$f$, minus, conv, pfx || '.updated', pfx || '.deleted', pfx || '.created');
  end if;

  -- A new name each time: a restored dump keeps its functions' names, so a name derived
  -- from the table's oid could clash with the function of another table.
  fn := format('webhooks.%I',
               'capture_' || left(regexp_replace((select relname from pg_class where oid = tbl), '[^A-Za-z0-9_]', '_', 'g'), 40)
                 || '_' || substr(md5(tbl::oid::text || clock_timestamp()::text || random()::text), 1, 8));
  execute format($f$
create function %s() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $body$
declare
  src text := tg_table_schema || '.' || tg_table_name;
  tenant_col text := %s;
  excluded text[] := %s;
  casts_trusted boolean := %s;
  idle boolean;
begin
  if %s
  end if;
  -- webhooks.wake(), inlined: a call per statement costs as much as the check.
  if found then
    select w.idle into idle from webhooks.dispatcher_wakeup w;
    if idle then
      if webhooks.claim_wake() then
        perform pg_catalog.pg_notify('pg_webhooks', '');
      end if;
    end if;
  end if;
  return null;
end
$body$
$f$, fn, tenant_expr, excluded_expr,
    case when follow then 'null' else 'webhooks.json_casts_trusted()' end,
    array_to_string(branches, E'\n  elsif '));
  execute format('comment on function %s() is %L', fn,
    format('Capture trigger function of %s with its tracking options as literals, generated by webhooks.track_table(); untrack_table() drops it. Runs as the owner of schema webhooks.', tbl));
  execute format('revoke all on function %s() from public', fn);
  select n.nspowner::regrole::name into owner from pg_namespace n where n.nspname = 'webhooks';
  if owner <> current_user and pg_has_role(current_user, owner, 'MEMBER') then
    execute format('alter function %s() owner to %I', fn, owner);
  end if;

  for op in
    select tgname from pg_trigger
     where tgrelid = tbl and tgname in ('pg_webhooks_insert', 'pg_webhooks_update', 'pg_webhooks_delete', 'pg_webhooks_truncate')
  loop
    execute format('drop trigger %I on %s', op, tbl);
  end loop;
  foreach op in array t.operations loop
    execute format(
      'create trigger %I after %s on %s referencing %s for each statement execute function %s()',
      'pg_webhooks_' || op, op, tbl,
      case op when 'insert' then 'new table as new_rows'
              when 'delete' then 'old table as old_rows'
              else 'old table as old_rows new table as new_rows' end,
      fn);
    if op = 'delete' then
      execute format('create trigger pg_webhooks_truncate after truncate on %s for each statement execute function %s()', tbl, fn);
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

-- ---------------------------------------------------------------------------------------
-- Tracking a table
-- ---------------------------------------------------------------------------------------

-- Every option is checked before anything changes, and each error names the option it is
-- about (the CLI and the API pass the message on as it is). The primary key is recorded so
-- that `pg-webhooks tracked` can show it; capture does not need one.
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
  insert into webhooks.tracked_tables
    (table_name, event_prefix, operations, tenant_column, excluded_columns, primary_key, tenant_attnum, excluded_attnums)
  values (tbl, prefix, operations, tenant_column, coalesce(excluded_columns, '{}'), pk,
          (select a.attnum from pg_attribute a where a.attrelid = tbl and a.attname = tenant_column and not a.attisdropped),
          array(select a.attnum from pg_attribute a
                 where a.attrelid = tbl and a.attname = any(coalesce(excluded_columns, '{}')) and not a.attisdropped
                 order by a.attnum));
  perform webhooks.install_capture(tbl);
end
$$;
comment on function webhooks.track_table(regclass, text, text[], text, text[]) is
  'Starts emitting <prefix>.created|updated|deleted (and <prefix>.truncated with deletes) events for a table. Calling it again replaces the options; it never stacks triggers. Writers need no grants on schema webhooks. Example: select webhooks.track_table(''public.clients'', tenant_column => ''account_id'', excluded_columns => array[''password_hash'']);';

-- Drops only the triggers that exist: DROP TRIGGER IF EXISTS prints a NOTICE per missing
-- one, which DBAs read as a problem.
create function webhooks.untrack_table(tbl regclass) returns boolean
language plpgsql as $$
declare
  op text;
begin
  for op in
    select tgname from pg_trigger
     where tgrelid = tbl and tgname in ('pg_webhooks_insert', 'pg_webhooks_update', 'pg_webhooks_delete', 'pg_webhooks_truncate')
  loop
    execute format('drop trigger %I on %s', op, tbl);
  end loop;
  perform webhooks.drop_unused_capture_functions();
  delete from webhooks.tracked_tables where table_name = tbl;
  return found;
end
$$;
comment on function webhooks.untrack_table(regclass) is
  'Stops emitting events for a table. Returns false when it was not tracked. Events already in the outbox are still delivered.';

-- ---------------------------------------------------------------------------------------
-- Following ALTER TABLE
-- ---------------------------------------------------------------------------------------

-- With the event trigger below (created only when a superuser migrates), an ALTER TABLE on a
-- tracked table rewrites its capture function at once. Without it, capture functions look
-- their tenant and excluded columns up by name and number once per statement.
create function webhooks.follows_ddl() returns boolean
language sql stable as $$
  select exists (select from pg_catalog.pg_event_trigger
                  where evtname = 'pg_webhooks_follow_ddl' and evtenabled <> 'D')
$$;
comment on function webhooks.follows_ddl() is
  'Internal: true when the pg_webhooks_follow_ddl event trigger is installed and enabled.';

-- Brings a tracked table's options up to date with its columns: a renamed tenant or
-- excluded column is followed by its number; a dropped tenant column leaves events without a
-- tenant (so only webhooks without a tenant get them), a dropped excluded column's name stays
-- excluded.
create function webhooks.refresh_tracking(tbl regclass) returns void
language plpgsql as $$
begin
  update webhooks.tracked_tables t
     set tenant_column = n.tenant_column,
         tenant_attnum = n.tenant_attnum,
         excluded_columns = n.excluded_columns,
         excluded_attnums = n.excluded_attnums,
         primary_key = n.primary_key,
         updated_at = now()
    from (
      select
        (select a.attname::text from pg_catalog.pg_attribute a
          where a.attrelid = t0.table_name and a.attnum > 0 and not a.attisdropped
            and (a.attname = t0.tenant_column or a.attnum = t0.tenant_attnum)
          order by a.attname = t0.tenant_column desc limit 1) as tenant_column,
        (select a.attnum from pg_catalog.pg_attribute a
          where a.attrelid = t0.table_name and a.attnum > 0 and not a.attisdropped
            and (a.attname = t0.tenant_column or a.attnum = t0.tenant_attnum)
          order by a.attname = t0.tenant_column desc limit 1) as tenant_attnum,
        -- Names stay excluded after their column is dropped, should it come back.
        array(select distinct c from unnest(t0.excluded_columns || array(
                select a.attname::text from pg_catalog.pg_attribute a
                 where a.attrelid = t0.table_name and a.attnum = any(t0.excluded_attnums) and not a.attisdropped)) c
               order by c) as excluded_columns,
        array(select a.attnum from pg_catalog.pg_attribute a
               where a.attrelid = t0.table_name and a.attnum > 0 and not a.attisdropped
                 and (a.attname = any(t0.excluded_columns) or a.attnum = any(t0.excluded_attnums))
               order by a.attnum) as excluded_attnums,
        array(select a.attname::text from pg_catalog.pg_index i
                join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
               where i.indrelid = t0.table_name and i.indisprimary order by a.attname) as primary_key
      from webhooks.tracked_tables t0 where t0.table_name = tbl
    ) n
   where t.table_name = tbl;
  perform webhooks.install_capture(tbl);
end
$$;
comment on function webhooks.refresh_tracking(regclass) is
  'Internal to the pg_webhooks_follow_ddl event trigger: follows renamed and dropped option columns and rewrites the capture function.';

create function webhooks.follow_ddl() returns event_trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  tbl regclass;
begin
  for tbl in
    select distinct t.table_name
      from pg_catalog.pg_event_trigger_ddl_commands() c
      join webhooks.tracked_tables t
        on t.table_name = c.objid and c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
        -- a cast to json changes what capture may call, for every table
        or c.command_tag in ('CREATE CAST', 'DROP CAST')
     where exists (select from pg_catalog.pg_class r where r.oid = t.table_name)
  loop
    begin
      perform webhooks.refresh_tracking(tbl);
    exception when others then
      -- The DBA's ALTER TABLE goes through; the capture function keeps its old options.
      raise warning 'pg-webhooks could not follow the change to %: %', tbl, sqlerrm;
    end;
  end loop;
exception when others then
  raise warning 'pg-webhooks could not follow ALTER TABLE: %', sqlerrm;
end
$$;
comment on function webhooks.follow_ddl() is
  'Event trigger function: after ALTER TABLE on a tracked table, follows its columns and rewrites its capture function.';
revoke all on function webhooks.follow_ddl() from public;

do $$
begin
  if (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    create event trigger pg_webhooks_follow_ddl on ddl_command_end
      when tag in ('ALTER TABLE', 'CREATE CAST', 'DROP CAST')
      execute function webhooks.follow_ddl();
    comment on event trigger pg_webhooks_follow_ddl is
      'Rewrites the capture function of a tracked table after ALTER TABLE, and of every tracked table after CREATE or DROP CAST (pg-webhooks).';
  else
    raise notice 'pg-webhooks: not a superuser, so no event trigger follows ALTER TABLE; capture functions check their columns once per statement instead';
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Custom events
-- ---------------------------------------------------------------------------------------

-- Runs as the schema owner, so a role needs only USAGE on schema webhooks and EXECUTE on
-- this function (not PUBLIC's: emitting is a privilege) to emit, and no rights on the tables.
create function webhooks.emit(type text, data jsonb, tenant text default null) returns uuid
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
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
  'Emits a custom event inside the caller''s transaction; it is delivered only if that transaction commits. Returns the event id. Needs: grant usage on schema webhooks, grant execute on this function. Example: select webhooks.emit(''invoice.paid'', jsonb_build_object(''id'', 42), tenant => ''acme'');';
revoke all on function webhooks.emit(text, jsonb, text) from public;
