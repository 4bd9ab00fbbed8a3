//! Leads: listed and read (their per-status counts from the tallies), updated after each call,
//! given a callback time, and found or created for inbound callers. The bulk import is each
//! backend's own (`Store::begin_import`).
//!
//! The trait, and the SQL both backends share for it (`impl_lead_store!`, expanded by
//! `impl_store!` into each backend; see `sql.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Lead, LeadPage, LeadQuery, LeadStatus, LeadUpdate, StoreResult};

/// Lead rows. A supertrait of [`Store`](super::Store).
#[async_trait]
pub trait LeadStore: Send + Sync {
    async fn list_leads(&self, campaign_id: i64, query: &LeadQuery) -> StoreResult<LeadPage>;
    async fn get_lead(&self, id: i64) -> StoreResult<Lead>;
    /// Number of leads per status.
    async fn lead_counts(&self, campaign_id: i64) -> StoreResult<Vec<(LeadStatus, i64)>>;
    async fn update_lead(
        &self,
        lead_id: i64,
        update: &LeadUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The time the lead asked to be called back (`schedule_callback`).
    async fn set_lead_callback(
        &self,
        lead_id: i64,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The most recently touched lead with this number (inbound calls).
    async fn find_lead_by_phone(&self, phone: &str) -> StoreResult<Option<Lead>>;
    /// The lead for an inbound caller with no lead yet: created in `campaign_id`, or the one
    /// already there if another stream created it first. One statement on a pooled connection
    /// (the bulk import's own connection is closed after each use, which would cost the pool a
    /// fresh connection and re-prepared statements per inbound call).
    async fn add_inbound_lead(
        &self,
        campaign_id: i64,
        phone: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Lead>;
}

/// Expands `impl LeadStore for $store` over `$db`.
macro_rules! impl_lead_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::LeadStore for $store {
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
                // From the tallies (`tallies.rs`): constant cost whatever the campaign's size.
                let rows: Vec<(String, i64)> = sqlx::query_as::<$db, (String, i64)>(
                    "SELECT status, CAST(SUM(n) AS BIGINT) FROM (\
                     SELECT status, n FROM lead_tallies WHERE campaign_id = $1 UNION ALL \
                     SELECT status, n FROM lead_tally_deltas WHERE campaign_id = $1) t \
                     GROUP BY status HAVING SUM(n) <> 0 ORDER BY status",
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

            async fn update_lead(
                &self,
                lead_id: i64,
                u: &$crate::store::LeadUpdate,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>(
                    "UPDATE leads SET status = $2, next_attempt_at = $3, last_result = $4, \
                     outcome = COALESCE($5, outcome), callback_at = $6, \
                     attempts = attempts - $7, updated_at = $8 WHERE id = $1",
                )
                .bind(lead_id)
                .bind(u.status.as_str())
                .bind(u.next_attempt_at)
                .bind(&u.last_result)
                .bind(&u.outcome)
                .bind(u.callback_at)
                .bind(if u.refund_attempt { 1i32 } else { 0i32 })
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn set_lead_callback(
                &self,
                lead_id: i64,
                at: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>("UPDATE leads SET callback_at = $2, updated_at = $3 WHERE id = $1")
                    .bind(lead_id)
                    .bind(at)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn find_lead_by_phone(&self, phone: &str) -> $crate::store::StoreResult<Option<$crate::store::Lead>> {
                Ok(sqlx::query_as::<$db, $crate::store::Lead>(concat!(
                    "SELECT ", lead_columns!(), " FROM leads WHERE phone = $1 ORDER BY updated_at DESC, id DESC LIMIT 1"
                ))
                .bind(phone)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn add_inbound_lead(
                &self,
                campaign_id: i64,
                phone: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Lead> {
                // The no-op update makes a conflict return the existing row.
                Ok(sqlx::query_as::<$db, $crate::store::Lead>(concat!(
                    "INSERT INTO leads (campaign_id, phone, attributes, status, attempts, \
                     next_attempt_at, qualification, created_at, updated_at) \
                     VALUES ($1, $2, '{}', 'pending', 0, $3, '{}', $3, $3) \
                     ON CONFLICT (phone, campaign_id) DO UPDATE SET updated_at = leads.updated_at \
                     RETURNING ", lead_columns!()
                ))
                .bind(campaign_id)
                .bind(phone)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }
        }
    };
}
