//! `GET /metrics`: the figures of real calls, dials and requests, read back from the Prometheus
//! exposition (parsed, so the tests compare numbers), and the `METRICS_ADDR` listener.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use voice_agent::config::{Secret, Settings};
use voice_agent::emulators::deepgram;
use voice_agent::store::TranscriptTurn;

use crate::dialer::{fast, rig, running_campaign};
use crate::helpers::{Backend, TestApp, eventually, spawn_app};
use crate::live_call::{
    SHORT_GREETING, Script, greeting_rig, hear, hello_rig, live_rig_with, rate_limited_once,
    run_caller, tts_dropping_mid_greeting,
};

/// One sample line of the exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape.
#[derive(Debug)]
pub struct Scrape(Vec<Sample>);

impl Scrape {
    /// Parses the Prometheus text format: `name{k="v",…} value` lines; comments skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("`series value`");
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().unwrap_or_else(|e| panic!("{line}: {e}")),
                };
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap())),
                    None => (series, BTreeMap::new()),
                };
                Sample {
                    name: name.to_string(),
                    labels,
                    value,
                }
            })
            .collect();
        Scrape(samples)
    }

    /// The sum of the samples called `name` whose labels include `labels`; fails when there is
    /// none, so a renamed metric cannot pass as zero.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching: Vec<&Sample> = self
            .0
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(!matching.is_empty(), "no sample {name}{labels:?}");
        matching.iter().map(|s| s.value).sum()
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.0.iter().any(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// `k="v",k2="v2"` with `\"`, `\\` and `\n` escapes inside values.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return labels;
        }
        assert_eq!(chars.next(), Some('"'), "label {key} is quoted");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("dangling escape in {text}"),
                },
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

async fn scrape_url(client: &reqwest::Client, url: &str) -> Scrape {
    let res = client.get(url).send().await.expect("scrape");
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(&res.text().await.unwrap())
}

pub async fn scrape(app: &TestApp) -> Scrape {
    scrape_url(&app.client, &app.url("/metrics")).await
}

/// The scrape once the one call is over: no call active, its outcome counted.
async fn settled(app: &TestApp, what: &str) -> Scrape {
    eventually(20, what, || async {
        let s = scrape(app).await;
        let settled = s.value("voice_agent_active_calls", &[]) == 0.0
            && s.value("voice_agent_call_outcomes_total", &[]) == 1.0;
        settled.then_some(s)
    })
    .await
}

const PROVIDERS: [&str; 4] = ["deepgram", "openai", "elevenlabs", "exotel"];

crate::on_each_backend!(
    a_live_call_is_measured_turn_by_turn,
    an_llm_rate_limit_counts_as_an_openai_4xx,
    dropped_provider_sockets_count_as_errors_and_recoveries,
    dialer_ticks_record_claim_latency_carrier_errors_and_final_statuses,
    requests_are_counted_by_route_template_never_raw_path,
);

