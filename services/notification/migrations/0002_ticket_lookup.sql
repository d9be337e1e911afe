-- Inbound webhooks and reconciliation find a link by the tracker's own
-- identifiers: the Jira issue key or the ServiceNow sys_id.
ALTER TABLE notification_tickets ADD COLUMN ticket_system INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notification_tickets ADD COLUMN ticket_key TEXT NOT NULL DEFAULT '';
ALTER TABLE notification_tickets ADD COLUMN sys_id TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS notification_tickets_key ON notification_tickets (ticket_system, ticket_key);
CREATE INDEX IF NOT EXISTS notification_tickets_sys_id ON notification_tickets (sys_id);
