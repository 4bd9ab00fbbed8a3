//! Exotel emulator, REST half: `Calls/connect.json` (Basic auth, required fields, Exotel's
//! answers and errors, its rate limit when asked), call details `Calls/{sid}.json`, a simulated
//! callee per number (ring, then answered / no-answer / busy / failed) and the status callbacks
//! Exotel sends afterwards (`answered`, `terminal`), JSON or multipart as requested.
//!
//! When the bot's `/media` URL is known (the configured [`ExotelConfig::media_url`] in flow mode,
//! the request's `StreamUrl` in direct-stream mode), an answered call is a real conversation:
//! a [`callee`](super::callee) persona connects to the bot as Exotel's Voicebot applet would, and
//! the call lasts as long as that conversation. Without one, an answered call lasts `talk_time`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

pub use super::callee::CalleeOutcome;
use super::callee::{self, CallReport, CalleeConfig, Language, Persona, StartInfo, Violations};
use super::{Running, serve};

#[derive(Debug, Clone)]
pub struct ExotelConfig {
    pub account_sid: String,
    pub api_key: String,
    pub api_token: String,
    /// Time from the connect request to the callee's answer (or giving up).
    pub ring_delay: Duration,
    /// How long an answered call lasts (when no `/media` conversation decides).
    pub talk_time: Duration,
    pub default_outcome: CalleeOutcome,
    /// Per-number outcomes (E.164).
    pub outcomes: HashMap<String, CalleeOutcome>,
    /// Requests per minute per account before 429 (Exotel: 200); `None` = unlimited.
    pub rate_limit_per_min: Option<u32>,
    /// Connect requests in any one second before 429 (`Retry-After: 1`); `None` = unlimited.
    /// A sliding window over the arrival times: the strictest reading of "N per second".
    pub rate_limit_per_sec: Option<u32>,
    /// Send status callbacks (turn off to emulate lost webhooks).
    pub send_callbacks: bool,
    /// Send the `answered` callback but lose every `terminal` one (the call stays active at the
    /// bot until it asks the call-details API).
    pub drop_terminal_callbacks: bool,
    /// The clock of the times the emulator writes (callbacks, call details): the service's
    /// when they run together with a shifted clock (the demo), so a call has one timeline.
    pub clock: crate::clock::Clock,
    /// The bot's `/media` WebSocket URL, as configured in the flow's Voicebot applet (flow mode).
    /// A request's `StreamUrl` (direct-stream mode) takes precedence. With neither, answered
    /// calls just last `talk_time`.
    pub media_url: Option<String>,
    /// How every simulated callee behaves; its `persona` and `language` are the defaults for
    /// numbers not in `personas` / `languages`, and its `seed` is mixed with each number.
    pub callee: CalleeConfig,
    /// Per-number personas (E.164). `no_answer` and `busy` become those outcomes; an explicit
    /// entry in `outcomes` wins over both.
    pub personas: HashMap<String, Persona>,
    /// Per-number languages (E.164).
    pub languages: HashMap<String, Language>,
    /// How many recent call reports `ExotelHandle::reports` keeps.
    pub keep_reports: usize,
}

impl Default for ExotelConfig {
    fn default() -> Self {
        Self {
            account_sid: "emulated-account".into(),
            api_key: "emulated-key".into(),
            api_token: "emulated-token".into(),
            ring_delay: Duration::from_millis(800),
            talk_time: Duration::from_secs(3),
            default_outcome: CalleeOutcome::Answered,
            outcomes: HashMap::new(),
            rate_limit_per_min: None,
            rate_limit_per_sec: None,
            send_callbacks: true,
            drop_terminal_callbacks: false,
            clock: crate::clock::Clock::default(),
            media_url: None,
            callee: CalleeConfig::default(),
            personas: HashMap::new(),
            languages: HashMap::new(),
            keep_reports: 1_000,
        }
    }
}

