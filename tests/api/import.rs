//! CSV lead import as operators' spreadsheets produce it.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, error_code, spawn_app_with};

crate::on_both_backends!(
    messy_spreadsheet_imports_valid_rows_and_reports_the_rest,
    second_upload_skips_numbers_already_in_the_campaign,
    do_not_call_numbers_are_skipped_and_counted,
    files_that_are_not_lead_lists_are_refused_and_nothing_is_written,
    only_bad_rows_is_an_error_listing_them,
    upload_needs_a_multipart_file_field,
    batches_larger_than_one_transaction_chunk_all_arrive,
    leads_are_paginated_and_filtered_by_status,
    shipped_example_csv_imports,
);

async fn lead_list(app: &TestApp, campaign: i64, query: &str) -> Value {
    let res = app
        .get(&format!("/campaigns/{campaign}/leads{query}"))
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn messy_spreadsheet_imports_valid_rows_and_reports_the_rest(app: TestApp) {
    let id = app.create_campaign("Messy").await;
    let csv = "\u{feff}Full Name;Mobile;City;Time Zone\n\
               \"Sharma, Asha\";98765 43210;Pune;\n\
               Ravi;098765-43211;\"Navi\nMumbai\";Asia/Kolkata\n\
               Bad;12345;Delhi;\n\
               ;;;\n\
               Dup;+91 98765 43210;Pune;\n\
               अमित;+91 91234 56789;दिल्ली;Asia/Dubai\n";
    let res = app.upload(id, csv).await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["total"], 5);
    assert_eq!(report["imported"], 3);
    assert_eq!(report["duplicates"], 1);
    assert_eq!(report["do_not_call"], 0);
    assert_eq!(report["invalid"].as_array().unwrap().len(), 1);
    assert_eq!(report["invalid"][0]["row"], 4);
    assert!(
        report["invalid"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("12345")
    );

    let page = lead_list(&app, id, "").await;
    assert_eq!(page["total"], 3);
    let leads = page["leads"].as_array().unwrap();
    assert_eq!(leads[0]["phone"], "+919876543210");
    assert_eq!(leads[0]["name"], "Sharma, Asha");
    assert_eq!(leads[0]["attributes"], json!({"city": "Pune"}));
    assert_eq!(leads[0]["status"], "pending");
    assert_eq!(leads[0]["attempts"], 0);
    assert_eq!(leads[1]["attributes"]["city"], "Navi\nMumbai");
    assert_eq!(leads[1]["timezone"], "Asia/Kolkata");
    assert_eq!(leads[2]["name"], "अमित");
    assert_eq!(leads[2]["attributes"]["city"], "दिल्ली");
    assert_eq!(leads[2]["timezone"], "Asia/Dubai");
}

async fn second_upload_skips_numbers_already_in_the_campaign(app: TestApp) {
    let id = app.create_campaign("Twice").await;
    app.upload_report(id, "phone,name\n9876543210,A\n9876543211,B\n")
        .await;
    let res = app
        .upload(id, "number\t name\n+919876543211\tB again\n9876543212\tC\n")
        .await;
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["imported"], 1);
    assert_eq!(report["duplicates"], 1);
    let page = lead_list(&app, id, "").await;
    assert_eq!(page["total"], 3);
    assert_eq!(
        page["leads"][1]["name"], "B",
        "the first import's lead is kept"
    );

    // The same number may be a lead in another campaign.
    let other = app.create_campaign("Other").await;
    let report = app.upload_report(other, "phone\n9876543210\n").await;
    assert_eq!(report["imported"], 1);
}

async fn do_not_call_numbers_are_skipped_and_counted(app: TestApp) {
    let res = app
        .post_json("/dnc", json!({"phone": "98765 43210", "reason": "asked"}))
        .await;
    assert_eq!(res.status(), 201);
    let id = app.create_campaign("DNC").await;
    let report = app
        .upload_report(id, "phone\n+919876543210\n9876543211\n")
        .await;
    assert_eq!(report["imported"], 1);
    assert_eq!(report["do_not_call"], 1);
    let page = lead_list(&app, id, "").await;
    assert_eq!(page["leads"][0]["phone"], "+919876543211");
}

async fn files_that_are_not_lead_lists_are_refused_and_nothing_is_written(app: TestApp) {
    let id = app.create_campaign("Refusals").await;
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0";
    for (body, needle) in [
        (Vec::new(), "empty"),
        (b"\n\n".to_vec(), "empty"),
        (b"phone,name\n".to_vec(), "no lead rows"),
        (png.to_vec(), "binary"),
        (b"email,name\nx@y.z,X\n".to_vec(), "no phone column"),
    ] {
        let res = app.upload(id, body.clone()).await;
        assert_eq!(res.status(), 422, "{needle}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid_csv");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{err}"
        );
    }
    assert_eq!(lead_list(&app, id, "").await["total"], 0);
}

