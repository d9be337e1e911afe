-- The duplicate filter learns the keys the read model gained since its last
-- look by stream sequence (exact, and in commit order) instead of re-reading a
-- minute of keys by time every refresh. Rows from before this migration keep
-- 0: the filter loads them with its first, time-window scan.
ALTER TABLE intake_dedup_keys ADD COLUMN sequence BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS intake_dedup_keys_sequence ON intake_dedup_keys (sequence);