/// A connect request as received.
#[derive(Debug, Clone)]
pub struct ConnectRecord {
    pub form: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub status: u16,
    /// When the request arrived.
    pub received_at: Instant,
}

impl ConnectRecord {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Debug, Clone)]
struct EmuCall {
    from: String,
    status: String,
    answered_by: Option<String>,
    duration: Option<u64>,
    /// When the call ended at the carrier (the callee hung up, or it was never answered).
    ended_at: Option<Instant>,
    end_time: Option<String>,
}

#[derive(Default)]
struct Inner {
    requests: Vec<ConnectRecord>,
    calls: HashMap<String, EmuCall>,
    /// Statuses to answer the next connect requests with (429, 500, 401…), in order.
    faults: VecDeque<u16>,
    recent: VecDeque<Instant>,
    last_second: VecDeque<Instant>,
    active: u64,
    max_active: u64,
    callbacks_sent: u64,
    callbacks_failed: u64,
    next_sid: u64,
    /// The last `keep_reports` conversations, oldest first.
    reports: VecDeque<CallReport>,
    /// Summed over every conversation, including those no longer in `reports`.
    violations: Violations,
    conversations: u64,
    media_failures: u64,
}

/// Test-side view of the emulator.
#[derive(Clone)]
pub struct ExotelHandle {
    config: Arc<ExotelConfig>,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
}

impl ExotelHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every connect request received, in order.
    pub fn requests(&self) -> Vec<ConnectRecord> {
        self.lock().requests.clone()
    }

    /// Answers the next connect requests with these statuses, one each.
    pub fn inject_faults(&self, statuses: &[u16]) {
        self.lock().faults.extend(statuses);
    }

    /// Calls placed and not yet ended.
    pub fn active(&self) -> u64 {
        self.lock().active
    }

    /// The most calls ever in progress at once.
    pub fn max_active(&self) -> u64 {
        self.lock().max_active
    }

    pub fn callbacks_sent(&self) -> u64 {
        self.lock().callbacks_sent
    }

    /// Reports of the most recent `/media` conversations, oldest first.
    pub fn reports(&self) -> Vec<CallReport> {
        self.lock().reports.iter().cloned().collect()
    }

    /// The report of one call, while it is among the recent ones.
    pub fn report(&self, sid: &str) -> Option<CallReport> {
        self.lock()
            .reports
            .iter()
            .find(|r| r.call_sid == sid)
            .cloned()
    }

    /// Protocol violations by the bot, summed over every conversation.
    pub fn violations(&self) -> Violations {
        self.lock().violations
    }

    /// `/media` conversations held (finished).
    pub fn conversations(&self) -> u64 {
        self.lock().conversations
    }

    /// Answered calls whose `/media` WebSocket could not be opened.
    pub fn media_failures(&self) -> u64 {
        self.lock().media_failures
    }

    /// When each call ended at the carrier, by sid (calls still going on are left out).
    pub fn ended_calls(&self) -> Vec<(String, Instant)> {
        self.lock()
            .calls
            .iter()
            .filter_map(|(sid, c)| c.ended_at.map(|t| (sid.clone(), t)))
            .collect()
    }

    /// Numbers dialled, one entry per accepted call.
    pub fn dialled(&self) -> Vec<String> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.status == 200)
            .filter_map(|r| r.get("From").map(str::to_string))
            .collect()
    }
}

pub fn router(config: ExotelConfig) -> (Router, ExotelHandle) {
    let handle = ExotelHandle {
        config: Arc::new(config),
        inner: Arc::default(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("HTTP client"),
    };
    let router = Router::new()
        .route("/v1/Accounts/{account}/Calls/connect.json", post(connect))
        .route("/v1/Accounts/{account}/Calls/{file}", get(details))
        .with_state(handle.clone());
    (router, handle)
}

pub async fn spawn(
    config: ExotelConfig,
    addr: SocketAddr,
) -> std::io::Result<(Running, ExotelHandle)> {
    let (router, handle) = router(config);
    Ok((serve(router, addr).await?, handle))
}

fn rest_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"RestException": {"Status": status.as_u16(), "Message": message, "Code": status.as_u16()}});
    (status, axum::Json(body)).into_response()
}

