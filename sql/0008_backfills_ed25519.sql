-- Asymmetric signatures (Standard Webhooks v1a, ed25519) and backfills: existing rows of a
-- tracked table sent once to one webhook, in key order, resumable, driven by the dispatcher.

-- ---------------------------------------------------------------------------------------
-- ed25519 signatures
-- ---------------------------------------------------------------------------------------

-- With ed25519 the secret column holds the private signing key (whsk_ + base64 of the
-- 32-byte seed) and previous_secret the old one during a rotation; the public key (whpk_…)
-- is derived from it, so the two can never disagree.
alter table webhooks.subscriptions drop constraint subscriptions_signature_scheme_check;
alter table webhooks.subscriptions add constraint subscriptions_signature_scheme_check
  check (signature_scheme in ('standard', 'ed25519', 'hex', 'sha256'));
comment on column webhooks.subscriptions.secret is
  'The signing secret: whsec_… for standard, the ed25519 private signing key whsk_… for ed25519 (its public key whpk_… is what receivers hold), any text for hex and sha256.';

-- ---------------------------------------------------------------------------------------
-- Backfills
-- ---------------------------------------------------------------------------------------

-- An event for one webhook only. Null (every captured and emitted event) means fanout
-- matches it against every webhook as before; no foreign key, so capture pays no RI check.
alter table webhooks.outbox add column target_subscription uuid;
comment on column webhooks.outbox.target_subscription is
  'Set on backfill events: the one webhook that receives it (its tenant and filter still apply, its event types do not). Null: every matching webhook.';

create table webhooks.backfills (
  id uuid primary key default gen_random_uuid(),
  subscription_id uuid not null references webhooks.subscriptions (id) on delete cascade,
  -- The webhook's tenant when it has one: only that tenant's rows are read.
  tenant text,
  table_name regclass not null,
  -- A boolean SQL condition over the table's columns (admin keys only), checked when the
  -- backfill was created; null: every row.
  where_sql text,
  rate_per_s double precision check (rate_per_s > 0 and rate_per_s <= 100000),
  -- The primary key, in index order: rows go in this order and the cursor holds its values.
  key_columns text[] not null check (cardinality(key_columns) > 0),
  -- The last key sent, as a json array of the key columns' text forms; null before the first batch.
  cursor jsonb,
  rows_total bigint,
  rows_sent bigint not null default 0,
  state text not null default 'running' check (state in ('running', 'paused', 'done', 'cancelled', 'failed')),
  error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz
);
comment on table webhooks.backfills is
  'A row is a backfill: the existing rows of a tracked table (those matching where_sql) sent once to one webhook as <prefix>.backfill events, in primary-key order. cursor (the last key sent) moves in the transaction that writes the events, so a stopped or crashed backfill resumes after the last row it sent.';
comment on column webhooks.backfills.rows_total is
  'Rows matching when the backfill started (a count then; rows inserted since with a higher key are sent too).';
create index backfills_by_subscription on webhooks.backfills (subscription_id, created_at desc);

-- One batch of a backfill, in one transaction with its caller: the next `max_rows` rows after
-- the cursor, in key order, read FOR SHARE and written to the outbox as <prefix>.backfill
-- events for the one webhook, and the cursor moved past them. FOR SHARE makes a concurrent
-- UPDATE or DELETE of a row in the batch wait for this commit, so its own event is written
-- (and gets a higher outbox id) after the backfill event: the receiver's last word on a row
-- is its newest state. The row becomes JSON as capture makes it (row_jsonb, tenant column,
-- excluded columns, looked up by column number like capture).
create function webhooks.backfill_batch(bid uuid, max_rows integer)
returns table (batch_rows integer, batch_state text)
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
  b webhooks.backfills;
  t webhooks.tracked_tables;
  s record;
  qualified text;
  conv text;
  tenant_col text;
  excluded text[];
  key_cmp_left text;
  key_cmp_right text;
  key_order text;
  key_json text;
  n integer;
  last_key jsonb;
