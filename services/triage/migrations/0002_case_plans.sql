-- What the case view knows of each case's remediation plan (from the
-- remediation service's events): actions with their progress, product
-- statuses and releases, as JSON. The remediation summary is computed from it.
CREATE TABLE IF NOT EXISTS triage_case_plans (
    case_id TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
