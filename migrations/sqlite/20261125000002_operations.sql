-- Operations (SQLite): what a call consumed (for cost reports), when its media stream and
-- post-call work finished, and the outbox of webhooks sent to the operator.

ALTER TABLE calls ADD COLUMN llm_prompt_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN llm_completion_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN tts_characters INTEGER NOT NULL DEFAULT 0;
-- Set once the media stream ended and its summary was written: a call that had a stream is
-- reported to the operator only after both this and the carrier's final status.
ALTER TABLE calls ADD COLUMN media_ended_at TEXT;

-- Reports read a campaign's calls (and their turns through UNIQUE (call_id, seq)).
CREATE INDEX calls_by_campaign ON calls (campaign_id);

-- One row per event to send, written when a call is settled and sent (with retries) by the
-- delivery loop. `payload` is the exact JSON body, minus `transcript_url` which is added from
-- OUR_BASE_URL when sending.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id      INTEGER REFERENCES campaigns (id) ON DELETE CASCADE,
    call_id          INTEGER REFERENCES calls (id) ON DELETE CASCADE,
    event            TEXT    NOT NULL,
    url              TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    locked_until     TEXT,
    last_status_code INTEGER,
    last_error       TEXT,
    delivered_at     TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    UNIQUE (call_id, event)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX webhook_deliveries_by_campaign ON webhook_deliveries (campaign_id, id);