begin
  select * into b from webhooks.backfills where id = bid for update;
  if not found or b.state <> 'running' then
    return query select 0, coalesce(b.state, 'cancelled');
    return;
  end if;
  select sub.is_active, sub.deleted_at into s from webhooks.subscriptions sub where sub.id = b.subscription_id;
  if s.deleted_at is not null then
    update webhooks.backfills set state = 'cancelled', error = 'the webhook was deleted', updated_at = now(), finished_at = now() where id = bid;
    return query select 0, 'cancelled'::text;
    return;
  end if;
  if not s.is_active then
    -- Events for a disabled webhook would be dropped by fanout: stop before writing any.
    update webhooks.backfills set state = 'paused', error = 'the webhook is disabled: enable it, then resume the backfill', updated_at = now() where id = bid;
    return query select 0, 'paused'::text;
    return;
  end if;
  select * into t from webhooks.tracked_tables where table_name = b.table_name;
  if not found then
    update webhooks.backfills set state = 'failed', error = format('%s is no longer tracked', b.table_name), updated_at = now(), finished_at = now() where id = bid;
    return query select 0, 'failed'::text;
    return;
  end if;

  qualified := (select format('%I.%I', ns.nspname, c.relname) from pg_class c join pg_namespace ns on ns.oid = c.relnamespace where c.oid = b.table_name);
  conv := case when webhooks.plain_columns(b.table_name) then 'pg_catalog.to_jsonb(x)'
               else format('webhooks.row_jsonb(x, %L::regclass, %L)', b.table_name::oid::text, webhooks.json_casts_trusted()) end;
  tenant_col := (select a.attname::text from pg_attribute a
                  where a.attrelid = b.table_name and a.attnum > 0 and not a.attisdropped
                    and (a.attname = t.tenant_column or a.attnum = t.tenant_attnum)
                  order by a.attname = t.tenant_column desc limit 1);
  excluded := t.excluded_columns || array(select a.attname::text from pg_attribute a
                                           where a.attrelid = b.table_name and a.attnum = any(t.excluded_attnums) and not a.attisdropped);
  select string_agg(format('x.%I', k), ', ' order by i),
         string_agg(format('($1 ->> %s)::%s', i - 1, format_type(a.atttypid, a.atttypmod)), ', ' order by i),
         string_agg(format('x.%I', k), ', ' order by i),
         string_agg(format('x.%I::text', k), ', ' order by i)
    into key_cmp_left, key_cmp_right, key_order, key_json
    from unnest(b.key_columns) with ordinality u(k, i)
    join pg_attribute a on a.attrelid = b.table_name and a.attname = u.k and not a.attisdropped;
  if b.tenant is not null and tenant_col is null then
    update webhooks.backfills set state = 'failed', error = format('%s has no tenant column: a tenant''s backfill cannot tell its rows', b.table_name), updated_at = now(), finished_at = now() where id = bid;
    return query select 0, 'failed'::text;
    return;
  end if;
  if key_cmp_left is null or (select count(*) from pg_attribute a where a.attrelid = b.table_name and a.attname = any(b.key_columns) and not a.attisdropped) <> cardinality(b.key_columns) then
    update webhooks.backfills set state = 'failed', error = format('the key columns %s of %s changed', b.key_columns, b.table_name), updated_at = now(), finished_at = now() where id = bid;
    return query select 0, 'failed'::text;
    return;
  end if;

  execute format($q$
    with r as materialized (
      select row(%1$s) as kr, pg_catalog.jsonb_build_array(%4$s) as k, %5$s as j
        from %6$s x
       where ($1 is null or row(%1$s) > row(%2$s))
         and (%7$s)
         and ($2::text is null or (pg_catalog.to_jsonb(x.%8$I) #>> '{}') = $2)
       order by %3$s
       limit $3
         for share of x
    ), ins as (
      insert into webhooks.outbox (event_id, type, tenant, data, source_table, target_subscription)
      select null, $4, r.j ->> $5, r.j - $6::text[], $7, $8 from r order by r.kr
      returning 1
    )
    select (select pg_catalog.count(*) from ins)::int, (select r.k from r order by r.kr desc limit 1)$q$,
    key_cmp_left, key_cmp_right, key_order, key_json, conv, qualified,
    coalesce(b.where_sql, 'true'),
    coalesce(tenant_col, b.key_columns[1]))
  into n, last_key
  using b.cursor, b.tenant, max_rows,
        t.event_prefix || '.backfill', tenant_col, excluded,
        (select format('%s.%s', ns.nspname, c.relname) from pg_class c join pg_namespace ns on ns.oid = c.relnamespace where c.oid = b.table_name),
        b.subscription_id;

  update webhooks.backfills
     set cursor = coalesce(last_key, cursor),
         rows_sent = rows_sent + n,
         state = case when n < max_rows then 'done' else 'running' end,
         finished_at = case when n < max_rows then now() end,
         error = null,
         updated_at = now()
   where id = bid;
  if n > 0 then
    perform webhooks.wake();
  end if;
  return query select n, case when n < max_rows then 'done' else 'running' end;
end
$$;
comment on function webhooks.backfill_batch(uuid, integer) is
  'Internal to the dispatcher''s backfill job: writes the next max_rows rows of a running backfill as events for its webhook and moves its cursor, in the caller''s transaction. Returns how many it wrote and the backfill''s state (done once a batch comes up short).';
