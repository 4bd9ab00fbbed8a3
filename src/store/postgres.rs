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

use super::bucket::{BucketResult, RateBucket, SlotRequest, Slots};
use super::{BatchOutcome, LeadImporter, NewLead, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str, wait: Duration) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(wait)
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

    async fn missing_migrations(&self) -> StoreResult<Vec<i64>> {
        super::missing_migrations(&MIGRATOR, &self.pool).await
    }

    fn rate_bucket(&self) -> Option<&dyn RateBucket> {
        Some(self)
    }
});

impl_ops_store!(PostgresStore, Postgres, skip_locked: " FOR UPDATE SKIP LOCKED", {
    async fn fold_tallies(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // One folder at a time; another instance already folding is enough.
        let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(7263541002)")
            .fetch_one(&mut *tx)
            .await?;
        if !mine {
            return Ok(());
        }
        for sql in FOLD {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
});

/// Each `*_deltas` table moved into its tallies: deleted and summed in one statement (rows a
/// transaction appends meanwhile are not visible to it, and stay for the next fold). Deltas of
/// a campaign deleted meanwhile are dropped; keys are taken in order, so two folds cannot
/// deadlock.
const FOLD: [&str; 3] = [
    "WITH moved AS (DELETE FROM lead_tally_deltas RETURNING campaign_id, status, outcome, attempts, n) \
     INSERT INTO lead_tallies AS t (campaign_id, status, outcome, attempts, n) \
     SELECT campaign_id, status, outcome, attempts, SUM(n) FROM moved \
     WHERE EXISTS (SELECT 1 FROM campaigns c WHERE c.id = moved.campaign_id) \
     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 \
     ON CONFLICT (campaign_id, status, outcome, attempts) DO UPDATE SET n = t.n + excluded.n",
    "WITH moved AS (DELETE FROM call_tally_deltas RETURNING *) \
     INSERT INTO call_tallies AS t \
     SELECT campaign_id, status, intent, SUM(total), SUM(answered), SUM(dialled), \
         SUM(dialled_answered), SUM(talk_secs), SUM(talked_calls), SUM(carrier_minutes), \
         SUM(stt_secs), SUM(llm_prompt_tokens), SUM(llm_completion_tokens), SUM(tts_characters) \
     FROM moved WHERE EXISTS (SELECT 1 FROM campaigns c WHERE c.id = moved.campaign_id) \
     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 \
     ON CONFLICT (campaign_id, status, intent) DO UPDATE SET total = t.total + excluded.total, \
         answered = t.answered + excluded.answered, dialled = t.dialled + excluded.dialled, \
         dialled_answered = t.dialled_answered + excluded.dialled_answered, \
         talk_secs = t.talk_secs + excluded.talk_secs, \
         talked_calls = t.talked_calls + excluded.talked_calls, \
         carrier_minutes = t.carrier_minutes + excluded.carrier_minutes, \
         stt_secs = t.stt_secs + excluded.stt_secs, \
         llm_prompt_tokens = t.llm_prompt_tokens + excluded.llm_prompt_tokens, \
         llm_completion_tokens = t.llm_completion_tokens + excluded.llm_completion_tokens, \
         tts_characters = t.tts_characters + excluded.tts_characters",
    "WITH moved AS (DELETE FROM latency_tally_deltas RETURNING campaign_id, kind, ms, n) \
     INSERT INTO latency_tallies AS t (campaign_id, kind, ms, n) \
     SELECT campaign_id, kind, ms, SUM(n) FROM moved \
     WHERE EXISTS (SELECT 1 FROM campaigns c WHERE c.id = moved.campaign_id) \
     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 \
     ON CONFLICT (campaign_id, kind, ms) DO UPDATE SET n = t.n + excluded.n",
];
// The first free slot of an existing row, then how many slots fit: `bucket::reserve_in` in
// SQL. $1 account, $2 now, $3 want, $4 horizon, $5 interval, $6 MAX_AHEAD (µs). In `SET`,
// `dial_rate.*` is the row as it was: every expression sees the same old values.
macro_rules! first_slot {
    () => {
        "GREATEST($2, CASE WHEN dial_rate.next_us > $2 + $6 + $4 + $5 THEN $2 \
         ELSE dial_rate.next_us END, dial_rate.hold_us)"
    };
}
macro_rules! slot_count {
    () => {
        concat!(
            "(CASE WHEN ",
            first_slot!(),
            " < $2 + $4 THEN LEAST($3, ($2 + $4 - ",
            first_slot!(),
            " + $5 - 1) / $5) ELSE 0 END)"
        )
    };
}

/// One statement: the row is created on first use, else locked and moved past the granted
/// slots, so two instances reserving at once are serialised by the row lock and never get the
/// same slot.
const RESERVE_SLOTS: &str = concat!(
    "INSERT INTO dial_rate AS dial_rate (account, next_us, hold_us, first_us, granted, seq) \
     VALUES ($1, $2 + LEAST($3, ($4 + $5 - 1) / $5) * $5, 0, $2, LEAST($3, ($4 + $5 - 1) / $5), 1) \
     ON CONFLICT (account) DO UPDATE SET first_us = ",
    first_slot!(),
    ", granted = ",
    slot_count!(),
    ", next_us = CASE WHEN ",
    slot_count!(),
    " > 0 THEN ",
    first_slot!(),
    " + ",
    slot_count!(),
    " * $5 ELSE dial_rate.next_us END, seq = dial_rate.seq + CASE WHEN ",
    slot_count!(),
    " > 0 THEN 1 ELSE 0 END RETURNING first_us, granted, seq"
);

#[async_trait]
impl RateBucket for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn reserve(&self, key: &str, r: &SlotRequest) -> BucketResult<Slots> {
        let (first, count, seq): (i64, i64, i64) = sqlx::query_as(RESERVE_SLOTS)
            .bind(key)
            .bind(r.now)
            .bind(r.want as i64)
            .bind(r.horizon)
            .bind(r.interval)
            .bind(super::bucket::MAX_AHEAD)
            .fetch_one(&self.pool)
            .await?;
        Ok(Slots {
            first,
            count: count.max(0) as u32,
            seq,
        })
    }

    async fn give_back(
        &self,
        key: &str,
        slots: &Slots,
        unused: u32,
        interval: i64,
    ) -> BucketResult<bool> {
        if unused == 0 || slots.count == 0 {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE dial_rate SET next_us = next_us - $3 * $4 WHERE account = $1 AND seq = $2",
        )
        .bind(key)
        .bind(slots.seq)
        .bind(unused.min(slots.count) as i64)
        .bind(interval)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn hold(&self, key: &str, until: i64) -> BucketResult<()> {
        sqlx::query(
            "INSERT INTO dial_rate (account, next_us, hold_us) VALUES ($1, 0, $2) \
             ON CONFLICT (account) DO UPDATE \
             SET hold_us = GREATEST(dial_rate.hold_us, EXCLUDED.hold_us)",
        )
        .bind(key)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn held_until(&self, key: &str) -> BucketResult<i64> {
        let hold: Option<i64> =
            sqlx::query_scalar("SELECT hold_us FROM dial_rate WHERE account = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(hold.unwrap_or(0))
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
