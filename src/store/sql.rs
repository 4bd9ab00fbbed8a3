//! The SQL that SQLite and PostgreSQL share, written once.
//!
//! Both backends accept `$N` placeholders, `RETURNING`, `ON CONFLICT` and partial indexes, so
//! most statements are identical; only the column types in the migrations differ. The
//! [`impl_store!`] macro expands the shared methods into each backend's `impl Store`, and the
//! backend passes in the methods it writes itself (bulk import, and later the dialer's claim).
//!
//! Times are always bound from Rust (never `CURRENT_TIMESTAMP`), so both backends store the same
//! UTC representation and tests can inject the clock.

macro_rules! campaign_columns {
    () => {
        "id, name, instructions, greeting, language, voice_id, window_start, window_end, \
         weekdays, holidays, timezone, max_attempts, retry_delays, max_concurrent_calls, \
         qualification_fields, webhook_url, status, status_reason, created_at, updated_at"
    };
}

macro_rules! lead_columns {
    () => {
        "id, campaign_id, phone, name, timezone, attributes, status, attempts, next_attempt_at, \
         last_result, outcome, qualification, summary, callback_at, created_at, updated_at"
    };
}

/// Binds the fourteen configurable columns of a campaign in the order of `campaign_columns!`
/// (name … webhook_url).
macro_rules! bind_campaign_spec {
    ($query:expr, $spec:expr) => {{
        let s = $spec;
        $query
            .bind(&s.name)
            .bind(&s.instructions)
            .bind(&s.greeting)
            .bind(&s.language)
            .bind(&s.voice_id)
            .bind(&s.calling_window.start)
            .bind(&s.calling_window.end)
            .bind(sqlx::types::Json(&s.calling_window.weekdays))
            .bind(sqlx::types::Json(&s.calling_window.holidays))
            .bind(&s.timezone)
            .bind(s.max_attempts)
            .bind(sqlx::types::Json(&s.retry_delays))
            .bind(s.max_concurrent_calls)
            .bind(sqlx::types::Json(&s.qualification_fields))
            .bind(&s.webhook_url)
    }};
}

