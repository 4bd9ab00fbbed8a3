//! The SQL that SQLite and PostgreSQL share, written once.
//!
//! Both backends accept `$N` placeholders, `RETURNING`, `ON CONFLICT` and partial indexes, so
//! most statements are identical; only the column types in the migrations differ. The
//! [`impl_store!`] macro expands the shared methods into each backend's `impl Store`, and the
//! backend passes in the methods it writes itself (bulk import, and later the dialer's claim).
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

/// Binds the fourteen configurable columns of a campaign in the order of `campaign_columns!`
/// (name … webhook_url).
macro_rules! bind_campaign_spec {
    ($query:expr, $spec:expr) => {{
        let s = $spec;
        $query
            .bind(&s.name)
            .bind(&s.instructions)
            .bind(&s.greeting)
            .bind(&s.language)
            .bind(&s.voice_id)
            .bind(&s.calling_window.start)
            .bind(&s.calling_window.end)
            .bind(sqlx::types::Json(&s.calling_window.weekdays))
            .bind(sqlx::types::Json(&s.calling_window.holidays))
            .bind(&s.timezone)
            .bind(s.max_attempts)
            .bind(sqlx::types::Json(&s.retry_delays))
            .bind(s.max_concurrent_calls)
            .bind(sqlx::types::Json(&s.qualification_fields))
            .bind(&s.webhook_url)
    }};
}

