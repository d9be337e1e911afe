-- The triage read models. Portable SQL: the same file runs on PostgreSQL and SQLite.

-- The case view: one row per case, the encoded psirt.triage.v1.Case beside the
-- columns that filters and sorting need.
CREATE TABLE IF NOT EXISTS triage_cases (
    case_id TEXT PRIMARY KEY,
    case_key TEXT NOT NULL UNIQUE,
    -- year * 10^10 + number: sorts keys chronologically
    key_order BIGINT NOT NULL,
    -- psirt.common.v1.CaseStatus value
    status INTEGER NOT NULL,
    -- psirt.common.v1.SeverityRating value, 0 while not assessed
    rating INTEGER NOT NULL,
    -- empty while unassigned
    assignee TEXT NOT NULL,
    -- disclosure instant while the case is neither disclosed nor closed
    embargo_until_ms BIGINT,
    -- earliest due time of the SLA clocks not met yet
    sla_next_due_ms BIGINT,
    -- per SLA clock: due, due-soon and met times, for the SLA state filter
    ack_due_ms BIGINT,
    ack_soon_ms BIGINT,
    ack_met_ms BIGINT,
    triage_due_ms BIGINT,
    triage_soon_ms BIGINT,
    triage_met_ms BIGINT,
    opened_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    -- stream sequence of the last event on the case's own subject
    version BIGINT NOT NULL,
    -- stream sequence of the last event of any aggregate applied to the view
    last_sequence BIGINT NOT NULL,
    -- encoded psirt.triage.v1.Case
    view BYTEA NOT NULL
);

CREATE INDEX IF NOT EXISTS triage_cases_opened ON triage_cases (opened_at_ms, case_id);
CREATE INDEX IF NOT EXISTS triage_cases_status ON triage_cases (status);
CREATE INDEX IF NOT EXISTS triage_cases_assignee ON triage_cases (assignee);

-- Affected products of each case, for the product filter.
CREATE TABLE IF NOT EXISTS triage_case_products (
    case_id TEXT NOT NULL,
    product TEXT NOT NULL,
    PRIMARY KEY (case_id, product)
);

CREATE INDEX IF NOT EXISTS triage_case_products_product ON triage_case_products (product);

-- The timeline index: every event of every aggregate that concerns a case.
CREATE TABLE IF NOT EXISTS triage_case_events (
    case_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    subject TEXT NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    PRIMARY KEY (case_id, sequence)
);

-- Case key numbers handed out per year by the reaction that opens cases,
-- committed with that reaction's checkpoint.
CREATE TABLE IF NOT EXISTS triage_case_keys (
    year INTEGER PRIMARY KEY,
    last_seq BIGINT NOT NULL
);
