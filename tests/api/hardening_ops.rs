//! The service under an unlucky operator's conditions: the database going away or locked, a
//! request whose body stops half-way, webhook URLs that lead inside, carrier text written to
//! logs, an inbound stream that fails at once, and a dashboard read while the lead tables are
//! locked (it must not need them: its aggregates are maintained, not recounted).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::{Connection, Executor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use voice_agent::store::{CallStatus, LeadStatus, NewDelivery, TranscriptTurn};

use crate::helpers::{
    Backend, TestApp, error_code, eventually, final_status, fresh_postgres_url, spawn_app_at,
    spawn_app_env, with_vars,
};

crate::on_each_backend!(
    a_database_outage_fails_requests_fast_with_503,
    the_dashboard_does_not_read_the_lead_call_or_turn_tables,
    an_inbound_stream_that_fails_at_once_settles_its_call_and_lead,
    a_media_stream_with_a_nul_in_its_ids_is_refused_and_stores_nothing,
);

/// A TCP forwarder to PostgreSQL that can be cut, as a network outage would.
struct Proxy {
    port: u16,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let inner = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                inner.lock().unwrap().push(pipe);
            }
        });
        tasks.lock().unwrap().push(accept);
        Proxy { port, tasks }
    }

    /// Every connection dropped and new ones refused.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// The URL's `host:port`, and the URL with them replaced by `127.0.0.1:port`.
fn through(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, path) = rest.split_once('/').unwrap();
    let (user, host) = auth.rsplit_once('@').map_or(("", auth), |(u, h)| (u, h));
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    };
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    (host, format!("{scheme}://{user}127.0.0.1:{port}/{path}"))
}

async fn a_database_outage_fails_requests_fast_with_503(backend: Backend) {
    let vars = [("DB_ACQUIRE_TIMEOUT_MS", "500")];
    match backend {
        Backend::Postgres => {
            let Some(url) = fresh_postgres_url().await else {
                return;
            };
            let (target, _) = through(&url, 0);
            let proxy = Proxy::start(target).await;
            let (_, proxied) = through(&url, proxy.port);
            let app = spawn_app_at(&proxied, None, |s| with_vars(s, &vars)).await;
            assert_eq!(app.get("/campaigns").await.status(), 200);
            proxy.cut();
            for path in ["/campaigns", "/dashboard"] {
                let started = Instant::now();
                let res = app.get(path).await;
                let took = started.elapsed();
                assert_eq!(res.status(), 503, "{path}");
                assert_eq!(error_code(res).await, "unavailable", "{path}");
                assert!(took < Duration::from_secs(4), "{path} took {took:?}");
            }
            assert_eq!(app.get("/health").await.status(), 503);
        }
        Backend::Sqlite => {
            let app = spawn_app_env(Backend::Sqlite, &vars).await.unwrap();
            // Another process holds the write lock (a long import, a stuck admin session).
            let mut other = sqlx::SqliteConnection::connect(&app.state.settings.database_url)
                .await
                .unwrap();
            other.execute("BEGIN IMMEDIATE").await.unwrap();
            let started = Instant::now();
            let res = app.post_json("/campaigns", json!({"name": "Locked"})).await;
            let took = started.elapsed();
            assert_eq!(res.status(), 503);
            assert_eq!(error_code(res).await, "unavailable");
            assert!(took < Duration::from_secs(4), "took {took:?}");
            other.execute("ROLLBACK").await.unwrap();
            let res = app.post_json("/campaigns", json!({"name": "Free"})).await;
            assert_eq!(res.status(), 201, "recovered");
        }
    }
}

#[tokio::test]
async fn a_request_whose_body_stops_half_way_gets_503_after_the_request_timeout() {
    let app = spawn_app_env(Backend::Sqlite, &[("HTTP_REQUEST_TIMEOUT_MS", "500")])
        .await
        .unwrap();
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /campaigns HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer before the client gives up")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"unavailable\""), "{text}");
}

/// A hostname (from /etc/hosts) that resolves to a loopback address, other than `localhost`.
fn loopback_alias() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        let ip = parts.next()?;
        if !ip.starts_with("127.") {
            return None;
        }
        parts
            .find(|n| !n.starts_with('#') && !n.contains("localhost"))
            .map(str::to_string)
    })
}