fn authorized(h: &ExotelHandle, headers: &HeaderMap) -> bool {
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", h.config.api_key, h.config.api_token));
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .is_some_and(|v| v == expected)
}

async fn connect(
    State(h): State<ExotelHandle>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut record = ConnectRecord {
        form,
        authorization: auth,
        status: 200,
        received_at: Instant::now(),
    };
    let response = decide_connect(&h, &account, &headers, &record);
    record.status = response.0.as_u16();
    let (status, reply) = response;
    h.lock().requests.push(record.clone());
    match reply {
        Err(resp) => resp,
        Ok(sid) => {
            tokio::spawn(simulate_callee(h.clone(), sid.clone(), record));
            let now = exotel_now(&h.config.clock);
            let body = json!({"Call": {
                "Sid": sid, "ParentCallSid": null, "AccountSid": account,
                "From": h.lock().calls.get(&sid).map(|c| c.from.clone()),
                "To": null, "PhoneNumberSid": "emulated", "Status": "in-progress",
                "DateCreated": now, "DateUpdated": now, "StartTime": now, "EndTime": null,
                "Duration": null, "Price": null, "Direction": "outbound-api", "AnsweredBy": null,
                "Uri": format!("/v1/Accounts/{account}/Calls/{sid}.json"), "RecordingUrl": null
            }});
            (status, axum::Json(body)).into_response()
        }
    }
}

/// Validates a connect request like Exotel; `Ok(sid)` when the call is placed.
fn decide_connect(
    h: &ExotelHandle,
    account: &str,
    headers: &HeaderMap,
    record: &ConnectRecord,
) -> (StatusCode, Result<String, Response>) {
    let fail = |s: StatusCode, m: &str| (s, Err(rest_error(s, m)));
    if !authorized(h, headers) || account != h.config.account_sid {
        return fail(
            StatusCode::UNAUTHORIZED,
            "Authentication is required to view this resource.",
        );
    }
    let mut inner = h.lock();
    if let Some(code) = inner.faults.pop_front() {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        drop(inner);
        return fail(status, "injected fault");
    }
    let now = record.received_at;
    let limits = [
        (h.config.rate_limit_per_min, Duration::from_secs(60)),
        (h.config.rate_limit_per_sec, Duration::from_secs(1)),
    ];
    let Inner {
        recent,
        last_second,
        ..
    } = &mut *inner;
    let mut windows = [recent, last_second];
    let limited = limits
        .iter()
        .zip(windows.iter_mut())
        .any(|((limit, span), window)| limit.is_some_and(|l| full(window, now, *span, l)));
    if limited {
        drop(inner);
        let mut resp = rest_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        resp.headers_mut()
            .insert("retry-after", "1".parse().expect("header"));
        return (StatusCode::TOO_MANY_REQUESTS, Err(resp));
    }
    for ((limit, _), window) in limits.iter().zip(windows) {
        if limit.is_some() {
            window.push_back(now);
        }
    }
    let from = record.get("From").unwrap_or("");
    if from.is_empty() || record.get("CallerId").is_none_or(str::is_empty) {
        drop(inner);
        return fail(StatusCode::BAD_REQUEST, "From and CallerId are required");
    }
    if record.get("Url").is_none() && record.get("StreamUrl").is_none() {
        drop(inner);
        return fail(StatusCode::BAD_REQUEST, "Url or StreamUrl is required");
    }
    let digits = from.trim_start_matches('+');
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        drop(inner);
        return fail(StatusCode::BAD_REQUEST, "Invalid From number");
    }
    inner.next_sid += 1;
    let sid = format!("emu{:016x}{:08x}", inner.next_sid, std::process::id());
    inner.calls.insert(
        sid.clone(),
        EmuCall {
            from: from.to_string(),
            status: "in-progress".into(),
            answered_by: None,
            duration: None,
            ended_at: None,
            end_time: None,
        },
    );
    inner.active += 1;
    inner.max_active = inner.max_active.max(inner.active);
    (StatusCode::OK, Ok(sid))
}

