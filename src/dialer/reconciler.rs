//! Settles calls whose status webhook never came (webhooks can be lost), and calls orphaned by
//! a crash, through Exotel's call-details API. No call stays active forever; no slot leaks.
//!
//! Two passes, on the schedule [`Schedule`] keeps:
//! - **after the media stream** (`RECONCILE_AFTER_MEDIA_SECS`, 60 s; checked every quarter of
//!   it): a call whose stream and post-call summary are over but whose carrier status is not
//!   final holds a concurrency slot for nothing. The summary has a 15 s deadline, so a call's
//!   slot is free at most about 15 + 60 + 15 = 90 s after the caller hung up.
//! - **the sweep** (`RECONCILE_AFTER_SECS`, 900 s; every minute at most): any active call with no
//!   news for that long, including calls that never streamed (unanswered, or a stream that
//!   never opened) and claims never placed.
//!
//! Each call-details request takes a slot of the account's shared request rate, like a dial.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::time::Instant;

use super::rate::DialRate;
use super::settle::settle_call;
use crate::metrics::Metrics;
use crate::providers::exotel::{ExotelClient, ExotelError};
use crate::store::{Call, CallStatus, CarrierUpdate, Store, StoreResult};

/// A claimed call with no carrier id older than this was never placed (the process died
/// between claiming and dialling).
pub const QUEUED_GRACE: Duration = Duration::seconds(30);

/// How far ahead a call-details request may wait for its slot.
const DETAILS_HORIZON: StdDuration = StdDuration::from_secs(5);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileOutcome {
    pub checked: u64,
    pub settled: u64,
    pub released: u64,
    pub errors: u64,
}

/// What the reconciler works with.
pub struct Reconciler<'a> {
    pub store: &'a dyn Store,
    pub exotel: Option<&'a ExotelClient>,
    pub metrics: &'a Metrics,
    /// `None`: requests are not paced (tests of the settle rules alone).
    pub rate: Option<&'a Arc<DialRate>>,
}

impl Reconciler<'_> {
    /// The sweep: active calls untouched for `older_than`.
    pub async fn sweep(
        &self,
        now: DateTime<Utc>,
        older_than: Duration,
    ) -> StoreResult<ReconcileOutcome> {
        let calls = self.store.stale_active_calls(now - older_than).await?;
        self.check(calls, now).await
    }

    /// Active calls whose media stream ended more than `after` ago.
    pub async fn after_media(
        &self,
        now: DateTime<Utc>,
        after: Duration,
    ) -> StoreResult<ReconcileOutcome> {
        let calls = self.store.media_ended_active_calls(now - after).await?;
        self.check(calls, now).await
    }

    async fn check(&self, calls: Vec<Call>, now: DateTime<Utc>) -> StoreResult<ReconcileOutcome> {
        let mut out = ReconcileOutcome::default();
        let started = Instant::now();
        for call in calls {
            out.checked += 1;
            let Some(sid) = call.carrier_sid.clone() else {
                if call.status == CallStatus::Queued && call.updated_at < now - QUEUED_GRACE {
                    self.store
                        .release_claim(
                            call.id,
                            "not placed: the service stopped while dialling",
                            now,
                            now,
                        )
                        .await?;
                    out.released += 1;
                }
                continue;
            };
            let Some(exotel) = self.exotel else { continue };
            if !self.wait_for_slot(now, started).await {
                // The account's requests are spoken for (or held): the next pass goes on.
                break;
            }
            let update = match exotel.call_details(&sid).await {
                Ok(d) => {
                    let Some(status) = terminal_status(&d.status) else {
                        continue;
                    };
                    CarrierUpdate {
                        status: Some(status),
                        answered_by: d.answered_by,
                        recording_url: d.recording_url,
                        conversation_duration: d.duration,
                        answered_at: None,
                        ended_at: d.end_time.or(Some(now)),
                        error: None,
                    }
                }
                Err(ExotelError::UnknownCall(_)) => CarrierUpdate {
                    status: Some(CallStatus::Failed),
                    ended_at: Some(now),
                    error: Some("unknown to the carrier".into()),
                    ..Default::default()
                },
                Err(e) => {
                    self.metrics.providers.exotel_error(&e);
                    tracing::warn!(call_id = call.id, error = %e, "cannot reconcile call");
                    out.errors += 1;
                    continue;
                }
            };
            let updated = self
                .store
                .update_call_carrier(call.id, &update, now)
                .await?;
            self.metrics.calls.ended(call.status, updated.status);
            settle_call(self.store, call.id, now).await?;
            tracing::info!(call_id = call.id, status = ?updated.status, "settled through call details");
            out.settled += 1;
        }
        Ok(out)
    }

    /// Takes one request slot and waits for it; `false` when none is free soon.
    async fn wait_for_slot(&self, now: DateTime<Utc>, started: Instant) -> bool {
        let Some(rate) = self.rate else { return true };
        // `now` is the pass's instant; the pass has been running since `started`.
        let at = now + Duration::from_std(started.elapsed()).unwrap_or_default();
        match rate.reserve(at, 1, DETAILS_HORIZON).await {
            Ok(r) if r.count() == 1 => {
                if let Ok(wait) = (r.slot(0) - at).to_std() {
                    tokio::time::sleep(wait).await;
                }
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "rate bucket unavailable: call details wait");
                false
            }
        }
    }
}

