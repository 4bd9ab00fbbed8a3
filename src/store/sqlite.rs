//! SQLite backend: the embedded default. One file, WAL mode, a single instance of the service.
//!
//! SQLite serialises writers, so the dialer's claim needs no row locks here; running several
//! instances on one SQLite file is not supported (use PostgreSQL).

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Arguments, AssertSqlSafe, QueryBuilder, Sqlite, SqlitePool};

use super::{BatchOutcome, LeadImporter, NewLead, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path.db`, `sqlite::memory:`)
    /// and applies migrations.
    pub async fn connect(url: &str, wait: Duration) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes (only an OS crash can lose the
            // last transactions), and much faster than FULL.
            .synchronous(SqliteSynchronous::Normal)
            // Writers queue for SQLite's one write lock this long, then the operation fails
            // (503 at the API) rather than holding its request.
            .busy_timeout(wait)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(wait)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

impl_store!(SqliteStore, Sqlite, super::Backend::Sqlite,
    claim_begin: "BEGIN IMMEDIATE", claim_lock: "", skip_locked: "",
    {
    async fn missing_migrations(&self) -> StoreResult<Vec<i64>> {
        super::missing_migrations(&MIGRATOR, &self.pool).await
    }

    async fn begin_import(&self, campaign_id: i64) -> StoreResult<Box<dyn LeadImporter>> {
        let mut conn = self.pool.acquire().await?;
        // The connection ends with the import, however it ends: its setting below goes with it,
        // and an import dropped half-way is rolled back by SQLite as the connection closes.
        conn.close_on_drop();
        // Each 1,000-row INSERT keeps a statement journal (to undo itself alone on error); in
        // memory it costs no file writes (measured ~5% of the import). The setting cannot change
        // inside a transaction, hence a connection of its own. IMMEDIATE takes the write lock
        // now: a deferred transaction that read first could not upgrade to writing if another
        // writer committed in between (SQLITE_BUSY_SNAPSHOT). A 64 MiB page cache (default
        // 2 MiB) keeps the unique index's pages in memory: numbers arrive in random order, so
        // each insert lands on a random page (measured at 1M leads: +25% rows/s).
        // The pause row makes the leads' insert trigger skip this transaction's rows: each
        // batch adds its count to the tallies itself (`lead_tally_pause` in the migrations).
        sqlx::raw_sql(
            "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536; BEGIN IMMEDIATE; \
             INSERT INTO lead_tally_pause (paused) VALUES (1)",
        )
        .execute(&mut *conn)
        .await?;
        // Writers are serialised and this import now holds the lock, so the list cannot change
        // until it commits: when it is empty, no batch needs to look numbers up.
        let dnc_empty: bool = sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM do_not_call)")
            .fetch_one(&mut *conn)
            .await?;
        Ok(Box::new(SqliteImporter {
            conn,
            campaign_id,
            check_dnc: !dnc_empty,
            insert_sql: None,
        }))
    }
});

impl_ops_store!(SqliteStore, Sqlite, skip_locked: "", {
    async fn fold_tallies(&self) -> StoreResult<()> {
        Ok(())
    }
});

struct SqliteImporter {
    /// Inside `BEGIN IMMEDIATE`; closed when dropped (see `begin_import`).
    conn: PoolConnection<Sqlite>,
    campaign_id: i64,
    check_dnc: bool,
    /// The INSERT for a given number of rows, kept for the full batches that repeat it (so the
    /// connection's statement cache finds it prepared).
    insert_sql: Option<(usize, String)>,
}

impl SqliteImporter {
    /// `INSERT … VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, '{}', ?, ?), …` for `rows` rows.
    /// Placeholders are anonymous: SQLite looks a named one (`$3`) up by a linear search, which
    /// made a 1,000-row statement quadratic (measured: 67% of the import in
    /// `sqlite3_bind_parameter_name`).
    fn insert_sql(&mut self, rows: usize) -> String {
        if let Some((n, sql)) = &self.insert_sql
            && *n == rows
        {
            return sql.clone();
        }
        const ROW: &str = "(?,?,?,?,?,'pending',0,?,'{}',?,?)";
        let mut sql = String::with_capacity(160 + rows * (ROW.len() + 1));
        sql.push_str(
            "INSERT INTO leads (campaign_id, phone, name, timezone, attributes, status, attempts, \
             next_attempt_at, qualification, created_at, updated_at) VALUES ",
        );
        for row in 0..rows {
            if row > 0 {
                sql.push(',');
            }
            sql.push_str(ROW);
        }
        sql.push_str(" ON CONFLICT (phone, campaign_id) DO NOTHING");
        self.insert_sql = Some((rows, sql.clone()));
        sql
    }

    async fn on_dnc(&mut self, leads: &[NewLead]) -> StoreResult<HashSet<String>> {
        if !self.check_dnc {
            return Ok(HashSet::new());
        }
        let mut query =
            QueryBuilder::<Sqlite>::new("SELECT phone FROM do_not_call WHERE phone IN (");
        let mut sep = query.separated(", ");
        for lead in leads {
            sep.push_bind(&lead.phone);
        }
        query.push(")");
        Ok(query
            .build_query_scalar::<String>()
            .fetch_all(&mut *self.conn)
            .await?
            .into_iter()
            .collect())
    }
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
        let on_dnc = self.on_dnc(leads).await?;
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
        let sql = self.insert_sql(allowed.len());
        let mut args = SqliteArguments::default();
        let encode = |e: sqlx::error::BoxDynError| StoreError::Database(sqlx::Error::Encode(e));
        // The time as sqlx writes a `DateTime<Utc>`, formatted once and shared by every row.
        let now: Arc<str> = now.to_rfc3339_opts(SecondsFormat::AutoSi, false).into();
        for lead in &allowed {
            args.add(self.campaign_id).map_err(encode)?;
            args.add(lead.phone.as_str()).map_err(encode)?;
            args.add(lead.name.as_deref()).map_err(encode)?;
            args.add(lead.timezone.as_deref()).map_err(encode)?;
            args.add(sqlx::types::Json(&lead.attributes))
                .map_err(encode)?;
            for _ in 0..3 {
                args.add(Arc::clone(&now)).map_err(encode)?;
            }
        }
        let imported = sqlx::query_with(AssertSqlSafe(sql), args)
            .execute(&mut *self.conn)
            .await?
            .rows_affected();
        if imported > 0 {
            // What the paused trigger would have counted: every imported lead is new.
            sqlx::query(
                "INSERT INTO lead_tallies (campaign_id, status, outcome, attempts, n) \
                 VALUES ($1, 'pending', '', 0, $2) \
                 ON CONFLICT (campaign_id, status, outcome, attempts) DO UPDATE SET n = n + excluded.n",
            )
            .bind(self.campaign_id)
            .bind(imported as i64)
            .execute(&mut *self.conn)
            .await?;
        }
        Ok(BatchOutcome {
            imported,
            duplicates: allowed.len() as u64 - imported,
            do_not_call,
        })
    }

    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        sqlx::raw_sql("DELETE FROM lead_tally_pause; COMMIT")
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}