/// Expands `impl Store for $store` over `$db` with every shared method, plus `$extra` methods.
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr, { $($extra:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_campaign(
                &self,
                spec: &$crate::store::CampaignSpec,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Campaign> {
                let q = sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "INSERT INTO campaigns (name, instructions, greeting, language, voice_id, \
                     window_start, window_end, weekdays, holidays, timezone, max_attempts, \
                     retry_delays, max_concurrent_calls, qualification_fields, webhook_url, \
                     status, status_reason, created_at, updated_at) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,'draft',NULL,$16,$16) \
                     RETURNING ",
                    campaign_columns!()
                ));
                Ok(bind_campaign_spec!(q, spec).bind(now).fetch_one(&self.pool).await?)
            }

            async fn get_campaign(&self, id: i64) -> $crate::store::StoreResult<$crate::store::Campaign> {
                sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "SELECT ", campaign_columns!(), " FROM campaigns WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| $crate::store::StoreError::NotFound(format!("campaign {id} not found")))
            }

            async fn list_campaigns(&self) -> $crate::store::StoreResult<Vec<$crate::store::Campaign>> {
                Ok(sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "SELECT ", campaign_columns!(), " FROM campaigns ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn update_campaign(
                &self,
                id: i64,
                spec: &$crate::store::CampaignSpec,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Campaign> {
                let q = sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "UPDATE campaigns SET name = $1, instructions = $2, greeting = $3, \
                     language = $4, voice_id = $5, window_start = $6, window_end = $7, \
                     weekdays = $8, holidays = $9, timezone = $10, max_attempts = $11, \
                     retry_delays = $12, max_concurrent_calls = $13, qualification_fields = $14, \
                     webhook_url = $15, updated_at = $16 WHERE id = $17 RETURNING ",
                    campaign_columns!()
                ));
                bind_campaign_spec!(q, spec)
                    .bind(now)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| $crate::store::StoreError::NotFound(format!("campaign {id} not found")))
            }

            async fn delete_campaign(&self, id: i64) -> $crate::store::StoreResult<()> {
                let done = sqlx::query::<$db>(
                    "DELETE FROM campaigns WHERE id = $1 AND status <> 'running'",
                )
                .bind(id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                // Nothing deleted: either there is no such campaign or it is running.
                self.get_campaign(id).await?;
                Err($crate::store::StoreError::Conflict(format!(
                    "campaign {id} is running: pause it before deleting"
                )))
            }

            async fn transition_campaign(
                &self,
                id: i64,
                from: &[$crate::store::CampaignStatus],
                to: $crate::store::CampaignStatus,
                reason: Option<&str>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Campaign> {
                // Four slots cover every status; unused ones repeat the first.
                let slot = |i: usize| from.get(i).or(from.first()).map(|s| s.as_str()).unwrap_or("");
                let updated = sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "UPDATE campaigns SET status = $1, status_reason = $2, updated_at = $3 \
                     WHERE id = $4 AND status IN ($5, $6, $7, $8) RETURNING ",
                    campaign_columns!()
                ))
                .bind(to.as_str())
                .bind(reason)
                .bind(now)
                .bind(id)
                .bind(slot(0))
                .bind(slot(1))
                .bind(slot(2))
                .bind(slot(3))
                .fetch_optional(&self.pool)
                .await?;
                match updated {
                    Some(c) => Ok(c),
                    None => {
                        let current = self.get_campaign(id).await?;
                        Err($crate::store::StoreError::Conflict(format!(
                            "campaign {id} is {}: cannot make it {}",
                            current.status, to
                        )))
                    }
                }
            }

            async fn list_leads(
                &self,
                campaign_id: i64,
                query: &$crate::store::LeadQuery,
            ) -> $crate::store::StoreResult<$crate::store::LeadPage> {
                let status = query.status.map(|s| s.as_str());
                let leads = sqlx::query_as::<$db, $crate::store::Lead>(concat!(
                    "SELECT ", lead_columns!(), " FROM leads \
                     WHERE campaign_id = $1 AND ($2 IS NULL OR status = $2) \
                     ORDER BY id LIMIT $3 OFFSET $4"
                ))
                .bind(campaign_id)
                .bind(status)
                .bind(query.limit)
                .bind(query.offset)
                .fetch_all(&self.pool)
                .await?;
                let total: i64 = sqlx::query_scalar::<$db, i64>(
                    "SELECT COUNT(*) FROM leads WHERE campaign_id = $1 AND ($2 IS NULL OR status = $2)",
                )
                .bind(campaign_id)
                .bind(status)
                .fetch_one(&self.pool)
                .await?;
                Ok($crate::store::LeadPage { leads, total, limit: query.limit, offset: query.offset })
            }

            async fn get_lead(&self, id: i64) -> $crate::store::StoreResult<$crate::store::Lead> {
                sqlx::query_as::<$db, $crate::store::Lead>(concat!(
                    "SELECT ", lead_columns!(), " FROM leads WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| $crate::store::StoreError::NotFound(format!("lead {id} not found")))
            }

            async fn lead_counts(
                &self,
                campaign_id: i64,
            ) -> $crate::store::StoreResult<Vec<($crate::store::LeadStatus, i64)>> {
                let rows: Vec<(String, i64)> = sqlx::query_as::<$db, (String, i64)>(
                    "SELECT status, COUNT(*) FROM leads WHERE campaign_id = $1 GROUP BY status ORDER BY status",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(s, n)| {
                        s.parse()
                            .map(|s| (s, n))
                            .map_err($crate::store::StoreError::Corrupt)
                    })
                    .collect()
            }

            async fn add_dnc(
                &self,
                phone: &str,
                reason: Option<&str>,
                source: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::DncEntry> {
                let mut tx = self.pool.begin().await?;
                let entry = sqlx::query_as::<$db, $crate::store::DncEntry>(
                    "INSERT INTO do_not_call (phone, reason, source, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (phone) DO UPDATE SET reason = COALESCE(excluded.reason, do_not_call.reason) \
                     RETURNING phone, reason, source, created_at",
                )
                .bind(phone)
                .bind(reason)
                .bind(source)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                // Leads still waiting for a call become final at once, so the list shows why.
                sqlx::query::<$db>(
                    "UPDATE leads SET status = 'do_not_call', next_attempt_at = NULL, \
                     last_result = 'do_not_call', updated_at = $2 \
                     WHERE phone = $1 AND status IN ('pending', 'retry', 'callback')",
                )
                .bind(phone)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn remove_dnc(&self, phone: &str) -> $crate::store::StoreResult<()> {
                let done = sqlx::query::<$db>("DELETE FROM do_not_call WHERE phone = $1")
                    .bind(phone)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound(format!(
                        "{} is not on the do-not-call list",
                        $crate::phone::mask(phone)
                    )));
                }
                Ok(())
            }

            async fn list_dnc(
                &self,
                limit: i64,
                offset: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::DncEntry>> {
                Ok(sqlx::query_as::<$db, $crate::store::DncEntry>(
                    "SELECT phone, reason, source, created_at FROM do_not_call \
                     ORDER BY created_at, phone LIMIT $1 OFFSET $2",
                )
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn is_dnc(&self, phone: &str) -> $crate::store::StoreResult<bool> {
                let n: i64 = sqlx::query_scalar::<$db, i64>(
                    "SELECT COUNT(*) FROM do_not_call WHERE phone = $1",
                )
                .bind(phone)
                .fetch_one(&self.pool)
                .await?;
                Ok(n > 0)
            }

            $($extra)*
        }
    };
}
