//! PostgreSQL backend: the production store, shared by several instances of the service.
//!
//! Bulk import uses `UNNEST` over arrays (one statement and one round trip per batch); the
//! dialer's claim (dialer issue) uses `FOR UPDATE SKIP LOCKED` so instances never claim the same
//! lead.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};

use super::{BatchOutcome, LeadImporter, NewLead, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

impl_store!(PostgresStore, Postgres, super::Backend::Postgres, write_begin: "BEGIN",
    {
    async fn begin_import(&self, campaign_id: i64) -> StoreResult<Box<dyn LeadImporter>> {
        let tx = self.pool.begin().await?;
        Ok(Box::new(PostgresImporter { tx, campaign_id }))
    }
});

impl_ops_store!(PostgresStore, Postgres, skip_locked: " FOR UPDATE SKIP LOCKED");

/// The advisory lock that serialises claims across every instance on the database.
const CLAIM_LOCK: i64 = 7_263_541_001;

impl PostgresStore {
    /// Phase 2 of the claim in one round trip: two statements in one simple-protocol message,
    /// which PostgreSQL runs as one implicit transaction (rolled back whole if either fails).
    /// The first takes the claim lock; the second, whose snapshot is taken after the lock (READ
    /// COMMITTED: a snapshot per statement), counts the active calls, takes as many of `chosen`
    /// as the caps allow (`FOR UPDATE SKIP LOCKED`, still waiting and due), moves them to
    /// `in_progress` and inserts their call rows.
    ///
    /// The simple protocol takes no parameters, so the values are written into the text. Every
    /// one is a number or our own RFC 3339 timestamp, never input. It was seven round trips
    /// (`BEGIN`, lock, count, candidates, update, insert, `COMMIT`): see docs/BENCHMARKS.md.
    async fn take_leads(
        &self,
        req: &super::ClaimRequest,
        chosen: &[i64],
    ) -> StoreResult<Vec<super::Claimed>> {
        use sqlx::{FromRow, Row};
        let now = format!(
            "'{}'::timestamptz",
            req.now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        let ids = chosen
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            concat!(
                "SELECT pg_advisory_xact_lock({lock}); ",
                "WITH active AS (SELECT COUNT(*) AS all_calls, ",
                "COUNT(*) FILTER (WHERE campaign_id = {campaign}) AS campaign_calls ",
                "FROM calls WHERE status IN ",
                active_call_statuses!(),
                "), ",
                "pick AS (SELECT id AS pick_id FROM leads WHERE id IN ({ids}) ",
                "AND campaign_id = {campaign} AND status IN ",
                waiting_lead_statuses!(),
                " AND next_attempt_at <= {now} ORDER BY next_attempt_at, id ",
                "LIMIT (SELECT GREATEST(0, LEAST({global_cap} - all_calls, ",
                "{campaign_cap} - campaign_calls, {limit})) FROM active) FOR UPDATE SKIP LOCKED), ",
                "taken AS (UPDATE leads SET status = 'in_progress', attempts = attempts + 1, ",
                "updated_at = {now} FROM pick WHERE leads.id = pick.pick_id RETURNING ",
                lead_columns!(),
                "), ",
                "made AS (INSERT INTO calls (campaign_id, lead_id, attempt, direction, phone, ",
                "status, qualification, created_at, updated_at) SELECT campaign_id, id, attempts, ",
                "'outbound', phone, 'queued', '{{}}', {now}, {now} FROM taken ",
                "RETURNING lead_id, id AS call_id) ",
                "SELECT taken.*, made.call_id FROM taken JOIN made ON made.lead_id = taken.id ",
                "ORDER BY taken.next_attempt_at, taken.id"
            ),
            lock = CLAIM_LOCK,
            campaign = req.campaign_id,
            global_cap = req.global_cap,
            campaign_cap = req.campaign_cap,
            limit = req.limit,
            ids = ids,
            now = now,
        );
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        // The lock's own row (one column) comes first.
        rows.iter()
            .filter(|row| row.len() > 1)
            .map(|row| {
                Ok(super::Claimed {
                    lead: super::Lead::from_row(row)?,
                    call_id: row.try_get("call_id")?,
                })
            })
            .collect()
    }
}

struct PostgresImporter {
    tx: Transaction<'static, Postgres>,
    campaign_id: i64,
}

#[async_trait]
impl LeadImporter for PostgresImporter {
    async fn insert_batch(
        &mut self,
        leads: &[NewLead],
        now: DateTime<Utc>,
    ) -> StoreResult<BatchOutcome> {
        if leads.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let mut phones = Vec::with_capacity(leads.len());
        let mut names = Vec::with_capacity(leads.len());
        let mut zones = Vec::with_capacity(leads.len());
        let mut attributes = Vec::with_capacity(leads.len());
        for lead in leads {
            phones.push(lead.phone.as_str());
            names.push(lead.name.as_deref());
            zones.push(lead.timezone.as_deref());
            attributes.push(
                serde_json::to_string(&lead.attributes)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            );
        }
        // One statement, one round trip: the do-not-call filter and the insert together (a
        // separate look-up first cost a second round trip per batch and a linear search).
        let (imported, do_not_call): (i64, i64) = sqlx::query_as(
            "WITH input AS ( \
                 SELECT t.phone, t.name, t.timezone, t.attributes \
                 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[]) \
                     AS t(phone, name, timezone, attributes)), \
             blocked AS ( \
                 SELECT input.phone FROM input JOIN do_not_call d ON d.phone = input.phone), \
             inserted AS ( \
                 INSERT INTO leads (campaign_id, phone, name, timezone, attributes, status, \
                     attempts, next_attempt_at, qualification, created_at, updated_at) \
                 SELECT $1, phone, name, timezone, attributes::jsonb, 'pending', 0, $6, '{}', $6, $6 \
                 FROM input \
                 WHERE NOT EXISTS (SELECT 1 FROM do_not_call d WHERE d.phone = input.phone) \
                 ON CONFLICT (phone, campaign_id) DO NOTHING \
                 RETURNING 1) \
             SELECT (SELECT COUNT(*) FROM inserted), (SELECT COUNT(*) FROM blocked)",
        )
        .bind(self.campaign_id)
        .bind(&phones)
        .bind(&names)
        .bind(&zones)
        .bind(&attributes)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?;
        let (imported, do_not_call) = (imported as u64, do_not_call as u64);
        Ok(BatchOutcome {
            imported,
            duplicates: leads.len() as u64 - do_not_call - imported,
            do_not_call,
        })
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.tx.commit().await?;
        Ok(())
    }
}
