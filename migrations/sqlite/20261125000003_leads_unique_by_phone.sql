-- no-transaction
-- One index fewer per imported lead. `UNIQUE (campaign_id, phone)` and `leads_by_phone (phone)`
-- both kept phone numbers in random order, so every imported lead cost two random-position
-- B-tree inserts. `UNIQUE (phone, campaign_id)` serves both: the import's duplicate check and
-- the look-ups by phone (inbound calls, do-not-call), which use its first column. Measured on a
-- million leads in random phone order: import +20% (docs/BENCHMARKS.md).
--
-- SQLite cannot drop a table's UNIQUE constraint, so the table is rebuilt (the documented
-- 12-step procedure). Foreign keys must be off while `leads` is dropped, or the drop would
-- cascade into `calls`; the pragma cannot change inside a transaction, hence no-transaction and
-- an explicit BEGIN ... COMMIT around the rebuild.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE leads_rebuilt (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    phone           TEXT    NOT NULL,
    name            TEXT,
    timezone        TEXT,
    attributes      TEXT    NOT NULL DEFAULT '{}',
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'in_progress', 'retry', 'callback',
                                      'completed', 'failed', 'do_not_call')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_result     TEXT,
    outcome         TEXT,
    qualification   TEXT    NOT NULL DEFAULT '{}',
    summary         TEXT,
    callback_at     TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    UNIQUE (phone, campaign_id)
);

INSERT INTO leads_rebuilt (id, campaign_id, phone, name, timezone, attributes, status, attempts,
    next_attempt_at, last_result, outcome, qualification, summary, callback_at, created_at,
    updated_at)
SELECT id, campaign_id, phone, name, timezone, attributes, status, attempts, next_attempt_at,
    last_result, outcome, qualification, summary, callback_at, created_at, updated_at
FROM leads;

-- AUTOINCREMENT never reuses an id, even of a deleted lead: carry the counter over.
CREATE TEMP TABLE leads_seq AS SELECT seq FROM sqlite_sequence WHERE name = 'leads';
DROP TABLE leads;
ALTER TABLE leads_rebuilt RENAME TO leads;
DELETE FROM sqlite_sequence WHERE name = 'leads';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'leads', MAX(COALESCE((SELECT MAX(id) FROM leads), 0), COALESCE((SELECT seq FROM leads_seq), 0));
DROP TABLE leads_seq;

CREATE INDEX leads_due ON leads (campaign_id, next_attempt_at)
    WHERE status IN ('pending', 'retry', 'callback');
CREATE INDEX leads_by_status ON leads (campaign_id, status, id);

COMMIT;
PRAGMA foreign_keys = ON;
