//! SQLite backend: the embedded default. One file, WAL mode, a single instance of the service.
//!
//! SQLite serialises writers, so the dialer's claim needs no row locks here; running several
//! instances on one SQLite file is not supported (use PostgreSQL).

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool, Transaction};

use super::{BatchOutcome, LeadImporter, NewLead, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path.db`, `sqlite::memory:`)
    /// and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes (only an OS crash can lose the
            // last transactions), and much faster than FULL.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

impl_store!(SqliteStore, Sqlite, super::Backend::Sqlite,
    claim_begin: "BEGIN IMMEDIATE", claim_lock: "", skip_locked: "",
    {
    async fn begin_import(&self, campaign_id: i64) -> StoreResult<Box<dyn LeadImporter>> {
        let tx = self.pool.begin().await?;
        Ok(Box::new(SqliteImporter { tx, campaign_id }))
    }
});

struct SqliteImporter {
    tx: Transaction<'static, Sqlite>,
    campaign_id: i64,
}

#[async_trait]
impl LeadImporter for SqliteImporter {
    async fn insert_batch(
        &mut self,
        leads: &[NewLead],
        now: DateTime<Utc>,
    ) -> StoreResult<BatchOutcome> {
        if leads.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let mut dnc_query =
            QueryBuilder::<Sqlite>::new("SELECT phone FROM do_not_call WHERE phone IN (");
        let mut sep = dnc_query.separated(", ");
        for lead in leads {
            sep.push_bind(&lead.phone);
        }
        dnc_query.push(")");
        let on_dnc: HashSet<String> = dnc_query
            .build_query_scalar::<String>()
            .fetch_all(&mut *self.tx)
            .await?
            .into_iter()
            .collect();

        let allowed: Vec<&NewLead> = leads
            .iter()
            .filter(|l| !on_dnc.contains(&l.phone))
            .collect();
        let do_not_call = (leads.len() - allowed.len()) as u64;
        if allowed.is_empty() {
            return Ok(BatchOutcome {
                imported: 0,
                duplicates: 0,
                do_not_call,
            });
        }
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO leads (campaign_id, phone, name, timezone, attributes, status, attempts, \
             next_attempt_at, qualification, created_at, updated_at) ",
        );
        insert.push_values(&allowed, |mut row, lead| {
            row.push_bind(self.campaign_id)
                .push_bind(&lead.phone)
                .push_bind(&lead.name)
                .push_bind(&lead.timezone)
                .push_bind(sqlx::types::Json(&lead.attributes))
                .push("'pending'")
                .push("0")
                .push_bind(now)
                .push("'{}'")
                .push_bind(now)
                .push_bind(now);
        });
        insert.push(" ON CONFLICT (campaign_id, phone) DO NOTHING");
        let imported = insert.build().execute(&mut *self.tx).await?.rows_affected();
        Ok(BatchOutcome {
            imported,
            duplicates: allowed.len() as u64 - imported,
            do_not_call,
        })
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.tx.commit().await?;
        Ok(())
    }
}
