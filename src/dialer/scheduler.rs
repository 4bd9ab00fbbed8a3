//! The scheduler: each tick it claims the due leads of running campaigns (inside their calling
//! windows, under the caps, paced below the carrier's rate limit) and places the calls.
//!
//! Written as `run_once(now) -> Outcome` plus a thin loop, so tests drive it with any clock.
//! The caps are counted in the database inside the claim, so they hold across instances.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::rate::{DialRate, Reservation};
use super::reconciler::{ReconcileOutcome, Reconciler, Schedule};
use super::settle::settle_call;
use super::window::{Check, Window};
use crate::config::Settings;
use crate::phone::E164;
use crate::providers::exotel::{ConnectRequest, ExotelClient, ExotelError};
use crate::store::bucket::BucketError;
use crate::store::{
    CallStatus, CampaignStatus, CarrierUpdate, ClaimRequest, Claimed, LeadStatus, LeadUpdate,
    Store, StoreError, StoreResult,
};

/// A campaign's reserved slots and the tick's instant, on the service clock and the runtime's.
struct Paced {
    slots: Reservation,
    now: DateTime<Utc>,
    started: tokio::time::Instant,
}

/// Why an attempt was not answered by the carrier.
enum NotPlaced {
    Sent(ExotelError),
    /// Not sent: the account is held until then (a 429 seen by any instance).
    Held(DateTime<Utc>),
}
use NotPlaced::{Held, Sent};

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub claimed: u64,
    pub dialed: u64,
    /// Leads outside their window, moved to its next opening.
    pub deferred: u64,
    pub do_not_call: u64,
    /// Claims given back without consuming an attempt (rate limit, carrier down, bad config).
    pub released: u64,
    /// Attempts that failed at the carrier (number refused, timeout).
    pub failed: u64,
    pub paused_campaigns: Vec<i64>,
    pub completed_campaigns: Vec<i64>,
}

/// Why a tick failed.
#[derive(Debug, thiserror::Error)]
pub enum DialerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rate(#[from] BucketError),
}

