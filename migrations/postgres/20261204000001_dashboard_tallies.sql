-- Aggregates kept up to date as rows change, so reports and GET /dashboard cost O(campaigns),
-- not O(leads): counting 250,000 leads took 0.5 s per dashboard (docs/BENCHMARKS.md).
--
-- Statement-level triggers (one per INSERT, UPDATE, DELETE statement, over its transition
-- tables) append what each statement changed to the `*_deltas` tables; `fold_tallies` (the
-- service runs it every few seconds) moves the deltas into the `*_tallies`. Readers add both.
-- Appending, not updating a counter row, is what keeps writers apart: a counter row updated
-- in place would be locked by each writer until its commit, so a long import would hold the
-- dialer's claims of the same campaign for its whole duration.

-- Leads per (campaign, status, outcome, attempts); outcome '' for none.
CREATE TABLE lead_tallies (
    campaign_id BIGINT  NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    status      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    n           BIGINT  NOT NULL,
    PRIMARY KEY (campaign_id, status, outcome, attempts)
);

-- Calls per (campaign, status, intent) with the sums the reports price; intent '' for none.
CREATE TABLE call_tallies (
    campaign_id           BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    status                TEXT   NOT NULL,
    intent                TEXT   NOT NULL,
    total                 BIGINT NOT NULL,
    answered              BIGINT NOT NULL,
    dialled               BIGINT NOT NULL,
    dialled_answered      BIGINT NOT NULL,
    talk_secs             BIGINT NOT NULL,
    talked_calls          BIGINT NOT NULL,
    carrier_minutes       BIGINT NOT NULL,
    stt_secs              BIGINT NOT NULL,
    llm_prompt_tokens     BIGINT NOT NULL,
    llm_completion_tokens BIGINT NOT NULL,
    tts_characters        BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, status, intent)
);

-- Turns per (campaign, latency kind, value in ms): exact nearest-rank percentiles from a walk
-- over distinct values instead of a sort of every turn.
CREATE TABLE latency_tallies (
    campaign_id BIGINT  NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL,
    ms          INTEGER NOT NULL,
    n           BIGINT  NOT NULL,
    PRIMARY KEY (campaign_id, kind, ms)
);

-- No foreign key: a campaign's delete cascades into its leads, whose trigger then runs after
-- the campaign row is gone. Deltas of a deleted campaign are dropped by `campaigns_untally`.
CREATE TABLE lead_tally_deltas (LIKE lead_tallies);
CREATE TABLE call_tally_deltas (LIKE call_tallies);
CREATE TABLE latency_tally_deltas (LIKE latency_tallies);
CREATE INDEX lead_tally_deltas_by_campaign ON lead_tally_deltas (campaign_id);
CREATE INDEX call_tally_deltas_by_campaign ON call_tally_deltas (campaign_id);
CREATE INDEX latency_tally_deltas_by_campaign ON latency_tally_deltas (campaign_id);
-- SQLite's import switch; unused here (kept so both schemas have the same tables).
CREATE TABLE lead_tally_pause (paused INTEGER NOT NULL);

-- --- leads ---
CREATE FUNCTION leads_tally_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lead_tally_deltas (campaign_id, status, outcome, attempts, n)
    SELECT campaign_id, status, COALESCE(outcome, ''), attempts, COUNT(*)
    FROM new_rows GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;

CREATE FUNCTION leads_tally_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lead_tally_deltas (campaign_id, status, outcome, attempts, n)
    SELECT campaign_id, status, outcome, attempts, SUM(n) FROM (
        SELECT campaign_id, status, COALESCE(outcome, '') AS outcome, attempts, 1 AS n FROM new_rows
        UNION ALL
        SELECT campaign_id, status, COALESCE(outcome, ''), attempts, -1 FROM old_rows) d
    GROUP BY 1, 2, 3, 4 HAVING SUM(n) <> 0;
    RETURN NULL;
END $$;

-- Leads of a campaign being deleted are skipped: its tallies go with it (foreign key).
CREATE FUNCTION leads_tally_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lead_tally_deltas (campaign_id, status, outcome, attempts, n)
    SELECT o.campaign_id, o.status, COALESCE(o.outcome, ''), o.attempts, -COUNT(*)
    FROM old_rows o WHERE EXISTS (SELECT 1 FROM campaigns c WHERE c.id = o.campaign_id)
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;

