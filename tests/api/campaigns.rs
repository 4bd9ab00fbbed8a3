//! Campaign CRUD, validation errors and the status machine.

use serde_json::{Value, json};
use voice_agent::store::CampaignStatus;

use crate::helpers::{TestApp, error_code};

crate::on_both_backends!(
    campaign_with_only_a_name_gets_the_defaults,
    name_is_required,
    malformed_json_is_400_with_json_body,
    oversized_json_is_413_and_creates_nothing,
    wrong_types_and_unknown_fields_are_422,
    json_body_needs_json_content_type,
    unknown_and_non_numeric_ids_are_404,
    patch_changes_only_given_fields,
    invalid_patch_changes_nothing,
    list_returns_every_campaign,
    start_needs_leads,
    lifecycle_start_pause_resume_delete,
    completed_campaign_refuses_changes,
    show_counts_leads_by_status,
);

async fn campaign_with_only_a_name_gets_the_defaults(app: TestApp) {
    let res = app
        .post_json("/campaigns", json!({"name": "Solar Pune"}))
        .await;
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["name"], "Solar Pune");
    assert_eq!(c["status"], "draft");
    assert_eq!(c["timezone"], "Asia/Kolkata");
    assert_eq!(c["language"], "en-IN");
    assert_eq!(c["max_attempts"], 3);
    assert_eq!(c["max_concurrent_calls"], 10);
    assert_eq!(c["calling_window"]["start"], "10:00");
    assert_eq!(c["calling_window"]["end"], "19:00");
    assert_eq!(
        c["calling_window"]["weekdays"],
        json!(["mon", "tue", "wed", "thu", "fri", "sat"])
    );
    assert_eq!(
        c["retry_delays"],
        json!({"no_answer": [30], "busy": [15], "failed": [60]})
    );
    assert!(c["greeting"].as_str().unwrap().contains("{name}"));

    let id = c["id"].as_i64().unwrap();
    let fetched: Value = app.get_json(&format!("/campaigns/{id}")).await;
    assert_eq!(fetched["name"], "Solar Pune");
    assert_eq!(fetched["created_at"], c["created_at"]);
}

async fn name_is_required(app: TestApp) {
    let res = app
        .post_json("/campaigns", json!({"language": "hi-IN"}))
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(error_code(res).await, "validation_failed");
    let res = app.post_json("/campaigns", json!({"name": "   "})).await;
    assert_eq!(res.status(), 422);
    let list: Value = app.get_json("/campaigns").await;
    assert_eq!(
        list["campaigns"].as_array().unwrap().len(),
        0,
        "nothing half-created"
    );
}

