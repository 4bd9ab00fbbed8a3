-- Initial schema (SQLite). Times are RFC 3339 UTC text bound from the application.

CREATE TABLE campaigns (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT    NOT NULL,
    instructions         TEXT    NOT NULL DEFAULT '',
    greeting             TEXT    NOT NULL DEFAULT '',
    language             TEXT    NOT NULL DEFAULT 'en-IN',
    voice_id             TEXT,
    window_start         TEXT    NOT NULL DEFAULT '10:00',
    window_end           TEXT    NOT NULL DEFAULT '19:00',
    weekdays             TEXT    NOT NULL DEFAULT '["mon","tue","wed","thu","fri","sat"]',
    holidays             TEXT    NOT NULL DEFAULT '[]',
    timezone             TEXT    NOT NULL DEFAULT 'Asia/Kolkata',
    max_attempts         INTEGER NOT NULL DEFAULT 3,
    retry_delays         TEXT    NOT NULL DEFAULT '{"no_answer":[30],"busy":[15],"failed":[60]}',
    max_concurrent_calls INTEGER NOT NULL DEFAULT 10,
    qualification_fields TEXT    NOT NULL DEFAULT '[]',
    webhook_url          TEXT,
    status               TEXT    NOT NULL DEFAULT 'draft'
                         CHECK (status IN ('draft', 'running', 'paused', 'completed')),
    status_reason        TEXT,
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL
);

CREATE TABLE leads (
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
    UNIQUE (campaign_id, phone)
);

-- The dialer's query: next due leads of a running campaign.
CREATE INDEX leads_due ON leads (campaign_id, next_attempt_at)
    WHERE status IN ('pending', 'retry', 'callback');
CREATE INDEX leads_by_status ON leads (campaign_id, status, id);
CREATE INDEX leads_by_phone ON leads (phone);

-- One row per dial attempt (and per inbound call).
CREATE TABLE calls (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id           INTEGER REFERENCES campaigns (id) ON DELETE CASCADE,
    lead_id               INTEGER REFERENCES leads (id) ON DELETE CASCADE,
    attempt               INTEGER NOT NULL DEFAULT 1,
    direction             TEXT    NOT NULL DEFAULT 'outbound'
                          CHECK (direction IN ('outbound', 'inbound')),
    phone                 TEXT    NOT NULL,
    status                TEXT    NOT NULL DEFAULT 'queued',
    carrier_sid           TEXT,
    stream_sid            TEXT,
    answered_by           TEXT,
    recording_url         TEXT,
    conversation_duration INTEGER,
    intent                TEXT,
    qualification         TEXT    NOT NULL DEFAULT '{}',
    summary               TEXT,
    error                 TEXT,
    dialed_at             TEXT,
    answered_at           TEXT,
    ended_at              TEXT,
    created_at            TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL
);

CREATE UNIQUE INDEX calls_by_carrier_sid ON calls (carrier_sid) WHERE carrier_sid IS NOT NULL;
CREATE INDEX calls_active ON calls (campaign_id, status)
    WHERE status IN ('queued', 'dialing', 'ringing', 'in-progress');
CREATE INDEX calls_by_lead ON calls (lead_id);

-- Carrier webhook deliveries already applied (idempotency: CallSid + event type).
CREATE TABLE call_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    carrier_sid TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    payload     TEXT NOT NULL DEFAULT '{}',
    received_at TEXT NOT NULL,
    UNIQUE (carrier_sid, event_type)
);

-- What was said, written turn by turn as the call happens.
CREATE TABLE transcript_turns (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id            INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq                INTEGER NOT NULL,
    speaker            TEXT    NOT NULL CHECK (speaker IN ('agent', 'caller', 'system')),
    text               TEXT    NOT NULL,
    started_ms         INTEGER,
    ended_ms           INTEGER,
    interrupted        BOOLEAN NOT NULL DEFAULT FALSE,
    stt_ms             INTEGER,
    llm_first_token_ms INTEGER,
    tts_first_byte_ms  INTEGER,
    voice_to_voice_ms  INTEGER,
    added_ms           INTEGER,
    created_at         TEXT    NOT NULL,
    UNIQUE (call_id, seq)
);

CREATE TABLE do_not_call (
    phone      TEXT PRIMARY KEY,
    reason     TEXT,
    source     TEXT NOT NULL DEFAULT 'api',
    created_at TEXT NOT NULL
);
