-- Who created each subscription (the actor of its first event), for the
-- subscriptions-per-owner quota. Rows written before this column existed hold NULL
-- until the read model is rebuilt.
ALTER TABLE notification_subscriptions ADD COLUMN owner TEXT;
CREATE INDEX IF NOT EXISTS notification_subscriptions_owner ON notification_subscriptions (owner, deleted);