async fn a_live_call_is_measured_turn_by_turn(backend: Backend) {
    let Some(rig) = greeting_rig(backend).await else {
        return;
    };
    let before = scrape(&rig.app).await;
    assert_eq!(before.value("voice_agent_active_calls", &[]), 0.0);
    assert_eq!(
        before.value("voice_agent_turn_latency_seconds_count", &[]),
        0.0
    );
    let heard = hear(&rig.app, Script::interested()).await;
    assert!(heard.closed_by_bot, "the agent hung up");

    // Settled: the call task, its writes, the summary and the lead are done.
    let after = settled(&rig.app, "call settled in the metrics").await;
    assert_eq!(after.value("voice_agent_media_sessions", &[]), 0.0);
    assert_eq!(
        after.value(
            "voice_agent_call_outcomes_total",
            &[("intent", "interested")]
        ),
        1.0
    );

    // Each latency part: one observation per stored agent turn that has it, same values.
    let turns = rig
        .app
        .state
        .store
        .turns_of_call(rig.call_id)
        .await
        .unwrap();
    let agent: Vec<&TranscriptTurn> = turns.iter().filter(|t| t.speaker == "agent").collect();
    assert!(agent.len() >= 3, "greeting and replies: {turns:?}");
    type Part = fn(&TranscriptTurn) -> Option<i32>;
    let parts: [(&str, Part); 5] = [
        ("stt", |t| t.stt_ms),
        ("llm_first_token", |t| t.llm_first_token_ms),
        ("tts_first_byte", |t| t.tts_first_byte_ms),
        ("voice_to_voice", |t| t.voice_to_voice_ms),
        ("added", |t| t.added_ms),
    ];
    for (component, part) in parts {
        let stored: Vec<f64> = agent
            .iter()
            .filter_map(|t| part(t))
            .map(|ms| f64::from(ms.max(0)) / 1000.0)
            .collect();
        let labels = [("component", component)];
        let count = after.value("voice_agent_turn_latency_seconds_count", &labels);
        let sum = after.value("voice_agent_turn_latency_seconds_sum", &labels);
        assert_eq!(count, stored.len() as f64, "{component}");
        let expected: f64 = stored.iter().sum();
        assert!(
            (sum - expected).abs() < 1e-6,
            "{component}: {sum} vs {expected}"
        );
        let inf = [("component", component), ("le", "+Inf")];
        assert_eq!(
            after.value("voice_agent_turn_latency_seconds_bucket", &inf),
            count
        );
    }
    let tts = after.value(
        "voice_agent_turn_latency_seconds_count",
        &[("component", "tts_first_byte")],
    );
    assert_eq!(tts, agent.len() as f64, "every agent turn was voiced");
    assert!(
        after.value(
            "voice_agent_turn_latency_seconds_count",
            &[("component", "voice_to_voice")]
        ) >= 2.0,
        "replies to the caller have a voice-to-voice latency"
    );

    // Every frame the caller received was counted once; late frames are a part of them.
    let sent = after.value("voice_agent_audio_frames_sent_total", &[]);
    assert!(sent > 0.0);
    assert_eq!(sent, heard.media_frames as f64);
    assert!(after.value("voice_agent_audio_frames_late_total", &[]) <= sent);

    // A clean call: no provider error, and the writer's round trips were timed.
    for provider in PROVIDERS {
        assert_eq!(
            after.value(
                "voice_agent_provider_errors_total",
                &[("provider", provider)]
            ),
            0.0,
            "{provider}"
        );
    }
    assert_eq!(
        after.value(
            "voice_agent_db_query_duration_seconds_count",
            &[("op", "add_turn")]
        ),
        turns.len() as f64
    );
    assert_eq!(
        after.value(
            "voice_agent_http_requests_total",
            &[("route", "/media"), ("status", "1xx")]
        ),
        1.0,
        "one WebSocket upgrade"
    );
}

async fn an_llm_rate_limit_counts_as_an_openai_4xx(backend: Backend) {
    let Some(rig) = hello_rig(backend).await else {
        return;
    };
    rig.llm.set_faults(rate_limited_once());
    let script =
        Script::saying(vec!["What is this about?"], 20).hanging_up_after(Duration::from_secs(10));
    run_caller(&rig.app, script).await;
    let after = settled(&rig.app, "call over").await;
    assert!(rig.llm.request_count() >= 2, "the 429 was retried");
    let openai = |kind| {
        after.value(
            "voice_agent_provider_errors_total",
            &[("provider", "openai"), ("kind", kind)],
        )
    };
    assert_eq!(openai("http_4xx"), 1.0, "the one 429");
    assert_eq!(
        after.value(
            "voice_agent_provider_errors_total",
            &[("provider", "openai")]
        ),
        1.0,
        "and nothing else"
    );
    assert_eq!(
        after.value(
            "voice_agent_provider_errors_total",
            &[("provider", "elevenlabs")]
        ),
        0.0
    );
}

