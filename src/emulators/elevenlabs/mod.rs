//! ElevenLabs text-to-speech emulator: HTTP streaming (`POST …/stream`) and the `stream-input` and
//! `multi-stream-input` WebSockets, following `/work/shared/protocols/elevenlabs.md`.
//!
//! Audio is produced with [`speech::synthesize`], so whatever the product sends back to the
//! (emulated) caller can be transcribed to the exact text this emulator was given. The emulator
//! behaves like the real service where a client can get it wrong:
//! - text chunks are concatenated verbatim ("Solar." + "We" is spoken "Solar.We");
//! - a request without `output_format` gets MP3 (here: an `ID3` header and junk frames);
//! - HTTP audio arrives in byte chunks of odd sizes, after a first-byte latency, faster than
//!   real time;
//! - a multi-context socket allows at most 5 open contexts, then sends
//!   `max_active_conversations` and closes 1008; an idle socket is closed 1008
//!   (`input_timeout_exceeded`);
//! - a flush leaves its context open; after `close_context` what was already flushed is still
//!   generated and sent ("If it has already been set to flush it will continue flushing", the
//!   AsyncAPI's `CloseContextClient`), so a client must drop a cancelled turn's audio itself;
//! - a message for a closed context id opens a new context (so a keep-alive on a closed context
//!   counts against the limit, as the pitfall list warns).
//!
//! When is `isFinal` sent? [`ws::FinalAfter`] offers each reading: once the context has ended
//! (after `close_context`, the documented default), also after each flush, or never; and
//! [`Lifecycle`] the spellings seen in practice (`context_id`, `is_final_audio_for_turn`). On a
//! single-context socket it follows `{"text":""}`, just before the normal close.
//!
//! What it does not model: voices, models and voice settings (accepted, ignored), `alaw_8000`,
//! `/stream/with-timestamps`, and prosody (a context's text is synthesized piece by piece).

mod ws;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{Running, serve, speech};
use ws::{Connection, Mode};
pub use ws::{FinalAfter, Lifecycle};

/// Most contexts a multi-context socket may have open at once.
pub const MAX_OPEN_CONTEXTS: usize = 5;
/// HTTP body chunk sizes in bytes, cycled; odd sizes make chunks straddle samples.
const HTTP_CHUNK_SIZES: [usize; 6] = [1601, 2400, 3333, 2048, 999, 4000];
/// How many recent texts the stats keep.
const KEEP_TEXTS: usize = 64;

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The only `xi-api-key` accepted.
    pub api_key: String,
    /// Voices that exist; empty means any voice id is accepted.
    pub known_voices: Vec<String>,
    /// Delay before the first audio of a generation.
    pub ttfb: Duration,
    /// Seconds of work per second of audio (0.3: one second of audio takes 0.3 s).
    pub real_time_factor: f64,
    /// Characters per WebSocket audio message.
    pub chars_per_message: usize,
    /// Longest text accepted by HTTP (`max_character_limit_exceeded` above).
    pub max_characters: usize,
    /// When a multi-context socket says `isFinal`, and how it spells its messages.
    pub lifecycle: Lifecycle,
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_key: "emulated-elevenlabs-key".into(),
            known_voices: Vec::new(),
            ttfb: Duration::from_millis(150),
            real_time_factor: 0.3,
            chars_per_message: 8,
            max_characters: 40_000,
            lifecycle: Lifecycle::default(),
            faults: Faults::default(),
        }
    }
}

impl Config {
    /// Short latencies for tests.
    pub fn fast() -> Self {
        Self {
            ttfb: Duration::from_millis(5),
            real_time_factor: 0.02,
            ..Self::default()
        }
    }
}

/// Failures on demand.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The first N HTTP synthesis requests get 429.
    pub busy_first_http: u32,
    /// Which 429 they get.
    pub busy_kind: BusyKind,
    /// The first `drop_first_ws` WebSocket connections are cut (no close frame) after this long.
    pub drop_ws_after: Option<Duration>,
    pub drop_first_ws: u32,
    /// Multiplies every latency (e.g. 10.0 for a struggling service).
    pub slow_factor: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BusyKind {
    #[default]
    TooManyConcurrentRequests,
    SystemBusy,
}