async fn malformed_json_is_400_with_json_body(app: TestApp) {
    let res = app
        .client
        .post(app.url("/campaigns"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "malformed_json");
}

/// Over axum's 2 MB body limit: 413 `payload_too_large`, not a 400, and no campaign.
async fn oversized_json_is_413_and_creates_nothing(app: TestApp) {
    let body = serde_json::json!({"name": "Big", "instructions": "x".repeat(3 * 1024 * 1024)});
    let res = app
        .client
        .post(app.url("/campaigns"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(error_code(res).await, "payload_too_large");
    let list: serde_json::Value = app.get_json("/campaigns").await;
    assert_eq!(
        list["campaigns"].as_array().map(Vec::len),
        Some(0),
        "{list}"
    );
}

async fn wrong_types_and_unknown_fields_are_422(app: TestApp) {
    for body in [
        json!({"name": "x", "max_attempts": "three"}),
        json!({"name": 42}),
        json!({"name": "x", "calling_window": {"start": 10}}),
        json!({"name": "x", "colour": "blue"}),
        json!({"name": "x", "calling_window": {"begin": "10:00"}}),
        json!({"name": "x", "max_attempts": -1}),
        json!({"name": "x", "timezone": "India/Mumbai"}),
        json!({"name": "x", "status": "running"}),
        json!(["not", "an", "object"]),
    ] {
        let res = app.post_json("/campaigns", body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        let code = error_code(res).await;
        assert_eq!(code, "validation_failed", "{body}");
    }
}

async fn json_body_needs_json_content_type(app: TestApp) {
    let res = app
        .client
        .post(app.url("/campaigns"))
        .header("content-type", "text/plain")
        .body("{\"name\":\"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert_eq!(error_code(res).await, "unsupported_media_type");
}

async fn unknown_and_non_numeric_ids_are_404(app: TestApp) {
    for path in [
        "/campaigns/999",
        "/campaigns/abc",
        "/campaigns/999/leads",
        "/nowhere",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(error_code(res).await, "not_found");
    }
    let res = app.post("/campaigns/999/start").await;
    assert_eq!(res.status(), 404);
    let res = app.delete("/campaigns/999").await;
    assert_eq!(res.status(), 404);
    let res = app.client.put(app.url("/campaigns")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(error_code(res).await, "method_not_allowed");
}

async fn patch_changes_only_given_fields(app: TestApp) {
    let id = app.create_campaign("Loans").await;
    let res = app
        .patch_json(
            &format!("/campaigns/{id}"),
            json!({
                "greeting": "Namaste {name}, Bharat Finance se baat kar rahe hain.",
                "language": "hi-IN",
                "calling_window": {"end": "18:30", "holidays": ["2026-12-25"]},
                "retry_delays": {"busy": [5, 10]},
                "qualification_fields": [{"name": "loan_amount", "type": "number"}]
            }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["name"], "Loans");
    assert_eq!(c["language"], "hi-IN");
    assert_eq!(c["calling_window"]["start"], "10:00");
    assert_eq!(c["calling_window"]["end"], "18:30");
    assert_eq!(c["calling_window"]["holidays"], json!(["2026-12-25"]));
    assert_eq!(c["retry_delays"]["busy"], json!([5, 10]));
    assert_eq!(c["retry_delays"]["no_answer"], json!([30]));
    assert_eq!(c["qualification_fields"][0]["name"], "loan_amount");
    let again: Value = app.get_json(&format!("/campaigns/{id}")).await;
    assert_eq!(
        again["greeting"],
        "Namaste {name}, Bharat Finance se baat kar rahe hain."
    );
}

async fn invalid_patch_changes_nothing(app: TestApp) {
    let id = app.create_campaign("Insurance").await;
    let res = app
        .patch_json(
            &format!("/campaigns/{id}"),
            json!({"name": "Renamed", "calling_window": {"start": "20:00", "end": "09:00"}}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let c: Value = app.get_json(&format!("/campaigns/{id}")).await;
    assert_eq!(c["name"], "Insurance");
    assert_eq!(c["calling_window"]["start"], "10:00");
}

async fn list_returns_every_campaign(app: TestApp) {
    let a = app.create_campaign("A").await;
    let b = app.create_campaign("B").await;
    let list: Value = app.get_json("/campaigns").await;
    let ids: Vec<i64> = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [a, b]);
}

async fn start_needs_leads(app: TestApp) {
    let id = app.create_campaign("Empty").await;
    let res = app.post(&format!("/campaigns/{id}/start")).await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "no_leads");
}

async fn lifecycle_start_pause_resume_delete(app: TestApp) {
    let id = app.create_campaign("Lifecycle").await;
    assert_eq!(app.upload(id, "phone\n9876543210\n").await.status(), 200);
    let status = |v: Value| v["status"].as_str().unwrap().to_string();

    let res = app.post(&format!("/campaigns/{id}/resume")).await;
    assert_eq!(res.status(), 409, "a draft cannot be resumed");
    assert_eq!(error_code(res).await, "invalid_state");

    let res = app.post(&format!("/campaigns/{id}/start")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(status(res.json().await.unwrap()), "running");
    let res = app.post(&format!("/campaigns/{id}/start")).await;
    assert_eq!(res.status(), 200, "starting a running campaign is a no-op");

    let res = app.delete(&format!("/campaigns/{id}")).await;
    assert_eq!(res.status(), 409, "running campaigns are not deleted");
    assert_eq!(error_code(res).await, "invalid_state");

    let res = app.post(&format!("/campaigns/{id}/pause")).await;
    assert_eq!(status(res.json().await.unwrap()), "paused");
    let res = app.post(&format!("/campaigns/{id}/resume")).await;
    assert_eq!(status(res.json().await.unwrap()), "running");
    let res = app.post(&format!("/campaigns/{id}/pause")).await;
    assert_eq!(status(res.json().await.unwrap()), "paused");

    let res = app.delete(&format!("/campaigns/{id}")).await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.get(&format!("/campaigns/{id}")).await.status(), 404);
    assert_eq!(
        app.get(&format!("/campaigns/{id}/leads")).await.status(),
        404
    );
}

async fn completed_campaign_refuses_changes(app: TestApp) {
    let id = app.create_campaign("Done").await;
    app.upload_report(id, "phone\n9876543210\n").await;
    let res = app.post(&format!("/campaigns/{id}/start")).await;
    assert_eq!(res.status(), 200);
    // Only the dialer completes a campaign; do what it does.
    app.state
        .store
        .transition_campaign(
            id,
            &[CampaignStatus::Running],
            CampaignStatus::Completed,
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    for action in ["start", "pause", "resume"] {
        let res = app.post(&format!("/campaigns/{id}/{action}")).await;
        assert_eq!(res.status(), 409, "{action}");
        assert_eq!(error_code(res).await, "invalid_state");
    }
    let res = app
        .patch_json(&format!("/campaigns/{id}"), json!({"name": "x"}))
        .await;
    assert_eq!(res.status(), 409);
    let res = app.upload(id, "phone\n9876543211\n").await;
    assert_eq!(res.status(), 409);
    let c: Value = app.get_json(&format!("/campaigns/{id}")).await;
    assert_eq!(c["status"], "completed");
    assert_eq!(c["lead_counts"]["pending"], 1);
}

async fn show_counts_leads_by_status(app: TestApp) {
    let id = app.create_campaign("Counts").await;
    app.upload_report(id, "phone\n9876543210\n9876543211\n9876543212\n")
        .await;
    let c: Value = app.get_json(&format!("/campaigns/{id}")).await;
    assert_eq!(c["lead_counts"]["pending"], 3);
    assert_eq!(c["lead_counts"]["completed"], 0);
}
