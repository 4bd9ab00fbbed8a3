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
mod models;
mod postgres;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use thiserror::Error;

pub use models::*;
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
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// A round trip to the database, for `/health`.
    async fn ping(&self) -> StoreResult<()>;

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

/// Opens the database named by `url`, creating an SQLite file if missing, and applies the
/// embedded migrations.
pub async fn connect(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(PostgresStore::connect(url).await?))
    } else {
        Ok(std::sync::Arc::new(SqliteStore::connect(url).await?))
    }
}
