//! Deepgram live-transcription emulator: `GET /v1/listen` over WebSocket, speaking the wire
//! protocol in `shared/protocols/deepgram.md` (auth and errors at the handshake, query
//! parameters, `Results`/`SpeechStarted`/`UtteranceEnd`/`Metadata`, `KeepAlive`/`Finalize`/
//! `CloseStream`, idle close 1011, 1008 for undecodable audio) so the product's real client can
//! be exercised over real sockets.
//!
//! It "recognises" the emulated speech of [`super::speech`]; all timing is audio time (see
//! [`transcriber`]). Faults can be injected (dropped connections, rejected handshakes) and
//! everything that happened is counted in [`Stats`], read through the [`Handle`].

mod connection;
pub mod transcriber;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use connection::{DATA_REASON, IDLE_REASON};

use super::Running;

/// How the emulator behaves; `Default` is a well-behaved service with realistic timings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Expected API key (`Token` or `Bearer`); `None` accepts any or none.
    pub api_key: Option<String>,
    /// Audio time between interim results while speech continues.
    pub interim_every: Duration,
    /// Audio time of continuous speech after which the words so far are finalised (without
    /// `speech_final`), as the real service does with long utterances.
    pub max_segment: Duration,
    /// Extra wall-clock delay before each final is sent (processing latency).
    pub result_latency: Duration,
    /// No audio and no text message for this long → close 1011 (NET-0001).
    pub idle_timeout: Duration,
    pub drop_connections: Option<DropFault>,
    pub reject_handshakes: Option<RejectFault>,
    /// Which end-of-turn signals are sent.
    pub turn_end: TurnEnd,
}

/// The end-of-turn signals a connection sends. Deepgram documents both (`speech_final` after
/// `endpointing` ms of silence, `UtteranceEnd` after `utterance_end_ms` without words:
/// `shared/protocols/deepgram.md`), and [`TurnEnd::default`] sends both. A client must not
/// depend on either alone: `speech_final` never comes in noise, `UtteranceEnd` needs
/// `interim_results` and a gap in the words. Turning both off is a server that forgets them;
/// the answer to `Finalize` (`from_finalize`) is still sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnEnd {
    pub speech_final: bool,
    pub utterance_end: bool,
}

impl Default for TurnEnd {
    fn default() -> Self {
        Self {
            speech_final: true,
            utterance_end: true,
        }
    }
}

impl TurnEnd {
    /// Neither `speech_final` nor `UtteranceEnd`.
    pub const NEITHER: TurnEnd = TurnEnd {
        speech_final: false,
        utterance_end: false,
    };
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_key: None,
            interim_every: Duration::from_millis(300),
            max_segment: Duration::from_millis(3000),
            result_latency: Duration::from_millis(50),
            idle_timeout: Duration::from_secs(10),
            drop_connections: None,
            reject_handshakes: None,
            turn_end: TurnEnd::default(),
        }
    }
}

/// Abruptly drop (no close frame) each of the first `first` connections, `after` into it.
#[derive(Debug, Clone, Copy)]
pub struct DropFault {
    pub first: usize,
    pub after: DropAfter,
}

#[derive(Debug, Clone, Copy)]
pub enum DropAfter {
    /// Wall-clock time since the upgrade.
    WallClock(Duration),
    /// Audio received on the connection; deterministic however fast the client sends.
    AudioTime(Duration),
}

/// Answer the first `first` handshakes with HTTP `status` (e.g. 429, 500, 503).
#[derive(Debug, Clone, Copy)]
pub struct RejectFault {
    pub status: u16,
    pub first: usize,
}

/// How one connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The emulator sent a close frame (1000 after CloseStream, 1011 idle, 1008 bad audio).
    ServerClosed { code: u16, reason: String },
    /// The client sent a close frame.
    ClientClosed,
    /// The client went away without a close frame.
    Disconnected,
    /// A [`DropFault`] cut the connection.
    Dropped,
}

/// What the emulator has seen, for assertions.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub handshakes: usize,
    pub rejected: usize,
    pub connections: usize,
    pub audio_bytes: u64,
    pub keepalives: usize,
    pub finalizes: usize,
    pub close_streams: usize,
    pub invalid_messages: usize,
    pub results: usize,
    pub finals: usize,
    /// One entry per finished connection, in the order they ended.
    pub ended: Vec<Ended>,
    /// Query parameters of every handshake, in order.
    pub queries: Vec<Vec<(String, String)>>,
}

/// State shared by the handler and every connection.
struct Shared {
    config: Config,
    /// A std mutex: held only for a counter update, never across an await.
    stats: Mutex<Stats>,
}

