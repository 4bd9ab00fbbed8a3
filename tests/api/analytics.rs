//! Analytics and the dashboard: exact values over seeded calls (counts, percentiles, cost from
//! known rates), and real values after live calls over real sockets against the emulators.

use serde_json::{Map, Value, json};
use voice_agent::store::{CallStatus, CallUsage, TranscriptTurn};

use crate::helpers::{Backend, TestApp, error_code, final_status, spawn_app, spawn_app_with};

crate::on_each_backend!(
    unknown_campaign_is_404_and_an_empty_one_is_all_zeros,
    analytics_and_dashboard_count_seeded_calls_exactly,
);

/// How a seeded call went.
struct Seed {
    status: CallStatus,
    secs: i32,
    streamed: bool,
    intent: Option<&'static str>,
    usage: CallUsage,
    /// (stt, llm first token, voice to voice) of agent turns.
    turns: Vec<(Option<i32>, Option<i32>, Option<i32>)>,
}

async fn seed(app: &TestApp, call_id: i64, s: Seed) {
    let store = app.state.store.as_ref();
    let now = app.state.clock.now();
    store
        .mark_dialing(call_id, &format!("CA-{call_id}"), now)
        .await
        .unwrap();
    if s.streamed {
        store.stream_started(call_id, "MZ", now).await.unwrap();
    }
    for (i, (stt, llm, v2v)) in s.turns.into_iter().enumerate() {
        let turn = TranscriptTurn {
            started_ms: Some(i as i64 * 1000),
            stt_ms: stt,
            llm_first_token_ms: llm,
            voice_to_voice_ms: v2v,
            ..TranscriptTurn::new(call_id, i as i32 + 1, "agent", "Hello")
        };
        store.add_turn(&turn, now).await.unwrap();
    }
    store.add_call_usage(call_id, &s.usage).await.unwrap();
    if let Some(intent) = s.intent {
        store
            .record_call_outcome(call_id, intent, &Map::new(), None, now)
            .await
            .unwrap();
    }
    if s.status.is_active() {
        return;
    }
    if s.streamed {
        store.end_media(call_id, now).await.unwrap();
    }
    app.carrier_ends(call_id, &final_status(s.status, s.secs, now), now)
        .await;
}

fn usage(prompt: u32, completion: u32, chars: u32) -> CallUsage {
    CallUsage {
        llm_prompt_tokens: prompt,
        llm_completion_tokens: completion,
        tts_characters: chars,
    }
}

