//! The do-not-call list.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

crate::on_both_backends!(
    numbers_are_added_normalised_listed_and_removed,
    invalid_numbers_are_422_and_absent_ones_404,
    listing_a_number_stops_its_waiting_leads,
    a_listed_number_calling_in_gets_one_lead,
);

async fn numbers_are_added_normalised_listed_and_removed(app: TestApp) {
    let res = app
        .post_json("/dnc", json!({"phone": "098765-43210", "reason": "asked"}))
        .await;
    assert_eq!(res.status(), 201);
    let entry: Value = res.json().await.unwrap();
    assert_eq!(entry["phone"], "+919876543210");
    assert_eq!(entry["reason"], "asked");
    assert_eq!(entry["source"], "api");
    // Adding again is harmless and keeps the reason.
    assert_eq!(
        app.post_json("/dnc", json!({"phone": "+919876543210"}))
            .await
            .status(),
        201
    );

    let list: Value = app.get_json("/dnc").await;
    assert_eq!(list["numbers"].as_array().unwrap().len(), 1);
    assert_eq!(list["numbers"][0]["reason"], "asked");
    let check: Value = app.get_json("/dnc/9876543210").await;
    assert_eq!(check["do_not_call"], true);

    assert_eq!(app.delete("/dnc/+919876543210").await.status(), 204);
    let check: Value = app.get_json("/dnc/9876543210").await;
    assert_eq!(check["do_not_call"], false);
}

async fn invalid_numbers_are_422_and_absent_ones_404(app: TestApp) {
    let res = app.post_json("/dnc", json!({"phone": "12"})).await;
    assert_eq!(res.status(), 422);
    let res = app.post_json("/dnc", json!({"number": "9876543210"})).await;
    assert_eq!(res.status(), 422);
    let res = app.delete("/dnc/9876543210").await;
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "not_found");
}

async fn listing_a_number_stops_its_waiting_leads(app: TestApp) {
    let id = app.create_campaign("Opt out").await;
    app.upload_report(id, "phone\n9876543210\n9876543211\n")
        .await;
    let res = app.post_json("/dnc", json!({"phone": "9876543211"})).await;
    assert_eq!(res.status(), 201);
    let page: Value = app
        .get_json(&format!("/campaigns/{id}/leads?status=do_not_call"))
        .await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["leads"][0]["phone"], "+919876543211");
    assert!(page["leads"][0]["next_attempt_at"].is_null());
}

/// The list stops our calls, not theirs: a listed number that calls in is answered, and two
/// streams from it arriving together share one lead.
async fn a_listed_number_calling_in_gets_one_lead(app: TestApp) {
    let campaign = app.create_campaign("Inbound calls").await;
    let store = &app.state.store;
    let now = chrono::Utc::now();
    store
        .add_dnc("+919812312312", Some("asked"), "api", now)
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        store.add_inbound_lead(campaign, "+919812312312", now),
        store.add_inbound_lead(campaign, "+919812312312", now),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.id, b.id);
    assert_eq!(
        (a.campaign_id, a.phone.as_str()),
        (campaign, "+919812312312")
    );
    let page: Value = app.get_json(&format!("/campaigns/{campaign}/leads")).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["leads"][0]["status"], "pending");
    let again = store
        .add_inbound_lead(campaign, "+919812312312", now)
        .await
        .unwrap();
    assert_eq!(again.id, a.id);
}
