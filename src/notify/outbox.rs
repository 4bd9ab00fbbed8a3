//! Turns a finished call into one `call.completed` row of the outbox.
//!
//! A call is over when the carrier's status is final; its facts are complete when, if it had a
//! media stream, the stream and its post-call summary are done too (`media_ended_at`). The
//! carrier's webhook and the end of the stream race, and each settles the call and then calls
//! [`call_finished`]; each writes its own fact before reading the other's, so at least one sees
//! both and queues the complete event, due at once. A call that is over but whose stream has
//! not reported yet gets a provisional row due after [`MEDIA_GRACE`]: the complete one replaces
//! it, and if the stream never reports (its process died) the provisional one is sent, so no
//! call goes unreported. The unique `(call_id, event)` keeps it to one row.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::store::{CallStatus, LeadStatus, NewDelivery, Store, StoreError, StoreResult};

pub const CALL_COMPLETED: &str = "call.completed";

/// How long a call that is over waits for its media stream's summary before being reported
/// without it. The summary request has a 15 s deadline; the rest is margin.
pub const MEDIA_GRACE: chrono::Duration = chrono::Duration::minutes(2);

/// The body of `call.completed` (`transcript_url` is added when sending, from `OUR_BASE_URL`).
#[derive(Debug, Serialize)]
struct CallCompleted<'a> {
    event: &'static str,
    occurred_at: DateTime<Utc>,
    campaign_id: i64,
    call_id: i64,
    lead_id: Option<i64>,
    /// Masked: the operator has the full number in the lead (`GET /leads/{id}`).
    phone: String,
    direction: &'a str,
    attempt: i32,
    /// The carrier's final status (`completed`, `no-answer`, `busy`, `failed`, `canceled`).
    status: CallStatus,
    answered_by: Option<&'a str>,
    /// What the conversation concluded (`interested`, `callback`, …), if there was one.
    intent: Option<&'a str>,
    /// The lead's settled outcome and state after this call.
    outcome: Option<&'a str>,
    lead_status: Option<LeadStatus>,
    qualification: &'a Map<String, Value>,
    summary: Option<&'a str>,
    duration_secs: Option<i32>,
    recording_url: Option<&'a str>,
    dialed_at: Option<DateTime<Utc>>,
    answered_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
}

/// Queues `call.completed` for `call_id` if its campaign has a `webhook_url` and the call is
/// over (provisionally while its stream's summary is pending); `true` when a row was written.
pub async fn call_finished(
    store: &dyn Store,
    call_id: i64,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let call = store.get_call(call_id).await?;
    if call.status.is_active() {
        return Ok(false);
    }
    let Some(campaign_id) = call.campaign_id else {
        return Ok(false);
    };
    let campaign = store.get_campaign(campaign_id).await?;
    let Some(url) = campaign.spec.webhook_url.clone() else {
        return Ok(false);
    };
    let complete = call.stream_sid.is_none() || store.media_ended_at(call_id).await?.is_some();
    let due_at = if complete { now } else { now + MEDIA_GRACE };
    let lead = match call.lead_id {
        Some(id) => Some(store.get_lead(id).await?),
        None => None,
    };
    let body = CallCompleted {
        event: CALL_COMPLETED,
        occurred_at: now,
        campaign_id,
        call_id,
        lead_id: call.lead_id,
        phone: crate::phone::mask(&call.phone),
        direction: &call.direction,
        attempt: call.attempt,
        status: call.status,
        answered_by: call.answered_by.as_deref(),
        intent: call.intent.as_deref(),
        outcome: lead.as_ref().and_then(|l| l.outcome.as_deref()),
        lead_status: lead.as_ref().map(|l| l.status),
        qualification: &call.qualification,
        summary: call.summary.as_deref(),
        duration_secs: call.conversation_duration,
        recording_url: call.recording_url.as_deref(),
        dialed_at: call.dialed_at,
        answered_at: call.answered_at,
        ended_at: call.ended_at,
    };
    // Through `Value`, so keys are sorted: the body re-rendered for a retry is byte-identical.
    let payload = serde_json::to_value(&body)
        .map(|v| v.to_string())
        .map_err(|e| StoreError::Corrupt(format!("call {call_id} payload: {e}")))?;
    let queued = store
        .enqueue_webhook(
            &NewDelivery {
                campaign_id,
                call_id,
                event: CALL_COMPLETED.into(),
                url,
                payload,
            },
            due_at,
            now,
        )
        .await?;
    if queued {
        tracing::info!(
            call_id,
            campaign_id,
            complete,
            "call.completed webhook queued"
        );
    }
    Ok(queued)
}
