//! Persistence: one [`Store`] trait, two backends chosen once at start from the `DATABASE_URL`
//! scheme — SQLite (embedded default, a single instance) and PostgreSQL (production, several
//! instances). Each backend has its own embedded migrations (`migrations/sqlite`,
//! `migrations/postgres`), applied by [`connect`].
//!
//! The SQL both backends share lives once, beside the trait of its aggregate (`campaigns.rs`,
//! `leads.rs`, `dnc.rs`, `dialer.rs`, `calls.rs`, `turns.rs`; `sql.rs` ties them together); what
//! differs (pool set-up, the bulk import, how the claim locks) lives in each backend's module.
//! One contract test suite (`tests/api/`) runs unchanged against both.
//!
//! This module must not know about HTTP or the call pipeline.

// `sql` and the aggregates define the macros the backends expand, so they come first.
#[macro_use]
mod sql;
#[macro_use]
mod calls;
#[macro_use]
mod campaigns;
#[macro_use]
mod dialer;
#[macro_use]
mod dnc;
#[macro_use]
mod leads;
#[macro_use]
mod turns;
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

pub use calls::CallStore;
pub use campaigns::CampaignStore;
pub use dialer::DialerStore;
pub use dnc::DncStore;
pub use leads::LeadStore;
pub use models::*;
pub use ops::*;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use turns::TurnStore;

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
///
/// The methods live in one supertrait per aggregate ([`CampaignStore`], [`LeadStore`],
/// [`DncStore`], [`DialerStore`], [`CallStore`], [`TurnStore`]; reports and the webhook outbox in
/// [`OpsStore`]); this trait holds what each backend writes itself.
#[async_trait]
pub trait Store:
    CampaignStore
    + LeadStore
    + DncStore
    + DialerStore
    + CallStore
    + TurnStore
    + OpsStore
    + Send
    + Sync
    + 'static
{
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

    /// Starts an all-or-nothing lead import: nothing is visible until `commit`; dropping the
    /// importer rolls everything back.
    async fn begin_import(&self, campaign_id: i64) -> StoreResult<Box<dyn LeadImporter>>;
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
