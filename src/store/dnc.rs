//! The do-not-call list: numbers added (closing their waiting leads at once), removed, listed,
//! looked up.
//!
//! The trait, and the SQL both backends share for it (`impl_dnc_store!`, expanded by
//! `impl_store!` into each backend; see `sql.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{DncEntry, StoreResult};

/// The do-not-call list. A supertrait of [`Store`](super::Store).
#[async_trait]
pub trait DncStore: Send + Sync {
    async fn add_dnc(
        &self,
        phone: &str,
        reason: Option<&str>,
        source: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<DncEntry>;
    /// `NotFound` when the number was not on the list.
    async fn remove_dnc(&self, phone: &str) -> StoreResult<()>;
    async fn list_dnc(&self, limit: i64, offset: i64) -> StoreResult<Vec<DncEntry>>;
    async fn is_dnc(&self, phone: &str) -> StoreResult<bool>;
}

/// Expands `impl DncStore for $store` over `$db`.
macro_rules! impl_dnc_store {
    ($store:ty, $db:ty, claim_begin: $claim_begin:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::DncStore for $store {
            async fn add_dnc(
                &self,
                phone: &str,
                reason: Option<&str>,
                source: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::DncEntry> {
                let mut tx = self.pool.begin_with($claim_begin).await?;
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
        }
    };
}
