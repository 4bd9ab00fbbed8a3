//! Reports after real calls: two live calls over `/media` against the emulators (one
//! interested, one not), then the carrier's final status; analytics, dashboard, export,
//! transcript and the webhook outbox must show what happened.

use serde_json::{Value, json};
use voice_agent::store::TranscriptTurn;

use crate::helpers::{Backend, TestApp, eventually};
use crate::live_call::{GREETING, Script, dial_next, greeting_rig, run_caller_as, watch};

crate::on_each_backend!(live_calls_show_real_values_in_every_report);

async fn deliveries(app: &TestApp, campaign: i64) -> Vec<Value> {
    let v: Value = app
        .get_json(&format!("/campaigns/{campaign}/webhook-deliveries"))
        .await;
    v["deliveries"].as_array().unwrap().clone()
}

/// The nearest-rank percentile of `values` (what the service must report).
fn nearest_rank(mut values: Vec<i32>, p: usize) -> Option<i32> {
    values.sort_unstable();
    let n = values.len();
    (n > 0).then(|| values[(p * n).div_ceil(100).clamp(1, n) - 1])
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-6
}

async fn live_calls_show_real_values_in_every_report(backend: Backend) {
    let Some(rig) = greeting_rig(backend).await else {
        return;
    };
    let app = &rig.app;
    let campaign = rig.campaign_id;
    let res = app
        .patch_json(
            &format!("/campaigns/{campaign}"),
            json!({"webhook_url": "https://crm.example/hooks/calls"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    // A second lead, dialled as CA-live-2.
    app.upload_report(campaign, "phone,name\n9812345678,Ravi\n")
        .await;
    let store = &app.state.store;
    let second = dial_next(app, campaign, "CA-live-2").await;
    let calls = [rig.call_id, second];

    // Watch the dashboard while both calls run.
    let watcher = watch(app, "/dashboard", "live_calls", 100);
    let interested = Script::interested();
    let refusing = Script::saying(vec!["No, I am not interested."], 40);
    let (h1, h2) = tokio::join!(
        run_caller_as(app, interested, "CA-live-1", "+919876543210"),
        run_caller_as(app, refusing, "CA-live-2", "+919812345678"),
    );
    assert!(h1.lock().unwrap().closed_by_bot && h2.lock().unwrap().closed_by_bot);
    for call_id in calls {
        eventually(20, "media stream and summary finished", || async {
            store.media_ended_at(call_id).await.unwrap().map(|_| ())
        })
        .await;
    }
    assert!(
        deliveries(app, campaign).await.is_empty(),
        "no webhook before the carrier's final status"
    );
    let status_url = app.status_webhook_url();
    for (sid, secs) in [("CA-live-1", "65"), ("CA-live-2", "30")] {
        let res = app
            .post_json(
                &status_url,
                json!({"CallSid": sid, "Status": "completed", "EventType": "terminal",
                    "ConversationDuration": secs}),
            )
            .await;
        assert_eq!(res.status(), 200);
    }

    // The outbox: one call.completed per call, queued once both facts were in.
    let queued = deliveries(app, campaign).await;
    assert_eq!(queued.len(), 2);
    let mut queued_calls: Vec<i64> = queued
        .iter()
        .map(|d| d["call_id"].as_i64().unwrap())
        .collect();
    queued_calls.sort();
    assert_eq!(queued_calls, calls);
    assert!(
        queued
            .iter()
            .all(|d| d["status"] == "pending" && d["url"] == "https://crm.example/hooks/calls")
    );

    // Analytics.
    let a: Value = app
        .get_json(&format!("/campaigns/{campaign}/analytics"))
        .await;
    assert_eq!(a["campaign"]["id"], campaign);
    assert_eq!(a["leads"]["total"], 2);
    assert_eq!(a["leads"]["by_status"]["completed"], 2);
    assert_eq!(a["calls"]["total"], 2);
    assert_eq!(a["calls"]["by_status"]["completed"], 2);
    assert_eq!(a["calls"]["answered"], 2);
    assert_eq!(a["calls"]["dialled"], 2);
    assert_eq!(a["calls"]["connect_rate"], 1.0);
    assert_eq!(a["intents"], json!({"interested": 1, "not_interested": 1}));
    assert_eq!(a["outcomes"], json!({"interested": 1, "not_interested": 1}));
    assert_eq!(a["attempts"], json!({"1": 2}));
    assert_eq!(a["talk_time_secs"], json!({"total": 95, "average": 47.5}));
    let mut turns: Vec<TranscriptTurn> = Vec::new();
    for call_id in calls {
        turns.extend(store.turns_of_call(call_id).await.unwrap());
    }
    let column = |f: fn(&TranscriptTurn) -> Option<i32>| -> Vec<i32> {
        turns.iter().filter_map(f).collect()
    };
    let expected = [
        ("stt", column(|t| t.stt_ms)),
        ("llm_first_token", column(|t| t.llm_first_token_ms)),
        ("tts_first_byte", column(|t| t.tts_first_byte_ms)),
        ("voice_to_voice", column(|t| t.voice_to_voice_ms)),
        ("added", column(|t| t.added_ms)),
    ];
    for (key, values) in expected {
        let l = &a["latency_ms"][key];
        assert_eq!(l["count"], values.len(), "{key}");
        assert_eq!(l["p50"], json!(nearest_rank(values.clone(), 50)), "{key}");
        assert_eq!(l["p95"], json!(nearest_rank(values, 95)), "{key}");
    }
    assert!(
        a["latency_ms"]["llm_first_token"]["count"]
            .as_i64()
            .unwrap()
            >= 2
    );
    assert!(a["latency_ms"]["voice_to_voice"]["count"].as_i64().unwrap() >= 2);

    // Cost: 2 + 1 started minutes, 95 s of streamed audio, every TTS character the emulator got.
    let rates = &app.state.settings.costs;
    let cost = &a["cost"];
    let units = &cost["units"];
    assert_eq!(cost["currency"], rates.currency.as_str());
    assert_eq!(units["carrier_minutes"], 3);
    assert_eq!(units["stt_minutes"], 1.5833);
    assert_eq!(units["tts_characters"], rig.tts.stats().characters_received);
    let greetings = ["Asha", "Ravi"].map(|n| GREETING.replace("{name}", n).chars().count());
    assert!(units["tts_characters"].as_u64().unwrap() as usize > greetings.iter().sum::<usize>());
    let (tokens_in, tokens_out) = (
        units["llm_input_tokens"].as_f64().unwrap(),
        units["llm_output_tokens"].as_f64().unwrap(),
    );
    assert!(tokens_in > 0.0 && tokens_out > 0.0, "{units}");
    let carrier = 3.0 * rates.carrier_per_min;
    let stt = 95.0 / 60.0 * rates.stt_per_min;
    let llm = tokens_in / 1000.0 * rates.llm_per_1k_input_tokens
        + tokens_out / 1000.0 * rates.llm_per_1k_output_tokens;
    let tts = units["tts_characters"].as_f64().unwrap() / 1000.0 * rates.tts_per_1k_chars;
    assert!(close(&cost["carrier"], carrier), "{cost}");
    assert!(close(&cost["stt"], stt), "{cost}");
    assert!(close(&cost["llm"], llm), "{cost}");
    assert!(close(&cost["tts"], tts), "{cost}");
    assert!(close(&cost["total"], carrier + stt + llm + tts), "{cost}");

    // Dashboard: both calls were visible while live, with masked numbers; none is now.
    let seen = watcher.await.unwrap();
    for (call_id, phone) in [(calls[0], "+91******3210"), (calls[1], "+91******5678")] {
        let entry = seen
            .iter()
            .find(|c| c["call_id"] == call_id)
            .unwrap_or_else(|| panic!("call {call_id} was never listed live"));
        assert_eq!(entry["phone"], phone);
        assert_eq!(entry["campaign_id"], campaign);
        assert!(
            entry["lead_id"].is_i64() && entry["started_at"].is_string(),
            "{entry}"
        );
    }
    let d: Value = app.get_json("/dashboard").await;
    assert_eq!(d["live_calls"], json!([]));
    assert_eq!(d["campaigns"][0]["progress"], 1.0);
    assert_eq!(d["totals"]["calls"]["total"], 2);
    assert_eq!(d["totals"]["intents"], a["intents"]);

    // Export and transcript.
    let text = app
        .get_text(&format!("/campaigns/{campaign}/export.csv"))
        .await;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!((&rows[0][1], &rows[0][2]), ("Asha", "+91******3210"));
    assert_eq!(
        (&rows[0][3], &rows[0][4], &rows[0][5]),
        ("completed", "interested", "interested")
    );
    assert!(!rows[0][8].is_empty(), "the call's summary");
    assert_eq!(
        (&rows[1][1], &rows[1][4], &rows[1][5]),
        ("Ravi", "not_interested", "not_interested")
    );

    let transcript = app
        .get_text(&format!("/calls/{}/transcript?format=txt", calls[0]))
        .await;
    let lines: Vec<&str> = transcript.lines().collect();
    let stored = store.turns_of_call(calls[0]).await.unwrap();
    assert_eq!(lines.len(), stored.len());
    assert!(lines[0].ends_with("agent: Namaste Asha, this is Asha from SunRise Solar. We help families save on power bills with rooftop solar panels. Do you have a minute?"), "{}", lines[0]);
    assert!(
        lines[1].ends_with("caller: Yes, I am interested. Tell me more."),
        "{}",
        lines[1]
    );
}