impl BusyKind {
    fn status(self) -> &'static str {
        match self {
            BusyKind::TooManyConcurrentRequests => "too_many_concurrent_requests",
            BusyKind::SystemBusy => "system_busy",
        }
    }
}

/// What the emulator has seen, for assertions.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub http_requests: u64,
    /// HTTP body chunks of an odd number of bytes sent so far.
    pub http_odd_chunks: u64,
    pub ws_connections: u64,
    pub contexts_opened: u64,
    /// Closed by the client (`close_context`).
    pub contexts_closed: u64,
    /// Closed by the server after `inactivity_timeout` without a message for them.
    pub contexts_timed_out: u64,
    /// Open now, over all sockets.
    pub open_contexts: usize,
    /// Most contexts ever open at once on one socket.
    pub max_open_contexts: usize,
    /// Characters of text received (HTTP and WebSocket, init and keep-alives excluded).
    pub characters_received: u64,
    /// The last texts received, verbatim (HTTP bodies and WebSocket text messages).
    pub texts_received: VecDeque<String>,
    /// The last texts synthesized, one per generation, verbatim.
    pub generated: VecDeque<String>,
    /// Audio messages sent for a context after the client closed it (what was flushed).
    pub audio_after_close: u64,
    /// `error` codes sent on WebSockets.
    pub ws_errors: Vec<String>,
    /// `model_id` and `output_format` of the last WebSocket connection.
    pub last_ws_model: Option<String>,
    pub last_ws_output_format: Option<String>,
}

/// Shared with the test: configuration and counters.
#[derive(Debug, Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    /// A std `Mutex`: held for a few field updates, never across an `.await`.
    stats: Mutex<Stats>,
}

