//! The CSV export (streamed over several pages, masked numbers, one column per qualification
//! field, proper quoting) and call transcripts as JSON and as text.

use serde_json::{Map, Value, json};
use voice_agent::store::{CallStatus, CarrierUpdate, TranscriptTurn};

use crate::helpers::{TestApp, error_code, final_status, send_json};

crate::on_both_backends!(
    export_streams_every_lead_with_masked_numbers_and_quoting,
    export_refuses_unknown_campaigns_and_bad_options,
    transcript_is_served_as_json_and_as_text,
    export_defuses_formulas_and_never_repeats_a_header,
);

/// The carrier's end of a call, then settlement, as the status webhook does it.
async fn finish(app: &TestApp, call_id: i64, status: CallStatus, secs: i32, recording: &str) {
    let now = app.state.clock.now();
    app.state
        .store
        .mark_dialing(call_id, &format!("CA-{call_id}"), now)
        .await
        .unwrap();
    let update = CarrierUpdate {
        recording_url: (!recording.is_empty()).then(|| recording.to_string()),
        ..final_status(status, secs, now)
    };
    app.carrier_ends(call_id, &update, now).await;
}

async fn export_streams_every_lead_with_masked_numbers_and_quoting(app: TestApp) {
    let res = app
        .post_json(
            "/campaigns",
            json!({"name": "Export", "qualification_fields": [
                {"name": "budget"}, {"name": "roof_type"}, {"name": "kw", "type": "number"}]}),
        )
        .await;
    let campaign = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    // 1,203 leads: three pages of the export; the first has a name that needs quoting.
    let mut csv = String::from("phone,name\n9800000000,\"Rao, \"\"Ravi\"\"\"\n");
    for i in 1..1203 {
        csv.push_str(&format!("98{i:08},Lead {i}\n"));
    }
    let report = app.upload_report(campaign, csv).await;
    assert_eq!(report["imported"], 1203);
    app.post(&format!("/campaigns/{campaign}/start")).await;
    let calls = app.claim_calls(campaign, 2).await;
    let store = &app.state.store;
    let mut q = Map::new();
    q.insert("budget".into(), json!("2 lakh"));
    q.insert("kw".into(), json!(3));
    q.insert("unlisted".into(), json!("not a column"));
    store
        .record_call_outcome(
            calls[0],
            "interested",
            &q,
            Some("Wants a visit,\nsoon"),
            app.state.clock.now(),
        )
        .await
        .unwrap();
    finish(
        &app,
        calls[0],
        CallStatus::Completed,
        75,
        "https://rec.example/a.mp3",
    )
    .await;
    finish(&app, calls[1], CallStatus::NoAnswer, 0, "").await;

    let res = app.get(&format!("/campaigns/{campaign}/export.csv")).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(
        res.headers()["content-disposition"],
        format!("attachment; filename=\"campaign-{campaign}.csv\"").as_str()
    );
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "lead_id",
            "name",
            "phone",
            "status",
            "outcome",
            "intent",
            "budget",
            "roof_type",
            "kw",
            "attempts",
            "last_call_at",
            "summary",
            "recording_url"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1203, "every lead, once");
    let ids: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in id order, no repeats"
    );
    assert!(
        rows.iter().all(|r| r[2].starts_with("+91******")),
        "numbers masked"
    );

    let first = &rows[0];
    assert_eq!(&first[1], "Rao, \"Ravi\"");
    assert_eq!(&first[2], "+91******0000");
    assert_eq!(&first[3], "completed");
    assert_eq!(&first[4], "interested");
    assert_eq!(&first[5], "interested");
    assert_eq!((&first[6], &first[7], &first[8]), ("2 lakh", "", "3"));
    assert_eq!(&first[9], "1");
    assert!(first[10].parse::<chrono::DateTime<chrono::Utc>>().is_ok());
    assert_eq!(&first[11], "Wants a visit,\nsoon");
    assert_eq!(&first[12], "https://rec.example/a.mp3");
    let second = &rows[1];
    assert_eq!(&second[3], "retry");
    assert_eq!((&second[4], &second[5], &second[11]), ("", "", ""));
    assert_eq!(&second[9], "1");
    let untouched = &rows[1202];
    assert_eq!(&untouched[1], "Lead 1202");
    assert_eq!(
        (&untouched[3], &untouched[9], &untouched[10]),
        ("pending", "0", "")
    );

    let full = app
        .get_text(&format!(
            "/campaigns/{campaign}/export.csv?full_numbers=true"
        ))
        .await;
    let mut reader = csv::Reader::from_reader(full.as_bytes());
    let phones: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[2].to_string())
        .collect();
    assert_eq!(phones.len(), 1203);
    assert_eq!(phones[0], "+919800000000");
    assert_eq!(phones[1202], "+919800001202");
}

