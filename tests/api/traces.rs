//! OpenTelemetry traces of a real call, received by a tiny local OTLP/HTTP collector: a `call`
//! span with the call and campaign ids, `turn` spans inside it, model requests inside the
//! turns, and no phone number anywhere in what is exported.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;
use voice_agent::emulators::callee::Persona;
use voice_agent::emulators::exotel::ExotelConfig;

use crate::dialer::ist;
use crate::helpers::{Backend, eventually, spawn_app_with};

/// A collector that keeps every `POST /v1/traces` body.
async fn collector() -> (String, Arc<Mutex<Vec<Bytes>>>) {
    let bodies: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                // An empty ExportTraceServiceResponse.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, bodies)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Any::StringValue(s) => s.clone(),
            Any::IntValue(i) => i.to_string(),
            Any::BoolValue(b) => b.to_string(),
            Any::DoubleValue(d) => d.to_string(),
            other => format!("{other:?}"),
        })
}

// One thread: the subscriber set below sees every task of the test, service and emulators.
#[tokio::test]
async fn a_calls_spans_carry_its_ids_nest_by_turn_and_never_a_phone_number() {
    let (endpoint, bodies) = collector().await;
    let (layer, traces) = voice_agent::telemetry::otel_layer(&endpoint).unwrap();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let number = "9876500011";
    let config = ExotelConfig {
        ring_delay: Duration::from_millis(200),
        personas: HashMap::from([(format!("+91{number}"), Persona::NotInterested)]),
        ..ExotelConfig::default()
    };
    let emulators = voice_agent::demo::start_emulators_with([127, 0, 0, 1], [0; 4], config)
        .await
        .unwrap();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        voice_agent::demo::use_emulators(s, &emulators);
        s.dialer.direct_stream = true;
    })
    .await
    .unwrap();
    app.state.clock.set(ist(25, 12, 0));
    let campaign = app
        .started_campaign("Traced", format!("phone\n{number}\n"))
        .await;
    let dialer = voice_agent::dialer::Dialer::new(&app.state);
    dialer.run_once(app.state.clock.now()).await.unwrap();
    eventually(60, "the conversation", || async {
        (emulators.exotel_handle.conversations() == 1).then_some(())
    })
    .await;
    eventually(30, "the lead settled", || async {
        let c: Value = app.get_json(&format!("/campaigns/{campaign}")).await;
        (c["lead_counts"]["in_progress"] == 0).then_some(())
    })
    .await;
    // The `/media` handler is over (summary written, call span closed).
    eventually(30, "the media session closed", || async {
        (app.state.metrics.calls.media_sessions.get() == 0).then_some(())
    })
    .await;
    let call_id: i64 = {
        let calls = app.state.store.active_calls().await.unwrap();
        assert!(calls.is_empty());
        let lead: Value = app
            .get_json(&format!("/campaigns/{campaign}/leads?limit=1"))
            .await;
        let detail: Value = app
            .get_json(&format!("/leads/{}", lead["leads"][0]["id"]))
            .await;
        detail["calls"][0]["id"].as_i64().unwrap()
    };
    let transcript: Value = app.get_json(&format!("/calls/{call_id}/transcript")).await;
    drop(app);
    tokio::task::spawn_blocking(move || traces.shutdown())
        .await
        .unwrap();

    let bodies = bodies.lock().unwrap().clone();
    assert!(!bodies.is_empty(), "no export reached the collector");
    for body in &bodies {
        let raw = String::from_utf8_lossy(body);
        assert!(
            !raw.contains(number),
            "a phone number was exported: {raw:?}"
        );
    }
    let spans: Vec<Span> = bodies
        .iter()
        .flat_map(|b| {
            ExportTraceServiceRequest::decode(b.as_ref())
                .unwrap()
                .resource_spans
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect();
    let call = spans
        .iter()
        .find(|s| s.name == "call" && attr(s, "call_id") == Some(call_id.to_string()))
        .unwrap_or_else(|| panic!("no call span among {:?}", names(&spans)));
    assert_eq!(attr(call, "campaign_id"), Some(campaign.to_string()));
    let turns: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "turn" && s.parent_span_id == call.span_id)
        .collect();
    assert!(turns.len() >= 2, "turns: {}", turns.len());
    for turn in &turns {
        assert_eq!(turn.trace_id, call.trace_id);
        assert_eq!(attr(turn, "call_id"), Some(call_id.to_string()));
    }
    let answered = turns
        .iter()
        .find(|t| attr(t, "voice_to_voice_ms").is_some())
        .expect("a turn that answered the caller records its latency");
    let llm = spans
        .iter()
        .filter(|s| s.name == "llm.stream_chat")
        .filter(|s| turns.iter().any(|t| t.span_id == s.parent_span_id))
        .count();
    assert!(llm >= 1, "no model request inside a turn ({answered:?})");
    // The post-call summary, the STT and TTS connections: children of the call too.
    for name in ["llm.complete_json", "connect"] {
        assert!(
            spans
                .iter()
                .any(|s| s.name == name && s.trace_id == call.trace_id),
            "no {name} span in the call's trace: {:?} (transcript {transcript})",
            names(&spans)
        );
    }
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}
