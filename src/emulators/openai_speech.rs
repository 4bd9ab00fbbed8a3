//! An OpenAI-compatible speech endpoint (`POST /v1/audio/speech`), as OpenAI documents it
//! (`CreateSpeechRequest`) and self-hosted servers (Kokoro, Piper, LocalAI) copy it:
//! - `Authorization: Bearer <key>` when a key is configured (self-hosted servers often need none);
//! - a JSON body with `model`, `input` (1 to 4,096 characters), `voice`, `response_format`
//!   (`pcm` gives raw 16-bit little-endian mono PCM with no header, at 24 kHz on OpenAI:
//!   [`Config::sample_rate`] is the rate this server speaks, so a server configured for
//!   telephony can be emulated too), `speed`;
//! - the audio streams in chunks of odd sizes, after a first-byte latency, faster than real time;
//! - errors are `{"error": {"message", "type", "param", "code"}}` with a 4xx or 5xx.
//!
//! Audio is [`speech::synthesize`]d at the server's rate, so after the client resamples it the
//! emulated callers still understand it. Another `response_format` gets MP3-like junk, as a
//! client that forgets to ask for `pcm` would. Faults on demand: the first requests answered 500,
//! or never answered. [`Stats`] counts requests, and the streams a client dropped before their
//! end (a barge-in aborting the request).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;

use super::{Running, serve, speech};

/// Body chunk sizes in bytes, cycled; odd sizes make chunks straddle samples.
const CHUNK_SIZES: [usize; 5] = [4801, 2400, 3333, 1999, 6000];

#[derive(Debug, Clone)]
pub struct Config {
    /// `None`: any key, or none, is accepted (a self-hosted server).
    pub api_key: Option<String>,
    /// The rate of the `pcm` this server speaks.
    pub sample_rate: u32,
    pub ttfb: Duration,
    /// Seconds of work per second of audio.
    pub real_time_factor: f64,
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_key: None,
            sample_rate: 24_000,
            ttfb: Duration::from_millis(150),
            real_time_factor: 0.3,
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

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The first N requests are answered 500.
    pub fail_first: u32,
    /// The first N requests are never answered.
    pub hang_first: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub requests: u64,
    /// The `input` of each request, in order.
    pub inputs: Vec<String>,
    /// Streams sent to their end.
    pub completed: u64,
    /// Streams the client dropped before their end.
    pub aborted: u64,
}

#[derive(Debug, Clone)]
pub struct Handle {
    config: Arc<Config>,
    stats: Arc<Mutex<Stats>>,
}

impl Handle {
    pub fn stats(&self) -> Stats {
        self.stats.lock().expect("stats lock").clone()
    }

    fn update<T>(&self, f: impl FnOnce(&mut Stats) -> T) -> T {
        f(&mut self.stats.lock().expect("stats lock"))
    }
}

/// Starts the emulator on a free local port.
pub async fn spawn(config: Config) -> std::io::Result<(Running, Handle)> {
    spawn_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

pub async fn spawn_on(config: Config, addr: SocketAddr) -> std::io::Result<(Running, Handle)> {
    let handle = Handle {
        config: Arc::new(config),
        stats: Arc::default(),
    };
    let router = Router::new()
        .route("/v1/audio/speech", post(speech_endpoint))
        .with_state(handle.clone());
    Ok((serve(router, addr).await?, handle))
}

#[derive(Debug, Deserialize)]
struct SpeechRequest {
    model: String,
    input: String,
    voice: serde_json::Value,
    #[serde(default)]
    response_format: Option<String>,
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    (status, axum::Json(body)).into_response()
}

async fn speech_endpoint(State(h): State<Handle>, headers: HeaderMap, body: Bytes) -> Response {
    let n = h.update(|s| {
        s.requests += 1;
        s.requests
    });
    if let Some(key) = &h.config.api_key {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(key.as_str()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Incorrect API key provided.",
            );
        }
    }
    let request: SpeechRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &e.to_string(),
            );
        }
    };
    let chars = request.input.chars().count();
    if request.model.is_empty() || request.voice.is_null() || !(1..=4096).contains(&chars) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "model and voice are required; input must be 1 to 4096 characters",
        );
    }
    h.update(|s| s.inputs.push(request.input.clone()));
    let faults = &h.config.faults;
    if n <= faults.fail_first as u64 {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server had an error while processing your request.",
        );
    }
    if n <= (faults.fail_first + faults.hang_first) as u64 {
        std::future::pending::<()>().await;
    }
    let rate = h.config.sample_rate;
    let audio = match request.response_format.as_deref() {
        Some("pcm") => speech::to_bytes(&speech::synthesize(&request.input, rate)),
        // mp3 (the default), opus, aac, flac, wav: bytes that are not raw PCM.
        _ => std::iter::once(&b"ID3\x04"[..])
            .chain(std::iter::repeat_n(
                &[0xFFu8, 0xFB, 0x90, 0x64][..],
                chars * 100,
            ))
            .flatten()
            .copied()
            .collect(),
    };
    let body = paced(h, Bytes::from(audio), rate as f64 * 2.0);
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

/// Counts a stream as aborted if it is dropped before its end.
struct Watch {
    handle: Handle,
    done: Arc<AtomicU64>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.done.load(Ordering::SeqCst) == 0 {
            self.handle.update(|s| s.aborted += 1);
        }
    }
}

fn paced(handle: Handle, audio: Bytes, bytes_per_second: f64) -> Body {
    let watch = Watch {
        handle: handle.clone(),
        done: Arc::new(AtomicU64::new(0)),
    };
    let stream = futures::stream::unfold((audio, 0usize, watch), move |(mut rest, i, watch)| {
        let handle = handle.clone();
        async move {
            if rest.is_empty() {
                watch.done.store(1, Ordering::SeqCst);
                handle.update(|s| s.completed += 1);
                return None;
            }
            let n = CHUNK_SIZES[i % CHUNK_SIZES.len()].min(rest.len());
            let delay = if i == 0 {
                handle.config.ttfb
            } else {
                Duration::from_secs_f64(n as f64 / bytes_per_second)
                    .mul_f64(handle.config.real_time_factor.max(0.0))
            };
            tokio::time::sleep(delay).await;
            let chunk = rest.split_to(n);
            Some((Ok::<_, Infallible>(chunk), (rest, i + 1, watch)))
        }
    });
    Body::from_stream(stream)
}
