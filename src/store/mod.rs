//! Persistence: one [`Store`] trait, two backends chosen once at start from the `DATABASE_URL`
//! scheme — SQLite (embedded default, a single instance) and PostgreSQL (production, several
//! instances). Each backend has its own embedded migrations (`migrations/sqlite`,
//! `migrations/postgres`), applied by [`connect`].
//!
//! The SQL both backends share lives once, in `sql.rs`; what differs (pool set-up, bulk insert,
//! the dialer's claim) lives in each backend's module. One contract test suite
//! (`tests/api/`) runs unchanged against both.
//!
//! This module must not know about HTTP or the call pipeline.

// `sql` defines the macros the backends expand, so it comes first.
#[macro_use]
mod sql;
#[macro_use]
pub mod tallies;
#[macro_use]
mod ops_sql;
pub mod bucket;
mod models;
mod ops;
mod postgres;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use thiserror::Error;

pub use models::*;
pub use ops::*;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    /// The row exists but is in a state that forbids the change (e.g. delete a running campaign).
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// The database cannot be reached or is busy (no connection within the wait, the
    /// connection lost, SQLite's write lock held past the wait, PostgreSQL shutting down or
    /// out of connections): the request may succeed later, so the API answers 503, not 500.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6) and their extended codes.
                // PostgreSQL: class 08 (connection exception), 53300 too_many_connections,
                // 57P01–57P03 (shutdown, crash, cannot connect now).
                matches!(code.as_ref(), "5" | "6" | "517" | "261" | "262" | "53300")
                    || code.starts_with("08")
                    || code.starts_with("57P")
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The lead filter of `GET /campaigns/{id}/leads`.
#[derive(Debug, Clone, Default)]
pub struct LeadQuery {
    pub status: Option<LeadStatus>,
    pub limit: i64,
    pub offset: i64,
}

/// Everything the service persists. Implementations are cheap to clone handles over a pool.
/// Reports and the webhook outbox are in the [`OpsStore`] supertrait.
#[async_trait]
pub trait Store: OpsStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// A round trip to the database, for `/health`.
    async fn ping(&self) -> StoreResult<()>;

    /// Versions of the embedded migrations not (successfully) applied to this database, for
    /// `/readyz`: an instance must not take traffic on a schema older than its code.
    async fn missing_migrations(&self) -> StoreResult<Vec<i64>>;

    /// The dial-rate buckets every instance shares, when this backend can hold them
    /// (PostgreSQL). SQLite serves one instance: the dialer keeps its bucket in memory.
    fn rate_bucket(&self) -> Option<&dyn bucket::RateBucket> {
        None
    }

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

    /// Starts an all-or-nothing lead import: nothing is visible until `commit`; dropping the
    /// importer rolls everything back.
    async fn begin_import(&self, campaign_id: i64) -> StoreResult<Box<dyn LeadImporter>>;
    async fn list_leads(&self, campaign_id: i64, query: &LeadQuery) -> StoreResult<LeadPage>;
    async fn get_lead(&self, id: i64) -> StoreResult<Lead>;
    /// Number of leads per status.
    async fn lead_counts(&self, campaign_id: i64) -> StoreResult<Vec<(LeadStatus, i64)>>;

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

    // --- dialer ---
    async fn running_campaigns(&self) -> StoreResult<Vec<Campaign>>;
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
    async fn update_lead(
        &self,
        lead_id: i64,
        update: &LeadUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
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
    /// The time the lead asked to be called back (`schedule_callback`).
    async fn set_lead_callback(
        &self,
        lead_id: i64,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Writes (or rewrites, e.g. when an agent turn is cut by a barge-in) one transcript turn.
    async fn add_turn(&self, turn: &TranscriptTurn, now: DateTime<Utc>) -> StoreResult<()>;
    async fn turns_of_call(&self, call_id: i64) -> StoreResult<Vec<TranscriptTurn>>;
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
    /// Marks running campaigns whose leads are all final as completed; returns their ids.
    async fn complete_finished_campaigns(&self, now: DateTime<Utc>) -> StoreResult<Vec<i64>>;
    /// Running campaigns, and how many of them have a lead due at `now` (the dialer's gauges).
    async fn campaign_gauges(&self, now: DateTime<Utc>) -> StoreResult<(i64, i64)>;
    /// Calls still holding a slot whose media stream (and its post-call work) ended before
    /// `ended_before`: the carrier's final status is late or lost.
    async fn media_ended_active_calls(&self, ended_before: DateTime<Utc>)
    -> StoreResult<Vec<Call>>;
    /// Calls still holding a slot whose row has not changed since `updated_before`.
    async fn stale_active_calls(&self, updated_before: DateTime<Utc>) -> StoreResult<Vec<Call>>;
}

/// One import in flight (a database transaction).
#[async_trait]
pub trait LeadImporter: Send {
    /// Inserts a batch: numbers on the do-not-call list and numbers already in the campaign (or
    /// earlier in this import) are skipped and counted.
    async fn insert_batch(
        &mut self,
        leads: &[NewLead],
        now: DateTime<Utc>,
    ) -> StoreResult<BatchOutcome>;
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// The versions of `migrator` absent from the database's `_sqlx_migrations` (or failed there).
async fn missing_migrations<'c, E>(
    migrator: &sqlx::migrate::Migrator,
    conn: E,
) -> StoreResult<Vec<i64>>
where
    E: sqlx::Executor<'c>,
    i64: sqlx::Type<E::Database> + for<'r> sqlx::Decode<'r, E::Database>,
    for<'q> <E::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<E::Database>,
    (i64,): for<'r> sqlx::FromRow<'r, <E::Database as sqlx::Database>::Row>,
{
    let applied: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(conn)
        .await?;
    let applied: std::collections::HashSet<i64> = applied.into_iter().map(|(v,)| v).collect();
    Ok(migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| m.version)
        .collect())
}

/// Opens the database named by `url`, creating an SQLite file if missing, and applies the
/// embedded migrations; waits for the database as `DB_ACQUIRE_TIMEOUT_MS`'s default does.
pub async fn connect(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    connect_with(url, std::time::Duration::from_secs(3)).await
}

/// [`connect`], waiting at most `wait` for a pooled connection (and, on SQLite, for the write
/// lock) in every later operation: past it the operation fails, and the API answers 503.
pub async fn connect_with(
    url: &str,
    wait: std::time::Duration,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(
            PostgresStore::connect(url, wait).await?,
        ))
    } else {
        Ok(std::sync::Arc::new(SqliteStore::connect(url, wait).await?))
    }
}