#[tokio::test]
async fn deliveries_to_internal_addresses_are_refused_when_sent() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await.unwrap();
    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = receiver.local_addr().unwrap().port();
    let hits = Arc::new(Mutex::new(0u32));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = receiver.accept().await {
            *counted.lock().unwrap() += 1;
        }
    });
    let campaign = app
        .started_campaign("Rebind", "phone\n9876543210\n9876543211\n")
        .await;
    let calls = app.claim_calls(campaign, 2).await;
    // Rows as a campaign created before this policy, or a name whose address changed since
    // (DNS rebinding), would have left them.
    let mut urls = vec![format!("http://127.0.0.1:{port}/hook")];
    match loopback_alias() {
        Some(name) => urls.push(format!("http://{name}:{port}/hook")),
        None => eprintln!("NOTE: no loopback alias in /etc/hosts: the DNS half is not run"),
    }
    let now = app.state.clock.now();
    for (url, call_id) in urls.iter().zip(&calls) {
        let delivery = NewDelivery {
            campaign_id: campaign,
            call_id: *call_id,
            event: "call.completed".into(),
            url: url.clone(),
            payload: "{}".into(),
        };
        assert!(
            app.state
                .store
                .enqueue_webhook(&delivery, now, now)
                .await
                .unwrap()
        );
    }
    let pass = voice_agent::notify::Deliverer::new(&app.state)
        .run_once(now)
        .await
        .unwrap();
    assert_eq!(pass.claimed, urls.len());
    assert_eq!(pass.delivered, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*hits.lock().unwrap(), 0, "no request reached the receiver");
    let list = app
        .get_json(&format!("/campaigns/{campaign}/webhook-deliveries"))
        .await;
    for d in list["deliveries"].as_array().unwrap() {
        let error = d["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("not allowed"), "{d}");
    }
}

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn carrier_text_cannot_forge_or_flood_log_lines() {
    use tower::ServiceExt;
    let app = crate::helpers::spawn_app(Backend::Sqlite).await.unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // This test's thread only (a current-thread runtime: the service's tasks run here too).
    let _logging = tracing::subscriber::set_default(subscriber);
    let forged = "CA-9\n2026-01-01T00:00:00Z  INFO voice_agent: forged line\u{1b}[2J";
    let flood = format!("CA-{}", "x".repeat(20_000));
    for sid in [forged.to_string(), flood] {
        let body = json!({"CallSid": sid, "Status": "completed"}).to_string();
        let request = axum::http::Request::post(app.status_webhook_url())
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        let router = voice_agent::startup::router(app.state.clone());
        let res = router.oneshot(request).await.unwrap();
        assert!(res.status().is_client_error() || res.status().is_success());
    }
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "an escape sequence reached the log:\n{text}"
    );
    for line in text.lines() {
        assert!(line.len() < 2_000, "a {}-byte log line", line.len());
        assert!(
            !line.starts_with("2026-01-01T00:00:00Z"),
            "a forged line: {line}"
        );
    }
    assert!(
        text.contains("forged line"),
        "the callback was logged:\n{text}"
    );
}

async fn the_dashboard_does_not_read_the_lead_call_or_turn_tables(backend: Backend) {
    let Some(app) = crate::helpers::spawn_app(backend).await else {
        return;
    };
    let csv = "phone,name\n9876543210,A\n9876543211,B\n9876543212,C\n9876543213,D\n";
    let campaign = app.started_campaign("Tallied", csv).await;
    let store = app.state.store.as_ref();
    let now = app.state.clock.now();
    let calls = app.claim_calls(campaign, 2).await;
    store.mark_dialing(calls[0], "CA-t-1", now).await.unwrap();
    let mut turn = TranscriptTurn::new(calls[0], 1, "agent", "Namaste");
    turn.voice_to_voice_ms = Some(700);
    turn.llm_first_token_ms = Some(300);
    store.add_turn(&turn, now).await.unwrap();
    let q = serde_json::Map::new();
    store
        .record_call_outcome(calls[0], "interested", &q, Some("ok"), now)
        .await
        .unwrap();
    app.carrier_ends(calls[0], &final_status(CallStatus::Completed, 65, now), now)
        .await;
    app.carrier_ends(calls[1], &final_status(CallStatus::Busy, 0, now), now)
        .await;
    let expected: Value = app.get_json("/dashboard").await;
    assert_eq!(expected["totals"]["leads"]["total"], 4, "{expected}");
    assert_eq!(
        expected["totals"]["outcomes"]["interested"], 1,
        "{expected}"
    );
    assert_eq!(expected["totals"]["calls"]["total"], 2, "{expected}");
    assert_eq!(expected["totals"]["talk_time_secs"]["total"], 65);
    assert_eq!(
        expected["totals"]["latency_ms"]["voice_to_voice"]["p50"],
        700
    );
    assert_eq!(
        expected["campaigns"][0]["leads"]["by_status"][LeadStatus::Retry.as_str()],
        1
    );

    // The tables that grow with the data are made unreadable; the dashboard must not need them.
    let answer = match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.state.settings.database_url)
                .await
                .unwrap();
            conn.execute("BEGIN").await.unwrap();
            conn.execute("LOCK TABLE leads, calls, transcript_turns IN ACCESS EXCLUSIVE MODE")
                .await
                .unwrap();
            let answer = dashboard_within(&app, Duration::from_secs(5)).await;
            conn.execute("ROLLBACK").await.unwrap();
            answer
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.state.settings.database_url)
                .await
                .unwrap();
            for t in ["leads", "calls", "transcript_turns"] {
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE {t} RENAME TO {t}_away"
                )))
                .await
                .unwrap();
            }
            let answer = dashboard_within(&app, Duration::from_secs(5)).await;
            for t in ["leads", "calls", "transcript_turns"] {
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE {t}_away RENAME TO {t}"
                )))
                .await
                .unwrap();
            }
            answer
        }
    };
    let got = answer.expect("/dashboard answered while the tables were unreadable");
    assert_eq!(got["campaigns"], expected["campaigns"]);
    assert_eq!(got["totals"], expected["totals"]);
}

