-- The timeline index never read the subject of its events (the timeline loads
-- each event by its stream sequence): one column less to write per event.
ALTER TABLE triage_case_events DROP COLUMN subject;
