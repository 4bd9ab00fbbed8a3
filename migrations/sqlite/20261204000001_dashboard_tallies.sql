-- Aggregates kept up to date as rows change, so reports and GET /dashboard cost O(campaigns),
-- not O(leads): counting a million leads took 9 s on SQLite (docs/BENCHMARKS.md).
--
-- Triggers keep them, in the same transaction as the change, whatever statement made it (the
-- import, the dialer's claim, a settle, a DNC add, a campaign's delete). The `*_deltas` tables
-- are PostgreSQL's (there, changes append deltas that are folded later, so no transaction holds
-- a counter row); here they exist so both backends read with the same SQL, and stay empty.

-- Leads per (campaign, status, outcome, attempts); outcome '' for none.
CREATE TABLE lead_tallies (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    status      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, status, outcome, attempts)
) WITHOUT ROWID;

-- Calls per (campaign, status, intent) with the sums the reports price; intent '' for none.
CREATE TABLE call_tallies (
    campaign_id           INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    status                TEXT    NOT NULL,
    intent                TEXT    NOT NULL,
    total                 INTEGER NOT NULL,
    answered              INTEGER NOT NULL,
    dialled               INTEGER NOT NULL,
    dialled_answered      INTEGER NOT NULL,
    talk_secs             INTEGER NOT NULL,
    talked_calls          INTEGER NOT NULL,
    carrier_minutes       INTEGER NOT NULL,
    stt_secs              INTEGER NOT NULL,
    llm_prompt_tokens     INTEGER NOT NULL,
    llm_completion_tokens INTEGER NOT NULL,
    tts_characters        INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, status, intent)
) WITHOUT ROWID;

-- Turns per (campaign, latency kind, value in ms): exact nearest-rank percentiles from a walk
-- over distinct values instead of a sort of every turn.
CREATE TABLE latency_tallies (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL,
    ms          INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, kind, ms)
) WITHOUT ROWID;

CREATE TABLE lead_tally_deltas (
    campaign_id INTEGER NOT NULL, status TEXT NOT NULL, outcome TEXT NOT NULL,
    attempts INTEGER NOT NULL, n INTEGER NOT NULL
);
CREATE TABLE call_tally_deltas (
    campaign_id INTEGER NOT NULL, status TEXT NOT NULL, intent TEXT NOT NULL,
    total INTEGER NOT NULL, answered INTEGER NOT NULL, dialled INTEGER NOT NULL,
    dialled_answered INTEGER NOT NULL, talk_secs INTEGER NOT NULL, talked_calls INTEGER NOT NULL,
    carrier_minutes INTEGER NOT NULL, stt_secs INTEGER NOT NULL, llm_prompt_tokens INTEGER NOT NULL,
    llm_completion_tokens INTEGER NOT NULL, tts_characters INTEGER NOT NULL
);
CREATE TABLE latency_tally_deltas (
    campaign_id INTEGER NOT NULL, kind TEXT NOT NULL, ms INTEGER NOT NULL, n INTEGER NOT NULL
);

-- While the bulk import's transaction holds a row here, its inserts skip the per-row trigger and
-- the importer adds each batch's count itself (SQLite has no statement-level triggers; the
-- per-row upsert cost the import ~8%). The import holds SQLite's write lock meanwhile, so no
-- other writer's insert can be skipped.
CREATE TABLE lead_tally_pause (paused INTEGER NOT NULL);

-- --- leads ---
CREATE TRIGGER leads_tally_insert AFTER INSERT ON leads
WHEN NOT EXISTS (SELECT 1 FROM lead_tally_pause)
BEGIN
    INSERT INTO lead_tallies (campaign_id, status, outcome, attempts, n)
    VALUES (NEW.campaign_id, NEW.status, COALESCE(NEW.outcome, ''), NEW.attempts, 1)
    ON CONFLICT (campaign_id, status, outcome, attempts) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER leads_tally_update AFTER UPDATE OF campaign_id, status, outcome, attempts ON leads
WHEN OLD.campaign_id IS NOT NEW.campaign_id OR OLD.status IS NOT NEW.status
    OR OLD.outcome IS NOT NEW.outcome OR OLD.attempts IS NOT NEW.attempts
BEGIN
    UPDATE lead_tallies SET n = n - 1
    WHERE campaign_id = OLD.campaign_id AND status = OLD.status
      AND outcome = COALESCE(OLD.outcome, '') AND attempts = OLD.attempts;
    INSERT INTO lead_tallies (campaign_id, status, outcome, attempts, n)
    VALUES (NEW.campaign_id, NEW.status, COALESCE(NEW.outcome, ''), NEW.attempts, 1)
    ON CONFLICT (campaign_id, status, outcome, attempts) DO UPDATE SET n = n + 1;
