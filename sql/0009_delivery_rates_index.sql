-- A webhook's recent deliveries by status (the admin's success rates and the overview's counts)
-- read from the index alone: deliveries_by_subscription gains status as an included column, so
-- counting a busy webhook's last 24 h is an index-only scan instead of a heap fetch per delivery.
-- It replaces the old index (same key, same order), so writes maintain one index, as before;
-- status is already indexed (deliveries_by_status), so its updates were never HOT anyway.
create index deliveries_by_subscription_status on webhooks.deliveries (subscription_id, created_at desc) include (status);
drop index webhooks.deliveries_by_subscription;
alter index webhooks.deliveries_by_subscription_status rename to deliveries_by_subscription;
