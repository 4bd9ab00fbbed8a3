//! Settles calls whose status webhook never came (webhooks can be lost), and calls orphaned by
//! a crash, through Exotel's call-details API. No call stays active forever; no slot leaks.

use chrono::{DateTime, Duration, Utc};

use super::settle::settle_call;
use crate::metrics::Metrics;
use crate::providers::exotel::{ExotelClient, ExotelError};
use crate::store::{CallStatus, CarrierUpdate, Store, StoreResult};

/// A claimed call with no carrier id older than this was never placed (the process died
/// between claiming and dialling).
pub const QUEUED_GRACE: Duration = Duration::seconds(30);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileOutcome {
    pub checked: u64,
    pub settled: u64,
    pub released: u64,
    pub errors: u64,
}

/// Checks active calls untouched for `older_than`.
pub async fn reconcile_once(
    store: &dyn Store,
    exotel: Option<&ExotelClient>,
    metrics: &Metrics,
    now: DateTime<Utc>,
    older_than: Duration,
) -> StoreResult<ReconcileOutcome> {
    let mut out = ReconcileOutcome::default();
    for call in store.stale_active_calls(now - older_than).await? {
        out.checked += 1;
        let Some(sid) = call.carrier_sid.clone() else {
            if call.status == CallStatus::Queued && call.updated_at < now - QUEUED_GRACE {
                store
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
        let Some(exotel) = exotel else { continue };
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
                metrics.providers.exotel_error(&e);
                tracing::warn!(call_id = call.id, error = %e, "cannot reconcile call");
                out.errors += 1;
                continue;
            }
        };
        let updated = store.update_call_carrier(call.id, &update, now).await?;
        metrics.calls.ended(call.status, updated.status);
        settle_call(store, call.id, now).await?;
        out.settled += 1;
    }
    Ok(out)
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
