//! Calls: read by id, carrier id or lead, carrier webhooks recorded once and applied (a final
//! status never replaced), the conversation's outcome, inbound calls, the media stream's start,
//! and calls whose slot looks stale.
//!
//! The trait, and the SQL both backends share for it (`impl_call_store!`, expanded by
//! `impl_store!` into each backend; see `sql.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Call, CarrierUpdate, StoreResult};

/// Call rows and the carrier events applied to them. A supertrait of [`Store`](super::Store).
#[async_trait]
pub trait CallStore: Send + Sync {
    async fn get_call(&self, id: i64) -> StoreResult<Call>;
    async fn find_call_by_sid(&self, sid: &str) -> StoreResult<Option<Call>>;
    async fn calls_of_lead(&self, lead_id: i64) -> StoreResult<Vec<Call>>;
    /// Records a webhook delivery; `false` if this (sid, event) was seen before.
    async fn record_call_event(
        &self,
        carrier_sid: &str,
        event_type: &str,
        payload: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn update_call_carrier(
        &self,
        call_id: i64,
        update: &CarrierUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<Call>;
    /// Attaches the carrier's id to a call that has none yet.
    async fn set_call_sid(&self, call_id: i64, carrier_sid: &str) -> StoreResult<()>;
    /// The conversation's outcome (from the live call's `record_outcome` tool); never touched
    /// by carrier updates.
    async fn record_call_outcome(
        &self,
        call_id: i64,
        intent: &str,
        qualification: &serde_json::Map<String, serde_json::Value>,
        summary: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn create_inbound_call(
        &self,
        phone: &str,
        campaign_id: i64,
        lead_id: i64,
        carrier_sid: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Call>;
    /// The carrier's media stream began: the call is answered and in progress.
    async fn stream_started(
        &self,
        call_id: i64,
        stream_sid: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Calls still holding a slot whose row has not changed since `updated_before`.
    /// Calls still holding a slot whose media stream (and its post-call work) ended before
    /// `ended_before`: the carrier's final status is late or lost.
    async fn media_ended_active_calls(&self, ended_before: DateTime<Utc>)
    -> StoreResult<Vec<Call>>;
    async fn stale_active_calls(&self, updated_before: DateTime<Utc>) -> StoreResult<Vec<Call>>;
}

/// Expands `impl CallStore for $store` over `$db`.
macro_rules! impl_call_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::CallStore for $store {
            async fn get_call(&self, id: i64) -> $crate::store::StoreResult<$crate::store::Call> {
                sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "SELECT ", call_columns!(), " FROM calls WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| $crate::store::StoreError::NotFound(format!("call {id} not found")))
            }

            async fn find_call_by_sid(&self, sid: &str) -> $crate::store::StoreResult<Option<$crate::store::Call>> {
                Ok(sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "SELECT ", call_columns!(), " FROM calls WHERE carrier_sid = $1"
                ))
                .bind(sid)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn calls_of_lead(&self, lead_id: i64) -> $crate::store::StoreResult<Vec<$crate::store::Call>> {
                Ok(sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "SELECT ", call_columns!(), " FROM calls WHERE lead_id = $1 ORDER BY id"
                ))
                .bind(lead_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn record_call_event(
                &self,
                carrier_sid: &str,
                event_type: &str,
                payload: &serde_json::Value,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query::<$db>(
                    "INSERT INTO call_events (carrier_sid, event_type, payload, received_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (carrier_sid, event_type) DO NOTHING",
                )
                .bind(carrier_sid)
                .bind(event_type)
                .bind(sqlx::types::Json(payload))
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_call_carrier(
                &self,
                call_id: i64,
                u: &$crate::store::CarrierUpdate,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Call> {
                // A final status is never replaced (webhooks arrive out of order).
                sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "UPDATE calls SET \
                     status = CASE WHEN status IN ('completed', 'failed', 'busy', 'no-answer', 'canceled') \
                              THEN status ELSE COALESCE($2, status) END, \
                     answered_by = COALESCE($3, answered_by), recording_url = COALESCE($4, recording_url), \
                     conversation_duration = COALESCE($5, conversation_duration), \
                     answered_at = COALESCE(answered_at, $6), ended_at = COALESCE(ended_at, $7), \
                     error = COALESCE($8, error), updated_at = $9 WHERE id = $1 RETURNING ",
                    call_columns!()
                ))
                .bind(call_id)
                .bind(u.status.map(|s| s.as_str()))
                .bind(&u.answered_by)
                .bind(&u.recording_url)
                .bind(u.conversation_duration)
                .bind(u.answered_at)
                .bind(u.ended_at)
                .bind(&u.error)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| $crate::store::StoreError::NotFound(format!("call {call_id} not found")))
            }

            async fn set_call_sid(&self, call_id: i64, carrier_sid: &str) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>("UPDATE calls SET carrier_sid = $2 WHERE id = $1 AND carrier_sid IS NULL")
                    .bind(call_id)
                    .bind(carrier_sid)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn record_call_outcome(
                &self,
                call_id: i64,
                intent: &str,
                qualification: &serde_json::Map<String, serde_json::Value>,
                summary: Option<&str>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                let done = sqlx::query::<$db>(
                    "UPDATE calls SET intent = $2, qualification = $3, summary = COALESCE($4, summary), \
                     updated_at = $5 WHERE id = $1",
                )
                .bind(call_id)
                .bind(intent)
                .bind(sqlx::types::Json(qualification))
                .bind(summary)
                .bind(now)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound(format!("call {call_id} not found")));
                }
                Ok(())
            }

            async fn create_inbound_call(
                &self,
                phone: &str,
                campaign_id: i64,
                lead_id: i64,
                carrier_sid: Option<&str>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Call> {
                Ok(sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "INSERT INTO calls (campaign_id, lead_id, attempt, direction, phone, status, carrier_sid, \
                     qualification, answered_at, created_at, updated_at) \
                     VALUES ($1, $2, 1, 'inbound', $3, 'in-progress', $4, '{}', $5, $5, $5) RETURNING ",
                    call_columns!()
                ))
                .bind(campaign_id)
                .bind(lead_id)
                .bind(phone)
                .bind(carrier_sid)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn stream_started(
                &self,
                call_id: i64,
                stream_sid: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>(
                    "UPDATE calls SET stream_sid = $2, answered_at = COALESCE(answered_at, $3), \
                     status = CASE WHEN status IN ('queued', 'dialing', 'ringing') THEN 'in-progress' ELSE status END, \
                     updated_at = $3 WHERE id = $1",
                )
                .bind(call_id)
                .bind(stream_sid)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn media_ended_active_calls(
                &self,
                ended_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Call>> {
                Ok(sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "SELECT ", call_columns!(), " FROM calls WHERE status IN ", active_call_statuses!(),
                    " AND media_ended_at < $1 ORDER BY id LIMIT 500"
                ))
                .bind(ended_before)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn stale_active_calls(
                &self,
                updated_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Call>> {
                Ok(sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "SELECT ", call_columns!(), " FROM calls WHERE status IN ", active_call_statuses!(),
                    " AND updated_at < $1 ORDER BY id LIMIT 500"
                ))
                .bind(updated_before)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
