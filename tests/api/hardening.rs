//! Input an attacker or a broken client sends: NUL characters, oversized text, malformed
//! templates, out-of-range carrier numbers, unsafe URLs, odd-cased auth schemes. Each is refused
//! with a clear 422 (or accepted as HTTP allows), the same on both backends, and nothing of it is
//! stored.

use serde_json::{Value, json};
use voice_agent::store::CallStatus;

use crate::helpers::{Backend, TestApp, error_code, spawn_app_env};

crate::on_both_backends!(
    nul_characters_are_refused_in_every_stored_text,
    oversized_campaign_text_and_broken_templates_are_refused,
    csv_names_are_bounded_and_a_huge_header_is_not_echoed,
    carrier_numbers_and_text_are_range_checked,
    recording_urls_that_are_not_http_are_not_stored,
    webhook_urls_to_internal_addresses_are_refused,
);

/// The status webhook answer to `body` (JSON).
async fn status_callback(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json(&app.status_webhook_url(), body).await
}

async fn campaign_names(app: &TestApp) -> Vec<String> {
    let list = app.get_json("/campaigns").await;
    list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

async fn nul_characters_are_refused_in_every_stored_text(app: TestApp) {
    let id = app.create_campaign("Clean").await;
    for body in [
        json!({"name": "A\u{0}B"}),
        json!({"name": "Ok", "greeting": "Hi\u{0}"}),
        json!({"name": "Ok", "instructions": "Be nice\u{0}"}),
        json!({"name": "Ok", "qualification_fields": [{"name": "budget", "description": "x\u{0}"}]}),
        json!({"name": "Ok", "voice_id": "v\u{0}"}),
    ] {
        let res = app.post_json("/campaigns", body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(error_code(res).await, "validation_failed", "{body}");
    }
    let res = app
        .patch_json(&format!("/campaigns/{id}"), json!({"greeting": "x\u{0}y"}))
        .await;
    assert_eq!(res.status(), 422);
    let res = app
        .post_json(
            "/dnc",
            json!({"phone": "+91 98765 43210", "reason": "no\u{0}"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(error_code(res).await, "validation_failed");
    // The carrier's callback, as JSON and as a form (`%00`).
    let res = status_callback(&app, json!({"CallSid": "CA\u{0}1", "Status": "completed"})).await;
    assert_eq!(res.status(), 422);
    let res = app
        .client
        .post(app.url(&app.status_webhook_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("CallSid=CA1&Status=completed&AnsweredBy=hu%00man")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(campaign_names(&app).await, ["Clean"], "nothing stored");
    assert_eq!(app.get_json("/dnc").await["numbers"], json!([]));
}

async fn oversized_campaign_text_and_broken_templates_are_refused(app: TestApp) {
    let huge = "a".repeat(1_000_000);
    for (body, field) in [
        (json!({"name": "Big", "greeting": huge}), "greeting"),
        (json!({"name": "Big", "instructions": huge}), "instructions"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"name": "Big", "greeting": "Hi {name"}), "greeting"),
        (json!({"name": "Big", "greeting": "Hi name}"}), "greeting"),
        (
            json!({"name": "Big", "greeting": "Hi {first name}"}),
            "greeting",
        ),
        (
            json!({"name": "Big", "webhook_url": format!("https://x.example/{}", "a".repeat(3000))}),
            "webhook_url",
        ),
    ] {
        let res = app.post_json("/campaigns", body).await;
        assert_eq!(res.status(), 422, "{field}");
        let err: Value = res.json().await.unwrap();
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{field}: {message}");
        assert!(
            message.len() < 500,
            "{field}: the message does not echo the input"
        );
    }
    let ok = app
        .post_json(
            "/campaigns",
            json!({"name": "Fine", "greeting": "Namaste {name}, calling about {city}."}),
        )
        .await;
    assert_eq!(ok.status(), 201);
    assert_eq!(campaign_names(&app).await, ["Fine"]);
}

async fn csv_names_are_bounded_and_a_huge_header_is_not_echoed(app: TestApp) {
    let id = app.create_campaign("CSV").await;
    let long_name = "n".repeat(10_000);
    let csv = format!(
        "phone,name,city\n9876543210,{long_name},Pune\n9876543211,Ravi,Pu\u{0}ne\n9876543212,Meena,Pune\n"
    );
    let res = app.upload(id, csv).await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["imported"], 1, "{report}");
    assert_eq!(report["invalid_count"], 2, "{report}");
    let reasons: Vec<&str> = report["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("name"), "{reasons:?}");
    assert!(reasons.iter().all(|r| r.len() < 300), "{reasons:?}");
    let leads = app.get_json(&format!("/campaigns/{id}/leads")).await;
    assert_eq!(leads["leads"][0]["name"], "Meena");

    // A header row of 200,000 columns and no phone column.
    let header: Vec<String> = (0..200_000).map(|i| format!("col{i}")).collect();
    let res = app.upload(id, format!("{}\n1,2\n", header.join(","))).await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(body.len() < 2_000, "{} bytes of error", body.len());
    assert!(body.contains("phone"), "{body}");
}

async fn carrier_numbers_and_text_are_range_checked(app: TestApp) {
    let campaign = app.started_campaign("Carrier", "phone\n9876543210\n").await;
    let call_id = app.claim_calls(campaign, 1).await[0];
    let store = app.state.store.as_ref();
    store
        .mark_dialing(call_id, "CA-range", app.state.clock.now())
        .await
        .unwrap();
    for body in [
        json!({"CallSid": "CA-range", "Status": "completed", "ConversationDuration": "-99999999999"}),
        json!({"CallSid": "CA-range", "Status": "completed", "ConversationDuration": "99999999999"}),
        json!({"CallSid": "CA-range", "Status": "completed", "AnsweredBy": "h".repeat(10_000)}),
        json!({"CallSid": "C".repeat(1_000), "Status": "completed"}),
        json!({"CallSid": "CA-range", "Status": "x".repeat(500)}),
    ] {
        let res = status_callback(&app, body).await;
        assert_eq!(res.status(), 422);
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "validation_failed");
        assert!(err["error"]["message"].as_str().unwrap().len() < 300);
    }
    let call = store.get_call(call_id).await.unwrap();
    assert_eq!(call.status, CallStatus::Dialing, "nothing applied");
    let res = status_callback(
        &app,
        json!({"CallSid": "CA-range", "Status": "completed", "ConversationDuration": "42.0", "AnsweredBy": "human"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let call = store.get_call(call_id).await.unwrap();
    assert_eq!(call.conversation_duration, Some(42));
}

async fn recording_urls_that_are_not_http_are_not_stored(app: TestApp) {
    let campaign = app
        .started_campaign("Recordings", "phone\n9876543210\n")
        .await;
    let calls = app.claim_calls(campaign, 1).await;
    let store = app.state.store.as_ref();
    let now = app.state.clock.now();
    store.mark_dialing(calls[0], "CA-rec-1", now).await.unwrap();
    let res = status_callback(
        &app,
        json!({"CallSid": "CA-rec-1", "Status": "completed", "ConversationDuration": "30",
               "RecordingUrl": "javascript:alert(document.cookie)"}),
    )
    .await;
    assert_eq!(res.status(), 200, "the status itself is applied");
    let call = app.get_json(&format!("/calls/{}", calls[0])).await;
    assert_eq!(call["status"], "completed");
    assert_eq!(call["recording_url"], Value::Null, "{call}");
}

async fn webhook_urls_to_internal_addresses_are_refused(app: TestApp) {
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:9/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://[::1]:8080/hook",
        "http://0.0.0.0/hook",
        "http://2130706433/hook",
        "file:///etc/passwd",
        "https://user:pass@example.com/hook",
    ] {
        let res = app
            .post_json("/campaigns", json!({"name": "Hook", "webhook_url": url}))
            .await;
        assert_eq!(res.status(), 422, "{url}");
        assert_eq!(error_code(res).await, "validation_failed", "{url}");
    }
    let ok = app
        .post_json(
            "/campaigns",
            json!({"name": "Hook", "webhook_url": "https://hooks.example.com/voice?token=abc"}),
        )
        .await;
    assert_eq!(ok.status(), 201);
}

mod configured {
    use super::*;
    crate::on_each_backend!(private_webhook_urls_are_allowed_when_configured);
}

async fn private_webhook_urls_are_allowed_when_configured(backend: Backend) {
    let Some(app) = spawn_app_env(backend, &[("ALLOW_PRIVATE_URLS", "true")]).await else {
        return;
    };
    let res = app
        .post_json(
            "/campaigns",
            json!({"name": "Local", "webhook_url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    // The scheme is still checked.
    let res = app
        .post_json(
            "/campaigns",
            json!({"name": "Local", "webhook_url": "gopher://127.0.0.1/"}),
        )
        .await;
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app_env(Backend::Sqlite, &[("API_KEY", "k3y-for-tests")])
        .await
        .unwrap();
    for value in [
        "Bearer k3y-for-tests",
        "bearer k3y-for-tests",
        "BEARER  k3y-for-tests",
    ] {
        let res = app
            .client
            .get(app.url("/campaigns"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{value}");
    }
    let res = app
        .client
        .get(app.url("/campaigns"))
        .header("authorization", "bearer wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["message"], "invalid API key");
    let res = app
        .client
        .get(app.url("/campaigns"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.contains("missing"), "{message}");
    assert!(message.contains("Bearer"), "{message}");
}
