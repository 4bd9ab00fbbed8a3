//! The dialer's claims: concurrency slots counted from the database, due leads claimed for
//! dialling in one serialised transaction (across every instance), the carrier's acceptance, and
//! a claim given back when the carrier never got the call.
//!
//! The trait, and the SQL both backends share for it (`impl_dialer_store!`, expanded by
//! `impl_store!` into each backend; see `sql.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ClaimOutcome, ClaimRequest, StoreResult, WindowFn};

/// Claims and concurrency slots. A supertrait of [`Store`](super::Store).
#[async_trait]
pub trait DialerStore: Send + Sync {
    /// Calls holding a concurrency slot, in one campaign or in all.
    async fn count_active_calls(&self, campaign_id: Option<i64>) -> StoreResult<i64>;
    /// Claims due leads of one campaign for dialling, within the global and campaign caps
    /// counted from the database (so across every instance), in one transaction that
    /// serialises claims. Each claimed lead becomes `in_progress` with a `queued` call row.
    /// Leads outside their window are moved to their next opening; opted-out ones are closed.
    async fn claim_leads(&self, req: &ClaimRequest, window: &WindowFn)
    -> StoreResult<ClaimOutcome>;
    /// The carrier accepted the call.
    async fn mark_dialing(
        &self,
        call_id: i64,
        carrier_sid: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The carrier never got the call (configuration error, rate limit): cancel the call row and
    /// put the lead back without consuming the attempt.
    async fn release_claim(
        &self,
        call_id: i64,
        reason: &str,
        retry_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}

/// Expands `impl DialerStore for $store` over `$db`.
macro_rules! impl_dialer_store {
    ($store:ty, $db:ty, claim_begin: $claim_begin:literal, claim_lock: $claim_lock:literal, skip_locked: $skip_locked:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::DialerStore for $store {
            async fn count_active_calls(&self, campaign_id: Option<i64>) -> $crate::store::StoreResult<i64> {
                Ok(sqlx::query_scalar::<$db, i64>(concat!(
                    "SELECT COUNT(*) FROM calls WHERE status IN ", active_call_statuses!(),
                    " AND ($1 IS NULL OR campaign_id = $1)"
                ))
                .bind(campaign_id)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn claim_leads(
                &self,
                req: &$crate::store::ClaimRequest,
                window: &$crate::store::WindowFn,
            ) -> $crate::store::StoreResult<$crate::store::ClaimOutcome> {
                let mut out = $crate::store::ClaimOutcome::default();
                let mut tx = self.pool.begin_with($claim_begin).await?;
                if !$claim_lock.is_empty() {
                    sqlx::query::<$db>($claim_lock).execute(&mut *tx).await?;
                }
                // Every statement here is a round trip inside the lock, so they are few: both
                // counts in one, the claimed leads in one UPDATE and their calls in one INSERT
                // (the claim was 2 statements per lead; see docs/BENCHMARKS.md).
                let (active_all, active_campaign): (i64, i64) = sqlx::query_as::<$db, (i64, i64)>(concat!(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN campaign_id = $1 THEN 1 ELSE 0 END), 0) \
                     FROM calls WHERE status IN ", active_call_statuses!()
                ))
                .bind(req.campaign_id)
                .fetch_one(&mut *tx)
                .await?;
                let available = (req.global_cap - active_all)
                    .min(req.campaign_cap - active_campaign)
                    .min(req.limit);
                if available <= 0 {
                    tx.commit().await?;
                    return Ok(out);
                }
                // More candidates than slots: some may be outside their window or opted out.
                let candidates = sqlx::query_as::<$db, $crate::store::Candidate>(concat!(
                    "SELECT ", lead_columns!(), ", EXISTS (SELECT 1 FROM do_not_call d WHERE d.phone = leads.phone) AS on_dnc \
                     FROM leads WHERE campaign_id = $1 AND status IN ('pending', 'retry', 'callback') \
                     AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3",
                    $skip_locked
                ))
                .bind(req.campaign_id)
                .bind(req.now)
                .bind((available * 4 + 16).min(500))
                .fetch_all(&mut *tx)
                .await?;
                // Ids to claim, in due order.
                let mut chosen: Vec<i64> = Vec::with_capacity(available as usize);
                for c in candidates {
                    if chosen.len() as i64 >= available {
                        break;
                    }
                    if c.on_dnc {
                        sqlx::query::<$db>(
                            "UPDATE leads SET status = 'do_not_call', next_attempt_at = NULL, \
                             last_result = 'do_not_call', updated_at = $2 WHERE id = $1",
                        )
                        .bind(c.lead.id)
                        .bind(req.now)
                        .execute(&mut *tx)
                        .await?;
                        out.do_not_call += 1;
                        continue;
                    }
                    if let Err(opens) = window(&c.lead) {
                        sqlx::query::<$db>("UPDATE leads SET next_attempt_at = $2, updated_at = $3 WHERE id = $1")
                            .bind(c.lead.id)
                            .bind(opens)
                            .bind(req.now)
                            .execute(&mut *tx)
                            .await?;
                        out.deferred += 1;
                        continue;
                    }
                    chosen.push(c.lead.id);
                }
                if chosen.is_empty() {
                    tx.commit().await?;
                    return Ok(out);
                }
                let mut update = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE leads SET status = 'in_progress', attempts = attempts + 1, updated_at = ",
                );
                update.push_bind(req.now).push(" WHERE id IN (");
                let mut ids = update.separated(", ");
                for id in &chosen {
                    ids.push_bind(*id);
                }
                update.push(concat!(") RETURNING ", lead_columns!()));
                let mut leads: Vec<$crate::store::Lead> =
                    update.build_query_as().fetch_all(&mut *tx).await?;
                // RETURNING order is unspecified: dial in due order.
                leads.sort_by_key(|l| chosen.iter().position(|id| *id == l.id));
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO calls (campaign_id, lead_id, attempt, direction, phone, status, \
                     qualification, created_at, updated_at) ",
                );
                insert.push_values(&leads, |mut row, lead| {
                    row.push_bind(lead.campaign_id)
                        .push_bind(lead.id)
                        .push_bind(lead.attempts)
                        .push("'outbound'")
                        .push_bind(&lead.phone)
                        .push("'queued'")
                        .push("'{}'")
                        .push_bind(req.now)
                        .push_bind(req.now);
                });
                insert.push(" RETURNING lead_id, id");
                let call_ids: std::collections::HashMap<i64, i64> =
                    insert.build_query_as::<(i64, i64)>().fetch_all(&mut *tx).await?.into_iter().collect();
                for lead in leads {
                    let call_id = *call_ids.get(&lead.id).ok_or_else(|| {
                        $crate::store::StoreError::Corrupt(format!("no call row for claimed lead {}", lead.id))
                    })?;
                    out.claimed.push($crate::store::Claimed { lead, call_id });
                }
                tx.commit().await?;
                Ok(out)
            }

            async fn mark_dialing(
                &self,
                call_id: i64,
                carrier_sid: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>(
                    "UPDATE calls SET status = CASE WHEN status = 'queued' THEN 'dialing' ELSE status END, \
                     carrier_sid = $2, dialed_at = $3, updated_at = $3 WHERE id = $1",
                )
                .bind(call_id)
                .bind(carrier_sid)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn release_claim(
                &self,
                call_id: i64,
                reason: &str,
                retry_at: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin_with($claim_begin).await?;
                let lead_id: Option<Option<i64>> = sqlx::query_scalar::<$db, Option<i64>>(
                    "UPDATE calls SET status = 'canceled', error = $2, ended_at = $3, updated_at = $3 \
                     WHERE id = $1 AND status = 'queued' RETURNING lead_id",
                )
                .bind(call_id)
                .bind(reason)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(Some(lead_id)) = lead_id {
                    // The attempt never reached the carrier: give it back.
                    sqlx::query::<$db>(
                        "UPDATE leads SET attempts = attempts - 1, \
                         status = CASE WHEN callback_at IS NOT NULL THEN 'callback' \
                                       WHEN attempts > 1 THEN 'retry' ELSE 'pending' END, \
                         next_attempt_at = $2, last_result = $3, updated_at = $4 \
                         WHERE id = $1 AND status = 'in_progress'",
                    )
                    .bind(lead_id)
                    .bind(retry_at)
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
