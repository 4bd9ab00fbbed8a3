//! Exotel's status webhook: auth, body encodings, idempotency, and what it does to leads.

use serde_json::{Map, Value, json};

use crate::dialer::{Rig, ist, leads, rig, silent};
use crate::helpers::{Backend, error_code};

crate::on_each_backend!(
    webhook_needs_the_secret,
    json_urlencoded_and_multipart_bodies_are_all_understood,
    same_event_twice_changes_nothing_the_second_time,
    unknown_calls_are_acknowledged_and_ignored,
    conversation_outcome_is_never_overwritten_by_the_carrier,
    do_not_call_said_in_a_call_is_honoured_forever,
    callback_is_dialled_at_the_asked_time_moved_into_the_window,
);

/// A running campaign with one dialled lead; returns (campaign, call id, carrier sid, url).
async fn dialled(rig: &Rig, body: Value) -> (i64, i64, String, String) {
    crate::dialer::dialled(rig, body, "phone\n9876543210\n").await
}

/// The conversation's outcome, recorded as the media task does at the end of a call.
async fn record_outcome(
    rig: &Rig,
    call_id: i64,
    intent: &str,
    qualification: &Map<String, Value>,
    summary: Option<&str>,
) {
    rig.app
        .state
        .store
        .record_call_outcome(
            call_id,
            intent,
            qualification,
            summary,
            rig.app.state.clock.now(),
        )
        .await
        .unwrap();
}

/// The carrier's final `completed` status for `sid`.
async fn completed(rig: &Rig, url: &str, sid: &str) {
    rig.app
        .post_json(
            url,
            json!({"CallSid": sid, "Status": "completed", "EventType": "terminal"}),
        )
        .await;
}

async fn webhook_needs_the_secret(backend: Backend) {
    let Some(rig) = rig(backend, silent(), |_| {}).await else {
        return;
    };
    let (_, _, sid, _) = dialled(&rig, json!({"name": "Secret"})).await;
    for path in [
        "/webhooks/exotel/status",
        "/webhooks/exotel/status?secret=wrong",
    ] {
        let res = rig
            .app
            .post_json(path, json!({"CallSid": sid, "Status": "completed"}))
            .await;
        assert_eq!(res.status(), 401);
        assert_eq!(error_code(res).await, "unauthorized");
    }
    assert_eq!(
        rig.app.state.store.count_active_calls(None).await.unwrap(),
        1
    );
}

