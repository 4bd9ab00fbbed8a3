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

impl_store!(PostgresStore, Postgres, super::Backend::Postgres,
    claim_begin: "BEGIN", claim_lock: "SELECT pg_advisory_xact_lock(7263541001)", skip_locked: " FOR UPDATE SKIP LOCKED",
    {
    async fn begin_import(&self, campaign_id: i64) -> StoreResult<Box<dyn LeadImporter>> {
        let tx = self.pool.begin().await?;
        Ok(Box::new(PostgresImporter { tx, campaign_id }))
    }
});

impl_ops_store!(PostgresStore, Postgres, skip_locked: " FOR UPDATE SKIP LOCKED");

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
        let phones: Vec<&str> = leads.iter().map(|l| l.phone.as_str()).collect();
        let on_dnc: Vec<String> =
            sqlx::query_scalar("SELECT phone FROM do_not_call WHERE phone = ANY($1)")
                .bind(&phones)
                .fetch_all(&mut *self.tx)
                .await?;
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
        let mut phones = Vec::with_capacity(allowed.len());
        let mut names = Vec::with_capacity(allowed.len());
        let mut zones = Vec::with_capacity(allowed.len());
        let mut attributes = Vec::with_capacity(allowed.len());
        for lead in &allowed {
            phones.push(lead.phone.as_str());
            names.push(lead.name.as_deref());
            zones.push(lead.timezone.as_deref());
            attributes.push(
                serde_json::to_string(&lead.attributes)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            );
        }
        let imported = sqlx::query(
            "INSERT INTO leads (campaign_id, phone, name, timezone, attributes, status, attempts, \
             next_attempt_at, qualification, created_at, updated_at) \
             SELECT $1, t.phone, t.name, t.timezone, t.attributes::jsonb, 'pending', 0, $6, '{}', $6, $6 \
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[]) AS t(phone, name, timezone, attributes) \
             ON CONFLICT (campaign_id, phone) DO NOTHING",
        )
        .bind(self.campaign_id)
        .bind(&phones)
        .bind(&names)
        .bind(&zones)
        .bind(&attributes)
        .bind(now)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
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
