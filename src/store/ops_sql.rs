//! The SQL of [`OpsStore`](super::OpsStore), written once for both backends (like `sql.rs`).
//!
//! The reports' aggregates are read from tallies (`tallies.rs`); what is here reads rows (the
//! export's pages, active calls) and keeps the webhook outbox, with what SQLite and PostgreSQL
//! share.

macro_rules! delivery_columns {
    () => {
        "id, campaign_id, call_id, event, url, payload, status, attempts, next_attempt_at, \
         last_status_code, last_error, delivered_at, created_at, updated_at"
    };
}

/// Expands `impl OpsStore for $store` over `$db`; `$skip_locked` is appended to the webhook
/// claim's row selection (` FOR UPDATE SKIP LOCKED` on PostgreSQL, empty on SQLite, where
/// writers are serialised anyway).
macro_rules! impl_ops_store {
    ($store:ty, $db:ty, skip_locked: $skip_locked:literal, { $($extra:tt)* }) => {
        lead_tally_rows!($store, $db);

        #[async_trait::async_trait]
        impl $crate::store::OpsStore for $store {
            $($extra)*

            // The reports' aggregates: from tallies (`tallies.rs`), not from the rows.
            async fn lead_stats(
                &self,
                campaign_id: Option<i64>,
            ) -> $crate::store::StoreResult<$crate::store::LeadStats> {
                let rows = self.lead_tally_rows(campaign_id).await?;
                $crate::store::tallies::lead_stats(&rows)
            }

            async fn lead_stats_by_campaign(
                &self,
            ) -> $crate::store::StoreResult<std::collections::HashMap<i64, $crate::store::LeadStats>> {
                let rows = self.lead_tally_rows(None).await?;
                let mut by_campaign: std::collections::HashMap<i64, Vec<&$crate::store::tallies::LeadTallyRow>> =
                    std::collections::HashMap::new();
                for row in &rows {
                    by_campaign.entry(row.0).or_default().push(row);
                }
                by_campaign
                    .into_iter()
                    .map(|(id, rows)| Ok((id, $crate::store::tallies::lead_stats(rows)?)))
                    .collect()
            }

            async fn call_stats(
                &self,
                campaign_id: Option<i64>,
            ) -> $crate::store::StoreResult<$crate::store::CallStats> {
                let rows = sqlx::query_as::<$db, $crate::store::tallies::CallTallyRow>(
                    "SELECT status, intent, CAST(SUM(total) AS BIGINT), CAST(SUM(answered) AS BIGINT), \
                     CAST(SUM(dialled) AS BIGINT), CAST(SUM(dialled_answered) AS BIGINT), \
                     CAST(SUM(talk_secs) AS BIGINT), CAST(SUM(talked_calls) AS BIGINT), \
                     CAST(SUM(carrier_minutes) AS BIGINT), CAST(SUM(stt_secs) AS BIGINT), \
                     CAST(SUM(llm_prompt_tokens) AS BIGINT), CAST(SUM(llm_completion_tokens) AS BIGINT), \
                     CAST(SUM(tts_characters) AS BIGINT) \
                     FROM (SELECT * FROM call_tallies WHERE ($1 IS NULL OR campaign_id = $1) \
                           UNION ALL \
                           SELECT * FROM call_tally_deltas WHERE ($1 IS NULL OR campaign_id = $1)) t \
                     GROUP BY status, intent ORDER BY status, intent",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                Ok($crate::store::tallies::call_stats(&rows))
            }

            async fn latency_stats(
                &self,
                campaign_id: Option<i64>,
            ) -> $crate::store::StoreResult<Vec<($crate::store::LatencyKind, $crate::store::Percentiles)>> {
                let rows = sqlx::query_as::<$db, $crate::store::tallies::LatencyTallyRow>(
                    "SELECT kind, ms, CAST(SUM(n) AS BIGINT) \
                     FROM (SELECT kind, ms, n FROM latency_tallies WHERE ($1 IS NULL OR campaign_id = $1) \
                           UNION ALL \
                           SELECT kind, ms, n FROM latency_tally_deltas WHERE ($1 IS NULL OR campaign_id = $1)) t \
                     GROUP BY kind, ms HAVING SUM(n) <> 0 ORDER BY kind, ms",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                Ok($crate::store::tallies::latency_stats(&rows))
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