pub struct Dialer {
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    /// `Err` names the missing setting; running campaigns are paused with it.
    exotel: Result<ExotelClient, String>,
    /// The carrier account's request slots, shared with every instance.
    rate: Arc<DialRate>,
    clock: crate::clock::Clock,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Dialer {
    pub fn new(state: &crate::startup::AppState) -> Self {
        let store = state.store.clone();
        let settings = state.settings.clone();
        let exotel = ExotelClient::from_settings(
            state.http.clone(),
            &settings.exotel,
            settings.dialer.direct_stream,
        );
        Self {
            store,
            settings,
            exotel,
            rate: state.dial_rate.clone(),
            clock: state.clock.clone(),
            metrics: state.metrics.clone(),
        }
    }

    fn status_callback_url(&self) -> String {
        format!(
            "{}/webhooks/exotel/status?secret={}",
            self.settings.our_base_url,
            self.settings.webhook_secret.expose()
        )
    }

    fn media_url(&self, call_id: i64) -> String {
        let base = self.settings.our_base_url.replacen("http", "ws", 1);
        format!(
            "{base}/media?call_id={call_id}&secret={}",
            self.settings.webhook_secret.expose()
        )
    }

    /// Times one database operation (`voice_agent_db_query_duration_seconds{op}`).
    async fn db<T>(&self, op: &'static str, query: impl Future<Output = T>) -> T {
        self.metrics.db.time(op, query).await
    }

    /// One tick at `now`: for each running campaign, reserve the carrier's request slots of
    /// the next tick period, claim that many due leads, give back the slots not needed, and
    /// place each call at its slot.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Outcome, DialerError> {
        // `now` may be any instant (tests); slots are waited for relative to it.
        let started = tokio::time::Instant::now();
        let mut out = Outcome::default();
        let horizon = self.settings.dialer.tick;
        let (running, due) = self
            .db("campaign_gauges", self.store.campaign_gauges(now))
            .await?;
        self.metrics.dialer.campaigns_running.set(running);
        self.metrics.dialer.campaigns_due.set(due);
        let campaigns = self
            .db("running_campaigns", self.store.running_campaigns())
            .await?;
        for campaign in campaigns {
            let exotel = match &self.exotel {
                Ok(c) => c,
                Err(why) => {
                    let reason = format!("cannot dial: Exotel is not configured ({why})");
                    self.pause(campaign.id, &reason, now, &mut out).await?;
                    continue;
                }
            };
            let want = self.rate.per_horizon(horizon);
            let slots = self.rate.reserve(now, want, horizon).await?;
            if slots.count() == 0 {
                break;
            }
            let spec = campaign.spec.clone();
            let window = move |lead: &crate::store::Lead| match Window::for_lead(
                &spec.calling_window,
                &spec.timezone,
                lead.timezone.as_deref(),
            )
            .check(now)
            {
                Check::Open => Ok(()),
                Check::OpensAt(t) => Err(t),
                Check::Never => Err(now + Duration::days(1)),
            };
            let request = ClaimRequest {
                campaign_id: campaign.id,
                now,
                campaign_cap: campaign.spec.max_concurrent_calls as i64,
                global_cap: self.settings.max_concurrent_calls as i64,
                limit: slots.count() as i64,
            };
            let claim_started = std::time::Instant::now();
            let claim = self.store.claim_leads(&request, &window).await;
            let took = claim_started.elapsed();
            self.metrics
                .dialer
                .claim_duration
                .observe(took.as_secs_f64());
            self.metrics.db.observe("claim_leads", took);
            let claim = claim?;
            self.rate
                .give_back(&slots, claim.claimed.len() as u32)
                .await?;
            out.claimed += claim.claimed.len() as u64;
            out.deferred += claim.deferred;
            out.do_not_call += claim.do_not_call;
            let paced = Paced {
                slots,
                now,
                started,
            };
            self.dial_all(exotel, campaign.id, claim.claimed, &paced, &mut out)
                .await?;
        }
        out.completed_campaigns = self
            .db(
                "complete_finished_campaigns",
                self.store.complete_finished_campaigns(now),
            )
            .await?;
        for id in &out.completed_campaigns {
            tracing::info!(campaign_id = id, "campaign completed: every lead is final");
        }
        Ok(out)
    }

    /// Waits for the `i`-th slot; `Some(hold)` when the carrier asked (through any instance)
    /// to wait past it, so the request must not be sent.
    async fn wait_for_slot(
        &self,
        paced: &Paced,
        i: u32,
    ) -> Result<Option<DateTime<Utc>>, BucketError> {
        let slot = paced.slots.slot(i);
        let Ok(wait) = (slot - paced.now).to_std() else {
            return Ok(None);
        };
        if wait.is_zero() {
            return Ok(None);
        }
        tokio::time::sleep_until(paced.started + wait).await;
        self.rate.held_at(slot).await
    }

