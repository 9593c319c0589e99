-- Secret headers: static headers the user marked secret. Their values are masked wherever a
-- webhook or an attempt is shown, like headers whose names look like credentials.

alter table webhooks.subscriptions
  add column secret_headers text[] not null default '{}';
comment on column webhooks.subscriptions.secret_headers is
  'Names (lower case) of static headers whose values are secrets: shown as **** in webhook views, listings and attempt logs.';
