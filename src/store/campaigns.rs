//! Campaigns: created, read, edited, deleted, moved between statuses by one conditional UPDATE,
//! and the dialer's two campaign queries (the running ones, the finished ones completed).
//!
//! The trait, and the SQL both backends share for it (`impl_campaign_store!`, expanded by
//! `impl_store!` into each backend; see `sql.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Campaign, CampaignSpec, CampaignStatus, StoreResult};

/// Campaign rows. A supertrait of [`Store`](super::Store).
#[async_trait]
pub trait CampaignStore: Send + Sync {
    async fn create_campaign(
        &self,
        spec: &CampaignSpec,
        now: DateTime<Utc>,
    ) -> StoreResult<Campaign>;
    async fn get_campaign(&self, id: i64) -> StoreResult<Campaign>;
    async fn list_campaigns(&self) -> StoreResult<Vec<Campaign>>;
    /// Replaces the configurable fields; status is untouched.
    async fn update_campaign(
        &self,
        id: i64,
        spec: &CampaignSpec,
        now: DateTime<Utc>,
    ) -> StoreResult<Campaign>;
    /// Deletes a campaign with its leads and calls; refused (`Conflict`) while it is running.
    async fn delete_campaign(&self, id: i64) -> StoreResult<()>;
    /// Moves a campaign to `to` only if its status is one of `from` — one conditional UPDATE, so
    /// two concurrent requests cannot both win. `Conflict` names the current status otherwise.
    async fn transition_campaign(
        &self,
        id: i64,
        from: &[CampaignStatus],
        to: CampaignStatus,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Campaign>;
    async fn running_campaigns(&self) -> StoreResult<Vec<Campaign>>;
    /// Marks running campaigns whose leads are all final as completed; returns their ids.
    async fn complete_finished_campaigns(&self, now: DateTime<Utc>) -> StoreResult<Vec<i64>>;
    /// Running campaigns, and how many of them have a lead due at `now` (the dialer's gauges).
    async fn campaign_gauges(&self, now: DateTime<Utc>) -> StoreResult<(i64, i64)>;
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

/// Expands `impl CampaignStore for $store` over `$db`.
macro_rules! impl_campaign_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::CampaignStore for $store {
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

            async fn running_campaigns(&self) -> $crate::store::StoreResult<Vec<$crate::store::Campaign>> {
                Ok(sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "SELECT ", campaign_columns!(), " FROM campaigns WHERE status = 'running' ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn campaign_gauges(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<(i64, i64)> {
                // EXISTS is one probe of the `leads_due` index per running campaign.
                Ok(sqlx::query_as::<$db, (i64, i64)>(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM leads \
                     WHERE leads.campaign_id = campaigns.id \
                     AND leads.status IN ('pending', 'retry', 'callback') \
                     AND leads.next_attempt_at <= $1) THEN 1 ELSE 0 END), 0) \
                     FROM campaigns WHERE status = 'running'",
                )
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn complete_finished_campaigns(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<i64>> {
                Ok(sqlx::query_scalar::<$db, i64>(
                    "UPDATE campaigns SET status = 'completed', status_reason = NULL, updated_at = $1 \
                     WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM leads \
                     WHERE leads.campaign_id = campaigns.id \
                     AND leads.status NOT IN ('completed', 'failed', 'do_not_call')) RETURNING id",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
