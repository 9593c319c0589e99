-- Derived events by rule: `deal.stage.changed` when a tracked table's `stage` changes,
-- `opportunity.closed_won` when it changes to 'won'. A rule is a row of webhooks.event_rules;
-- install_capture() (replaced below) compiles the table's active rules into the same INSERT
-- statements that write its base events, so a derived event is written right after its base
-- event, in the writer's transaction, with its tenant and without its excluded columns: no
-- extra trigger and no function call per row. emit() gains previous_attributes too.

-- ---------------------------------------------------------------------------------------
-- Rules
-- ---------------------------------------------------------------------------------------

-- No foreign key to tracked_tables: track_table() replaces that row on every call, and a
-- rule outlives untrack_table() (it is shown as disabled and comes back with track_table()).
create table webhooks.event_rules (
  table_name regclass not null,
  event_type text not null,
  operations text[] not null default '{update}',
  on_change text[],
  condition jsonb,
  sql_condition text,
  -- An inlinable SQL function (webhooks.event_rule_<hash>(new, old)) holding sql_condition.
  sql_function text,
  disabled_reason text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (table_name, event_type)
);
comment on table webhooks.event_rules is
  'A row is a derived event: for each write to table_name of one of operations that changes one of on_change (any visible change when null) and satisfies condition (the webhook filter language over the event body) and sql_condition (SQL over NEW and OLD), an event_type event follows the table''s own event. Compiled into the table''s capture function; disabled_reason says why a rule does not fire (a column it names is gone, the table is not tracked).';
comment on column webhooks.event_rules.on_change is
  'Fire only when one of these columns changes (IS DISTINCT FROM, as in previous_attributes); on insert, when one of them is not null; on delete, when one of them was not null. Null: any change.';
comment on column webhooks.event_rules.disabled_reason is
  'Set by install_capture() while the rule cannot fire (a column it names was dropped, renamed or excluded; the table is not tracked for its operations); cleared when that is no longer so.';

-- ---------------------------------------------------------------------------------------
-- The filter language, compiled to SQL
-- ---------------------------------------------------------------------------------------

-- Numbers a double keeps exactly, as src/delivery/event-json.ts fitsDouble() decides: an
-- integer below 2^53 in magnitude, or a fraction of at most 15 significant digits.
create function webhooks.fits_double(n numeric) returns boolean
language sql immutable strict as $$
  select case
           when n = 0 then true
           when abs(n) = trunc(abs(n)) then abs(n) < 9007199254740992
           else length(ltrim(replace(rtrim(abs(n)::text, '0'), '.', ''), '0')) <= 15
         end
$$;
comment on function webhooks.fits_double(numeric) is
  'Internal to rule conditions: true when a double holds the number exactly (as the webhook filter language decides).';

create function webhooks.filter_describe(v jsonb) returns text
language sql immutable as $$
  select case when v is null then 'nothing' when jsonb_typeof(v) = 'null' then 'null'
              when jsonb_typeof(v) = 'array' then 'array' else jsonb_typeof(v) end
$$;
comment on function webhooks.filter_describe(jsonb) is 'Internal to rule conditions: a JSON value''s type, as error messages name it.';

