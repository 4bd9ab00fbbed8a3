//! The SQL that SQLite and PostgreSQL share, written once.
//!
//! Both backends accept `$N` placeholders, `RETURNING`, `ON CONFLICT` and partial indexes, so
//! most statements are identical; only the column types in the migrations differ. This file
//! holds the column lists the statements share and `impl_store!`, which each backend expands:
//! its `impl Store` (with the methods the backend writes itself, such as the bulk import) and one
//! `impl` per aggregate, whose shared SQL lives beside the aggregate's trait (`campaigns.rs`,
//! `leads.rs`, `dnc.rs`, `dialer.rs`, `calls.rs`, `turns.rs`).
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

macro_rules! call_columns {
    () => {
        "id, campaign_id, lead_id, attempt, direction, phone, status, carrier_sid, stream_sid, \
         answered_by, recording_url, conversation_duration, intent, qualification, summary, error, \
         dialed_at, answered_at, ended_at, created_at, updated_at"
    };
}

/// Statuses that hold a concurrency slot.
macro_rules! active_call_statuses {
    () => {
        "('queued', 'dialing', 'ringing', 'in-progress')"
    };
}

/// Expands `impl Store for $store` over `$db` (the backend's own methods in `$extra`), and the
/// aggregates' supertraits with the SQL both backends share, one macro per aggregate
/// (`campaigns.rs`, `leads.rs`, `dnc.rs`, `dialer.rs`, `calls.rs`, `turns.rs`).
///
/// `$claim_begin` starts the claim transaction (and every other write transaction: on SQLite it
/// is `BEGIN IMMEDIATE`, so a transaction that reads before writing waits for the lock instead of
/// failing with "database is locked") and `$claim_lock` (if not empty) runs first inside it:
/// together they make "count active calls, then claim" atomic across every instance on the
/// database.
/// `$skip_locked` is appended to the candidate query.
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr,
     claim_begin: $claim_begin:literal, claim_lock: $claim_lock:literal, skip_locked: $skip_locked:literal,
     { $($extra:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            $($extra)*
        }

        impl_campaign_store!($store, $db);
        impl_lead_store!($store, $db);
        impl_dnc_store!($store, $db, claim_begin: $claim_begin);
        impl_dialer_store!($store, $db,
            claim_begin: $claim_begin, claim_lock: $claim_lock, skip_locked: $skip_locked);
        impl_call_store!($store, $db);
        impl_turn_store!($store, $db);
    };
}
