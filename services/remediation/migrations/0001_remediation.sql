-- The remediation read models. Portable SQL: the same file runs on PostgreSQL and SQLite.

-- What the remediation service knows of each case (from the case events):
-- key, title, severity, scores, CWE and CVE ids, products, embargo. JSON.
CREATE TABLE IF NOT EXISTS remediation_cases (
    case_id TEXT PRIMARY KEY,
    facts TEXT NOT NULL
);

-- One row per plan: the encoded psirt.remediation.v1.Plan.
CREATE TABLE IF NOT EXISTS remediation_plans (
    case_id TEXT PRIMARY KEY,
    plan_id TEXT NOT NULL UNIQUE,
    -- stream sequence of the plan's last event
    version BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    view BYTEA NOT NULL
);

-- The planned actions, for ListOverdue and the overdue scheduler.
CREATE TABLE IF NOT EXISTS remediation_actions (
    case_id TEXT NOT NULL,
    action_id TEXT NOT NULL,
    owner_team TEXT NOT NULL,
    product TEXT NOT NULL,
    due_at_ms BIGINT NOT NULL,
    -- 1 while neither released nor verified
    is_open INTEGER NOT NULL,
    PRIMARY KEY (case_id, action_id)
);

CREATE INDEX IF NOT EXISTS remediation_actions_due ON remediation_actions (is_open, due_at_ms);

-- One row per advisory: the encoded psirt.remediation.v1.Advisory.
CREATE TABLE IF NOT EXISTS remediation_advisories (
    case_id TEXT PRIMARY KEY,
    advisory_id TEXT NOT NULL UNIQUE,
    -- psirt.remediation.v1.AdvisoryState value
    state INTEGER NOT NULL,
    version BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    view BYTEA NOT NULL
);

CREATE INDEX IF NOT EXISTS remediation_advisories_updated ON remediation_advisories (updated_at_ms, case_id);

-- The documents of every publication, frozen at the stream position of the
-- publication event: exports of a published advisory return these bytes.
CREATE TABLE IF NOT EXISTS remediation_documents (
    case_id TEXT NOT NULL,
    -- psirt.remediation.v1.ExportFormat value
    format INTEGER NOT NULL,
    -- advisory version, e.g. 1.0.0
    version TEXT NOT NULL,
    -- the publication's stream sequence
    sequence BIGINT NOT NULL,
    document BYTEA NOT NULL,
    PRIMARY KEY (case_id, format, version)
);