async fn dashboard_within(app: &TestApp, within: Duration) -> Result<Value, String> {
    let res = tokio::time::timeout(within, app.client.get(app.url("/dashboard")).send())
        .await
        .map_err(|_| format!("no answer within {within:?}"))?
        .map_err(|e| e.to_string())?;
    if res.status() != 200 {
        return Err(format!(
            "{}: {}",
            res.status(),
            res.text().await.unwrap_or_default()
        ));
    }
    res.json().await.map_err(|e| e.to_string())
}

async fn an_inbound_stream_that_fails_at_once_settles_its_call_and_lead(backend: Backend) {
    // No text-to-speech configured: the stream cannot start a conversation.
    let Some(app) = crate::helpers::spawn_app(backend).await else {
        return;
    };
    stream_start_until_closed(&app, "MZ9", "CA-in-fail", "+919812345670").await;
    let store = app.state.store.as_ref();
    // The call ends first, then its lead is settled: wait for both.
    let (call, lead) = eventually(5, "the inbound call ended and its lead settled", || async {
        let c = store.find_call_by_sid("CA-in-fail").await.unwrap()?;
        let lead = store.get_lead(c.lead_id?).await.unwrap();
        (!c.status.is_active() && lead.status != LeadStatus::Pending).then_some((c, lead))
    })
    .await;
    assert_eq!(call.status, CallStatus::Failed, "{call:?}");
    assert!(call.ended_at.is_some());
    assert!(
        call.error
            .as_deref()
            .unwrap_or("")
            .contains("text-to-speech"),
        "{call:?}"
    );
    assert_eq!(lead.last_result.as_deref(), Some("failed"), "{lead:?}");
    assert_ne!(lead.status, LeadStatus::InProgress, "{lead:?}");
}

async fn a_media_stream_with_a_nul_in_its_ids_is_refused_and_stores_nothing(backend: Backend) {
    let Some(app) = crate::helpers::spawn_app(backend).await else {
        return;
    };
    stream_start_until_closed(&app, "MZ8", "CA\u{0}8", "+919812345671").await;
    let campaigns = app.get_json("/campaigns").await;
    assert_eq!(
        campaigns["campaigns"],
        json!([]),
        "no inbound call was recorded"
    );
}

/// Opens `/media`, sends a `start` for `call_sid` from `from`, and waits for the service to close.
async fn stream_start_until_closed(app: &TestApp, stream_sid: &str, call_sid: &str, from: &str) {
    let secret = app.state.settings.webhook_secret.expose().to_string();
    let url = format!(
        "{}/media?secret={secret}",
        app.base.replacen("http", "ws", 1)
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let start = json!({"event": "start", "sequence_number": "1", "stream_sid": stream_sid, "start": {
        "stream_sid": stream_sid, "call_sid": call_sid, "account_sid": "AC1", "from": from,
        "to": "+918044556677", "custom_parameters": {},
        "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"}}});
    tx.send(Message::text(start.to_string())).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = rx.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the service closed the stream");
}
