-- Ticket reconciliation cursors, one per tracker: when the last complete
-- pass started (epoch ms). The next pass asks the tracker only for tickets
-- updated since then, less an overlap margin for clock skew; a restart goes
-- on from here instead of reading every linked ticket again. Not part of
-- the read model's projection: a rebuild keeps it.
CREATE TABLE IF NOT EXISTS notification_cursors (
    name TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL
);