/// Whether `limit` accepted requests arrived within `span` before `now` (a sliding window of
/// arrival times; older ones are forgotten).
fn full(window: &mut VecDeque<Instant>, now: Instant, span: Duration, limit: u32) -> bool {
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= span)
    {
        window.pop_front();
    }
    window.len() as u32 >= limit
}

/// Who answers `number`, and how.
fn callee_for(config: &ExotelConfig, number: &str) -> (CalleeOutcome, CalleeConfig) {
    let persona = config.personas.get(number).copied();
    let outcome = match (config.outcomes.get(number), persona) {
        (Some(o), _) => *o,
        (None, Some(p)) => p.outcome(),
        (None, None) if config.default_outcome == CalleeOutcome::Answered => {
            config.callee.persona.outcome()
        }
        (None, None) => config.default_outcome,
    };
    let mut callee = config.callee.clone();
    callee.persona = persona.unwrap_or(callee.persona);
    callee.language = config
        .languages
        .get(number)
        .copied()
        .unwrap_or(callee.language);
    callee.seed = callee::seed_for(callee.seed, number);
    (outcome, callee)
}

/// Rings, then ends the call the way the number's callee would, sending callbacks.
async fn simulate_callee(h: ExotelHandle, sid: String, record: ConnectRecord) {
    let from = record.get("From").unwrap_or_default().to_string();
    let (outcome, callee) = callee_for(&h.config, &from);
    tokio::time::sleep(h.config.ring_delay).await;
    let events = record.all("StatusCallbackEvents[]");
    let (status, duration, answered_by) = match outcome {
        CalleeOutcome::Answered => {
            let answered_by = callee.persona.answered_by();
            let answered = async {
                if events.contains(&"answered") {
                    send_callback(
                        &h,
                        &record,
                        &sid,
                        "in-progress",
                        Some("answered"),
                        None,
                        Some(answered_by),
                    )
                    .await;
                }
            };
            let media_url = record
                .get("StreamUrl")
                .map(str::to_string)
                .or_else(|| h.config.media_url.clone());
            let talked = match media_url {
                None => {
                    answered.await;
                    tokio::time::sleep(h.config.talk_time).await;
                    h.config.talk_time.as_secs()
                }
                Some(url) => {
                    // Exotel opens the stream on answer; it does not wait for our webhook.
                    let start = StartInfo {
                        call_sid: sid.clone(),
                        account_sid: h.config.account_sid.clone(),
                        from: from.clone(),
                        to: record.get("CallerId").unwrap_or_default().to_string(),
                    };
                    let (_, talked) = tokio::join!(answered, converse(&h, &url, start, callee));
                    talked.as_secs_f64().round() as u64
                }
            };
            ("completed", Some(talked), Some(answered_by))
        }
        CalleeOutcome::NoAnswer => ("no-answer", Some(0), None),
        CalleeOutcome::Busy => ("busy", Some(0), None),
        CalleeOutcome::Failed => ("failed", Some(0), None),
    };
    {
        let mut inner = h.lock();
        if let Some(c) = inner.calls.get_mut(&sid) {
            c.status = status.into();
            c.duration = duration;
            c.answered_by = answered_by.map(str::to_string);
            c.ended_at = Some(Instant::now());
            c.end_time = Some(exotel_now(&h.config.clock));
        }
        inner.active = inner.active.saturating_sub(1);
    }
    let event = events.contains(&"terminal").then_some("terminal");
    if h.config.drop_terminal_callbacks {
        return;
    }
    send_callback(&h, &record, &sid, status, event, duration, answered_by).await;
}

