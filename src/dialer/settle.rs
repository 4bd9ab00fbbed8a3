//! What a finished call means for its lead: the conversation's outcome when there is one
//! (it always wins over the carrier's view), otherwise the carrier's status, with retries per
//! outcome until `max_attempts`. Called by the status webhook, the reconciler and, at the end of
//! a live call, the call pipeline — idempotent, so whichever comes first and last agree.

use chrono::{DateTime, Duration, Utc};

use super::window::Window;
use crate::store::{Call, CallStatus, Campaign, Lead, LeadStatus, LeadUpdate, Store, StoreResult};

/// The lead's new state after `call`, or `None` while the call is still active.
pub fn decide(
    call: &Call,
    lead: &Lead,
    campaign: &Campaign,
    now: DateTime<Utc>,
) -> Option<LeadUpdate> {
    if call.status.is_active() {
        return None;
    }
    let done = |status: LeadStatus, result: &str, outcome: Option<&str>| LeadUpdate {
        status,
        next_attempt_at: None,
        last_result: Some(result.to_string()),
        outcome: outcome.map(str::to_string),
        callback_at: None,
        refund_attempt: false,
    };
    match call.intent.as_deref() {
        Some("do_not_call") => {
            return Some(done(
                LeadStatus::DoNotCall,
                "do_not_call",
                Some("do_not_call"),
            ));
        }
        Some("callback") => {
            let asked = lead
                .callback_at
                .unwrap_or(now + Duration::hours(1))
                .max(now);
            let window = Window::for_lead(
                &campaign.spec.calling_window,
                &campaign.spec.timezone,
                lead.timezone.as_deref(),
            );
            let at = window.first_open_at_or_after(asked).unwrap_or(asked);
            return Some(LeadUpdate {
                status: LeadStatus::Callback,
                next_attempt_at: Some(at),
                last_result: Some("callback".into()),
                outcome: Some("callback".into()),
                callback_at: Some(asked),
                // A callback the lead asked for is not a failed attempt.
                refund_attempt: true,
            });
        }
        Some(intent) => return Some(done(LeadStatus::Completed, intent, Some(intent))),
        None => {}
    }
    let machine = call
        .answered_by
        .as_deref()
        .is_some_and(|a| a.eq_ignore_ascii_case("machine"));
    let (kind, delays) = match call.status {
        CallStatus::Completed if !machine => {
            return Some(done(LeadStatus::Completed, "answered", None));
        }
        CallStatus::Completed => ("voicemail", &campaign.spec.retry_delays.no_answer),
        CallStatus::NoAnswer => ("no-answer", &campaign.spec.retry_delays.no_answer),
        CallStatus::Busy => ("busy", &campaign.spec.retry_delays.busy),
        _ => ("failed", &campaign.spec.retry_delays.failed),
    };
    if lead.attempts >= campaign.spec.max_attempts {
        return Some(done(LeadStatus::Failed, kind, None));
    }
    let index = (lead.attempts.max(1) as usize - 1).min(delays.len().saturating_sub(1));
    let minutes = delays.get(index).copied().unwrap_or(30);
    Some(LeadUpdate {
        status: LeadStatus::Retry,
        next_attempt_at: Some(now + Duration::minutes(minutes as i64)),
        last_result: Some(kind.to_string()),
        outcome: None,
        callback_at: lead.callback_at,
        refund_attempt: false,
    })
}

/// Applies a finished call to its lead (and the do-not-call list), then lets the operator's
/// webhook hear of it (queued only once the call is wholly finished). Returns the update made.
pub async fn settle_call(
    store: &dyn Store,
    call_id: i64,
    now: DateTime<Utc>,
) -> StoreResult<Option<LeadUpdate>> {
    let update = settle_lead(store, call_id, now).await?;
    // A failure here must not undo the settlement (the carrier would retry a webhook already
    // recorded as seen): logged, like other writes after the fact.
    if let Err(e) = crate::notify::call_finished(store, call_id, now).await {
        tracing::error!(call_id, error = %e, "cannot queue the call.completed webhook");
    }
    Ok(update)
}

async fn settle_lead(
    store: &dyn Store,
    call_id: i64,
    now: DateTime<Utc>,
) -> StoreResult<Option<LeadUpdate>> {
    let call = store.get_call(call_id).await?;
    let Some(lead_id) = call.lead_id else {
        return Ok(None);
    };
    let lead = store.get_lead(lead_id).await?;
    // Only the lead's latest attempt decides its state.
    let latest = store.calls_of_lead(lead_id).await?.last().map(|c| c.id);
    if latest != Some(call.id) {
        return Ok(None);
    }
    // First settlement, or the conversation's outcome arriving after the carrier's. An
    // inbound call never claimed its lead (it stays waiting while the caller talks to us), so
    // its end settles a waiting lead too.
    let applies = lead.status == LeadStatus::InProgress
        || (call.direction == "inbound"
            && matches!(
                lead.status,
                LeadStatus::Pending | LeadStatus::Retry | LeadStatus::Callback
            ))
        || (call.intent.is_some()
            && lead.outcome.is_none()
            && lead.status != LeadStatus::DoNotCall);
    if !applies {
        return Ok(None);
    }
    let campaign = store.get_campaign(lead.campaign_id).await?;
    let Some(update) = decide(&call, &lead, &campaign, now) else {
        return Ok(None);
    };
    if update.status == LeadStatus::DoNotCall {
        store
            .add_dnc(&lead.phone, Some("asked during a call"), "call", now)
            .await?;
    }
    store.update_lead(lead_id, &update, now).await?;
    Ok(Some(update))
}