/// Checks active calls untouched for `older_than`, unpaced (the sweep as one call).
pub async fn reconcile_once(
    store: &dyn Store,
    exotel: Option<&ExotelClient>,
    metrics: &Metrics,
    now: DateTime<Utc>,
    older_than: Duration,
) -> StoreResult<ReconcileOutcome> {
    let r = Reconciler {
        store,
        exotel,
        metrics,
        rate: None,
    };
    r.sweep(now, older_than).await
}

/// Which passes are due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Due {
    pub after_media: bool,
    pub sweep: bool,
}

/// When each pass runs: the after-media pass every quarter of `RECONCILE_AFTER_MEDIA_SECS`,
/// the sweep every minute (or every `RECONCILE_AFTER_SECS`, when shorter).
#[derive(Debug)]
pub struct Schedule {
    media_every: StdDuration,
    sweep_every: StdDuration,
    last_media: Instant,
    last_sweep: Instant,
}

impl Schedule {
    pub fn new(after_media: StdDuration, sweep_after: StdDuration, now: Instant) -> Self {
        Self {
            media_every: (after_media / 4).max(StdDuration::from_millis(100)),
            sweep_every: StdDuration::from_secs(60).min(sweep_after),
            last_media: now,
            last_sweep: now,
        }
    }

    /// The passes due at `now` (each counted as run).
    pub fn due(&mut self, now: Instant) -> Due {
        let mut due = Due::default();
        if now.duration_since(self.last_media) >= self.media_every {
            self.last_media = now;
            due.after_media = true;
        }
        if now.duration_since(self.last_sweep) >= self.sweep_every {
            self.last_sweep = now;
            due.sweep = true;
        }
        due
    }
}

/// Exotel's final states; `None` for a call still going on.
pub fn terminal_status(status: &str) -> Option<CallStatus> {
    match status.trim().to_ascii_lowercase().as_str() {
        "completed" => Some(CallStatus::Completed),
        "failed" => Some(CallStatus::Failed),
        "busy" => Some(CallStatus::Busy),
        "no-answer" | "no_answer" | "noanswer" => Some(CallStatus::NoAnswer),
        "canceled" | "cancelled" => Some(CallStatus::Canceled),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop as `Dialer::run` drives it: a tick a second, the passes the schedule says.
    /// Returns when the after-media pass first runs at or after `ready` (the instant the call
    /// became old enough to be picked).
    async fn first_media_pass_after(schedule: &mut Schedule, ready: Instant) -> Instant {
        loop {
            tokio::time::sleep(StdDuration::from_secs(1)).await;
            let now = Instant::now();
            if schedule.due(now).after_media && now >= ready {
                return now;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_whose_stream_ended_is_checked_within_75_s_not_900() {
        let start = Instant::now();
        let mut schedule = Schedule::new(
            StdDuration::from_secs(60),
            StdDuration::from_secs(900),
            start,
        );
        // The media stream (and its summary) ends 7 s in; the carrier's webhook is lost.
        let media_ended = start + StdDuration::from_secs(7);
        let ready = media_ended + StdDuration::from_secs(60);
        let checked = first_media_pass_after(&mut schedule, ready).await;
        let held = checked - media_ended;
        assert!(held >= StdDuration::from_secs(60), "{held:?}");
        assert!(held <= StdDuration::from_secs(75), "{held:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_still_runs_every_minute_and_the_media_pass_every_15_s() {
        let start = Instant::now();
        let mut schedule = Schedule::new(
            StdDuration::from_secs(60),
            StdDuration::from_secs(900),
            start,
        );
        let (mut media, mut sweeps) = (0, 0);
        for _ in 0..180 {
            tokio::time::sleep(StdDuration::from_secs(1)).await;
            let due = schedule.due(Instant::now());
            media += due.after_media as u32;
            sweeps += due.sweep as u32;
        }
        assert_eq!((media, sweeps), (12, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn short_thresholds_give_short_periods() {
        let start = Instant::now();
        let mut schedule =
            Schedule::new(StdDuration::from_secs(2), StdDuration::from_secs(30), start);
        tokio::time::sleep(StdDuration::from_millis(500)).await;
        assert!(schedule.due(Instant::now()).after_media);
        tokio::time::sleep(StdDuration::from_secs(30)).await;
        assert_eq!(
            schedule.due(Instant::now()),
            Due {
                after_media: true,
                sweep: true
            }
        );
    }
}