async fn dropped_provider_sockets_count_as_errors_and_recoveries(backend: Backend) {
    // Deepgram drops after 3 s of audio; the first TTS socket after 1 s, mid-greeting.
    let dg = deepgram::Config {
        drop_connections: Some(deepgram::DropFault {
            first: 1,
            after: deepgram::DropAfter::AudioTime(Duration::from_secs(3)),
        }),
        ..deepgram::Config::default()
    };
    let el = tts_dropping_mid_greeting();
    let Some(rig) = live_rig_with(backend, SHORT_GREETING, "en-IN", dg, el).await else {
        return;
    };
    let script = Script::saying(vec![], 20).hanging_up_after(Duration::from_secs(10));
    run_caller(&rig.app, script).await;
    let s = settled(&rig.app, "call over").await;
    let reconnects = rig.dg.stats().connections - 1;
    assert!(reconnects >= 1, "the STT socket was dropped and reopened");
    let recovered = |provider, kind| {
        s.value(
            "voice_agent_provider_reconnects_total",
            &[("provider", provider), ("kind", kind)],
        )
    };
    assert_eq!(recovered("deepgram", "reconnect"), reconnects as f64);
    let dropped = [("provider", "deepgram"), ("kind", "dropped")];
    assert_eq!(
        s.value("voice_agent_provider_errors_total", &dropped),
        reconnects as f64
    );
    let fallbacks = rig.tts.stats().http_requests;
    assert!(fallbacks >= 1, "the rest of the greeting came over HTTP");
    assert_eq!(recovered("elevenlabs", "http_fallback"), fallbacks as f64);
    let el_dropped = [("provider", "elevenlabs"), ("kind", "dropped")];
    assert_eq!(
        s.value("voice_agent_provider_errors_total", &el_dropped),
        1.0
    );
}

async fn dialer_ticks_record_claim_latency_carrier_errors_and_final_statuses(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |_| {}).await else {
        return;
    };
    let id = running_campaign(&rig.app, json!({"name": "Measured"}), "phone\n9876543210\n").await;
    let m = |s: &Scrape, name: &str, labels: &[(&str, &str)]| s.value(name, labels);

    // A carrier 5xx: the claim is given back, the error counted by class.
    rig.exotel.inject_faults(&[503]);
    let out = rig.tick().await;
    assert_eq!((out.claimed, out.released), (1, 1));
    let s = scrape(&rig.app).await;
    assert_eq!(
        m(&s, "voice_agent_dialer_claim_duration_seconds_count", &[]),
        1.0
    );
    let claim_sum = m(&s, "voice_agent_dialer_claim_duration_seconds_sum", &[]);
    assert!(
        claim_sum > 0.0,
        "a real transaction takes time: {claim_sum}"
    );
    let db = |s: &Scrape, op| {
        m(
            s,
            "voice_agent_db_query_duration_seconds_count",
            &[("op", op)],
        )
    };
    assert_eq!(db(&s, "claim_leads"), 1.0);
    assert_eq!(db(&s, "running_campaigns"), 1.0);
    assert_eq!(db(&s, "release_claim"), 1.0);
    let exotel = [("provider", "exotel"), ("kind", "http_5xx")];
    assert_eq!(m(&s, "voice_agent_provider_errors_total", &exotel), 1.0);
    assert_eq!(m(&s, "voice_agent_calls_ended_total", &[]), 0.0);

    // A minute later the call goes through, is answered and completes.
    rig.app.state.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(rig.tick().await.dialed, 1);
    let s = eventually(10, "completed call counted", || async {
        let s = scrape(&rig.app).await;
        let completed = [("carrier_status", "completed")];
        (s.value("voice_agent_calls_ended_total", &completed) == 1.0).then_some(s)
    })
    .await;
    assert_eq!(
        m(&s, "voice_agent_calls_ended_total", &[]),
        1.0,
        "only that"
    );
    assert_eq!(
        m(&s, "voice_agent_dialer_claim_duration_seconds_count", &[]),
        2.0
    );
    assert_eq!(db(&s, "claim_leads"), 2.0);
    assert_eq!(db(&s, "mark_dialing"), 1.0);
    assert_eq!(m(&s, "voice_agent_provider_errors_total", &[]), 1.0);
    let webhooks = [
        ("method", "POST"),
        ("route", "/webhooks/exotel/status"),
        ("status", "2xx"),
    ];
    assert!(m(&s, "voice_agent_http_requests_total", &webhooks) >= 1.0);
    // The lead is settled right after the call's final status is counted.
    eventually(10, "lead settled", || async {
        let lead = crate::dialer::leads(&rig.app, id).await;
        (lead[0]["status"] == "completed").then_some(())
    })
    .await;
}