async fn only_bad_rows_is_an_error_listing_them(app: TestApp) {
    let id = app.create_campaign("All bad").await;
    let res = app
        .upload(id, "phone,name\n123,A\nhello,B\n+91 98765,C\n")
        .await;
    assert_eq!(res.status(), 422);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "no_valid_rows");
    assert_eq!(err["error"]["details"]["invalid_count"], 3);
    let rows: Vec<i64> = err["error"]["details"]["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, [2, 3, 4]);
    assert_eq!(lead_list(&app, id, "").await["total"], 0);
}

async fn upload_needs_a_multipart_file_field(app: TestApp) {
    let id = app.create_campaign("Fields").await;
    let form = reqwest::multipart::Form::new().text("other", "phone\n9876543210\n");
    let res = app
        .client
        .post(app.url(&format!("/campaigns/{id}/upload-csv")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert!(error_code(res).await.contains("validation"));
    let res = app
        .client
        .post(app.url(&format!("/campaigns/{id}/upload-csv")))
        .header("content-type", "text/csv")
        .body("phone\n9876543210\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "bad_multipart");
    let res = app.upload(999_999, "phone\n9876543210\n").await;
    assert_eq!(res.status(), 404);
}

async fn batches_larger_than_one_transaction_chunk_all_arrive(app: TestApp) {
    let id = app.create_campaign("Big").await;
    let mut csv = String::from("phone,name,segment\n");
    for i in 0..5_000u32 {
        csv.push_str(&format!("98{:08},Lead {i},s{}\n", i, i % 7));
    }
    // Plus one duplicate of the first row at the very end (across batches).
    csv.push_str("9800000000,Again,s0\n");
    let report = app.upload_report(id, csv).await;
    assert_eq!(report["total"], 5_001);
    assert_eq!(report["imported"], 5_000);
    assert_eq!(report["duplicates"], 1);
    assert_eq!(lead_list(&app, id, "?limit=1").await["total"], 5_000);
}

async fn leads_are_paginated_and_filtered_by_status(app: TestApp) {
    let id = app.create_campaign("Pages").await;
    let mut csv = String::from("phone\n");
    for i in 0..25u32 {
        csv.push_str(&format!("97{:08}\n", i));
    }
    app.upload_report(id, csv).await;
    let page = lead_list(&app, id, "?limit=10&offset=20").await;
    assert_eq!(page["total"], 25);
    assert_eq!(page["leads"].as_array().unwrap().len(), 5);
    assert_eq!(page["leads"][0]["phone"], "+919700000020");
    assert_eq!(lead_list(&app, id, "?status=pending").await["total"], 25);
    assert_eq!(lead_list(&app, id, "?status=completed").await["total"], 0);
    for bad in [
        "?status=nope",
        "?limit=0",
        "?limit=5000",
        "?offset=-1",
        "?limit=ten",
        "?colour=red",
    ] {
        let res = app.get(&format!("/campaigns/{id}/leads{bad}")).await;
        assert_eq!(res.status(), 422, "{bad}");
    }
}

async fn shipped_example_csv_imports(app: TestApp) {
    let id = app.create_campaign("Example").await;
    let csv = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/leads.csv")).unwrap();
    let report = app.upload_report(id, csv).await;
    assert!(report["imported"].as_u64().unwrap() >= 15, "{report}");
    assert!(report["invalid_count"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(report["duplicates"], 1, "{report}");
}

/// Over the configured limit: 413, and nothing from the file is kept.
#[tokio::test]
async fn oversize_upload_is_413_and_writes_nothing_sqlite() {
    oversize_upload(Backend::Sqlite).await;
}

#[tokio::test]
async fn oversize_upload_is_413_and_writes_nothing_postgres() {
    oversize_upload(Backend::Postgres).await;
}

async fn oversize_upload(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.csv_max_bytes = 200_000).await else {
        return;
    };
    let id = app.create_campaign("Too big").await;
    let mut csv = String::from("phone\n");
    for i in 0..40_000u32 {
        csv.push_str(&format!("96{:08}\n", i));
    }
    // Sent chunked (no Content-Length), so the limit is enforced while streaming, after
    // several batches have already been inserted into the transaction.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = csv
        .into_bytes()
        .chunks(16 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let part = reqwest::multipart::Part::stream(body).file_name("big.csv");
    let form = reqwest::multipart::Form::new().part("file", part);
    let res = app
        .client
        .post(app.url(&format!("/campaigns/{id}/upload-csv")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(error_code(res).await, "payload_too_large");
    assert_eq!(lead_list(&app, id, "").await["total"], 0);
}