/// The `/media` conversation of an answered call; returns how long it lasted. A stream that
/// cannot be opened ends the call at once, as the Voicebot applet failing would.
async fn converse(h: &ExotelHandle, url: &str, start: StartInfo, callee: CalleeConfig) -> Duration {
    match callee::run_call(url, start, callee).await {
        Ok(report) => {
            let duration = report.duration;
            let mut inner = h.lock();
            inner.conversations += 1;
            inner.violations += report.violations;
            inner.reports.push_back(report);
            while inner.reports.len() > h.config.keep_reports {
                inner.reports.pop_front();
            }
            duration
        }
        Err(e) => {
            tracing::warn!(error = %e, "the callee could not reach the bot's /media");
            h.lock().media_failures += 1;
            Duration::ZERO
        }
    }
}

async fn send_callback(
    h: &ExotelHandle,
    record: &ConnectRecord,
    sid: &str,
    status: &str,
    event: Option<&str>,
    duration: Option<u64>,
    answered_by: Option<&str>,
) {
    let Some(url) = record
        .get("StatusCallback")
        .filter(|_| h.config.send_callbacks)
    else {
        return;
    };
    let now = exotel_now(&h.config.clock);
    let mut fields: Vec<(&str, String)> = vec![
        ("CallSid", sid.to_string()),
        ("Status", status.to_string()),
        ("DateUpdated", now.clone()),
        ("RecordingUrl", String::new()),
    ];
    if let Some(e) = event {
        fields.extend([
            ("EventType", e.to_string()),
            ("From", record.get("From").unwrap_or_default().to_string()),
            ("To", record.get("CallerId").unwrap_or_default().to_string()),
            ("Direction", "outbound-api".to_string()),
            ("StartTime", now.clone()),
            (
                "CustomField",
                record.get("CustomField").unwrap_or_default().to_string(),
            ),
        ]);
        if e == "terminal" {
            fields.push(("EndTime", now));
            fields.push(("ConversationDuration", duration.unwrap_or(0).to_string()));
        }
    }
    let json_body = record.get("StatusCallbackContentType") == Some("application/json");
    for _ in 0..3 {
        let request = if json_body {
            let mut body: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
                .collect();
            if event.is_some() {
                body.insert(
                    "Legs".into(),
                    json!([{"OnCallDuration": duration.unwrap_or(0), "Status": status, "AnsweredBy": answered_by.unwrap_or("NA")}]),
                );
            }
            h.http.post(url).json(&body)
        } else {
            let mut form = reqwest::multipart::Form::new();
            for (k, v) in &fields {
                form = form.text(k.to_string(), v.clone());
            }
            h.http.post(url).multipart(form)
        };
        match request.send().await {
            Ok(r) if r.status().is_success() => {
                h.lock().callbacks_sent += 1;
                return;
            }
            _ => {
                h.lock().callbacks_failed += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn details(
    State(h): State<ExotelHandle>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&h, &headers) || account != h.config.account_sid {
        return rest_error(
            StatusCode::UNAUTHORIZED,
            "Authentication is required to view this resource.",
        );
    }
    let sid = file.trim_end_matches(".json");
    let Some(call) = h.lock().calls.get(sid).cloned() else {
        return rest_error(StatusCode::NOT_FOUND, "Call not found");
    };
    let body = json!({"Call": {
        "Sid": sid, "AccountSid": account, "From": call.from, "Status": call.status,
        "Duration": call.duration, "AnsweredBy": call.answered_by, "RecordingUrl": null,
        "EndTime": call.end_time,
        "Direction": "outbound-api"
    }});
    axum::Json(body).into_response()
}

/// Now as Exotel writes times: `YYYY-MM-DD HH:mm:ss` in IST (India Standard Time), no zone.
fn exotel_now(clock: &crate::clock::Clock) -> String {
    clock
        .now()
        .with_timezone(&chrono_tz::Asia::Kolkata)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}
