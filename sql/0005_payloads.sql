-- Payload shapes: each webhook chooses its body (a preset or a JSONata template); a delivery
-- keeps the body it was first sent with, so every retry and replay sends the same bytes; the
-- tenant's record (organization) comes from a table the app fills, or a view it points at.

-- What a webhook's body looks like. The shape is checked by the API (zod) and here, so a row
-- written by hand cannot carry something the dispatcher would not understand.
alter table webhooks.subscriptions
  add column payload jsonb not null default '{"preset": "standard"}'
    constraint subscriptions_payload_shape check (
      (payload ?& array['preset'] and payload - 'preset' = '{}'
         and payload ->> 'preset' in ('standard', 'classic', 'thin', 'slack', 'discord'))
      or (payload ?& array['template'] and payload - 'template' = '{}'
         and jsonb_typeof(payload -> 'template') = 'string' and length(payload ->> 'template') <= 16384)),
  add column iso_timestamp_header boolean not null default false;
comment on column webhooks.subscriptions.payload is
  '{"preset": "standard"} (the default: {id, type, timestamp, data, previous_attributes?}), "classic", "thin", "slack" or "discord"; '
  'or {"template": "<JSONata expression>"}. Only the body changes: URL, method and headers stay as configured.';
comment on column webhooks.subscriptions.iso_timestamp_header is
  'Also send X-Webhook-Timestamp: the signing time as ISO 8601 (webhook-timestamp carries it in Unix seconds).';

-- Set by the first attempt's recording (rendering happens once, just before that attempt):
-- later attempts and replays send these bytes, whatever the webhook's payload says by then.
alter table webhooks.deliveries add column body text;
comment on column webhooks.deliveries.body is
  'The request body as first rendered and sent; every later attempt and replay sends it unchanged. Null until the first attempt.';

-- An attempt keeps its body only when it differs from its delivery's (it never does today):
-- the body is stored once per delivery.
alter table webhooks.attempts alter column request_body drop not null;
comment on column webhooks.attempts.request_body is
  'The body sent, when it differs from the delivery''s body; null means the delivery''s body (webhooks.deliveries.body).';

-- ---------------------------------------------------------------------------------------
-- Tenants: the organization a body can carry
-- ---------------------------------------------------------------------------------------

create table webhooks.tenants (
  id text primary key,
  name text,
  slug text,
  metadata jsonb not null default '{}'
);
comment on table webhooks.tenants is
  'A row is a tenant as bodies show it (the classic preset''s organization, a template''s $organization): id is the tenant value events carry. The app fills it, or points pg-webhooks at its own table or view with webhooks.set_tenant_source().';

-- One row at most: the relation tenants are read from instead of webhooks.tenants.
create table webhooks.tenant_source (
  id boolean primary key default true check (id),
  relation regclass not null
);
comment on table webhooks.tenant_source is
  'One row at most: the table or view (with columns id, and optionally name, slug and metadata) that tenant records are read from instead of webhooks.tenants.';

create function webhooks.set_tenant_source(relation regclass) returns void
language plpgsql as $$
begin
  if relation is null then
    delete from webhooks.tenant_source;
    return;
  end if;
  if not exists (select 1 from pg_attribute a where a.attrelid = relation and a.attname = 'id' and a.attnum > 0 and not a.attisdropped) then
    raise exception 'relation: % has no column id (the tenant value events carry)', relation using errcode = '42703';
  end if;
  insert into webhooks.tenant_source (id, relation) values (true, relation)
    on conflict (id) do update set relation = excluded.relation;
end
$$;
comment on function webhooks.set_tenant_source(regclass) is
  'Reads tenant records (organization {id, name, slug} in bodies) from this table or view instead of webhooks.tenants; null goes back to webhooks.tenants. Example: select webhooks.set_tenant_source(''public.organizations'');';
