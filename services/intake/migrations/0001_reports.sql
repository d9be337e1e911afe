-- The intake read model. Portable SQL: the same file runs on PostgreSQL and SQLite.

CREATE TABLE IF NOT EXISTS intake_reports (
    report_id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    -- psirt.intake.v1.ReportStatus value
    status INTEGER NOT NULL,
    -- psirt.common.v1.ReportChannel value
    channel INTEGER NOT NULL,
    title TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    acknowledged_at_ms BIGINT,
    -- 0 once the case opened from the report is closed
    is_open INTEGER NOT NULL DEFAULT 1,
    -- stream sequence of the report's last event
    version BIGINT NOT NULL,
    -- encoded psirt.intake.v1.Report
    view BYTEA NOT NULL
);

-- Listing walks this index newest first; status and channel filters are applied on
-- the way (intake volumes are small, and every extra index costs on each report).
CREATE INDEX IF NOT EXISTS intake_reports_received ON intake_reports (received_at_ms, report_id);
CREATE INDEX IF NOT EXISTS intake_reports_case ON intake_reports (case_id);

-- One row per (normalised title + product) key of a report, for duplicate hints.
CREATE TABLE IF NOT EXISTS intake_dedup_keys (
    dedup_key TEXT NOT NULL,
    report_id TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (dedup_key, report_id)
);

-- The duplicate filter's refresh scans by time.
CREATE INDEX IF NOT EXISTS intake_dedup_keys_received ON intake_dedup_keys (received_at_ms);