CREATE TRIGGER leads_tally_insert AFTER INSERT ON leads REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION leads_tally_insert();
CREATE TRIGGER leads_tally_update AFTER UPDATE ON leads
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION leads_tally_update();
CREATE TRIGGER leads_tally_delete AFTER DELETE ON leads REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION leads_tally_delete();

-- --- calls --- (a call with no campaign is in no report's scope)
-- One call's contribution to its tally row, times `sign` (+1 as it is now, -1 as it was).
CREATE FUNCTION call_tally_terms(r calls, sign INTEGER) RETURNS SETOF call_tally_deltas
LANGUAGE sql IMMUTABLE AS $$
    SELECT r.campaign_id, r.status, COALESCE(r.intent, ''), sign::BIGINT,
        sign * (r.answered_at IS NOT NULL)::int,
        sign * (r.direction = 'outbound' AND r.dialed_at IS NOT NULL)::int,
        sign * (r.direction = 'outbound' AND r.dialed_at IS NOT NULL AND r.answered_at IS NOT NULL)::int,
        sign * COALESCE(r.conversation_duration, 0),
        sign * (COALESCE(r.conversation_duration, 0) > 0)::int,
        sign * CASE WHEN r.conversation_duration > 0 THEN (r.conversation_duration + 59) / 60 ELSE 0 END,
        sign * CASE WHEN r.stream_sid IS NOT NULL THEN COALESCE(r.conversation_duration, 0) ELSE 0 END,
        sign * r.llm_prompt_tokens, sign * r.llm_completion_tokens, sign * r.tts_characters
    WHERE r.campaign_id IS NOT NULL
$$;

CREATE FUNCTION calls_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO call_tally_deltas
        SELECT t.campaign_id, t.status, t.intent, SUM(t.total), SUM(t.answered), SUM(t.dialled),
            SUM(t.dialled_answered), SUM(t.talk_secs), SUM(t.talked_calls), SUM(t.carrier_minutes),
            SUM(t.stt_secs), SUM(t.llm_prompt_tokens), SUM(t.llm_completion_tokens),
            SUM(t.tts_characters)
        FROM new_rows r CROSS JOIN LATERAL call_tally_terms(r, 1) t
        GROUP BY 1, 2, 3;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO call_tally_deltas
        SELECT campaign_id, status, intent, SUM(total), SUM(answered), SUM(dialled),
            SUM(dialled_answered), SUM(talk_secs), SUM(talked_calls), SUM(carrier_minutes),
            SUM(stt_secs), SUM(llm_prompt_tokens), SUM(llm_completion_tokens), SUM(tts_characters)
        FROM (SELECT t.* FROM new_rows r CROSS JOIN LATERAL call_tally_terms(r, 1) t
              UNION ALL
              SELECT t.* FROM old_rows r CROSS JOIN LATERAL call_tally_terms(r, -1) t) d
        GROUP BY 1, 2, 3
        -- An update that changed nothing counted (a new carrier_sid, a timestamp) adds no row.
        HAVING SUM(total) <> 0 OR SUM(answered) <> 0 OR SUM(dialled) <> 0
            OR SUM(dialled_answered) <> 0 OR SUM(talk_secs) <> 0 OR SUM(talked_calls) <> 0
            OR SUM(carrier_minutes) <> 0 OR SUM(stt_secs) <> 0 OR SUM(llm_prompt_tokens) <> 0
            OR SUM(llm_completion_tokens) <> 0 OR SUM(tts_characters) <> 0;
    ELSE
        -- Calls of a campaign being deleted are skipped: its tallies go with it.
        INSERT INTO call_tally_deltas
        SELECT t.campaign_id, t.status, t.intent, SUM(t.total), SUM(t.answered), SUM(t.dialled),
            SUM(t.dialled_answered), SUM(t.talk_secs), SUM(t.talked_calls), SUM(t.carrier_minutes),
            SUM(t.stt_secs), SUM(t.llm_prompt_tokens), SUM(t.llm_completion_tokens),
            SUM(t.tts_characters)
        FROM old_rows r CROSS JOIN LATERAL call_tally_terms(r, -1) t
        WHERE EXISTS (SELECT 1 FROM campaigns c WHERE c.id = r.campaign_id)
        GROUP BY 1, 2, 3;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER calls_tally_insert AFTER INSERT ON calls REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION calls_tally();
CREATE TRIGGER calls_tally_update AFTER UPDATE ON calls
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION calls_tally();
CREATE TRIGGER calls_tally_delete AFTER DELETE ON calls REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION calls_tally();

-- --- transcript turns: one delta per latency a turn measured ---
CREATE FUNCTION turns_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO latency_tally_deltas (campaign_id, kind, ms, n)
        SELECT c.campaign_id, k.kind, k.ms, COUNT(*)
        FROM new_rows t JOIN calls c ON c.id = t.call_id
        CROSS JOIN LATERAL (VALUES ('stt', t.stt_ms), ('llm_first_token', t.llm_first_token_ms),
            ('tts_first_byte', t.tts_first_byte_ms), ('voice_to_voice', t.voice_to_voice_ms),
            ('added', t.added_ms)) AS k (kind, ms)
        WHERE c.campaign_id IS NOT NULL AND k.ms IS NOT NULL
        GROUP BY 1, 2, 3;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO latency_tally_deltas (campaign_id, kind, ms, n)
        SELECT c.campaign_id, k.kind, k.ms, -COUNT(*)
        FROM old_rows t JOIN calls c ON c.id = t.call_id
        CROSS JOIN LATERAL (VALUES ('stt', t.stt_ms), ('llm_first_token', t.llm_first_token_ms),
            ('tts_first_byte', t.tts_first_byte_ms), ('voice_to_voice', t.voice_to_voice_ms),
            ('added', t.added_ms)) AS k (kind, ms)
        WHERE c.campaign_id IS NOT NULL AND k.ms IS NOT NULL
        GROUP BY 1, 2, 3;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER turns_tally_insert AFTER INSERT ON transcript_turns REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION turns_tally();
CREATE TRIGGER turns_tally_update AFTER UPDATE ON transcript_turns
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION turns_tally();
CREATE TRIGGER turns_tally_delete AFTER DELETE ON transcript_turns REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION turns_tally();

-- A deleted campaign's tallies go by foreign key; its deltas here.
CREATE FUNCTION campaigns_untally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM lead_tally_deltas WHERE campaign_id IN (SELECT id FROM old_rows);
    DELETE FROM call_tally_deltas WHERE campaign_id IN (SELECT id FROM old_rows);
    DELETE FROM latency_tally_deltas WHERE campaign_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;
CREATE TRIGGER campaigns_untally AFTER DELETE ON campaigns REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaigns_untally();

-- What is already there.
INSERT INTO lead_tallies (campaign_id, status, outcome, attempts, n)
SELECT campaign_id, status, COALESCE(outcome, ''), attempts, COUNT(*)
FROM leads GROUP BY 1, 2, 3, 4;

INSERT INTO call_tallies
SELECT t.campaign_id, t.status, t.intent, SUM(t.total), SUM(t.answered), SUM(t.dialled),
    SUM(t.dialled_answered), SUM(t.talk_secs), SUM(t.talked_calls), SUM(t.carrier_minutes),
    SUM(t.stt_secs), SUM(t.llm_prompt_tokens), SUM(t.llm_completion_tokens), SUM(t.tts_characters)
FROM calls r CROSS JOIN LATERAL call_tally_terms(r, 1) t
GROUP BY 1, 2, 3;

INSERT INTO latency_tallies (campaign_id, kind, ms, n)
SELECT c.campaign_id, k.kind, k.ms, COUNT(*)
FROM transcript_turns t JOIN calls c ON c.id = t.call_id
CROSS JOIN LATERAL (VALUES ('stt', t.stt_ms), ('llm_first_token', t.llm_first_token_ms),
    ('tts_first_byte', t.tts_first_byte_ms), ('voice_to_voice', t.voice_to_voice_ms),
    ('added', t.added_ms)) AS k (kind, ms)
WHERE c.campaign_id IS NOT NULL AND k.ms IS NOT NULL
GROUP BY 1, 2, 3;