impl Shared {
    fn record(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn record_end(&self, ended: Ended) {
        self.record(|s| s.ended.push(ended));
    }
}

/// Read access to the emulator's counters.
#[derive(Clone)]
pub struct Handle(Arc<Shared>);

impl Handle {
    pub fn stats(&self) -> Stats {
        self.0
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The router serving `GET /v1/listen`, for the `emulate` command to mount.
pub fn router(config: Config) -> (Router, Handle) {
    let shared = Arc::new(Shared {
        config,
        stats: Mutex::new(Stats::default()),
    });
    let router = Router::new()
        .route("/v1/listen", get(listen))
        .with_state(shared.clone());
    (router, Handle(shared))
}

/// Serves the emulator on `127.0.0.1` on a free port; the client URL is
/// `format!("{}/v1/listen", running.ws_url())`.
pub async fn spawn(config: Config) -> io::Result<(Running, Handle)> {
    spawn_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Serves the emulator on `addr`.
pub async fn spawn_on(config: Config, addr: SocketAddr) -> io::Result<(Running, Handle)> {
    let (router, handle) = router(config);
    let running = super::serve(router, addr).await?;
    Ok((running, handle))
}

/// Parsed query string of one connection.
#[derive(Debug, Clone)]
struct ListenParams {
    encoding: Option<String>,
    sample_rate: u32,
    channels: u16,
    model: String,
    language: String,
    transcriber: transcriber::Settings,
}

impl ListenParams {
    fn parse(query: &[(String, String)], config: &Config) -> Result<Self, String> {
        let get = |key: &str| {
            query
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let flag = |key: &str| get(key) == Some("true");
        let number = |key: &str| -> Result<Option<u64>, String> {
            get(key)
                .map(|v| {
                    v.parse()
                        .map_err(|_| format!("Invalid value for {key}: {v}"))
                })
                .transpose()
        };
        let encoding = get("encoding").map(str::to_owned);
        let sample_rate = match (&encoding, number("sample_rate")?) {
            (_, Some(rate)) if (1..=192_000).contains(&rate) => rate as u32,
            (_, Some(rate)) => return Err(format!("Invalid value for sample_rate: {rate}")),
            (Some(_), None) => return Err("sample_rate is required when encoding is set".into()),
            (None, None) => 16_000,
        };
        let channels = number("channels")?.unwrap_or(1).clamp(1, 16) as u16;
        let endpointing_ms = match get("endpointing") {
            Some("false") => None,
            Some("true") | None => Some(10),
            Some(_) => number("endpointing")?,
        };
        Ok(Self {
            encoding,
            sample_rate,
            channels,
            model: get("model").unwrap_or("base").to_owned(),
            language: get("language").unwrap_or("en").to_owned(),
            transcriber: transcriber::Settings {
                sample_rate,
                interim_results: flag("interim_results"),
                interim_every_ms: config.interim_every.as_millis() as u64,
                endpointing_ms,
                utterance_end_ms: number("utterance_end_ms")?,
                vad_events: flag("vad_events"),
                punctuate: flag("punctuate") || flag("smart_format"),
                max_segment_ms: config.max_segment.as_millis() as u64,
            },
        })
    }
}

async fn listen(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let mut attempt = 0;
    shared.record(|s| {
        attempt = s.handshakes;
        s.handshakes += 1;
        s.queries.push(query.clone());
    });
    let config = &shared.config;
    if let Some(fault) = config.reject_handshakes.filter(|f| attempt < f.first) {
        let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        shared.record(|s| s.rejected += 1);
        return handshake_error(status, "SIMULATED_FAILURE", "Injected handshake failure.");
    }
    if !authorized(&headers, config.api_key.as_deref()) {
        shared.record(|s| s.rejected += 1);
        return handshake_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTH",
            "Invalid credentials.",
        );
    }
    let params = match ListenParams::parse(&query, config) {
        Ok(params) => params,
        Err(message) => {
            shared.record(|s| s.rejected += 1);
            return handshake_error(StatusCode::BAD_REQUEST, "Bad Request", &message);
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let mut no = 0;
    shared.record(|s| {
        no = s.connections;
        s.connections += 1;
    });
    upgrade.on_upgrade(move |socket| connection::run(socket, params, shared, no))
}

fn authorized(headers: &HeaderMap, expected: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Token ")
                .or_else(|| v.strip_prefix("Bearer "))
        });
    given.map(str::trim) == Some(expected)
}

/// A failed upgrade as Deepgram sends it: status, `dg-error` and `dg-request-id` headers, and a
/// JSON body.
fn handshake_error(status: StatusCode, code: &str, message: &str) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({"err_code": code, "err_msg": message, "request_id": request_id});
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = message.parse() {
        headers.insert("dg-error", v);
    }
    if let Ok(v) = request_id.parse() {
        headers.insert("dg-request-id", v);
    }
    response
}
