//! Fast bulk loading for the claim benchmark: the database generates the leads itself (a
//! recursive CTE on SQLite, `generate_series` on PostgreSQL) in one statement, so a million
//! leads take seconds and the claim figures do not wait on the import being measured elsewhere.
//!
//! Rows look like imported ones: same numbers as the CSV generator, `pending`, no attempts and
//! one shared `next_attempt_at` (an import stamps every lead with the same instant).

use chrono::{DateTime, Utc};
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, PgPool, SqlitePool};

use super::BenchResult;

/// A second, raw connection pool to the bench database, for set-up the `Store` does not offer.
pub enum Seeder {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

const SQLITE_LOAD: &str = "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < $2) \
     INSERT INTO leads (campaign_id, phone, name, timezone, attributes, status, attempts, \
     next_attempt_at, qualification, created_at, updated_at) \
     SELECT $1, '+91' || (6 + i % 4) || printf('%09d', (i * 7919 + 104729) % 1000000000), \
     'Lead ' || i, NULL, '{\"city\":\"Pune\",\"lead_source\":\"website\"}', 'pending', 0, $3, '{}', $3, $3 \
     FROM s";

const POSTGRES_LOAD: &str = "INSERT INTO leads (campaign_id, phone, name, timezone, attributes, status, attempts, \
     next_attempt_at, qualification, created_at, updated_at) \
     SELECT $1, '+91' || (6 + i % 4)::text || lpad(((i * 7919 + 104729) % 1000000000)::text, 9, '0'), \
     'Lead ' || i, NULL, '{\"city\":\"Pune\",\"lead_source\":\"website\"}'::jsonb, 'pending', 0, $3, '{}', $3, $3 \
     FROM generate_series(0::bigint, $2::bigint - 1) AS i";

/// One lead in `one_in` gets a finished call from the day before: a database in use has a call
/// history (and PostgreSQL statistics on it), which the claim's count of active calls must see
/// through.
const HISTORY: &str = "INSERT INTO calls (campaign_id, lead_id, attempt, direction, phone, status, \
     qualification, dialed_at, ended_at, created_at, updated_at) \
     SELECT campaign_id, id, 1, 'outbound', phone, 'completed', '{}', $3, $3, $3, $3 \
     FROM leads WHERE campaign_id = $1 AND id % $2 = 0";

/// All but one lead in `keep_one_in` become retries due at `future`.
const DEFER: &str = "UPDATE leads SET status = 'retry', next_attempt_at = $3, attempts = 1, \
     last_result = 'no-answer' WHERE campaign_id = $1 AND status = 'pending' AND id % $2 != 0";

/// One call in `$2` gets four turns, each with every latency (values spread over 150–1,149 ms).
/// `$1` and `$3` are unused (the statement shape `run` binds).
const TURNS: &str = "INSERT INTO transcript_turns (call_id, seq, speaker, text, stt_ms, \
     llm_first_token_ms, tts_first_byte_ms, voice_to_voice_ms, added_ms, created_at) \
     SELECT c.id, s.seq, CASE WHEN s.seq % 2 = 1 THEN 'agent' ELSE 'caller' END, 'Namaste', \
     150 + (c.id * 7 + s.seq * 13) % 1000, 300 + (c.id * 3) % 500, 120 + (c.id * 5) % 300, \
     700 + (c.id * 11 + s.seq) % 800, 20 + c.id % 50, $3 \
     FROM calls c CROSS JOIN (SELECT 1 AS seq UNION ALL SELECT 2 UNION ALL SELECT 3 \
     UNION ALL SELECT 4) s WHERE c.id % $2 = 0 AND $1 = $1";

impl Seeder {
    pub async fn connect(url: &str) -> BenchResult<Self> {
        // Loading a million rows is slow on purpose: no "slow statement" warnings for it.
        Ok(if url.starts_with("postgres") {
            let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
            Seeder::Postgres(PgPool::connect_with(options).await?)
        } else {
            let options = SqliteConnectOptions::from_str(url)?
                .busy_timeout(std::time::Duration::from_secs(30))
                .disable_statement_logging();
            Seeder::Sqlite(SqlitePool::connect_with(options).await?)
        })
    }

    /// Inserts `n` pending leads into `campaign_id`, all due at `due`.
    pub async fn load(&self, campaign_id: i64, n: u64, due: DateTime<Utc>) -> BenchResult<()> {
        let sql = match self {
            Seeder::Sqlite(_) => SQLITE_LOAD,
            Seeder::Postgres(_) => POSTGRES_LOAD,
        };
        self.run(sql, campaign_id, n as i64, due).await
    }

    /// Gives one lead in `one_in` a completed call at `at` (see [`HISTORY`]).
    pub async fn history(
        &self,
        campaign_id: i64,
        one_in: i64,
        at: DateTime<Utc>,
    ) -> BenchResult<()> {
        self.run(HISTORY, campaign_id, one_in, at).await
    }

    /// Leaves one pending lead in `keep_one_in` due; the others wait until `future`.
    pub async fn defer_most(
        &self,
        campaign_id: i64,
        keep_one_in: i64,
        future: DateTime<Utc>,
    ) -> BenchResult<()> {
        self.run(DEFER, campaign_id, keep_one_in, future).await
    }

    /// Gives one call in `one_in` four transcript turns with latencies (see [`TURNS`]).
    pub async fn turns(&self, one_in: i64) -> BenchResult<()> {
        self.run(TURNS, 0, one_in, Utc::now()).await
    }

    /// Runs one of the statements above (`$1` campaign, `$2` a count, `$3` a time), then
    /// [`Self::analyze`].
    async fn run(
        &self,
        sql: &'static str,
        campaign_id: i64,
        count: i64,
        at: DateTime<Utc>,
    ) -> BenchResult<()> {
        match self {
            Seeder::Sqlite(pool) => {
                sqlx::query(sql)
                    .bind(campaign_id)
                    .bind(count)
                    .bind(at)
                    .execute(pool)
                    .await?;
            }
            Seeder::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(campaign_id)
                    .bind(count)
                    .bind(at)
                    .execute(pool)
                    .await?;
            }
        }
        self.analyze().await
    }

    /// PostgreSQL's autovacuum vacuums and analyses a table within a minute of a bulk change;
    /// doing it now measures that steady state, not the minute in which the index still points
    /// at 940,000 dead row versions. `calls` too: between the two cases, the first one's ended
    /// calls would otherwise sit in a never-analysed table, whose count the planner then reads
    /// with a bitmap scan over every dead index entry (measured: 0.5–1.2 ms of each claim). SQLite keeps no statistics unless asked (the service never
    /// does) and leaves no dead versions, so it is left as the service would have it.
    async fn analyze(&self) -> BenchResult<()> {
        if let Seeder::Postgres(pool) = self {
            // VACUUM cannot run in a transaction: the simple query protocol runs it bare (one
            // statement per message: several would form one implicit transaction).
            for table in ["VACUUM ANALYZE leads", "VACUUM ANALYZE calls"] {
                sqlx::raw_sql(table).execute(pool).await?;
            }
        }
        Ok(())
    }

    pub async fn close(self) {
        match self {
            Seeder::Sqlite(pool) => pool.close().await,
            Seeder::Postgres(pool) => pool.close().await,
        }
    }
}
