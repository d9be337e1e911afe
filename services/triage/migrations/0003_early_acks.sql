-- Report acknowledgements that arrived before triage opened the report's case
-- (intake may acknowledge first): the opening looks them up here to stop the
-- ACKNOWLEDGE clock, instead of searching the timeline index.
CREATE TABLE IF NOT EXISTS triage_early_acks (
    case_id TEXT PRIMARY KEY,
    acknowledged_at_ms BIGINT NOT NULL
);

-- Existing read models: every acknowledgement already indexed (one per case is
-- kept, the earliest). Cases already opened never look here again.
INSERT INTO triage_early_acks (case_id, acknowledged_at_ms)
SELECT case_id, MIN(occurred_at_ms) FROM triage_case_events
WHERE event_type = 'psirt.events.v1.ReportAcknowledged'
GROUP BY case_id
ON CONFLICT (case_id) DO NOTHING;