END;

-- A plain UPDATE: when the campaign itself is being deleted its tallies may already be gone.
CREATE TRIGGER leads_tally_delete AFTER DELETE ON leads
BEGIN
    UPDATE lead_tallies SET n = n - 1
    WHERE campaign_id = OLD.campaign_id AND status = OLD.status
      AND outcome = COALESCE(OLD.outcome, '') AND attempts = OLD.attempts;
END;

-- --- calls --- (a call with no campaign is in no report's scope)
CREATE TRIGGER calls_tally_insert AFTER INSERT ON calls WHEN NEW.campaign_id IS NOT NULL
BEGIN
    INSERT INTO call_tallies (campaign_id, status, intent, total, answered, dialled,
        dialled_answered, talk_secs, talked_calls, carrier_minutes, stt_secs, llm_prompt_tokens,
        llm_completion_tokens, tts_characters)
    VALUES (NEW.campaign_id, NEW.status, COALESCE(NEW.intent, ''), 1,
        NEW.answered_at IS NOT NULL,
        NEW.direction = 'outbound' AND NEW.dialed_at IS NOT NULL,
        NEW.direction = 'outbound' AND NEW.dialed_at IS NOT NULL AND NEW.answered_at IS NOT NULL,
        COALESCE(NEW.conversation_duration, 0),
        COALESCE(NEW.conversation_duration, 0) > 0,
        CASE WHEN NEW.conversation_duration > 0 THEN (NEW.conversation_duration + 59) / 60 ELSE 0 END,
        CASE WHEN NEW.stream_sid IS NOT NULL THEN COALESCE(NEW.conversation_duration, 0) ELSE 0 END,
        NEW.llm_prompt_tokens, NEW.llm_completion_tokens, NEW.tts_characters)
    ON CONFLICT (campaign_id, status, intent) DO UPDATE SET
        total = total + excluded.total, answered = answered + excluded.answered,
        dialled = dialled + excluded.dialled, dialled_answered = dialled_answered + excluded.dialled_answered,
        talk_secs = talk_secs + excluded.talk_secs, talked_calls = talked_calls + excluded.talked_calls,
        carrier_minutes = carrier_minutes + excluded.carrier_minutes, stt_secs = stt_secs + excluded.stt_secs,
        llm_prompt_tokens = llm_prompt_tokens + excluded.llm_prompt_tokens,
        llm_completion_tokens = llm_completion_tokens + excluded.llm_completion_tokens,
        tts_characters = tts_characters + excluded.tts_characters;
END;

CREATE TRIGGER calls_tally_update AFTER UPDATE OF campaign_id, status, intent, answered_at,
    dialed_at, direction, conversation_duration, stream_sid, llm_prompt_tokens,
    llm_completion_tokens, tts_characters ON calls
BEGIN
    UPDATE call_tallies SET total = total - 1,
        answered = answered - (OLD.answered_at IS NOT NULL),
        dialled = dialled - (OLD.direction = 'outbound' AND OLD.dialed_at IS NOT NULL),
        dialled_answered = dialled_answered
            - (OLD.direction = 'outbound' AND OLD.dialed_at IS NOT NULL AND OLD.answered_at IS NOT NULL),
        talk_secs = talk_secs - COALESCE(OLD.conversation_duration, 0),
        talked_calls = talked_calls - (COALESCE(OLD.conversation_duration, 0) > 0),
        carrier_minutes = carrier_minutes
            - (CASE WHEN OLD.conversation_duration > 0 THEN (OLD.conversation_duration + 59) / 60 ELSE 0 END),
        stt_secs = stt_secs
            - (CASE WHEN OLD.stream_sid IS NOT NULL THEN COALESCE(OLD.conversation_duration, 0) ELSE 0 END),
        llm_prompt_tokens = llm_prompt_tokens - OLD.llm_prompt_tokens,
        llm_completion_tokens = llm_completion_tokens - OLD.llm_completion_tokens,
        tts_characters = tts_characters - OLD.tts_characters
    WHERE OLD.campaign_id IS NOT NULL AND campaign_id = OLD.campaign_id AND status = OLD.status
      AND intent = COALESCE(OLD.intent, '');
    INSERT INTO call_tallies (campaign_id, status, intent, total, answered, dialled,
        dialled_answered, talk_secs, talked_calls, carrier_minutes, stt_secs, llm_prompt_tokens,
        llm_completion_tokens, tts_characters)
    SELECT NEW.campaign_id, NEW.status, COALESCE(NEW.intent, ''), 1,
        NEW.answered_at IS NOT NULL,
        NEW.direction = 'outbound' AND NEW.dialed_at IS NOT NULL,
        NEW.direction = 'outbound' AND NEW.dialed_at IS NOT NULL AND NEW.answered_at IS NOT NULL,
        COALESCE(NEW.conversation_duration, 0),
        COALESCE(NEW.conversation_duration, 0) > 0,
        CASE WHEN NEW.conversation_duration > 0 THEN (NEW.conversation_duration + 59) / 60 ELSE 0 END,
        CASE WHEN NEW.stream_sid IS NOT NULL THEN COALESCE(NEW.conversation_duration, 0) ELSE 0 END,
        NEW.llm_prompt_tokens, NEW.llm_completion_tokens, NEW.tts_characters
    WHERE NEW.campaign_id IS NOT NULL
    ON CONFLICT (campaign_id, status, intent) DO UPDATE SET
        total = total + excluded.total, answered = answered + excluded.answered,
        dialled = dialled + excluded.dialled, dialled_answered = dialled_answered + excluded.dialled_answered,
        talk_secs = talk_secs + excluded.talk_secs, talked_calls = talked_calls + excluded.talked_calls,
        carrier_minutes = carrier_minutes + excluded.carrier_minutes, stt_secs = stt_secs + excluded.stt_secs,
        llm_prompt_tokens = llm_prompt_tokens + excluded.llm_prompt_tokens,
        llm_completion_tokens = llm_completion_tokens + excluded.llm_completion_tokens,
        tts_characters = tts_characters + excluded.tts_characters;
END;

CREATE TRIGGER calls_tally_delete AFTER DELETE ON calls WHEN OLD.campaign_id IS NOT NULL
BEGIN
    UPDATE call_tallies SET total = total - 1,
        answered = answered - (OLD.answered_at IS NOT NULL),
        dialled = dialled - (OLD.direction = 'outbound' AND OLD.dialed_at IS NOT NULL),
        dialled_answered = dialled_answered
            - (OLD.direction = 'outbound' AND OLD.dialed_at IS NOT NULL AND OLD.answered_at IS NOT NULL),
        talk_secs = talk_secs - COALESCE(OLD.conversation_duration, 0),
        talked_calls = talked_calls - (COALESCE(OLD.conversation_duration, 0) > 0),
        carrier_minutes = carrier_minutes
            - (CASE WHEN OLD.conversation_duration > 0 THEN (OLD.conversation_duration + 59) / 60 ELSE 0 END),
        stt_secs = stt_secs
            - (CASE WHEN OLD.stream_sid IS NOT NULL THEN COALESCE(OLD.conversation_duration, 0) ELSE 0 END),
        llm_prompt_tokens = llm_prompt_tokens - OLD.llm_prompt_tokens,
        llm_completion_tokens = llm_completion_tokens - OLD.llm_completion_tokens,
        tts_characters = tts_characters - OLD.tts_characters
    WHERE campaign_id = OLD.campaign_id AND status = OLD.status AND intent = COALESCE(OLD.intent, '');
END;

-- --- transcript turns: one row per latency a turn measured ---
CREATE TRIGGER turns_tally_insert AFTER INSERT ON transcript_turns
BEGIN
    INSERT INTO latency_tallies (campaign_id, kind, ms, n)
    SELECT c.campaign_id, k.kind, k.ms, 1
    FROM calls c, (SELECT 'stt' AS kind, NEW.stt_ms AS ms
        UNION ALL SELECT 'llm_first_token', NEW.llm_first_token_ms
        UNION ALL SELECT 'tts_first_byte', NEW.tts_first_byte_ms
        UNION ALL SELECT 'voice_to_voice', NEW.voice_to_voice_ms
        UNION ALL SELECT 'added', NEW.added_ms) k
    WHERE c.id = NEW.call_id AND c.campaign_id IS NOT NULL AND k.ms IS NOT NULL
    ON CONFLICT (campaign_id, kind, ms) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER turns_tally_update AFTER UPDATE OF call_id, stt_ms, llm_first_token_ms,
    tts_first_byte_ms, voice_to_voice_ms, added_ms ON transcript_turns
BEGIN
    UPDATE latency_tallies SET n = n - 1
    WHERE campaign_id = (SELECT campaign_id FROM calls WHERE id = OLD.call_id)
      AND ((kind = 'stt' AND ms = OLD.stt_ms)
        OR (kind = 'llm_first_token' AND ms = OLD.llm_first_token_ms)
        OR (kind = 'tts_first_byte' AND ms = OLD.tts_first_byte_ms)
        OR (kind = 'voice_to_voice' AND ms = OLD.voice_to_voice_ms)
        OR (kind = 'added' AND ms = OLD.added_ms));
    INSERT INTO latency_tallies (campaign_id, kind, ms, n)
    SELECT c.campaign_id, k.kind, k.ms, 1
    FROM calls c, (SELECT 'stt' AS kind, NEW.stt_ms AS ms
        UNION ALL SELECT 'llm_first_token', NEW.llm_first_token_ms
        UNION ALL SELECT 'tts_first_byte', NEW.tts_first_byte_ms
        UNION ALL SELECT 'voice_to_voice', NEW.voice_to_voice_ms
        UNION ALL SELECT 'added', NEW.added_ms) k
    WHERE c.id = NEW.call_id AND c.campaign_id IS NOT NULL AND k.ms IS NOT NULL
    ON CONFLICT (campaign_id, kind, ms) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER turns_tally_delete AFTER DELETE ON transcript_turns
BEGIN
    UPDATE latency_tallies SET n = n - 1
    WHERE campaign_id = (SELECT campaign_id FROM calls WHERE id = OLD.call_id)
      AND ((kind = 'stt' AND ms = OLD.stt_ms)
        OR (kind = 'llm_first_token' AND ms = OLD.llm_first_token_ms)
        OR (kind = 'tts_first_byte' AND ms = OLD.tts_first_byte_ms)
        OR (kind = 'voice_to_voice' AND ms = OLD.voice_to_voice_ms)
        OR (kind = 'added' AND ms = OLD.added_ms));
END;

-- What is already there.
INSERT INTO lead_tallies (campaign_id, status, outcome, attempts, n)
SELECT campaign_id, status, COALESCE(outcome, ''), attempts, COUNT(*)
FROM leads GROUP BY campaign_id, status, COALESCE(outcome, ''), attempts;

INSERT INTO call_tallies (campaign_id, status, intent, total, answered, dialled,
    dialled_answered, talk_secs, talked_calls, carrier_minutes, stt_secs, llm_prompt_tokens,
    llm_completion_tokens, tts_characters)
SELECT campaign_id, status, COALESCE(intent, ''), COUNT(*),
    SUM(answered_at IS NOT NULL),
    SUM(direction = 'outbound' AND dialed_at IS NOT NULL),
    SUM(direction = 'outbound' AND dialed_at IS NOT NULL AND answered_at IS NOT NULL),
    SUM(COALESCE(conversation_duration, 0)),
    SUM(COALESCE(conversation_duration, 0) > 0),
    SUM(CASE WHEN conversation_duration > 0 THEN (conversation_duration + 59) / 60 ELSE 0 END),
    SUM(CASE WHEN stream_sid IS NOT NULL THEN COALESCE(conversation_duration, 0) ELSE 0 END),
    SUM(llm_prompt_tokens), SUM(llm_completion_tokens), SUM(tts_characters)
FROM calls WHERE campaign_id IS NOT NULL GROUP BY campaign_id, status, COALESCE(intent, '');

INSERT INTO latency_tallies (campaign_id, kind, ms, n)
SELECT c.campaign_id, 'stt', t.stt_ms, COUNT(*) FROM transcript_turns t JOIN calls c ON c.id = t.call_id
WHERE c.campaign_id IS NOT NULL AND t.stt_ms IS NOT NULL GROUP BY c.campaign_id, t.stt_ms;
INSERT INTO latency_tallies (campaign_id, kind, ms, n)
SELECT c.campaign_id, 'llm_first_token', t.llm_first_token_ms, COUNT(*) FROM transcript_turns t JOIN calls c ON c.id = t.call_id
WHERE c.campaign_id IS NOT NULL AND t.llm_first_token_ms IS NOT NULL GROUP BY c.campaign_id, t.llm_first_token_ms;
INSERT INTO latency_tallies (campaign_id, kind, ms, n)
SELECT c.campaign_id, 'tts_first_byte', t.tts_first_byte_ms, COUNT(*) FROM transcript_turns t JOIN calls c ON c.id = t.call_id
WHERE c.campaign_id IS NOT NULL AND t.tts_first_byte_ms IS NOT NULL GROUP BY c.campaign_id, t.tts_first_byte_ms;
INSERT INTO latency_tallies (campaign_id, kind, ms, n)
SELECT c.campaign_id, 'voice_to_voice', t.voice_to_voice_ms, COUNT(*) FROM transcript_turns t JOIN calls c ON c.id = t.call_id
WHERE c.campaign_id IS NOT NULL AND t.voice_to_voice_ms IS NOT NULL GROUP BY c.campaign_id, t.voice_to_voice_ms;
INSERT INTO latency_tallies (campaign_id, kind, ms, n)
SELECT c.campaign_id, 'added', t.added_ms, COUNT(*) FROM transcript_turns t JOIN calls c ON c.id = t.call_id
WHERE c.campaign_id IS NOT NULL AND t.added_ms IS NOT NULL GROUP BY c.campaign_id, t.added_ms;
