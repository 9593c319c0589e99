-- Exact numbers: how a webhook's bodies carry a number that a double-based JSON parser would
-- change (bigint above 2^53, numeric with more than 15 significant digits, jsonb holding such).

alter table webhooks.subscriptions
  add column big_numbers text not null default 'string' check (big_numbers in ('string', 'number'));
comment on column webhooks.subscriptions.big_numbers is
  'string: such a number is sent as a JSON string of its exact digits, so JSON.stringify(JSON.parse(body)) is the body; '
  'number: as a JSON number with Postgres''s digits, for receivers whose JSON parser keeps them.';