-- The jsonb literals a field equals when the filter says `v`: a number by its exact value; a
-- string as itself, and, when it is digits no double holds (as the language asks such numbers
-- to be written), also as that number.
create function webhooks.filter_literals(v jsonb) returns text[]
language sql immutable as $$
  select case
           when jsonb_typeof(v) = 'string' and (v #>> '{}') ~ '^-?[0-9]+(\.[0-9]+)?$'
                and not webhooks.fits_double((v #>> '{}')::numeric)
             then array[format('%L::jsonb', v::text), format('%L::jsonb', (v #>> '{}')::numeric::text)]
           else array[format('%L::jsonb', v::text)]
         end
$$;
comment on function webhooks.filter_literals(jsonb) is 'Internal to rule conditions: the jsonb literals a field must equal to equal a filter operand.';

-- Raises `condition.<path>: <message>` (SQLSTATE 22023), as the API names a filter problem.
create function webhooks.filter_error(path text[], message text) returns void
language plpgsql immutable as $$
begin
  raise exception '%: %', array_to_string(array['condition'] || path, '.'), message using errcode = '22023';
end
$$;
comment on function webhooks.filter_error(text[], text) is 'Internal to rule conditions: raises a problem with its path.';

-- A problem with an operand, or null: the same checks and messages as src/model/filter.ts.
create function webhooks.filter_operand_problem(op text, v jsonb, string_root boolean, field text) returns text
language plpgsql immutable as $$
declare
  got text := 'got ' || webhooks.filter_describe(v);
  e jsonb;
  scalar boolean := jsonb_typeof(v) in ('string', 'number', 'boolean', 'null');
begin
  -- Numbers a double would have rounded: the API refuses them, so a DBA's rule does too.
  for e in select x from jsonb_array_elements(case when jsonb_typeof(v) = 'array' then v else jsonb_build_array(v) end) x loop
    if jsonb_typeof(e) = 'number' and not webhooks.fits_double(e::text::numeric) then
      return format('%s is beyond 2^53 or has more than 15 significant digits, so it may already have been rounded when read; write it as a string of its exact digits, such as "9007199254740993"', e::text);
    end if;
  end loop;
  case op
    when '$eq', '$ne' then
      if not scalar then return format('expected a string, number, boolean or null for %s, %s', op, got); end if;
    when '$gt', '$gte', '$lt', '$lte' then
      if jsonb_typeof(v) not in ('string', 'number') then return format('expected a number or string for %s, %s', op, got); end if;
    when '$in', '$nin' then
      if jsonb_typeof(v) <> 'array' then
        return format('expected an array of strings, numbers, booleans or nulls for %s, %s', op, got);
      elsif exists (select from jsonb_array_elements(v) x where jsonb_typeof(x) in ('object', 'array')) then
        return format('expected an array of strings, numbers, booleans or nulls for %s, got an array holding other values', op);
      end if;
    when '$contains' then
      if not scalar then
        return format('expected one string, number, boolean or null for $contains, %s%s', got,
                      case when jsonb_typeof(v) = 'array' then '; for several values use $all' else '' end);
      end if;
    when '$all' then
      if jsonb_typeof(v) <> 'array' then
        return format('expected a non-empty array of strings, numbers, booleans or nulls for $all, %s', got);
      elsif jsonb_array_length(v) = 0 then
        return 'expected a non-empty array of strings, numbers, booleans or nulls for $all, got an empty array';
      elsif exists (select from jsonb_array_elements(v) x where jsonb_typeof(x) in ('object', 'array')) then
        return 'expected a non-empty array of strings, numbers, booleans or nulls for $all, got an array holding other values';
      end if;
    when '$exists' then
      if jsonb_typeof(v) <> 'boolean' then return format('expected true or false for $exists, %s', got); end if;
    else
      return format('unknown operator %s; expected one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $contains, $all, $exists', op);
  end case;
  if string_root then
    if op in ('$contains', '$all') then
      return format('%s is a string, not an array; %s applies to arrays (use $eq or $in)', field, op);
    elsif op in ('$gt', '$gte', '$lt', '$lte') and jsonb_typeof(v) = 'number' then
      return format('%s is a string; %s with a number never holds on it (compare with a string)', field, op);
    end if;
  end if;
  return null;
end
$$;
comment on function webhooks.filter_operand_problem(text, jsonb, boolean, text) is 'Internal to rule conditions: what is wrong with an operator''s operand, or null.';

-- One operator over the field value `val` (a jsonb expression, SQL null when the path is
-- missing), as a boolean expression that is never null and never raises, whatever the row
-- holds: every comparison first checks the JSON type it needs.
create function webhooks.filter_operator_sql(op text, v jsonb, val text) returns text
language plpgsql immutable as $$
declare
  lits text[];
  parts text[] := '{}';
  e jsonb;
  cmp text := case op when '$gt' then '>' when '$gte' then '>=' when '$lt' then '<' when '$lte' then '<=' end;
begin
  case op
    when '$eq' then
      return format('coalesce(%s in (%s), false)', val, array_to_string(webhooks.filter_literals(v), ', '));
    when '$ne' then
      return format('not coalesce(%s in (%s), false)', val, array_to_string(webhooks.filter_literals(v), ', '));
    when '$in', '$nin' then
      select coalesce(array_agg(l), '{}') into lits
        from jsonb_array_elements(v) x, unnest(webhooks.filter_literals(x)) l;
      if cardinality(lits) = 0 then
        return case op when '$in' then 'false' else 'true' end;
      end if;
      return format('%scoalesce(%s in (%s), false)', case op when '$nin' then 'not ' else '' end, val, array_to_string(lits, ', '));
    when '$gt', '$gte', '$lt', '$lte' then
      if jsonb_typeof(v) = 'number' then
        return format('coalesce(jsonb_typeof(%1$s) = ''number'' and %1$s %2$s %3$L::jsonb, false)', val, cmp, v::text);
      end if;
      -- Strings compare by code point (JavaScript compares UTF-16 units: the two differ only
      -- between characters beyond U+FFFF and those from U+E000 to U+FFFF).
      parts := array[format('coalesce(jsonb_typeof(%1$s) = ''string'' and (%1$s #>> ''{}'') collate "C" %2$s %3$L collate "C", false)',
                            val, cmp, v #>> '{}')];
      lits := webhooks.filter_literals(v);
      if cardinality(lits) > 1 then
        parts := parts || format('coalesce(jsonb_typeof(%1$s) = ''number'' and %1$s %2$s %3$s, false)', val, cmp, lits[2]);
      end if;
      return '(' || array_to_string(parts, ' or ') || ')';
    when '$contains' then
      select array_agg(format('%s @> jsonb_build_array(%s)', val, l)) into parts from unnest(webhooks.filter_literals(v)) l;
      return format('coalesce(jsonb_typeof(%s) = ''array'' and (%s), false)', val, array_to_string(parts, ' or '));
    when '$all' then
      for e in select x from jsonb_array_elements(v) x loop
        parts := parts || webhooks.filter_operator_sql('$contains', e, val);
      end loop;
      return '(' || array_to_string(parts, ' and ') || ')';
    when '$exists' then
      return format('(%s is %snull)', val, case when v = 'true' then 'not ' else '' end);
  end case;
end
$$;
comment on function webhooks.filter_operator_sql(text, jsonb, text) is 'Internal to rule conditions: one operator as SQL that never raises.';

-- A filter (the webhook filter language of src/model/filter.ts) as a boolean SQL expression
-- over the event a rule would emit: `data` (the event's data), `prev` (previous_attributes,
-- null when the event has none), `tenant` (text) and `type`. Checked as the API checks a
-- webhook's filter, with the same messages; paths `data.<column>` and
-- `previous_attributes.<column>` must name columns of `tbl` that events carry.
create function webhooks.filter_sql(
  f jsonb, path text[], depth integer, tbl regclass, excluded text[],
  data text, prev text, tenant text, type text
) returns text
language plpgsql stable as $$
declare
  k text;
  v jsonb;
  parts text[] := '{}';
  segs text[];
  val text;
  s text;
  op text;
  operand jsonb;
  nodes integer;
  problem text;
  string_root boolean;
begin
  if f is null or jsonb_typeof(f) <> 'object' then
    perform webhooks.filter_error(path, format('expected a filter object such as {"data.stage": "won"}, got %s', webhooks.filter_describe(f)));
  end if;
  if depth > 10 then
    perform webhooks.filter_error(path, 'filter is nested too deeply; at most 10 levels of $and, $or and $not');
  end if;
  for k, v in select * from jsonb_each(f) loop
    nodes := coalesce(nullif(current_setting('pg_webhooks.filter_nodes', true), ''), '0')::integer + 1;
    perform set_config('pg_webhooks.filter_nodes', nodes::text, true);
    if nodes > 100 then
      perform webhooks.filter_error('{}', 'filter is too large; at most 100 conditions in all, counting $and, $or and $not');
    end if;
    if k in ('$and', '$or') then
      if jsonb_typeof(v) <> 'array' or jsonb_array_length(v) = 0 then
        perform webhooks.filter_error(path || k, format('expected an array of filters, got %s',
          case when jsonb_typeof(v) = 'array' then 'an empty array' else webhooks.filter_describe(v) end));
      end if;
      select '(' || string_agg(webhooks.filter_sql(x, path || k || (i - 1)::text, depth + 1, tbl, excluded, data, prev, tenant, type),
                               case k when '$and' then ' and ' else ' or ' end order by i) || ')'
        into s from jsonb_array_elements(v) with ordinality a(x, i);
      parts := parts || s;
    elsif k = '$not' then
      parts := parts || ('not ' || webhooks.filter_sql(v, path || k, depth + 1, tbl, excluded, data, prev, tenant, type));
    elsif k like '$%' then
      perform webhooks.filter_error(path || k, format('unknown logical operator %s; expected one of $and, $or, $not or a field path such as data.stage', k));
    else
      segs := string_to_array(k, '.');
      if '' = any(segs) then
        perform webhooks.filter_error(path || k, format('expected a field path such as data.stage or data.items.0.sku, got %s', to_jsonb(k)::text));
      end if;
      case segs[1]
        when 'data', 'previous_attributes' then
          val := case segs[1] when 'data' then data else prev end;
          if cardinality(segs) > 1 and not exists (
            select from pg_attribute a where a.attrelid = tbl and a.attname = segs[2] and a.attnum > 0 and not a.attisdropped) then
            perform webhooks.filter_error(path || k, format('%s has no column %s', tbl, quote_ident(segs[2])));
          end if;
          if segs[2] = any(excluded) then
            perform webhooks.filter_error(path || k, format('column %s is excluded from %s''s events, so no event holds it', quote_ident(segs[2]), tbl));
          end if;
        when 'tenant' then
          val := format('coalesce(to_jsonb(%s), ''null''::jsonb)', tenant);
        when 'type' then
          val := format('%L::jsonb', to_jsonb(type)::text);
        when 'id', 'timestamp' then
          perform webhooks.filter_error(path || k, format('%s is not known when a rule runs (the event gets it later); a rule''s condition reads data, previous_attributes, tenant and type', segs[1]));
        else
          perform webhooks.filter_error(path || k, format('unknown field %s; paths start with data, previous_attributes, type, tenant, id, timestamp (for example data.%s)', segs[1], k));
      end case;
      -- Digits index arrays (and name object keys); any other segment names a key only.
      foreach s in array segs[2:] loop
        val := case when s ~ '^[0-9]+$' then format('(%s #> %L)', val, array[s]::text) else format('(%s -> %L)', val, s) end;
      end loop;
      string_root := segs[1] in ('type', 'tenant') and cardinality(segs) = 1;
      if jsonb_typeof(v) in ('string', 'number', 'boolean', 'null') then
        problem := webhooks.filter_operand_problem('$eq', v, false, k);
        if problem is not null then perform webhooks.filter_error(path || k, problem); end if;
        parts := parts || webhooks.filter_operator_sql('$eq', v, val);
      elsif jsonb_typeof(v) <> 'object' then
        perform webhooks.filter_error(path || k, format('expected a string, number, boolean, null or an object of operators such as {"$gt": 10}, got %s', webhooks.filter_describe(v)));
      elsif v = '{}' then
        perform webhooks.filter_error(path || k, 'expected at least one operator: $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $contains, $all, $exists');
      else
        for op, operand in select * from jsonb_each(v) loop
          problem := webhooks.filter_operand_problem(op, operand, string_root, k);
          if problem is not null then perform webhooks.filter_error(path || k || op, problem); end if;
          parts := parts || webhooks.filter_operator_sql(op, operand, val);
        end loop;
      end if;
    end if;
  end loop;
  return case when cardinality(parts) = 0 then 'true' else '(' || array_to_string(parts, ' and ') || ')' end;
end
$$;
comment on function webhooks.filter_sql(jsonb, text[], integer, regclass, text[], text, text, text, text) is
  'Internal to event rules: a condition in the webhook filter language as a boolean SQL expression that never raises; raises condition.<path>: <problem> for a bad one.';

-- ---------------------------------------------------------------------------------------
-- Checking rules and compiling them into capture functions
-- ---------------------------------------------------------------------------------------

-- sql_condition as capture runs it: over the table's rows as NEW and OLD, with capture's
-- search_path. Null when it plans, otherwise Postgres's message.
create function webhooks.sql_condition_problem(tbl regclass, sql_condition text) returns text
language plpgsql as $$
declare
  qualified text := (select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = tbl);
  old_path text := current_setting('search_path');
begin
  perform set_config('search_path', 'pg_catalog, pg_temp', true);
  begin
    execute format('explain select from %1$s as "new", %1$s as "old" where false and (%2$s)', qualified, sql_condition);
  exception when others then
    perform set_config('search_path', old_path, true);
    return sqlerrm;
  end;
  perform set_config('search_path', old_path, true);
  return null;
end
$$;
comment on function webhooks.sql_condition_problem(regclass, text) is
  'Internal to event rules: null when sql_condition plans over the table as NEW and OLD (with search_path pg_catalog), otherwise the Postgres error message.';

-- Why a rule cannot fire on the table as it is now, or null.
create function webhooks.event_rule_problem(r webhooks.event_rules, t webhooks.tracked_tables) returns text
language plpgsql as $$
declare
  c text;
  col text;
begin
  if t.table_name is null then
    return format('%s is not tracked; track it with webhooks.track_table(%L)', r.table_name, r.table_name::text);
  end if;
  select o into c from unnest(r.operations) o where o <> all (t.operations) limit 1;
  if c is not null then
    return format('%s is not tracked for %s; add it with webhooks.track_table(..., operations => ...)', r.table_name, c);
  end if;
  for col in
    select x from unnest(coalesce(r.on_change, '{}')) x
    union all
    select k[2] from webhooks.filter_paths(r.condition) k where k[1] in ('data', 'previous_attributes') and cardinality(k) > 1
  loop
    if not exists (select from pg_attribute a where a.attrelid = r.table_name and a.attname = col and a.attnum > 0 and not a.attisdropped) then
      return format('column %s is gone (dropped or renamed); the rule fires again once the table has it', quote_ident(col));
    end if;
    if col = any(t.excluded_columns) then
      return format('column %s is excluded from the table''s events', quote_ident(col));
    end if;
  end loop;
  if r.sql_condition is not null then
    c := webhooks.sql_condition_problem(r.table_name, r.sql_condition);
    if c is not null then return 'sql_condition: ' || c; end if;
  end if;
  return null;
end
$$;
comment on function webhooks.event_rule_problem(webhooks.event_rules, webhooks.tracked_tables) is
  'Internal to event rules: why the rule cannot fire on its table as the table is now, or null.';

-- Every field path a filter names, split at its dots.
create function webhooks.filter_paths(f jsonb) returns setof text[]
language sql immutable as $$
  with recursive walk(node) as (
    select f where jsonb_typeof(f) = 'object'
    union all
    select x from walk, jsonb_each(walk.node) e(k, v),
           lateral (select v where e.k = '$not'
                    union all
                    select a from jsonb_array_elements(case when e.k in ('$and', '$or') and jsonb_typeof(v) = 'array' then v else '[]' end) a) s(x)
     where jsonb_typeof(x) = 'object'
  )
  select string_to_array(e.k, '.') from walk, jsonb_object_keys(walk.node) e(k) where e.k not like '$%'
$$;
comment on function webhooks.filter_paths(jsonb) is 'Internal to event rules: the field paths a filter names.';

-- Brings every rule of the table's disabled_reason up to date; install_capture() calls it
-- before compiling, so a rule naming a column an ALTER TABLE took away stops (visibly) and
-- one whose column came back fires again.
create function webhooks.check_event_rules(tbl regclass) returns void
language plpgsql as $$
declare
  t webhooks.tracked_tables;
  r webhooks.event_rules;
  reason text;
begin
  select * into t from webhooks.tracked_tables where table_name = tbl;
  for r in select * from webhooks.event_rules where table_name = tbl loop
    reason := webhooks.event_rule_problem(r, t);
    if reason is distinct from r.disabled_reason then
      update webhooks.event_rules set disabled_reason = reason, updated_at = now()
       where table_name = r.table_name and event_type = r.event_type;
    end if;
  end loop;
end
$$;
comment on function webhooks.check_event_rules(regclass) is
  'Internal to install_capture(): sets or clears each rule''s disabled_reason from the table as it is now.';

-- The lateral UNION ALL branches (type, tenant, data, prev where fire) of the table's active rules
-- that follow one kind of base event: 'update' (an updated event), 'insert' (a created one:
-- an inserted row, or a row that moved into a tenant) or 'delete'. `gate` is what the base
-- event needs to be emitted at all; the other arguments are SQL expressions of the query the
-- entries go into. Rules with a sql_condition are left out when with_sql is false (capture's
-- fallback should one raise). '' when no rule applies.
create function webhooks.event_rule_entries(
  tbl regclass, kind text, gate text, tenant text, data text, prev text,
  new_row text, old_row text, with_sql boolean
) returns text
language plpgsql stable as $$
declare
  t webhooks.tracked_tables;
  r webhooks.event_rules;
  qualified text := (select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = tbl);
  fire text[];
  out text := '';
begin
  select * into t from webhooks.tracked_tables where table_name = tbl;
  for r in
    select * from webhooks.event_rules
     where table_name = tbl and disabled_reason is null and kind = any(operations)
       and (with_sql or sql_condition is null)
     order by created_at, event_type
  loop
    fire := array[gate];
    if r.on_change is not null then
      fire := fire || case kind
        when 'update' then format('%s ?| %L::text[]', prev, r.on_change)
        else '(' || (select string_agg(format('coalesce(%s -> %L <> ''null''::jsonb, false)', data, c), ' or ') from unnest(r.on_change) c) || ')'
      end;
    end if;
    if r.condition is not null then
      perform set_config('pg_webhooks.filter_nodes', '0', true);
      fire := fire || webhooks.filter_sql(r.condition, '{}', 1, tbl, t.excluded_columns,
                                          data, case kind when 'update' then prev else 'null::jsonb' end, tenant, r.event_type);
    end if;
    if r.sql_condition is not null then
      fire := fire || format('coalesce(%s(%s, %s), false)', r.sql_function,
                             case when kind = 'delete' then 'null::' || qualified else new_row end,
                             case when kind = 'insert' then 'null::' || qualified else old_row end);
    end if;
    out := out || format(E'\n        union all select %L, %s, %s, %s where %s', r.event_type, tenant, data,
                         case kind when 'update' then prev else 'null::jsonb' end, array_to_string(fire, ' and '));
  end loop;
  return out;
end
$$;
comment on function webhooks.event_rule_entries(regclass, text, text, text, text, text, text, text, boolean) is
  'Internal to install_capture(): the compiled active rules of a table that follow one kind of base event, as branches of a lateral UNION ALL.';

-- The transition table's row as the table's row type, for sql_condition functions: the cast
-- must be applied to the row itself (an anonymous record from a subquery cannot be cast).
create function webhooks.event_rule_row(tbl regclass) returns text
language sql stable as $$
  select format('x::%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = tbl
$$;
comment on function webhooks.event_rule_row(regclass) is 'Internal to install_capture(): the transition row cast to the table''s row type.';

create function webhooks.has_sql_rules(tbl regclass, kinds text[]) returns boolean
language sql stable as $$
  select exists (select from webhooks.event_rules
                  where table_name = tbl and disabled_reason is null and sql_condition is not null and operations && kinds)
$$;
comment on function webhooks.has_sql_rules(regclass, text[]) is
  'Internal to install_capture(): true when an active rule with a sql_condition follows one of these kinds of event.';

-- One statement, or (when rules with a sql_condition are compiled in) the statement with them
-- and, should it raise, the same without them: the DBA's SQL never fails the writer.
create function webhooks.guard_rules_sql(stmts text[], indent text) returns text
language sql immutable as $$
  select case when cardinality(stmts) = 1 then stmts[1]
    else format(E'\n%1$sbegin%2$s\n%1$sexception when others then\n%1$s  raise warning %4$L, src, sqlerrm;%3$s\n%1$send;',
                indent, stmts[1], stmts[2],
                'pg-webhooks: an event rule''s sql_condition on % failed, so the events of rules with a sql_condition were not emitted for this statement: %')
  end
$$;
comment on function webhooks.guard_rules_sql(text[], text) is
  'Internal to install_capture(): wraps a capture statement with sql_condition rules so that, should one raise, it runs again without them.';

-- ---------------------------------------------------------------------------------------
-- install_capture(), now with rules
-- ---------------------------------------------------------------------------------------

-- Replaces the install_capture() of 0002_events.sql (a database migrated before this file
-- has that one), changed only where rules come in: check_event_rules() first, the rules'
-- branches in each statement, the sql_condition fallback (guard_rules_sql), a lateral
-- UNION ALL instead of the update statement's VALUES filtered on the event type, and
-- jit = off on the generated function. Tables tracked before
-- have no rules, so their capture functions stay as they are until a rule is added.
create or replace function webhooks.install_capture(tbl regclass) returns void
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
  stmts text[];
  with_sql boolean;
  rules text;
  rules_del text;
  rules_ins text;
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

  -- Event rules add branches after the base event's in a lateral UNION ALL (each branch's
  -- WHERE depends only on the row, so it is checked once per row and costs little when it
  -- fails), so each derived event is written right after its base event. A rule with a
  -- sql_condition runs the DBA's SQL: should it raise, the statement runs again without such
  -- rules (with a warning), so that the writer's transaction goes through.
  perform webhooks.check_event_rules(tbl);
  foreach op in array array['insert', 'delete'] loop
    continue when op <> all(t.operations);
    stmts := '{}';
    foreach with_sql in array case when webhooks.has_sql_rules(tbl, array[op]) then array[true, false] else array[false] end loop
      rules := webhooks.event_rule_entries(tbl, op, 'true', 'r.tenant', 'r.d', 'null::jsonb', 'r.x', 'r.x', with_sql);
      if rules = '' then
        stmts := stmts || format($f$
    insert into webhooks.outbox (event_id, type, tenant, data, source_table)
    select null, %L, r.j ->> tenant_col, r.j%s, src
      from (select %s as j from %s x) r;$f$, pfx || case op when 'insert' then '.created' else '.deleted' end, minus, conv,
          case op when 'insert' then 'new_rows' else 'old_rows' end);
      else
        -- offset 0 keeps the row's JSON computed once, however many rules read it.
        stmts := stmts || format($f$
    insert into webhooks.outbox (event_id, type, tenant, data, previous_attributes, source_table)
    select null, e.type, e.tenant, e.data, e.prev, src
      from (select r.j ->> tenant_col as tenant, r.j%s as d%s from (select %s as j%s from %s x) r offset 0) r
      cross join lateral (select %L::text, r.tenant, r.d, null::jsonb%s) e(type, tenant, data, prev);$f$, minus, case when with_sql then ', r.x' else '' end,
          conv, case when with_sql then ', ' || webhooks.event_rule_row(tbl) || ' as x' else '' end,
          case op when 'insert' then 'new_rows' else 'old_rows' end,
          pfx || case op when 'insert' then '.created' else '.deleted' end, rules);
      end if;
    end loop;
    branches := branches || (case op when 'insert' then 'tg_op = ''INSERT'' then' else 'tg_op = ''DELETE'' then' end
                             || webhooks.guard_rules_sql(stmts, '    '));
  end loop;
  if 'delete' = any(t.operations) then
    -- TRUNCATE is a delete of every row that names none: one event, without a tenant.
    branches := branches || format($f$tg_op = 'TRUNCATE' then
    insert into webhooks.outbox (event_id, type, tenant, data, source_table)
    values (null, %L, null, pg_catalog.jsonb_build_object('table', src), src);$f$, pfx || '.truncated');
  end if;
  if 'update' = any(t.operations) then
    -- A row whose tenant changes leaves one tenant and joins another: the old tenant gets
    -- <prefix>.deleted with the row as it knew it, the new one <prefix>.created, and neither
    -- sees the other's values.
    stmts := '{}';
    foreach with_sql in array case when webhooks.has_sql_rules(tbl, t.operations) then array[true, false] else array[false] end loop
      rules := webhooks.event_rule_entries(tbl, 'update', 'u.same and u.prev is not null', 'u.new_tenant', 'u.n', 'u.prev', 'u.new_r', 'u.old_r', with_sql);
      rules_del := webhooks.event_rule_entries(tbl, 'delete', 'not u.same', 'u.old_tenant', 'u.o', 'null::jsonb', 'u.new_r', 'u.old_r', with_sql);
      rules_ins := webhooks.event_rule_entries(tbl, 'insert', 'not u.same', 'u.new_tenant', 'u.n', 'null::jsonb', 'u.new_r', 'u.old_r', with_sql);
      -- The raw rows only for sql_conditions; with rules, offset 0 computes prev once per row.
      stmts := stmts || format($f$
      insert into webhooks.outbox (event_id, type, tenant, data, previous_attributes, source_table)
      select null, e.type, e.tenant, e.data, e.prev, src
      from (
        select p.old_tenant, p.new_tenant, p.o, p.n, p.old_tenant is not distinct from p.new_tenant as same%9$s,
               (select pg_catalog.jsonb_object_agg(f.key, f.value)
                  from pg_catalog.jsonb_each(p.o) f
                 where p.n -> f.key is distinct from f.value) as prev
        from (
          select o.j ->> tenant_col as old_tenant, n.j ->> tenant_col as new_tenant, o.j%1$s as o, n.j%1$s as n%10$s
            from (select pg_catalog.row_number() over () as i, %2$s as j%11$s from old_rows x) o
            join (select pg_catalog.row_number() over () as i, %2$s as j%11$s from new_rows x) n on n.i = o.i
        ) p%12$s
      ) u
      -- an update that changes no (visible) value emits nothing
      cross join lateral (select %3$L::text, u.new_tenant, u.n, u.prev where u.same and u.prev is not null%6$s
              union all select %4$L, u.old_tenant, u.o, null::jsonb where not u.same%7$s
              union all select %5$L, u.new_tenant, u.n, null::jsonb where not u.same%8$s) e(type, tenant, data, prev);$f$, minus, conv, pfx || '.updated', pfx || '.deleted', pfx || '.created', rules, rules_del, rules_ins,
        case when with_sql then ', p.old_r, p.new_r' else '' end,
        case when with_sql then ', o.r as old_r, n.r as new_r' else '' end,
        case when with_sql then ', ' || webhooks.event_rule_row(tbl) || ' as r' else '' end,
        case when rules || rules_del || rules_ins = '' then '' else ' offset 0' end);
    end loop;
    branches := branches || format($f$tg_op = 'UPDATE' then
    if (select count(*) from old_rows) = (select count(*) from new_rows) then%6$s
    else
      -- Only when a BEFORE trigger on a partition drops a row moving into it: the counts
      -- differ and rows cannot be paired, so each new row is announced without
      -- previous_attributes.
      insert into webhooks.outbox (event_id, type, tenant, data, source_table)
      select null, %3$L, r.j ->> tenant_col, r.j%1$s, src
        from (select %2$s as j from new_rows x) r;
    end if;$f$, minus, conv, pfx || '.updated', pfx || '.deleted', pfx || '.created', webhooks.guard_rules_sql(stmts, '      '));
  end if;

  -- A new name each time: a restored dump keeps its functions' names, so a name derived
  -- from the table's oid could clash with the function of another table.
  fn := format('webhooks.%I',
               'capture_' || left(regexp_replace((select relname from pg_class where oid = tbl), '[^A-Za-z0-9_]', '_', 'g'), 40)
                 || '_' || substr(md5(tbl::oid::text || clock_timestamp()::text || random()::text), 1, 8));
  -- jit = off: a statement over many rows crosses jit_above_cost, and compiling capture's
  -- expressions then costs more than running them (a 20,000-row UPDATE: 370 ms of capture
  -- without JIT, 620-730 ms with it; with twenty rules 420-450 ms against 1,190-1,280 ms).
  execute format($f$
create function %s() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp set jit = off as $body$
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
  'Internal to track_table(): (re)writes a tracked table''s generated capture function and triggers from its tracked_tables row, with its active event rules compiled in.';

-- ---------------------------------------------------------------------------------------
-- Adding and dropping rules
-- ---------------------------------------------------------------------------------------

-- Every argument is checked before anything changes, and each error names the argument it
-- is about (the CLI passes the message on). Adding a rule that exists replaces it.
create function webhooks.add_event_rule(
  tbl regclass,
  type text,
  on_change text[] default null,
  condition jsonb default null,
  operations text[] default array['update'],
  sql_condition text default null
) returns void
language plpgsql as $$
declare
  t webhooks.tracked_tables;
  bad text;
  problem text;
  fn text;
  old_fn text;
begin
  -- Rules of tables dropped since then name no table: remove them and their functions.
  for old_fn in
    delete from webhooks.event_rules r where not exists (select from pg_class c where c.oid = r.table_name) returning r.sql_function
  loop
    if old_fn is not null then
      execute format('drop function if exists %s(anyelement, anyelement)', old_fn);
    end if;
  end loop;
  old_fn := null;
  select * into t from webhooks.tracked_tables where table_name = tbl;
  if not found then
    raise exception 'table: % is not tracked; track it first: select webhooks.track_table(%)', tbl, quote_literal(tbl::text) using errcode = '22023';
  end if;
  if type is null or type !~ '^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$' or length(type) > 200 then
    raise exception 'type: expected a dotted event name such as deal.stage.changed (letters, digits, _ or -, at most 200 characters), got %',
      coalesce(quote_literal(type), 'null') using errcode = '22023';
  end if;
  if type in (t.event_prefix || '.created', t.event_prefix || '.updated', t.event_prefix || '.deleted', t.event_prefix || '.truncated') then
    raise exception 'type: % is one of %''s own event types; name the derived event otherwise, such as %.stage.changed', type, tbl, t.event_prefix
      using errcode = '22023';
  end if;
  operations := array(select distinct lower(o) from unnest(operations) o order by 1);
  if operations is null or cardinality(operations) = 0 then
    raise exception 'operations: expected at least one of insert, update, delete' using errcode = '22023';
  end if;
  select o into bad from unnest(operations) o where o is null or o not in ('insert', 'update', 'delete') limit 1;
  if found then
    raise exception 'operations: expected insert, update or delete, got %', coalesce(quote_literal(bad), 'null') using errcode = '22023';
  end if;
  select o into bad from unnest(operations) o where o <> all (t.operations) limit 1;
  if bad is not null then
    raise exception 'operations: % is not tracked for %; add it with webhooks.track_table(%, operations => ...)', tbl, bad, quote_literal(tbl::text)
      using errcode = '22023';
  end if;
  on_change := nullif(array(select distinct c from unnest(on_change) c order by 1), '{}');
  select c into bad from unnest(on_change) c
   where c is null or not exists (select from pg_attribute a where a.attrelid = tbl and a.attname = c and a.attnum > 0 and not a.attisdropped)
   limit 1;
  if found then
    raise exception 'on_change: % has no column %', tbl, coalesce(quote_ident(bad), 'null') using errcode = '42703';
  end if;
  select c into bad from unnest(on_change) c where c = any(t.excluded_columns) limit 1;
  if bad is not null then
    raise exception 'on_change: column % is excluded from %''s events, so no event shows it change', quote_ident(bad), tbl using errcode = '22023';
  end if;
  if condition is not null then
    perform set_config('pg_webhooks.filter_nodes', '0', true);
    perform webhooks.filter_sql(condition, '{}', 1, tbl, t.excluded_columns, 'd', 'p', 'tn', type);
  end if;
  if sql_condition is not null then
    if btrim(sql_condition) = '' then
      raise exception 'sql_condition: expected a boolean SQL expression over NEW and OLD, such as NEW.stage = ''won''' using errcode = '22023';
    end if;
    problem := webhooks.sql_condition_problem(tbl, sql_condition);
    if problem is not null then
      raise exception 'sql_condition: %', problem using errcode = '22023';
    end if;
    -- An inlinable SQL function: the planner folds it into capture's query, so it costs no call
    -- per row. Polymorphic, so it does not depend on the table (DROP TABLE needs no CASCADE).
    fn := format('webhooks.%I', 'event_rule_' || substr(md5(tbl::oid::text || type || clock_timestamp()::text || random()::text), 1, 12));
    execute format(E'create function %s("new" anyelement, "old" anyelement) returns boolean language sql as $rule$ select (%s) $rule$',
                   fn, sql_condition);
    execute format('comment on function %s(anyelement, anyelement) is %L', fn,
                   format('sql_condition of event rule %s on %s (webhooks.event_rules), inlined into its capture function.', type, tbl));
    execute format('revoke all on function %s(anyelement, anyelement) from public', fn);
  end if;

  select r.sql_function into old_fn from webhooks.event_rules r where r.table_name = tbl and r.event_type = type;
  insert into webhooks.event_rules as r (table_name, event_type, operations, on_change, condition, sql_condition, sql_function)
  values (tbl, type, operations, on_change, condition, sql_condition, fn)
  on conflict (table_name, event_type) do update
    set operations = excluded.operations, on_change = excluded.on_change, condition = excluded.condition,
        sql_condition = excluded.sql_condition, sql_function = excluded.sql_function,
        disabled_reason = null, updated_at = now();
  perform webhooks.install_capture(tbl);
  if old_fn is not null then
    execute format('drop function %s(anyelement, anyelement)', old_fn);
  end if;
end
$$;
comment on function webhooks.add_event_rule(regclass, text, text[], jsonb, text[], text) is
  'Emits a derived event after the table''s own event when a write changes one of on_change and satisfies condition (webhook filter JSON over the event) and sql_condition (SQL over NEW and OLD; DBAs only). operations: insert, update, delete (default update). Calling it again replaces the rule. Example: select webhooks.add_event_rule(''public.deals'', ''deal.won'', on_change => array[''stage''], condition => ''{"data.stage": "won"}'');';
revoke all on function webhooks.add_event_rule(regclass, text, text[], jsonb, text[], text) from public;

create function webhooks.drop_event_rule(tbl regclass, type text) returns boolean
language plpgsql as $$
declare
  old_fn text;
begin
  delete from webhooks.event_rules r where r.table_name = tbl and r.event_type = type returning r.sql_function into old_fn;
  if not found then
    return false;
  end if;
  if exists (select from webhooks.tracked_tables where table_name = tbl) then
    perform webhooks.install_capture(tbl);
  end if;
  if old_fn is not null then
    execute format('drop function %s(anyelement, anyelement)', old_fn);
  end if;
  return true;
end
$$;
comment on function webhooks.drop_event_rule(regclass, text) is
  'Stops a derived event: removes the rule and rewrites the table''s capture function. Returns false when there was no such rule.';
revoke all on function webhooks.drop_event_rule(regclass, text) from public;

-- ---------------------------------------------------------------------------------------
-- Custom events with previous values
-- ---------------------------------------------------------------------------------------

-- Beside emit(type, data, tenant), which stays as it was: with `previous` required here, a
-- call with three arguments or fewer can only mean the old one.
create function webhooks.emit(type text, data jsonb, tenant text, previous jsonb) returns uuid
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
  if previous is not null and jsonb_typeof(previous) <> 'object' then
    raise exception 'previous: expected a JSON object of the changed fields'' old values, got %', webhooks.filter_describe(previous)
      using errcode = '22023';
  end if;
  insert into webhooks.outbox (type, tenant, data, previous_attributes) values (type, tenant, data, previous) returning event_id into new_id;
  insert into webhooks.event_types_seen (type) values (type) on conflict do nothing;
  perform webhooks.wake();
  return new_id;
end
$$;
comment on function webhooks.emit(text, jsonb, text, jsonb) is
  'Emits a custom event with previous_attributes (the old values of what changed) inside the caller''s transaction. Needs: grant usage on schema webhooks, grant execute on this function. Example: select webhooks.emit(''invoice.paid'', ''{"id": 42, "status": "paid"}'', null, previous => ''{"status": "open"}'');';
revoke all on function webhooks.emit(text, jsonb, text, jsonb) from public;