impl Handle {
    pub fn new(config: Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                stats: Mutex::new(Stats::default()),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// A copy of the counters now.
    pub fn stats(&self) -> Stats {
        self.inner.stats.lock().expect("stats lock").clone()
    }

    fn update<T>(&self, f: impl FnOnce(&mut Stats) -> T) -> T {
        f(&mut self.inner.stats.lock().expect("stats lock"))
    }

    fn record_text(&self, text: &str) {
        self.update(|s| {
            s.characters_received += text.chars().count() as u64;
            push_bounded(&mut s.texts_received, text.to_string());
        });
    }

    fn record_generated(&self, text: &str) {
        self.update(|s| push_bounded(&mut s.generated, text.to_string()));
    }

    /// Scales a latency by the slow-mode factor.
    fn latency(&self, d: Duration) -> Duration {
        d.mul_f64(self.config().faults.slow_factor.unwrap_or(1.0).max(0.0))
    }

    /// Time to produce `audio` of this duration.
    fn work(&self, audio: Duration) -> Duration {
        self.latency(audio.mul_f64(self.config().real_time_factor.max(0.0)))
    }

    fn check_access(&self, headers: &HeaderMap, voice_id: &str) -> Result<(), Refusal> {
        let key = headers.get("xi-api-key").and_then(|v| v.to_str().ok());
        if key != Some(self.config().api_key.as_str()) {
            return Err(Refusal(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "Invalid API key".into(),
            ));
        }
        let voices = &self.config().known_voices;
        if !voices.is_empty() && !voices.iter().any(|v| v == voice_id) {
            return Err(Refusal(
                StatusCode::NOT_FOUND,
                "voice_not_found",
                format!("A voice with voice_id {voice_id} was not found."),
            ));
        }
        Ok(())
    }
}

fn push_bounded(list: &mut VecDeque<String>, text: String) {
    if list.len() == KEEP_TEXTS {
        list.pop_front();
    }
    list.push_back(text);
}

/// Starts the emulator on a free local port.
pub async fn spawn(config: Config) -> std::io::Result<(Running, Handle)> {
    spawn_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts the emulator on `addr`.
pub async fn spawn_on(config: Config, addr: SocketAddr) -> std::io::Result<(Running, Handle)> {
    let handle = Handle::new(config);
    let running = serve(router(handle.clone()), addr).await?;
    Ok((running, handle))
}

pub fn router(handle: Handle) -> Router {
    Router::new()
        .route("/v1/text-to-speech/{voice_id}/stream", post(http_stream))
        .route("/v1/text-to-speech/{voice_id}/stream-input", get(ws_single))
        .route(
            "/v1/text-to-speech/{voice_id}/multi-stream-input",
            get(ws_multi),
        )
        .with_state(handle)
}

/// An error answer, `{"detail":{"status":…,"message":…}}`.
struct Refusal(StatusCode, &'static str, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        detail(self.0, self.1, &self.2)
    }
}

fn detail(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"detail": {"status": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Audio formats

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Pcm(u32),
    Ulaw,
    Mp3,
}

impl Format {
    /// A missing `output_format` means MP3, as on the real service.
    fn parse(value: Option<&str>) -> Result<Format, String> {
        match value {
            None => Ok(Format::Mp3),
            Some("ulaw_8000") => Ok(Format::Ulaw),
            Some(f) if f.starts_with("mp3_") => Ok(Format::Mp3),
            Some(f) => match f.strip_prefix("pcm_").map(str::parse::<u32>) {
                Some(Ok(rate @ (8000 | 16000 | 22050 | 24000 | 44100))) => Ok(Format::Pcm(rate)),
                _ => Err(format!("output_format `{f}` is not supported")),
            },
        }
    }

    fn sample_rate(self) -> u32 {
        match self {
            Format::Pcm(rate) => rate,
            Format::Ulaw => 8000,
            Format::Mp3 => 44_100,
        }
    }

    fn bytes_per_second(self) -> f64 {
        match self {
            Format::Pcm(rate) => rate as f64 * 2.0,
            Format::Ulaw => 8000.0,
            Format::Mp3 => 16_000.0, // 128 kbit/s
        }
    }

    /// Speech for `text` in this format; `first` marks the start of a stream (MP3 header).
    fn encode(self, text: &str, first: bool) -> Vec<u8> {
        let samples = speech::synthesize(text, self.sample_rate());
        match self {
            Format::Pcm(_) => speech::to_bytes(&samples),
            Format::Ulaw => samples.iter().map(|&s| mulaw_encode(s)).collect(),
            Format::Mp3 => fake_mp3(samples.len() as f64 / 44_100.0, first),
        }
    }
}

/// G.711 μ-law encoding of one 16-bit sample.
pub fn mulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Bytes that look like MP3 (an ID3 tag, then frames) and mean nothing as PCM.
fn fake_mp3(seconds: f64, with_header: bool) -> Vec<u8> {
    let len = (seconds * 16_000.0) as usize;
    let mut out = Vec::with_capacity(len + 10);
    if with_header {
        out.extend_from_slice(b"ID3\x04\x00\x00\x00\x00\x00\x00");
    }
    let mut state: u32 = 0x1234_5678;
    while out.len() < len + if with_header { 10 } else { 0 } {
        out.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        for _ in 0..413 {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            out.push((state >> 24) as u8);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// HTTP streaming

#[derive(Debug, Deserialize)]
struct SpeechBody {
    text: String,
    #[allow(dead_code)]
    model_id: Option<String>,
}

async fn http_stream(
    State(handle): State<Handle>,
    Path(voice_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = handle.update(|s| {
        s.http_requests += 1;
        s.http_requests
    });
    if let Err(rejection) = handle.check_access(&headers, &voice_id) {
        return rejection.into_response();
    }
    let faults = &handle.config().faults;
    if n <= faults.busy_first_http as u64 {
        let kind = faults.busy_kind;
        return detail(
            StatusCode::TOO_MANY_REQUESTS,
            kind.status(),
            "Too many requests are being processed; try again later.",
        );
    }
    let format = match Format::parse(query.get("output_format").map(String::as_str)) {
        Ok(f) => f,
        Err(e) => return detail(StatusCode::BAD_REQUEST, "invalid_output_format", &e),
    };
    let body: SpeechBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return detail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                &e.to_string(),
            );
        }
    };
    if body.text.trim().is_empty() {
        return detail(
            StatusCode::BAD_REQUEST,
            "empty_text",
            "text must not be empty",
        );
    }
    if body.text.chars().count() > handle.config().max_characters {
        return detail(
            StatusCode::BAD_REQUEST,
            "max_character_limit_exceeded",
            "text is longer than the model allows",
        );
    }
    handle.record_text(&body.text);
    handle.record_generated(&body.text);
    let audio = Bytes::from(format.encode(&body.text, true));
    let content_type = if format == Format::Mp3 {
        "audio/mpeg"
    } else {
        "application/octet-stream"
    };
    let body = paced_body(handle, audio, format.bytes_per_second());
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Streams `audio` like a TTS producing it: first chunk after `ttfb`, then each chunk after the
/// work its duration costs.
fn paced_body(handle: Handle, audio: Bytes, bytes_per_second: f64) -> Body {
    let stream = futures::stream::unfold((audio, 0usize), move |(mut rest, i)| {
        let handle = handle.clone();
        async move {
            if rest.is_empty() {
                return None;
            }
            let n = HTTP_CHUNK_SIZES[i % HTTP_CHUNK_SIZES.len()].min(rest.len());
            let delay = if i == 0 {
                handle.latency(handle.config().ttfb)
            } else {
                handle.work(Duration::from_secs_f64(n as f64 / bytes_per_second))
            };
            tokio::time::sleep(delay).await;
            if n % 2 == 1 {
                handle.update(|s| s.http_odd_chunks += 1);
            }
            let chunk = rest.split_to(n);
            Some((Ok::<_, Infallible>(chunk), (rest, i + 1)))
        }
    });
    Body::from_stream(stream)
}

// ---------------------------------------------------------------------------------------------
// WebSockets

async fn ws_single(
    state: State<Handle>,
    path: Path<String>,
    query: Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    ws_accept(Mode::Single, state, path, query, headers, upgrade)
}

async fn ws_multi(
    state: State<Handle>,
    path: Path<String>,
    query: Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    ws_accept(Mode::Multi, state, path, query, headers, upgrade)
}

fn ws_accept(
    mode: Mode,
    State(handle): State<Handle>,
    Path(voice_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let n = handle.update(|s| {
        s.ws_connections += 1;
        s.last_ws_model = query.get("model_id").cloned();
        s.last_ws_output_format = query.get("output_format").cloned();
        s.ws_connections
    });
    if let Err(rejection) = handle.check_access(&headers, &voice_id) {
        return rejection.into_response();
    }
    let format = match Format::parse(query.get("output_format").map(String::as_str)) {
        Ok(f) => f,
        Err(e) => return detail(StatusCode::BAD_REQUEST, "invalid_output_format", &e),
    };
    // Whole seconds on the real service (max 180); fractions are accepted here for tests.
    let inactivity = match query.get("inactivity_timeout").map(|v| v.parse::<f64>()) {
        None => Duration::from_secs(20),
        Some(Ok(secs)) if secs > 0.0 && secs <= 180.0 => Duration::from_secs_f64(secs),
        Some(_) => {
            return detail(
                StatusCode::BAD_REQUEST,
                "invalid_inactivity_timeout",
                "inactivity_timeout must be between 1 and 180 seconds",
            );
        }
    };
    let faults = &handle.config().faults;
    let drop_after = faults
        .drop_ws_after
        .filter(|_| n <= faults.drop_first_ws as u64);
    upgrade.on_upgrade(move |socket| {
        Connection::new(handle, mode, format, inactivity).run(socket, drop_after)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_formats_parse_like_the_service() {
        assert_eq!(Format::parse(None), Ok(Format::Mp3));
        assert_eq!(Format::parse(Some("pcm_8000")), Ok(Format::Pcm(8000)));
        assert_eq!(Format::parse(Some("pcm_16000")), Ok(Format::Pcm(16000)));
        assert_eq!(Format::parse(Some("ulaw_8000")), Ok(Format::Ulaw));
        assert_eq!(Format::parse(Some("mp3_44100_128")), Ok(Format::Mp3));
        assert!(Format::parse(Some("pcm_8001")).is_err());
        assert!(Format::parse(Some("alaw_8000")).is_err());
    }

    #[test]
    fn mulaw_matches_reference_points() {
        assert_eq!(mulaw_encode(0), 0xFF);
        assert_eq!(mulaw_encode(-1), 0x7F);
        assert_eq!(mulaw_encode(32_767), 0x80);
        assert_eq!(mulaw_encode(-32_768), 0x00);
    }

    #[test]
    fn fake_mp3_is_not_speech() {
        let bytes = Format::Mp3.encode("hello there", true);
        assert!(bytes.starts_with(b"ID3"));
        assert_eq!(speech::transcribe(&speech::from_bytes(&bytes)), "");
    }
}