    async fn dial_all(
        &self,
        exotel: &ExotelClient,
        campaign_id: i64,
        claimed: Vec<Claimed>,
        paced: &Paced,
        out: &mut Outcome,
    ) -> StoreResult<()> {
        let now = paced.now;
        let callback = self.status_callback_url();
        let attempts = claimed.iter().zip(0..).map(|(c, i)| {
            let callback = callback.clone();
            async move {
                match self.wait_for_slot(paced, i).await {
                    Ok(None) => {}
                    Ok(Some(until)) => return (c, Err(Held(until))),
                    // The slot is ours either way; only the hold could not be read.
                    Err(e) => tracing::warn!(error = %e, "cannot read the carrier's hold"),
                }
                let result = match E164::parse(&c.lead.phone) {
                    Ok(to) => {
                        let req = ConnectRequest {
                            to: &to,
                            custom_field: c.call_id.to_string(),
                            status_callback: callback,
                            stream_url: Some(self.media_url(c.call_id)),
                            time_limit_secs: self.settings.dialer.time_limit_secs,
                            ring_timeout_secs: self.settings.dialer.ring_timeout_secs,
                            record: self.settings.dialer.record,
                        };
                        exotel.connect(&req).await
                    }
                    Err(e) => Err(ExotelError::Rejected {
                        message: e.to_string(),
                    }),
                };
                (c, result.map_err(Sent))
            }
        });
        let mut paused = false;
        for (claimed, result) in join_all(attempts).await {
            let call_id = claimed.call_id;
            let masked = crate::phone::mask(&claimed.lead.phone);
            let result = match result {
                Ok(sid) => Ok(sid),
                Err(Sent(e)) => {
                    self.metrics.providers.exotel_error(&e);
                    Err(e)
                }
                Err(Held(until)) => {
                    let release =
                        self.store
                            .release_claim(call_id, "carrier rate limit", until, now);
                    self.db("release_claim", release).await?;
                    out.released += 1;
                    continue;
                }
            };
            match result {
                Ok(sid) => {
                    self.db("mark_dialing", self.store.mark_dialing(call_id, &sid, now))
                        .await?;
                    tracing::info!(call_id, campaign_id, phone = %masked, attempt = claimed.lead.attempts, "call placed");
                    self.metrics.dialer.calls_placed.inc();
                    out.dialed += 1;
                }
                Err(ExotelError::Config { status, message }) => {
                    let reason = format!("Exotel refused the account ({status}): {message}");
                    let release = self.store.release_claim(call_id, &reason, now, now);
                    self.db("release_claim", release).await?;
                    out.released += 1;
                    if !paused {
                        self.pause(campaign_id, &reason, now, out).await?;
                        paused = true;
                    }
                }
                Err(ExotelError::RateLimited { retry_after }) => {
                    let wait = retry_after
                        .and_then(|d| Duration::from_std(d).ok())
                        .unwrap_or(Duration::seconds(30));
                    // Every instance waits: the limit is the account's.
                    if let Err(e) = self.rate.hold(now + wait).await {
                        tracing::error!(error = %e, "cannot share the carrier's Retry-After");
                    }
                    let release =
                        self.store
                            .release_claim(call_id, "carrier rate limit", now + wait, now);
                    self.db("release_claim", release).await?;
                    tracing::warn!(
                        call_id,
                        wait_secs = wait.num_seconds(),
                        "Exotel rate limit: backing off"
                    );
                    out.released += 1;
                }
                Err(e @ (ExotelError::Server { .. } | ExotelError::Network(_))) => {
                    // The carrier did not take the call: try again later, attempt not consumed.
                    let (reason, retry_at) = (e.to_string(), now + Duration::seconds(60));
                    let release = self.store.release_claim(call_id, &reason, retry_at, now);
                    self.db("release_claim", release).await?;
                    tracing::warn!(call_id, error = %e, "carrier unavailable: will retry");
                    out.released += 1;
                }
                Err(ExotelError::Rejected { message }) => {
                    let update = CarrierUpdate {
                        status: Some(CallStatus::Failed),
                        ended_at: Some(now),
                        error: Some(message.clone()),
                        ..Default::default()
                    };
                    let failed = self
                        .db(
                            "update_call_carrier",
                            self.store.update_call_carrier(call_id, &update, now),
                        )
                        .await?;
                    self.metrics.calls.ended(CallStatus::Queued, failed.status);
                    let lead_update = LeadUpdate {
                        status: LeadStatus::Failed,
                        next_attempt_at: None,
                        last_result: Some(format!("rejected by carrier: {message}")),
                        outcome: None,
                        callback_at: None,
                        refund_attempt: false,
                    };
                    let update = self.store.update_lead(claimed.lead.id, &lead_update, now);
                    self.db("update_lead", update).await?;
                    tracing::warn!(call_id, phone = %masked, "carrier refused the number");
                    out.failed += 1;
                }
                Err(e) => {
                    // Timeout or unreadable answer: the call may or may not exist, so the
                    // attempt counts; the reconciler and webhooks can still correct it.
                    let update = CarrierUpdate {
                        status: Some(CallStatus::Failed),
                        ended_at: Some(now),
                        error: Some(e.to_string()),
                        ..Default::default()
                    };
                    let failed = self
                        .db(
                            "update_call_carrier",
                            self.store.update_call_carrier(call_id, &update, now),
                        )
                        .await?;
                    self.metrics.calls.ended(CallStatus::Queued, failed.status);
                    settle_call(self.store.as_ref(), call_id, now).await?;
                    tracing::warn!(call_id, error = %e, "dial failed");
                    out.failed += 1;
                }
            }
        }
        Ok(())
    }

