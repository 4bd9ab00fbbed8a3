//! The SQL of [`OpsStore`](super::OpsStore), written once for both backends (like `sql.rs`).
//!
//! Aggregates use only what SQLite and PostgreSQL share: `COUNT`, `SUM` over integers (cast to
//! BIGINT, and `COALESCE`d since an empty `SUM` is NULL), `CASE`, integer division. Percentiles
//! are nearest-rank: the rank is computed in Rust from the count and the value read with
//! `ORDER BY … LIMIT 1 OFFSET rank - 1`, which both backends answer identically.

macro_rules! delivery_columns {
    () => {
        "id, campaign_id, call_id, event, url, payload, status, attempts, next_attempt_at, \
         last_status_code, last_error, delivered_at, created_at, updated_at"
    };
}

/// One percentile query per latency column (column names cannot be bound).
macro_rules! latency_value_sql {
    ($col:literal) => {
        concat!(
            "SELECT t.",
            $col,
            " FROM transcript_turns t JOIN calls c ON c.id = t.call_id \
             WHERE t.",
            $col,
            " IS NOT NULL AND ($1 IS NULL OR c.campaign_id = $1) \
             ORDER BY t.",
            $col,
            " LIMIT 1 OFFSET $2"
        )
    };
}

/// Expands `impl OpsStore for $store` over `$db`; `$skip_locked` is appended to the webhook
/// claim's row selection (` FOR UPDATE SKIP LOCKED` on PostgreSQL, empty on SQLite, where
/// writers are serialised anyway).
macro_rules! impl_ops_store {
    ($store:ty, $db:ty, skip_locked: $skip_locked:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::OpsStore for $store {
            async fn lead_stats(
                &self,
                campaign_id: Option<i64>,
            ) -> $crate::store::StoreResult<$crate::store::LeadStats> {
                let by_status: Vec<(String, i64)> = sqlx::query_as::<$db, (String, i64)>(
                    "SELECT status, COUNT(*) FROM leads WHERE ($1 IS NULL OR campaign_id = $1) \
                     GROUP BY status ORDER BY status",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                let outcomes = sqlx::query_as::<$db, (String, i64)>(
                    "SELECT outcome, COUNT(*) FROM leads WHERE outcome IS NOT NULL \
                     AND ($1 IS NULL OR campaign_id = $1) GROUP BY outcome ORDER BY outcome",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                let attempts = sqlx::query_as::<$db, (i32, i64)>(
                    "SELECT attempts, COUNT(*) FROM leads WHERE ($1 IS NULL OR campaign_id = $1) \
                     GROUP BY attempts ORDER BY attempts",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                let by_status = by_status
                    .into_iter()
                    .map(|(s, n)| {
                        s.parse()
                            .map(|s| (s, n))
                            .map_err($crate::store::StoreError::Corrupt)
                    })
                    .collect::<Result<_, _>>()?;
                Ok($crate::store::LeadStats { by_status, outcomes, attempts })
            }

            async fn call_stats(
                &self,
                campaign_id: Option<i64>,
            ) -> $crate::store::StoreResult<$crate::store::CallStats> {
                let totals = sqlx::query_as::<$db, $crate::store::CallTotals>(
                    "SELECT COUNT(*) AS total, \
                     CAST(COALESCE(SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS answered, \
                     CAST(COALESCE(SUM(CASE WHEN direction = 'outbound' AND dialed_at IS NOT NULL \
                          THEN 1 ELSE 0 END), 0) AS BIGINT) AS dialled, \
                     CAST(COALESCE(SUM(CASE WHEN direction = 'outbound' AND dialed_at IS NOT NULL \
                          AND answered_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS dialled_answered, \
                     CAST(COALESCE(SUM(COALESCE(conversation_duration, 0)), 0) AS BIGINT) AS talk_secs, \
                     CAST(COALESCE(SUM(CASE WHEN conversation_duration > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS talked_calls, \
                     CAST(COALESCE(SUM(CASE WHEN conversation_duration > 0 \
                          THEN (conversation_duration + 59) / 60 ELSE 0 END), 0) AS BIGINT) AS carrier_minutes, \
                     CAST(COALESCE(SUM(CASE WHEN stream_sid IS NOT NULL \
                          THEN COALESCE(conversation_duration, 0) ELSE 0 END), 0) AS BIGINT) AS stt_secs, \
                     CAST(COALESCE(SUM(llm_prompt_tokens), 0) AS BIGINT) AS llm_prompt_tokens, \
                     CAST(COALESCE(SUM(llm_completion_tokens), 0) AS BIGINT) AS llm_completion_tokens, \
                     CAST(COALESCE(SUM(tts_characters), 0) AS BIGINT) AS tts_characters \
                     FROM calls WHERE ($1 IS NULL OR campaign_id = $1)",
                )
                .bind(campaign_id)
                .fetch_one(&self.pool)
                .await?;
                let by_status = sqlx::query_as::<$db, (String, i64)>(
                    "SELECT status, COUNT(*) FROM calls WHERE ($1 IS NULL OR campaign_id = $1) \
                     GROUP BY status ORDER BY status",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                let intents = sqlx::query_as::<$db, (String, i64)>(
                    "SELECT intent, COUNT(*) FROM calls WHERE intent IS NOT NULL \
                     AND ($1 IS NULL OR campaign_id = $1) GROUP BY intent ORDER BY intent",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                Ok($crate::store::CallStats { totals, by_status, intents })
            }

            async fn latency_stats(
                &self,
                campaign_id: Option<i64>,
            ) -> $crate::store::StoreResult<Vec<($crate::store::LatencyKind, $crate::store::Percentiles)>> {
                use $crate::store::LatencyKind;
                let counts: (i64, i64, i64, i64, i64) = sqlx::query_as::<$db, (i64, i64, i64, i64, i64)>(
                    "SELECT COUNT(t.stt_ms), COUNT(t.llm_first_token_ms), COUNT(t.tts_first_byte_ms), \
                     COUNT(t.voice_to_voice_ms), COUNT(t.added_ms) \
                     FROM transcript_turns t JOIN calls c ON c.id = t.call_id \
                     WHERE ($1 IS NULL OR c.campaign_id = $1)",
                )
                .bind(campaign_id)
                .fetch_one(&self.pool)
                .await?;
                let columns = [
                    (LatencyKind::Stt, counts.0, latency_value_sql!("stt_ms")),
                    (LatencyKind::LlmFirstToken, counts.1, latency_value_sql!("llm_first_token_ms")),
                    (LatencyKind::TtsFirstByte, counts.2, latency_value_sql!("tts_first_byte_ms")),
                    (LatencyKind::VoiceToVoice, counts.3, latency_value_sql!("voice_to_voice_ms")),
                    (LatencyKind::Added, counts.4, latency_value_sql!("added_ms")),
                ];
                let mut out = Vec::with_capacity(columns.len());
                for (kind, count, sql) in columns {
                    let mut p = $crate::store::Percentiles { count, p50: None, p95: None };
                    if count > 0 {
                        for (pct, slot) in [(50, &mut p.p50), (95, &mut p.p95)] {
                            let offset = $crate::store::nearest_rank(pct, count) - 1;
                            *slot = sqlx::query_scalar::<$db, i32>(sql)
                                .bind(campaign_id)
                                .bind(offset)
                                .fetch_optional(&self.pool)
                                .await?;
                        }
                    }
                    out.push((kind, p));
                }
                Ok(out)
            }

            async fn export_page(
                &self,
                campaign_id: i64,
                after_id: i64,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ExportRow>> {
                Ok(sqlx::query_as::<$db, $crate::store::ExportRow>(
                    "SELECT l.id, l.name, l.phone, l.status, l.outcome, l.attempts, \
                     COALESCE(o.qualification, l.qualification) AS qualification, \
                     COALESCE(l.summary, o.summary) AS summary, \
                     c.intent AS last_intent, \
                     COALESCE(c.dialed_at, c.created_at) AS last_call_at, \
                     COALESCE(c.recording_url, o.recording_url) AS recording_url \
                     FROM leads l \
                     LEFT JOIN calls c ON c.id = (SELECT MAX(id) FROM calls WHERE lead_id = l.id) \
                     LEFT JOIN calls o ON o.id = \
                         (SELECT MAX(id) FROM calls WHERE lead_id = l.id AND intent IS NOT NULL) \
                     WHERE l.campaign_id = $1 AND l.id > $2 ORDER BY l.id LIMIT $3",
                )
                .bind(campaign_id)
                .bind(after_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn active_calls(&self) -> $crate::store::StoreResult<Vec<$crate::store::Call>> {
                Ok(sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "SELECT ", call_columns!(), " FROM calls WHERE status IN ", active_call_statuses!(),
                    " ORDER BY id LIMIT 1000"
                ))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn add_call_usage(
                &self,
                call_id: i64,
                usage: &$crate::store::CallUsage,
            ) -> $crate::store::StoreResult<()> {
                let done = sqlx::query::<$db>(
                    "UPDATE calls SET llm_prompt_tokens = llm_prompt_tokens + $2, \
                     llm_completion_tokens = llm_completion_tokens + $3, \
                     tts_characters = tts_characters + $4 WHERE id = $1",
                )
                .bind(call_id)
                .bind(usage.llm_prompt_tokens as i32)
                .bind(usage.llm_completion_tokens as i32)
                .bind(usage.tts_characters as i32)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound(format!("call {call_id} not found")));
                }
                Ok(())
            }

            async fn end_media(
                &self,
                call_id: i64,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>(
                    "UPDATE calls SET media_ended_at = COALESCE(media_ended_at, $2) WHERE id = $1",
                )
                .bind(call_id)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn media_ended_at(
                &self,
                call_id: i64,
            ) -> $crate::store::StoreResult<Option<chrono::DateTime<chrono::Utc>>> {
                sqlx::query_scalar::<$db, Option<chrono::DateTime<chrono::Utc>>>(
                    "SELECT media_ended_at FROM calls WHERE id = $1",
                )
                .bind(call_id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| $crate::store::StoreError::NotFound(format!("call {call_id} not found")))
            }

            async fn enqueue_webhook(
                &self,
                d: &$crate::store::NewDelivery,
                due_at: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query::<$db>(
                    "INSERT INTO webhook_deliveries (campaign_id, call_id, event, url, payload, status, \
                     attempts, next_attempt_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7, $7) \
                     ON CONFLICT (call_id, event) DO UPDATE SET url = excluded.url, \
                     payload = excluded.payload, next_attempt_at = excluded.next_attempt_at, \
                     updated_at = excluded.updated_at \
                     WHERE webhook_deliveries.status = 'pending' AND webhook_deliveries.attempts = 0 \
                     AND webhook_deliveries.next_attempt_at > excluded.next_attempt_at",
                )
                .bind(d.campaign_id)
                .bind(d.call_id)
                .bind(&d.event)
                .bind(&d.url)
                .bind(&d.payload)
                .bind(due_at)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn claim_webhooks(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::WebhookDelivery>> {
                let mut rows = sqlx::query_as::<$db, $crate::store::WebhookDelivery>(concat!(
                    "UPDATE webhook_deliveries SET status = 'sending', attempts = attempts + 1, \
                     locked_until = $2, updated_at = $1 \
                     WHERE id IN (SELECT id FROM webhook_deliveries \
                         WHERE (status = 'pending' AND next_attempt_at <= $1) \
                            OR (status = 'sending' AND locked_until <= $1) \
                         ORDER BY next_attempt_at, id LIMIT $3", $skip_locked, ") \
                     RETURNING ", delivery_columns!()
                ))
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.sort_by_key(|d| d.id);
                Ok(rows)
            }

            async fn finish_webhook_attempt(
                &self,
                id: i64,
                attempt: i32,
                result: &$crate::store::AttemptResult,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                match result {
                    $crate::store::AttemptResult::Delivered { status_code } => {
                        sqlx::query::<$db>(
                            "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $3, \
                             last_status_code = $4, last_error = NULL, next_attempt_at = NULL, \
                             locked_until = NULL, updated_at = $3 \
                             WHERE id = $1 AND attempts = $2 AND status = 'sending'",
                        )
                        .bind(id)
                        .bind(attempt)
                        .bind(now)
                        .bind(*status_code)
                        .execute(&self.pool)
                        .await?;
                    }
                    $crate::store::AttemptResult::Failed { status_code, error, retry_at } => {
                        sqlx::query::<$db>(
                            "UPDATE webhook_deliveries SET \
                             status = CASE WHEN $5 IS NULL THEN 'failed' ELSE 'pending' END, \
                             next_attempt_at = $5, last_status_code = $3, last_error = $4, \
                             locked_until = NULL, updated_at = $6 \
                             WHERE id = $1 AND attempts = $2 AND status = 'sending'",
                        )
                        .bind(id)
                        .bind(attempt)
                        .bind(*status_code)
                        .bind(error)
                        .bind(*retry_at)
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                    }
                }
                Ok(())
            }

            async fn list_webhook_deliveries(
                &self,
                campaign_id: i64,
                limit: i64,
                offset: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::WebhookDelivery>> {
                Ok(sqlx::query_as::<$db, $crate::store::WebhookDelivery>(concat!(
                    "SELECT ", delivery_columns!(), " FROM webhook_deliveries WHERE campaign_id = $1 \
                     ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(campaign_id)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
