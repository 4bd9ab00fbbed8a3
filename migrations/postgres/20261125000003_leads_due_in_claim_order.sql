-- The dialer's claim reads `... AND next_attempt_at <= $now ORDER BY next_attempt_at, id LIMIT n`.
-- An import stamps every lead with the same next_attempt_at, so an index ending at
-- next_attempt_at leaves PostgreSQL one group of up to a million equal keys to sort by id: it
-- scanned and sorted every due lead on each claim (1.1 s per claim with 1,000,000 leads; see
-- docs/BENCHMARKS.md). With id in the index the rows come out in claim order and the scan
-- stops after `n` rows. (SQLite needs no change: its indexes already end with the rowid `id`.)
DROP INDEX leads_due;
CREATE INDEX leads_due ON leads (campaign_id, next_attempt_at, id)
    WHERE status IN ('pending', 'retry', 'callback');