async fn analytics_and_dashboard_count_seeded_calls_exactly(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        s.costs.currency = "INR".into();
        s.costs.carrier_per_min = 0.01;
        s.costs.stt_per_min = 0.006;
        s.costs.llm_per_1k_input_tokens = 0.5;
        s.costs.llm_per_1k_output_tokens = 1.5;
        s.costs.tts_per_1k_chars = 0.3;
    })
    .await
    else {
        return;
    };
    let csv: String = (0..6).fold("phone\n".into(), |acc, i| acc + &format!("98765{i:05}\n"));
    let campaign = app.started_campaign("Numbers", csv).await;
    let calls = app.claim_calls(campaign, 5).await;
    let none = || Seed {
        status: CallStatus::Completed,
        secs: 0,
        streamed: false,
        intent: None,
        usage: CallUsage::default(),
        turns: vec![],
    };
    seed(
        &app,
        calls[0],
        Seed {
            secs: 65,
            streamed: true,
            intent: Some("interested"),
            usage: usage(1200, 300, 450),
            turns: vec![
                (None, None, None),
                (Some(100), Some(320), Some(700)),
                (Some(300), None, Some(900)),
            ],
            ..none()
        },
    )
    .await;
    seed(
        &app,
        calls[1],
        Seed {
            secs: 30,
            streamed: true,
            intent: Some("not_interested"),
            usage: usage(800, 100, 250),
            turns: vec![
                (Some(200), None, Some(800)),
                (None, None, Some(2000)),
                (None, None, Some(1000)),
            ],
            ..none()
        },
    )
    .await;
    seed(
        &app,
        calls[2],
        Seed {
            status: CallStatus::NoAnswer,
            ..none()
        },
    )
    .await;
    seed(
        &app,
        calls[3],
        Seed {
            status: CallStatus::Busy,
            ..none()
        },
    )
    .await;
    seed(
        &app,
        calls[4],
        Seed {
            secs: 121,
            ..none()
        },
    )
    .await;

    // Another campaign with a call live right now: counted in the totals only.
    let other = app.started_campaign("Other", "phone\n9812312312\n").await;
    let live = app.claim_calls(other, 1).await[0];
    seed(
        &app,
        live,
        Seed {
            status: CallStatus::InProgress,
            streamed: true,
            turns: vec![(Some(99_999), Some(99_999), Some(99_999))],
            usage: usage(1000, 1000, 1000),
            ..none()
        },
    )
    .await;
    let snapshot = json!({"call_id": live, "campaign_id": other, "state": "live", "turns": 1});
    app.state
        .sessions
        .put(
            &live.to_string(),
            &snapshot,
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();

    let a: Value = app
        .get_json(&format!("/campaigns/{campaign}/analytics"))
        .await;
    assert_eq!(
        a["campaign"],
        json!({"id": campaign, "name": "Numbers", "status": "running"})
    );
    assert_eq!(
        a["leads"],
        json!({"total": 6, "by_status": {"pending": 1, "in_progress": 0, "retry": 2,
            "callback": 0, "completed": 3, "failed": 0, "do_not_call": 0}})
    );
    assert_eq!(a["calls"]["total"], 5);
    assert_eq!(a["calls"]["by_status"]["completed"], 3);
    assert_eq!(a["calls"]["by_status"]["no-answer"], 1);
    assert_eq!(a["calls"]["by_status"]["busy"], 1);
    assert_eq!(a["calls"]["by_status"]["queued"], 0, "every status listed");
    assert_eq!(a["calls"]["answered"], 3);
    assert_eq!(a["calls"]["dialled"], 5);
    assert_eq!(a["calls"]["connect_rate"], 0.6);
    assert_eq!(a["outcomes"], json!({"interested": 1, "not_interested": 1}));
    assert_eq!(a["intents"], json!({"interested": 1, "not_interested": 1}));
    assert_eq!(a["talk_time_secs"], json!({"total": 216, "average": 72.0}));
    assert_eq!(a["attempts"], json!({"0": 1, "1": 5}));
    // Nearest rank: stt [100, 200, 300]; llm [320]; voice-to-voice [700, 800, 900, 1000, 2000].
    assert_eq!(
        a["latency_ms"],
        json!({
            "stt": {"count": 3, "p50": 200, "p95": 300},
            "llm_first_token": {"count": 1, "p50": 320, "p95": 320},
            "tts_first_byte": {"count": 0, "p50": null, "p95": null},
            "voice_to_voice": {"count": 5, "p50": 900, "p95": 2000},
            "added": {"count": 0, "p50": null, "p95": null},
        })
    );
    // Carrier: 2 + 1 + 3 started minutes; STT: 95 s streamed; LLM: 2,000 in, 400 out; TTS: 700.
    assert_eq!(
        a["cost"],
        json!({"currency": "INR", "carrier": 0.06, "stt": 0.0095, "llm": 1.6, "tts": 0.21,
            "total": 1.8795, "units": {"carrier_minutes": 6, "stt_minutes": 1.5833,
            "llm_input_tokens": 2000, "llm_output_tokens": 400, "tts_characters": 700}})
    );

    let d: Value = app.get_json("/dashboard").await;
    let listed = d["campaigns"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], campaign);
    assert_eq!(listed[0]["name"], "Numbers");
    assert_eq!(listed[0]["status"], "running");
    assert_eq!(listed[0]["leads"], a["leads"]);
    assert_eq!(listed[0]["outcomes"], a["outcomes"]);
    assert_eq!(listed[0]["progress"], 0.5);
    assert_eq!(listed[1]["progress"], 0.0);
    let totals = &d["totals"];
    assert!(totals.get("campaign").is_none());
    assert_eq!(totals["leads"]["total"], 7);
    assert_eq!(totals["leads"]["by_status"]["in_progress"], 1);
    assert_eq!(totals["calls"]["total"], 6);
    assert_eq!(totals["calls"]["by_status"]["in-progress"], 1);
    assert_eq!(totals["calls"]["answered"], 4);
    assert_eq!(
        totals["latency_ms"]["stt"],
        json!({"count": 4, "p50": 200, "p95": 99_999})
    );
    assert_eq!(totals["cost"]["units"]["tts_characters"], 1700);
    assert_eq!(totals["talk_time_secs"], a["talk_time_secs"]);
    let live_calls = d["live_calls"].as_array().unwrap();
    assert_eq!(live_calls.len(), 1);
    assert_eq!(live_calls[0]["call_id"], live);
    assert_eq!(live_calls[0]["campaign_id"], other);
    assert!(live_calls[0]["lead_id"].is_i64());
    assert_eq!(live_calls[0]["phone"], "+91******2312");
    assert_eq!(live_calls[0]["state"], "live");
    assert!(live_calls[0]["started_at"].is_string());
}

async fn unknown_campaign_is_404_and_an_empty_one_is_all_zeros(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let res = app.get("/campaigns/999/analytics").await;
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "not_found");
    let campaign = app.create_campaign("Empty").await;
    let a: Value = app
        .get_json(&format!("/campaigns/{campaign}/analytics"))
        .await;
    assert_eq!(a["campaign"]["status"], "draft");
    assert_eq!(a["leads"]["total"], 0);
    assert_eq!(a["leads"]["by_status"].as_object().unwrap().len(), 7);
    assert!(
        a["leads"]["by_status"]
            .as_object()
            .unwrap()
            .values()
            .all(|n| n == 0)
    );
    assert_eq!(a["calls"]["total"], 0);
    assert_eq!(a["calls"]["connect_rate"], 0.0);
    assert_eq!(a["talk_time_secs"], json!({"total": 0, "average": 0.0}));
    assert_eq!(a["outcomes"], json!({}));
    assert_eq!(a["attempts"], json!({}));
    assert_eq!(
        a["latency_ms"]["voice_to_voice"],
        json!({"count": 0, "p50": null, "p95": null})
    );
    assert_eq!(a["cost"]["total"], 0.0);
    assert_eq!(a["cost"]["currency"], "USD");
    let d: Value = app.get_json("/dashboard").await;
    assert_eq!(d["campaigns"][0]["progress"], 0.0);
    assert_eq!(d["live_calls"], json!([]));
}

#[tokio::test]
async fn reports_need_the_api_key() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api_key = Some(voice_agent::config::Secret::new("s3cret-key"))
    })
    .await
    .unwrap();
    for path in [
        "/dashboard",
        "/campaigns/1/analytics",
        "/campaigns/1/export.csv",
        "/campaigns/1/webhook-deliveries",
        "/calls/1/transcript",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 401, "{path}");
        assert_eq!(error_code(res).await, "unauthorized");
    }
    let res = app
        .client
        .get(app.url("/dashboard"))
        .bearer_auth("s3cret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
