-- Who submitted each report (the principal, or the client address of an anonymous
-- submission), for the open-reports quota. Rows written before this column existed
-- hold NULL until the read model is rebuilt.
ALTER TABLE intake_reports ADD COLUMN submitted_by TEXT;
CREATE INDEX IF NOT EXISTS intake_reports_submitter ON intake_reports (submitted_by, is_open);
