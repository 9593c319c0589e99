-- Hostile receivers (issue 13) and the audit trail (issue 12): each attempt keeps the address
-- it was sent to and a note of anything changed to store it; rate limits have a floor that
-- keeps the spacing between requests within what a timer can wait.

alter table webhooks.attempts
  add column remote_address inet,
  add column note text;
comment on column webhooks.attempts.remote_address is
  'The IP address the request was sent to (the connected socket''s peer); null when no connection got as far as sending.';
comment on column webhooks.attempts.note is
  'What was changed to store this attempt: NUL bytes, unpaired surrogates and bytes invalid in the response''s charset become U+FFFD; an attempt that still cannot be stored is kept without its request and response contents. Null when stored as it was.';

-- Below one request per 1,000 s the spacing overflowed Node's timer into a busy loop. Slower
-- rates stored before this floor are raised to it (the dispatcher already treats them so).
update webhooks.subscriptions set rate_limit_per_s = 0.001 where rate_limit_per_s < 0.001;
alter table webhooks.subscriptions
  add constraint subscriptions_rate_limit_floor check (rate_limit_per_s >= 0.001);
