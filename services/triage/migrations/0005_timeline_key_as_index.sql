-- The timeline index's key (case, sequence) becomes a unique index instead of
-- the table's primary key: an offline rebuild drops it, appends the rows and
-- builds it once at the end (random inserts into a large key index were half
-- of a rebuild's database time). A runner creates it when it is missing.
--
-- During a rolling upgrade an older replica may still be writing timeline rows.
-- Altering the old table first takes PostgreSQL's exclusive lock on it for the
-- whole migration (SQLite's migration holds the write lock anyway): a batch
-- of the older replica waits, fails once the table is gone, rolls back with
-- its checkpoint and is applied again to the new table. No row committed
-- during the copy can be left behind in the old table.
ALTER TABLE triage_case_events ADD COLUMN migrating_to_keyed_index INTEGER;
CREATE TABLE triage_case_events_keyed_by_index (
    case_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL
);
INSERT INTO triage_case_events_keyed_by_index (case_id, sequence, event_type, occurred_at_ms)
SELECT case_id, sequence, event_type, occurred_at_ms FROM triage_case_events;
DROP TABLE triage_case_events;
ALTER TABLE triage_case_events_keyed_by_index RENAME TO triage_case_events;
CREATE UNIQUE INDEX IF NOT EXISTS triage_case_events_key ON triage_case_events (case_id, sequence);