    async fn pause(
        &self,
        campaign_id: i64,
        reason: &str,
        now: DateTime<Utc>,
        out: &mut Outcome,
    ) -> StoreResult<()> {
        let paused = self
            .store
            .transition_campaign(
                campaign_id,
                &[CampaignStatus::Running],
                CampaignStatus::Paused,
                Some(reason),
                now,
            )
            .await;
        if paused.is_ok() {
            tracing::error!(campaign_id, reason, "campaign paused");
            out.paused_campaigns.push(campaign_id);
        }
        Ok(())
    }

    fn reconciler(&self) -> Reconciler<'_> {
        Reconciler {
            store: self.store.as_ref(),
            exotel: self.exotel.as_ref().ok(),
            metrics: &self.metrics,
            rate: Some(&self.rate),
        }
    }

    /// Settles stale calls through the carrier's call-details API (the sweep).
    pub async fn reconcile(
        &self,
        now: DateTime<Utc>,
        older_than: Duration,
    ) -> StoreResult<ReconcileOutcome> {
        self.reconciler().sweep(now, older_than).await
    }

    /// Settles calls whose media stream ended over `RECONCILE_AFTER_MEDIA_SECS` ago while the
    /// carrier's final status has not come.
    pub async fn reconcile_ended(&self, now: DateTime<Utc>) -> StoreResult<ReconcileOutcome> {
        let after = Duration::from_std(self.settings.dialer.reconcile_after_media)
            .unwrap_or(Duration::minutes(1));
        self.reconciler().after_media(now, after).await
    }

    /// Ticks until `shutdown`; settles orphans at start and stale calls periodically.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let older = Duration::from_std(self.settings.dialer.reconcile_after)
            .unwrap_or(Duration::minutes(15));
        match self.reconcile(self.clock.now(), Duration::zero()).await {
            Ok(r) if r.checked > 0 => {
                tracing::info!(?r, "settled calls left from before the start")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "start-up reconciliation failed"),
        }
        let mut tick = tokio::time::interval(self.settings.dialer.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut schedule = Schedule::new(
            self.settings.dialer.reconcile_after_media,
            self.settings.dialer.reconcile_after,
            tokio::time::Instant::now(),
        );
        loop {
            let scheduled = tokio::select! {
                _ = shutdown.cancelled() => break,
                at = tick.tick() => at,
            };
            let lag = tokio::time::Instant::now().saturating_duration_since(scheduled);
            self.metrics.dialer.tick_lag.observe(lag.as_secs_f64());
            if let Err(e) = self.run_once(self.clock.now()).await {
                tracing::error!(error = %e, "dialer tick failed");
            }
            let due = schedule.due(tokio::time::Instant::now());
            if due.after_media
                && let Err(e) = self.reconcile_ended(self.clock.now()).await
            {
                tracing::error!(error = %e, "reconciliation after media failed");
            }
            if due.sweep
                && let Err(e) = self.reconcile(self.clock.now(), older).await
            {
                tracing::error!(error = %e, "reconciliation failed");
            }
        }
        tracing::info!("dialer stopped");
    }
}
