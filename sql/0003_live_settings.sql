-- Live settings: every change to a webhook reaches running dispatchers before their next
-- attempt. A row version orders the changes; a NOTIFY at commit announces them.

-- A row version, not updated_at: now() is the transaction's start, which can go backwards
-- between two updates that wait on each other's row lock.
create function webhooks.bump_settings_version() returns trigger
language plpgsql as $$
begin
  new.settings_version := old.settings_version + 1;
  return new;
end;
$$;
comment on function webhooks.bump_settings_version() is
  'Trigger function: raises settings_version on every update of a webhooks.subscriptions row.';

-- Delivered at commit to every dispatcher listening on pg_webhooks_settings, which re-reads
-- the row (the database stays the source of truth; the payload is only the id).
create function webhooks.notify_settings_changed() returns trigger
language plpgsql as $$
begin
  perform pg_notify('pg_webhooks_settings', new.id::text);
  return null;
end;
$$;
comment on function webhooks.notify_settings_changed() is
  'Trigger function: tells running dispatchers (NOTIFY pg_webhooks_settings, payload the webhook id) that a webhook changed.';

create trigger subscriptions_settings_version before update on webhooks.subscriptions
  for each row execute function webhooks.bump_settings_version();
create trigger subscriptions_settings_notify after update on webhooks.subscriptions
  for each row execute function webhooks.notify_settings_changed();