/// Expands `impl Store for $store` over `$db` with every shared method, plus `$extra` methods.
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

            async fn create_campaign(
                &self,
                spec: &$crate::store::CampaignSpec,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Campaign> {
                let q = sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "INSERT INTO campaigns (name, instructions, greeting, language, voice_id, \
                     window_start, window_end, weekdays, holidays, timezone, max_attempts, \
                     retry_delays, max_concurrent_calls, qualification_fields, webhook_url, \
                     status, status_reason, created_at, updated_at) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,'draft',NULL,$16,$16) \
                     RETURNING ",
                    campaign_columns!()
                ));
                Ok(bind_campaign_spec!(q, spec).bind(now).fetch_one(&self.pool).await?)
            }

            async fn get_campaign(&self, id: i64) -> $crate::store::StoreResult<$crate::store::Campaign> {
                sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "SELECT ", campaign_columns!(), " FROM campaigns WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| $crate::store::StoreError::NotFound(format!("campaign {id} not found")))
            }

            async fn list_campaigns(&self) -> $crate::store::StoreResult<Vec<$crate::store::Campaign>> {
                Ok(sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "SELECT ", campaign_columns!(), " FROM campaigns ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn update_campaign(
                &self,
                id: i64,
                spec: &$crate::store::CampaignSpec,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Campaign> {
                let q = sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "UPDATE campaigns SET name = $1, instructions = $2, greeting = $3, \
                     language = $4, voice_id = $5, window_start = $6, window_end = $7, \
                     weekdays = $8, holidays = $9, timezone = $10, max_attempts = $11, \
                     retry_delays = $12, max_concurrent_calls = $13, qualification_fields = $14, \
                     webhook_url = $15, updated_at = $16 WHERE id = $17 RETURNING ",
                    campaign_columns!()
                ));
                bind_campaign_spec!(q, spec)
                    .bind(now)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| $crate::store::StoreError::NotFound(format!("campaign {id} not found")))
            }

            async fn delete_campaign(&self, id: i64) -> $crate::store::StoreResult<()> {
                let done = sqlx::query::<$db>(
                    "DELETE FROM campaigns WHERE id = $1 AND status <> 'running'",
                )
                .bind(id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                // Nothing deleted: either there is no such campaign or it is running.
                self.get_campaign(id).await?;
                Err($crate::store::StoreError::Conflict(format!(
                    "campaign {id} is running: pause it before deleting"
                )))
            }

            async fn transition_campaign(
                &self,
                id: i64,
                from: &[$crate::store::CampaignStatus],
                to: $crate::store::CampaignStatus,
                reason: Option<&str>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Campaign> {
                // Four slots cover every status; unused ones repeat the first.
                let slot = |i: usize| from.get(i).or(from.first()).map(|s| s.as_str()).unwrap_or("");
                let updated = sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "UPDATE campaigns SET status = $1, status_reason = $2, updated_at = $3 \
                     WHERE id = $4 AND status IN ($5, $6, $7, $8) RETURNING ",
                    campaign_columns!()
                ))
                .bind(to.as_str())
                .bind(reason)
                .bind(now)
                .bind(id)
                .bind(slot(0))
                .bind(slot(1))
                .bind(slot(2))
                .bind(slot(3))
                .fetch_optional(&self.pool)
                .await?;
                match updated {
                    Some(c) => Ok(c),
                    None => {
                        let current = self.get_campaign(id).await?;
                        Err($crate::store::StoreError::Conflict(format!(
                            "campaign {id} is {}: cannot make it {}",
                            current.status, to
                        )))
                    }
                }
            }

            async fn list_leads(
                &self,
                campaign_id: i64,
                query: &$crate::store::LeadQuery,
            ) -> $crate::store::StoreResult<$crate::store::LeadPage> {
                let status = query.status.map(|s| s.as_str());
                let leads = sqlx::query_as::<$db, $crate::store::Lead>(concat!(
                    "SELECT ", lead_columns!(), " FROM leads \
                     WHERE campaign_id = $1 AND ($2 IS NULL OR status = $2) \
                     ORDER BY id LIMIT $3 OFFSET $4"
                ))
                .bind(campaign_id)
                .bind(status)
                .bind(query.limit)
                .bind(query.offset)
                .fetch_all(&self.pool)
                .await?;
                let total: i64 = sqlx::query_scalar::<$db, i64>(
                    "SELECT COUNT(*) FROM leads WHERE campaign_id = $1 AND ($2 IS NULL OR status = $2)",
                )
                .bind(campaign_id)
                .bind(status)
                .fetch_one(&self.pool)
                .await?;
                Ok($crate::store::LeadPage { leads, total, limit: query.limit, offset: query.offset })
            }

            async fn get_lead(&self, id: i64) -> $crate::store::StoreResult<$crate::store::Lead> {
                sqlx::query_as::<$db, $crate::store::Lead>(concat!(
                    "SELECT ", lead_columns!(), " FROM leads WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| $crate::store::StoreError::NotFound(format!("lead {id} not found")))
            }

            async fn lead_counts(
                &self,
                campaign_id: i64,
            ) -> $crate::store::StoreResult<Vec<($crate::store::LeadStatus, i64)>> {
                // From the tallies (`tallies.rs`): constant cost whatever the campaign's size.
                let rows: Vec<(String, i64)> = sqlx::query_as::<$db, (String, i64)>(
                    "SELECT status, CAST(SUM(n) AS BIGINT) FROM (\
                     SELECT status, n FROM lead_tallies WHERE campaign_id = $1 UNION ALL \
                     SELECT status, n FROM lead_tally_deltas WHERE campaign_id = $1) t \
                     GROUP BY status HAVING SUM(n) <> 0 ORDER BY status",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(s, n)| {
                        s.parse()
                            .map(|s| (s, n))
                            .map_err($crate::store::StoreError::Corrupt)
                    })
                    .collect()
            }

            async fn add_dnc(
                &self,
                phone: &str,
                reason: Option<&str>,
                source: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::DncEntry> {
                let mut tx = self.pool.begin_with($claim_begin).await?;
                let entry = sqlx::query_as::<$db, $crate::store::DncEntry>(
                    "INSERT INTO do_not_call (phone, reason, source, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (phone) DO UPDATE SET reason = COALESCE(excluded.reason, do_not_call.reason) \
                     RETURNING phone, reason, source, created_at",
                )
                .bind(phone)
                .bind(reason)
                .bind(source)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                // Leads still waiting for a call become final at once, so the list shows why.
                sqlx::query::<$db>(
                    "UPDATE leads SET status = 'do_not_call', next_attempt_at = NULL, \
                     last_result = 'do_not_call', updated_at = $2 \
                     WHERE phone = $1 AND status IN ('pending', 'retry', 'callback')",
                )
                .bind(phone)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn remove_dnc(&self, phone: &str) -> $crate::store::StoreResult<()> {
                let done = sqlx::query::<$db>("DELETE FROM do_not_call WHERE phone = $1")
                    .bind(phone)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound(format!(
                        "{} is not on the do-not-call list",
                        $crate::phone::mask(phone)
                    )));
                }
                Ok(())
            }

            async fn list_dnc(
                &self,
                limit: i64,
                offset: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::DncEntry>> {
                Ok(sqlx::query_as::<$db, $crate::store::DncEntry>(
                    "SELECT phone, reason, source, created_at FROM do_not_call \
                     ORDER BY created_at, phone LIMIT $1 OFFSET $2",
                )
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn is_dnc(&self, phone: &str) -> $crate::store::StoreResult<bool> {
                let n: i64 = sqlx::query_scalar::<$db, i64>(
                    "SELECT COUNT(*) FROM do_not_call WHERE phone = $1",
                )
                .bind(phone)
                .fetch_one(&self.pool)
                .await?;
                Ok(n > 0)
            }

            async fn running_campaigns(&self) -> $crate::store::StoreResult<Vec<$crate::store::Campaign>> {
                Ok(sqlx::query_as::<$db, $crate::store::Campaign>(concat!(
                    "SELECT ", campaign_columns!(), " FROM campaigns WHERE status = 'running' ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn count_active_calls(&self, campaign_id: Option<i64>) -> $crate::store::StoreResult<i64> {
                Ok(sqlx::query_scalar::<$db, i64>(concat!(
                    "SELECT COUNT(*) FROM calls WHERE status IN ", active_call_statuses!(),
                    " AND ($1 IS NULL OR campaign_id = $1)"
                ))
                .bind(campaign_id)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn claim_leads(
                &self,
                req: &$crate::store::ClaimRequest,
                window: &$crate::store::WindowFn,
            ) -> $crate::store::StoreResult<$crate::store::ClaimOutcome> {
                let mut out = $crate::store::ClaimOutcome::default();
                let mut tx = self.pool.begin_with($claim_begin).await?;
                if !$claim_lock.is_empty() {
                    sqlx::query::<$db>($claim_lock).execute(&mut *tx).await?;
                }
                // Every statement here is a round trip inside the lock, so they are few: both
                // counts in one, the claimed leads in one UPDATE and their calls in one INSERT
                // (the claim was 2 statements per lead; see docs/BENCHMARKS.md).
                let (active_all, active_campaign): (i64, i64) = sqlx::query_as::<$db, (i64, i64)>(concat!(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN campaign_id = $1 THEN 1 ELSE 0 END), 0) \
                     FROM calls WHERE status IN ", active_call_statuses!()
                ))
                .bind(req.campaign_id)
                .fetch_one(&mut *tx)
                .await?;
                let available = (req.global_cap - active_all)
                    .min(req.campaign_cap - active_campaign)
                    .min(req.limit);
                if available <= 0 {
                    tx.commit().await?;
                    return Ok(out);
                }
                // More candidates than slots: some may be outside their window or opted out.
                let candidates = sqlx::query_as::<$db, $crate::store::Candidate>(concat!(
                    "SELECT ", lead_columns!(), ", EXISTS (SELECT 1 FROM do_not_call d WHERE d.phone = leads.phone) AS on_dnc \
                     FROM leads WHERE campaign_id = $1 AND status IN ('pending', 'retry', 'callback') \
                     AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3",
                    $skip_locked
                ))
                .bind(req.campaign_id)
                .bind(req.now)
                .bind((available * 4 + 16).min(500))
                .fetch_all(&mut *tx)
                .await?;
                // Ids to claim, in due order.
                let mut chosen: Vec<i64> = Vec::with_capacity(available as usize);
                for c in candidates {
                    if chosen.len() as i64 >= available {
                        break;
                    }
                    if c.on_dnc {
                        sqlx::query::<$db>(
                            "UPDATE leads SET status = 'do_not_call', next_attempt_at = NULL, \
                             last_result = 'do_not_call', updated_at = $2 WHERE id = $1",
                        )
                        .bind(c.lead.id)
                        .bind(req.now)
                        .execute(&mut *tx)
                        .await?;
                        out.do_not_call += 1;
                        continue;
                    }
                    if let Err(opens) = window(&c.lead) {
                        sqlx::query::<$db>("UPDATE leads SET next_attempt_at = $2, updated_at = $3 WHERE id = $1")
                            .bind(c.lead.id)
                            .bind(opens)
                            .bind(req.now)
                            .execute(&mut *tx)
                            .await?;
                        out.deferred += 1;
                        continue;
                    }
                    chosen.push(c.lead.id);
                }
                if chosen.is_empty() {
                    tx.commit().await?;
                    return Ok(out);
                }
                let mut update = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE leads SET status = 'in_progress', attempts = attempts + 1, updated_at = ",
                );
                update.push_bind(req.now).push(" WHERE id IN (");
                let mut ids = update.separated(", ");
                for id in &chosen {
                    ids.push_bind(*id);
                }
                update.push(concat!(") RETURNING ", lead_columns!()));
                let mut leads: Vec<$crate::store::Lead> =
                    update.build_query_as().fetch_all(&mut *tx).await?;
                // RETURNING order is unspecified: dial in due order.
                leads.sort_by_key(|l| chosen.iter().position(|id| *id == l.id));
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO calls (campaign_id, lead_id, attempt, direction, phone, status, \
                     qualification, created_at, updated_at) ",
                );
                insert.push_values(&leads, |mut row, lead| {
                    row.push_bind(lead.campaign_id)
                        .push_bind(lead.id)
                        .push_bind(lead.attempts)
                        .push("'outbound'")
                        .push_bind(&lead.phone)
                        .push("'queued'")
                        .push("'{}'")
                        .push_bind(req.now)
                        .push_bind(req.now);
                });
                insert.push(" RETURNING lead_id, id");
                let call_ids: std::collections::HashMap<i64, i64> =
                    insert.build_query_as::<(i64, i64)>().fetch_all(&mut *tx).await?.into_iter().collect();
                for lead in leads {
                    let call_id = *call_ids.get(&lead.id).ok_or_else(|| {
                        $crate::store::StoreError::Corrupt(format!("no call row for claimed lead {}", lead.id))
                    })?;
                    out.claimed.push($crate::store::Claimed { lead, call_id });
                }
                tx.commit().await?;
                Ok(out)
            }

            async fn mark_dialing(
                &self,
                call_id: i64,
                carrier_sid: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>(
                    "UPDATE calls SET status = CASE WHEN status = 'queued' THEN 'dialing' ELSE status END, \
                     carrier_sid = $2, dialed_at = $3, updated_at = $3 WHERE id = $1",
                )
                .bind(call_id)
                .bind(carrier_sid)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn release_claim(
                &self,
                call_id: i64,
                reason: &str,
                retry_at: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin_with($claim_begin).await?;
                let lead_id: Option<Option<i64>> = sqlx::query_scalar::<$db, Option<i64>>(
                    "UPDATE calls SET status = 'canceled', error = $2, ended_at = $3, updated_at = $3 \
                     WHERE id = $1 AND status = 'queued' RETURNING lead_id",
                )
                .bind(call_id)
                .bind(reason)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(Some(lead_id)) = lead_id {
                    // The attempt never reached the carrier: give it back.
                    sqlx::query::<$db>(
                        "UPDATE leads SET attempts = attempts - 1, \
                         status = CASE WHEN callback_at IS NOT NULL THEN 'callback' \
                                       WHEN attempts > 1 THEN 'retry' ELSE 'pending' END, \
                         next_attempt_at = $2, last_result = $3, updated_at = $4 \
                         WHERE id = $1 AND status = 'in_progress'",
                    )
                    .bind(lead_id)
                    .bind(retry_at)
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_call(&self, id: i64) -> $crate::store::StoreResult<$crate::store::Call> {
                sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "SELECT ", call_columns!(), " FROM calls WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| $crate::store::StoreError::NotFound(format!("call {id} not found")))
            }

            async fn find_call_by_sid(&self, sid: &str) -> $crate::store::StoreResult<Option<$crate::store::Call>> {
                Ok(sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "SELECT ", call_columns!(), " FROM calls WHERE carrier_sid = $1"
                ))
                .bind(sid)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn calls_of_lead(&self, lead_id: i64) -> $crate::store::StoreResult<Vec<$crate::store::Call>> {
                Ok(sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "SELECT ", call_columns!(), " FROM calls WHERE lead_id = $1 ORDER BY id"
                ))
                .bind(lead_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn record_call_event(
                &self,
                carrier_sid: &str,
                event_type: &str,
                payload: &serde_json::Value,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query::<$db>(
                    "INSERT INTO call_events (carrier_sid, event_type, payload, received_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (carrier_sid, event_type) DO NOTHING",
                )
                .bind(carrier_sid)
                .bind(event_type)
                .bind(sqlx::types::Json(payload))
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_call_carrier(
                &self,
                call_id: i64,
                u: &$crate::store::CarrierUpdate,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Call> {
                // A final status is never replaced (webhooks arrive out of order).
                sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "UPDATE calls SET \
                     status = CASE WHEN status IN ('completed', 'failed', 'busy', 'no-answer', 'canceled') \
                              THEN status ELSE COALESCE($2, status) END, \
                     answered_by = COALESCE($3, answered_by), recording_url = COALESCE($4, recording_url), \
                     conversation_duration = COALESCE($5, conversation_duration), \
                     answered_at = COALESCE(answered_at, $6), ended_at = COALESCE(ended_at, $7), \
                     error = COALESCE($8, error), updated_at = $9 WHERE id = $1 RETURNING ",
                    call_columns!()
                ))
                .bind(call_id)
                .bind(u.status.map(|s| s.as_str()))
                .bind(&u.answered_by)
                .bind(&u.recording_url)
                .bind(u.conversation_duration)
                .bind(u.answered_at)
                .bind(u.ended_at)
                .bind(&u.error)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| $crate::store::StoreError::NotFound(format!("call {call_id} not found")))
            }

            async fn set_call_sid(&self, call_id: i64, carrier_sid: &str) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>("UPDATE calls SET carrier_sid = $2 WHERE id = $1 AND carrier_sid IS NULL")
                    .bind(call_id)
                    .bind(carrier_sid)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn update_lead(
                &self,
                lead_id: i64,
                u: &$crate::store::LeadUpdate,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>(
                    "UPDATE leads SET status = $2, next_attempt_at = $3, last_result = $4, \
                     outcome = COALESCE($5, outcome), callback_at = $6, \
                     attempts = attempts - $7, updated_at = $8 WHERE id = $1",
                )
                .bind(lead_id)
                .bind(u.status.as_str())
                .bind(u.next_attempt_at)
                .bind(&u.last_result)
                .bind(&u.outcome)
                .bind(u.callback_at)
                .bind(if u.refund_attempt { 1i32 } else { 0i32 })
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn record_call_outcome(
                &self,
                call_id: i64,
                intent: &str,
                qualification: &serde_json::Map<String, serde_json::Value>,
                summary: Option<&str>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                let done = sqlx::query::<$db>(
                    "UPDATE calls SET intent = $2, qualification = $3, summary = COALESCE($4, summary), \
                     updated_at = $5 WHERE id = $1",
                )
                .bind(call_id)
                .bind(intent)
                .bind(sqlx::types::Json(qualification))
                .bind(summary)
                .bind(now)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound(format!("call {call_id} not found")));
                }
                Ok(())
            }

            async fn set_lead_callback(
                &self,
                lead_id: i64,
                at: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>("UPDATE leads SET callback_at = $2, updated_at = $3 WHERE id = $1")
                    .bind(lead_id)
                    .bind(at)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn add_turn(
                &self,
                t: &$crate::store::TranscriptTurn,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO transcript_turns (call_id, seq, speaker, text, started_ms, ended_ms, \
                     interrupted, stt_ms, llm_first_token_ms, tts_first_byte_ms, voice_to_voice_ms, \
                     added_ms, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) \
                     ON CONFLICT (call_id, seq) DO UPDATE SET text = excluded.text, \
                     ended_ms = excluded.ended_ms, interrupted = excluded.interrupted",
                )
                .bind(t.call_id)
                .bind(t.seq)
                .bind(&t.speaker)
                .bind(&t.text)
                .bind(t.started_ms)
                .bind(t.ended_ms)
                .bind(t.interrupted)
                .bind(t.stt_ms)
                .bind(t.llm_first_token_ms)
                .bind(t.tts_first_byte_ms)
                .bind(t.voice_to_voice_ms)
                .bind(t.added_ms)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn turns_of_call(&self, call_id: i64) -> $crate::store::StoreResult<Vec<$crate::store::TranscriptTurn>> {
                Ok(sqlx::query_as::<$db, $crate::store::TranscriptTurn>(
                    "SELECT call_id, seq, speaker, text, started_ms, ended_ms, interrupted, stt_ms, \
                     llm_first_token_ms, tts_first_byte_ms, voice_to_voice_ms, added_ms \
                     FROM transcript_turns WHERE call_id = $1 ORDER BY seq",
                )
                .bind(call_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn find_lead_by_phone(&self, phone: &str) -> $crate::store::StoreResult<Option<$crate::store::Lead>> {
                Ok(sqlx::query_as::<$db, $crate::store::Lead>(concat!(
                    "SELECT ", lead_columns!(), " FROM leads WHERE phone = $1 ORDER BY updated_at DESC, id DESC LIMIT 1"
                ))
                .bind(phone)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn add_inbound_lead(
                &self,
                campaign_id: i64,
                phone: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Lead> {
                // The no-op update makes a conflict return the existing row.
                Ok(sqlx::query_as::<$db, $crate::store::Lead>(concat!(
                    "INSERT INTO leads (campaign_id, phone, attributes, status, attempts, \
                     next_attempt_at, qualification, created_at, updated_at) \
                     VALUES ($1, $2, '{}', 'pending', 0, $3, '{}', $3, $3) \
                     ON CONFLICT (phone, campaign_id) DO UPDATE SET updated_at = leads.updated_at \
                     RETURNING ", lead_columns!()
                ))
                .bind(campaign_id)
                .bind(phone)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn create_inbound_call(
                &self,
                phone: &str,
                campaign_id: i64,
                lead_id: i64,
                carrier_sid: Option<&str>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::Call> {
                Ok(sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "INSERT INTO calls (campaign_id, lead_id, attempt, direction, phone, status, carrier_sid, \
                     qualification, answered_at, created_at, updated_at) \
                     VALUES ($1, $2, 1, 'inbound', $3, 'in-progress', $4, '{}', $5, $5, $5) RETURNING ",
                    call_columns!()
                ))
                .bind(campaign_id)
                .bind(lead_id)
                .bind(phone)
                .bind(carrier_sid)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn stream_started(
                &self,
                call_id: i64,
                stream_sid: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>(
                    "UPDATE calls SET stream_sid = $2, answered_at = COALESCE(answered_at, $3), \
                     status = CASE WHEN status IN ('queued', 'dialing', 'ringing') THEN 'in-progress' ELSE status END, \
                     updated_at = $3 WHERE id = $1",
                )
                .bind(call_id)
                .bind(stream_sid)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn complete_finished_campaigns(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<i64>> {
                Ok(sqlx::query_scalar::<$db, i64>(
                    "UPDATE campaigns SET status = 'completed', status_reason = NULL, updated_at = $1 \
                     WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM leads \
                     WHERE leads.campaign_id = campaigns.id \
                     AND leads.status NOT IN ('completed', 'failed', 'do_not_call')) RETURNING id",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn campaign_gauges(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<(i64, i64)> {
                // EXISTS is one probe of the `leads_due` index per running campaign.
                Ok(sqlx::query_as::<$db, (i64, i64)>(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM leads \
                     WHERE leads.campaign_id = campaigns.id \
                     AND leads.status IN ('pending', 'retry', 'callback') \
                     AND leads.next_attempt_at <= $1) THEN 1 ELSE 0 END), 0) \
                     FROM campaigns WHERE status = 'running'",
                )
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn media_ended_active_calls(
                &self,
                ended_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Call>> {
                Ok(sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "SELECT ", call_columns!(), " FROM calls WHERE status IN ", active_call_statuses!(),
                    " AND media_ended_at < $1 ORDER BY id LIMIT 500"
                ))
                .bind(ended_before)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn stale_active_calls(
                &self,
                updated_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Call>> {
                Ok(sqlx::query_as::<$db, $crate::store::Call>(concat!(
                    "SELECT ", call_columns!(), " FROM calls WHERE status IN ", active_call_statuses!(),
                    " AND updated_at < $1 ORDER BY id LIMIT 500"
                ))
                .bind(updated_before)
                .fetch_all(&self.pool)
                .await?)
            }

            $($extra)*
        }
    };
}