async fn export_refuses_unknown_campaigns_and_bad_options(app: TestApp) {
    let res = app.get("/campaigns/999/export.csv").await;
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "not_found");
    let campaign = app.create_campaign("Empty").await;
    for bad in ["full_numbers=maybe", "columns=all"] {
        let res = app
            .get(&format!("/campaigns/{campaign}/export.csv?{bad}"))
            .await;
        assert_eq!(res.status(), 422, "{bad}");
        assert_eq!(error_code(res).await, "validation_failed");
    }
    // No leads: just the header.
    let text = app
        .get_text(&format!("/campaigns/{campaign}/export.csv"))
        .await;
    assert_eq!(
        text,
        "lead_id,name,phone,status,outcome,intent,attempts,last_call_at,summary,recording_url\n"
    );
}

/// A turn that starts at `started_ms` and lasts 1.5 s.
fn timed_turn(
    call_id: i64,
    seq: i32,
    speaker: &str,
    text: &str,
    started_ms: i64,
) -> TranscriptTurn {
    TranscriptTurn {
        started_ms: Some(started_ms),
        ended_ms: Some(started_ms + 1500),
        ..TranscriptTurn::new(call_id, seq, speaker, text)
    }
}

async fn transcript_is_served_as_json_and_as_text(app: TestApp) {
    let campaign = app
        .started_campaign("Transcripts", "phone\n9876543210\n")
        .await;
    let call_id = app.claim_calls(campaign, 1).await[0];
    let store = &app.state.store;
    let now = app.state.clock.now();
    let mut greeting = timed_turn(call_id, 1, "agent", "Namaste Asha, this is", 0);
    greeting.interrupted = true;
    let mut question = timed_turn(call_id, 2, "caller", "Who is this?", 3249);
    question.stt_ms = Some(180);
    let mut answer = timed_turn(call_id, 3, "agent", "Asha from SunRise Solar.", 5100);
    answer.llm_first_token_ms = Some(320);
    answer.tts_first_byte_ms = Some(150);
    answer.voice_to_voice_ms = Some(780);
    answer.added_ms = Some(40);
    for t in [&greeting, &question, &answer] {
        store.add_turn(t, now).await.unwrap();
    }

    let call: Value = app.get_json(&format!("/calls/{call_id}")).await;
    let url = call["transcript_url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("{}/calls/{call_id}/transcript", app.base));
    let v = send_json(app.client.get(&url)).await;
    assert_eq!(v["call_id"], call_id);
    assert_eq!(v["turns"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["turns"][2],
        json!({"seq": 3, "speaker": "agent", "text": "Asha from SunRise Solar.",
            "started_ms": 5100, "ended_ms": 6600, "interrupted": false, "stt_ms": null,
            "llm_first_token_ms": 320, "tts_first_byte_ms": 150, "voice_to_voice_ms": 780,
            "added_ms": 40})
    );
    assert_eq!(v["turns"][0]["interrupted"], true);
    assert_eq!(v["turns"][1]["stt_ms"], 180);

    let res = app
        .get(&format!("/calls/{call_id}/transcript?format=txt"))
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        res.text().await.unwrap(),
        "[00:00.0] agent: Namaste Asha, this is [interrupted]\n\
         [00:03.2] caller: Who is this?\n\
         [00:05.1] agent: Asha from SunRise Solar.\n"
    );
    let json_too: Value = app
        .get_json(&format!("/calls/{call_id}/transcript?format=json"))
        .await;
    assert_eq!(json_too, v);

    let res = app
        .get(&format!("/calls/{call_id}/transcript?format=xml"))
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(error_code(res).await, "validation_failed");
    let res = app.get("/calls/999/transcript").await;
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "not_found");
}

/// A name a spreadsheet would run (`=HYPERLINK(…)`) is exported with a leading `'`; a
/// qualification field named like a fixed column gets a header of its own.
async fn export_defuses_formulas_and_never_repeats_a_header(app: TestApp) {
    let res = app
        .post_json(
            "/campaigns",
            json!({"name": "Formulas", "qualification_fields": [{"name": "status"}]}),
        )
        .await;
    let campaign = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let csv = "phone,name\n9800000001,\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\n9800000002,-5\n";
    assert_eq!(
        app.upload_report(campaign, csv.to_string()).await["imported"],
        2
    );
    let text = app
        .get_text(&format!("/campaigns/{campaign}/export.csv"))
        .await;
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
    let mut seen = std::collections::HashSet::new();
    assert!(header.iter().all(|h| seen.insert(h.clone())), "{header:?}");
    assert!(
        header.contains(&"qualification.status".to_string()),
        "{header:?}"
    );
    let names: Vec<String> = rows
        .records()
        .map(|r| r.unwrap().get(1).unwrap().to_string())
        .collect();
    assert_eq!(names, ["'=HYPERLINK(\"http://x\",\"y\")", "-5"]);
}