async fn requests_are_counted_by_route_template_never_raw_path(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let id = app.create_campaign("Counted").await;
    assert_eq!(app.get(&format!("/campaigns/{id}")).await.status(), 200);
    assert_eq!(app.get("/campaigns/987654").await.status(), 404);
    assert_eq!(app.get("/no/such/+919876543210").await.status(), 404);
    let s = scrape(&app).await;
    let route = |method, route, status| {
        s.value(
            "voice_agent_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(route("POST", "/campaigns", "2xx"), 1.0);
    assert_eq!(route("GET", "/campaigns/{id}", "2xx"), 1.0);
    assert_eq!(route("GET", "/campaigns/{id}", "4xx"), 1.0);
    assert_eq!(route("GET", "(unmatched)", "4xx"), 1.0);
    let text = app.get_text("/metrics").await;
    assert!(
        !text.contains("987654") && !text.contains("9876543210"),
        "{text}"
    );

    // Another instance in the same process has figures of its own.
    let other = spawn_app(Backend::Sqlite).await.unwrap();
    let theirs = scrape(&other).await;
    assert!(!theirs.has(
        "voice_agent_http_requests_total",
        &[("route", "/campaigns")]
    ));
    assert_eq!(
        scrape(&app).await.value("voice_agent_active_calls", &[]),
        0.0
    );
}

#[tokio::test]
async fn metrics_addr_serves_metrics_alone_and_without_the_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = free.local_addr().unwrap();
    drop(free);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = Settings::for_database(&url);
    settings.api_key = Some(Secret::new("metrics-test-key"));
    settings.metrics_addr = Some(metrics_addr);
    settings.dialer.tick = Duration::from_millis(20);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(voice_agent::startup::run(listener, settings, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let metrics_url = format!("http://{metrics_addr}/metrics");

    // The dialer loop runs: its ticks are measured against their schedule.
    let s = eventually(10, "dialer ticks measured", || async {
        let res = client.get(&metrics_url).send().await.ok()?;
        let s = Scrape::parse(&res.text().await.ok()?);
        (s.value("voice_agent_dialer_tick_lag_seconds_count", &[]) >= 2.0).then_some(s)
    })
    .await;
    assert_eq!(s.value("voice_agent_active_calls", &[]), 0.0);
    scrape_url(&client, &metrics_url).await;

    // Only /metrics there; the main port's /metrics follows the API key.
    let other = client
        .get(format!("http://{metrics_addr}/campaigns"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let main = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(main.status(), 401);
    let main = client
        .get(format!("{base}/metrics"))
        .bearer_auth("metrics-test-key")
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 200);
    let main = Scrape::parse(&main.text().await.unwrap());
    assert_eq!(
        main.value(
            "voice_agent_http_requests_total",
            &[("route", "/metrics"), ("status", "4xx")]
        ),
        1.0,
        "the refused scrape was counted"
    );

    // Shutdown stops the metrics listener too.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    assert!(client.get(&metrics_url).send().await.is_err());
}
