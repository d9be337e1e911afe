-- The notification read models. Portable SQL: the same file runs on PostgreSQL and SQLite.

-- Routing (projection notification-routing): the subscriptions as of the
-- routing position in the stream, as JSON of the domain settings.
CREATE TABLE IF NOT EXISTS notification_routes (
    subscription_id TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);

-- Routing: what is known of each case (key, severity, products, status,
-- embargo), as JSON of the domain case facts.
CREATE TABLE IF NOT EXISTS notification_cases (
    case_id TEXT PRIMARY KEY,
    facts TEXT NOT NULL
);

-- Views (projection notification-views): one row per subscription, the
-- encoded psirt.notification.v1.Subscription.
CREATE TABLE IF NOT EXISTS notification_subscriptions (
    subscription_id TEXT PRIMARY KEY,
    -- stream sequence of the first event, the listing order
    created_seq BIGINT NOT NULL,
    -- psirt.events.v1.DeliveryChannel value
    channel INTEGER NOT NULL,
    -- 1 once deleted
    deleted INTEGER NOT NULL,
    view BYTEA NOT NULL
);

CREATE INDEX IF NOT EXISTS notification_subscriptions_order ON notification_subscriptions (deleted, created_seq);

-- Views: one row per delivery, the encoded psirt.notification.v1.Delivery.
CREATE TABLE IF NOT EXISTS notification_deliveries (
    delivery_id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    -- empty for events without a case
    case_id TEXT NOT NULL,
    event_sequence BIGINT NOT NULL,
    -- psirt.notification.v1.DeliveryStatus value
    status INTEGER NOT NULL,
    -- epoch ms of the next attempt; 0 unless pending
    next_attempt_ms BIGINT NOT NULL,
    view BYTEA NOT NULL
);

CREATE INDEX IF NOT EXISTS notification_deliveries_due ON notification_deliveries (status, next_attempt_ms);
CREATE INDEX IF NOT EXISTS notification_deliveries_chain
    ON notification_deliveries (subscription_id, case_id, status, event_sequence);
CREATE INDEX IF NOT EXISTS notification_deliveries_case ON notification_deliveries (case_id, event_sequence);
CREATE INDEX IF NOT EXISTS notification_deliveries_order ON notification_deliveries (event_sequence, delivery_id);

-- Views: external ticket links, the encoded psirt.notification.v1.ExternalTicket.
CREATE TABLE IF NOT EXISTS notification_tickets (
    link_id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    linked_seq BIGINT NOT NULL,
    view BYTEA NOT NULL
);

CREATE INDEX IF NOT EXISTS notification_tickets_case ON notification_tickets (case_id, linked_seq);

-- The delivery worker's lease: one replica sends at a time.
CREATE TABLE IF NOT EXISTS notification_leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);