async fn json_urlencoded_and_multipart_bodies_are_all_understood(backend: Backend) {
    let Some(rig) = rig(backend, silent(), |_| {}).await else {
        return;
    };
    let (_, call_id, sid, url) = dialled(&rig, json!({"name": "Bodies"})).await;
    // answered, as JSON with numbers as strings
    let res = rig
        .app
        .post_json(
            &url,
            json!({"CallSid": sid, "Status": "in-progress", "EventType": "answered"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let call: Value = rig.app.get_json(&format!("/calls/{call_id}")).await;
    assert_eq!(call["status"], "in-progress");
    // terminal, urlencoded, Exotel's flattened Legs
    let form = format!(
        "CallSid={sid}&Status=completed&EventType=terminal&ConversationDuration=42&\
         RecordingUrl=https%3A%2F%2Frec.example%2F1.mp3&Legs%5B0%5D%5BAnsweredBy%5D=Human"
    );
    let res = rig
        .app
        .client
        .post(rig.app.url(&url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let call: Value = rig.app.get_json(&format!("/calls/{call_id}")).await;
    assert_eq!(call["status"], "completed");
    assert_eq!(call["conversation_duration"], 42);
    assert_eq!(call["recording_url"], "https://rec.example/1.mp3");
    assert_eq!(call["answered_by"], "Human");

    // multipart (Exotel's default) for a second call
    let (_, call2, sid2, _) =
        crate::dialer::dialled(&rig, json!({"name": "Multipart"}), "phone\n9876543299\n").await;
    let form = reqwest::multipart::Form::new()
        .text("CallSid", sid2)
        .text("Status", "busy")
        .text("DateUpdated", "2026-11-25 12:01:00");
    let res = rig
        .app
        .client
        .post(rig.app.url(&url))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let call: Value = rig.app.get_json(&format!("/calls/{call2}")).await;
    assert_eq!(call["status"], "busy");
    assert_eq!(
        rig.app.state.store.count_active_calls(None).await.unwrap(),
        0,
        "slots freed"
    );
}

async fn same_event_twice_changes_nothing_the_second_time(backend: Backend) {
    let Some(rig) = rig(backend, silent(), |_| {}).await else {
        return;
    };
    let (id, _, sid, url) = dialled(
        &rig,
        json!({"name": "Twice", "retry_delays": {"no_answer": 30}}),
    )
    .await;
    let event = json!({"CallSid": sid, "Status": "no-answer", "EventType": "terminal"});
    let first: Value = rig
        .app
        .post_json(&url, event.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["lead_status"], "retry");
    let before = leads(&rig.app, id).await[0].clone();
    rig.app.state.clock.advance(chrono::Duration::minutes(5));
    let res = rig.app.post_json(&url, event).await;
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_eq!(second["duplicate"], true);
    assert_eq!(leads(&rig.app, id).await[0], before);
}

async fn unknown_calls_are_acknowledged_and_ignored(backend: Backend) {
    let Some(rig) = rig(backend, silent(), |_| {}).await else {
        return;
    };
    let url = rig.app.status_webhook_url();
    let res = rig
        .app
        .post_json(&url, json!({"CallSid": "nope", "Status": "completed"}))
        .await;
    assert_eq!(res.status(), 200);
    let res = rig
        .app
        .post_json(&url, json!({"Status": "completed"}))
        .await;
    assert_eq!(res.status(), 422, "a callback without CallSid is refused");
}

async fn conversation_outcome_is_never_overwritten_by_the_carrier(backend: Backend) {
    let Some(rig) = rig(backend, silent(), |_| {}).await else {
        return;
    };
    let (id, call_id, sid, url) = dialled(&rig, json!({"name": "Outcome"})).await;
    let mut q = Map::new();
    q.insert("budget".into(), json!("2 lakh"));
    record_outcome(&rig, call_id, "interested", &q, Some("Wants a site visit")).await;
    completed(&rig, &url, &sid).await;
    let call: Value = rig.app.get_json(&format!("/calls/{call_id}")).await;
    assert_eq!(call["intent"], "interested");
    assert_eq!(call["qualification"]["budget"], "2 lakh");
    let lead = &leads(&rig.app, id).await[0];
    assert_eq!(lead["status"], "completed");
    assert_eq!(lead["outcome"], "interested");
}

async fn do_not_call_said_in_a_call_is_honoured_forever(backend: Backend) {
    let Some(rig) = rig(backend, silent(), |_| {}).await else {
        return;
    };
    let (id, call_id, sid, url) = dialled(&rig, json!({"name": "Opt-out"})).await;
    record_outcome(&rig, call_id, "do_not_call", &Map::new(), None).await;
    completed(&rig, &url, &sid).await;
    assert_eq!(leads(&rig.app, id).await[0]["status"], "do_not_call");
    let check: Value = rig.app.get_json("/dnc/9876543210").await;
    assert_eq!(check["do_not_call"], true);
    // The number is skipped by any later campaign.
    let other = rig.app.create_campaign("Later").await;
    let report = rig
        .app
        .upload_report(other, "phone\n9876543210\n9876543211\n")
        .await;
    assert_eq!(report["do_not_call"], 1);
}

async fn callback_is_dialled_at_the_asked_time_moved_into_the_window(backend: Backend) {
    let Some(rig) = rig(backend, silent(), |_| {}).await else {
        return;
    };
    let (id, call_id, sid, url) =
        dialled(&rig, json!({"name": "Callback", "max_attempts": 1})).await;
    let store = &rig.app.state.store;
    let lead_id = leads(&rig.app, id).await[0]["id"].as_i64().unwrap();
    // The lead asks for 21:30 tonight: outside the window, so tomorrow 10:00.
    store
        .set_lead_callback(lead_id, ist(25, 21, 30), rig.app.state.clock.now())
        .await
        .unwrap();
    record_outcome(&rig, call_id, "callback", &Map::new(), None).await;
    completed(&rig, &url, &sid).await;
    let lead = &leads(&rig.app, id).await[0];
    assert_eq!(lead["status"], "callback");
    assert_eq!(lead["attempts"], 0, "a callback does not use up an attempt");
    let next: chrono::DateTime<chrono::Utc> =
        lead["next_attempt_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(next, ist(26, 10, 0));

    rig.app.state.clock.set(ist(26, 9, 59));
    assert_eq!(rig.tick().await.claimed, 0);
    rig.app.state.clock.set(ist(26, 10, 0));
    assert_eq!(rig.tick().await.dialed, 1);
}
