//! Emulator of an OpenAI-compatible chat-completions API, playing a scripted sales agent.
//!
//! Wire behaviour follows `/work/shared/protocols/openai.md`: bearer auth (401 with the OpenAI
//! error body), the 400s a client can cause by itself, SSE streaming (role chunk, token-ish
//! content pieces, tool calls as fragments, `finish_reason`, a `choices: []` usage chunk,
//! `[DONE]`), non-streamed replies, and `json_schema` structured output. Latency (time to first
//! token, token rate) and faults (429, `insufficient_quota`, 500, hangs, mid-stream errors) are
//! configured and can be changed while running through the [`Handle`], which also records the
//! requests for tests.
//!
//! The "model" is a deterministic script (module `partner`): it reads the campaign instructions
//! (system prompt), the history and the caller's last line, and answers in one or two short
//! sentences, calling the product's tools (`record_outcome`, `schedule_callback`, `end_call`)
//! when the request offers them. It is good enough for a demo call, in English or Hindi.
//!
//! The files: this one (configuration, the [`Handle`], the server), `endpoint` (auth,
//! validation, faults: what a request gets before any content), `respond` (the reply as SSE
//! chunks or one JSON body, paced), `partner` (the scripted sales agent that decides the reply)
//! and `schema` (structured output filled from what the conversation established).
//!
//! Emulator-only code: the product never imports it, and it imports nothing of the product.

mod endpoint;
mod partner;
mod respond;
mod schema;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::Value;

use super::{Running, serve};
use endpoint::chat_completions;

/// How the emulator behaves; every field can be changed later through the [`Handle`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The key clients must send as `Authorization: Bearer <key>`.
    pub api_key: String,
    /// Delay before the first chunk (and before a non-streamed reply).
    pub time_to_first_token: Duration,
    /// Pace of content pieces and tool-call fragments; `0` or less means no delay.
    pub tokens_per_second: f64,
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_key: "sk-emulator".into(),
            time_to_first_token: Duration::from_millis(350),
            tokens_per_second: 50.0,
            faults: Faults::default(),
        }
    }
}

/// Faults served to the next requests, in this order of precedence; each counter is decremented
/// by the request it affects. Requests refused with 401/400 do not consume them.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next N requests get 429 `insufficient_quota`.
    pub insufficient_quota: u32,
    /// The next N requests get 429 `rate_limit_exceeded`.
    pub rate_limited: u32,
    /// Sent with those 429s as `retry-after-ms` (and `retry-after`, whole seconds rounded up).
    pub retry_after: Option<Duration>,
    /// The next N requests get 500 `server_error`.
    pub server_errors: u32,
    /// The next N requests never produce a token: streamed ones send the role chunk and then
    /// only SSE keep-alive comments; non-streamed ones never answer (for ten minutes).
    pub hangs: u32,
    /// The next N streamed requests get an error event after about half their content.
    pub mid_stream_errors: u32,
    /// Stream parallel tool calls all at `index: 0`, told apart only by `id` (as some compatible
    /// servers do). Not a counter: stays on until cleared.
    pub reuse_tool_index: bool,
    /// Put `usage` on every chunk too (as some compatible servers do). Stays on until cleared.
    pub usage_on_every_chunk: bool,
}

/// Shared with the running server: change faults, read what was requested.
///
/// A std `Mutex`: critical sections are short and never held across an `.await`.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Mutex<Shared>>,
}

struct Shared {
    config: Config,
    requests: usize,
    bodies: VecDeque<Value>,
    completed_streams: usize,
    aborted_streams: usize,
}

/// Request bodies kept for inspection (oldest dropped first), so a long demo does not grow.
const KEPT_BODIES: usize = 200;

impl Handle {
    pub fn new(config: Config) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                config,
                requests: 0,
                bodies: VecDeque::new(),
                completed_streams: 0,
                aborted_streams: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the pending faults.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().config.faults = faults;
    }

    pub fn set_latency(&self, time_to_first_token: Duration, tokens_per_second: f64) {
        let mut s = self.lock();
        s.config.time_to_first_token = time_to_first_token;
        s.config.tokens_per_second = tokens_per_second;
    }

    /// Every POST received, refused ones included.
    pub fn request_count(&self) -> usize {
        self.lock().requests
    }

    /// Bodies of the requests that were valid JSON, oldest first (the last 200).
    pub fn requests(&self) -> Vec<Value> {
        self.lock().bodies.iter().cloned().collect()
    }

    pub fn last_request(&self) -> Option<Value> {
        self.lock().bodies.back().cloned()
    }

    /// Streamed replies sent to their end.
    pub fn completed_streams(&self) -> usize {
        self.lock().completed_streams
    }

    /// Streamed replies whose client went away before the end (barge-in, timeouts).
    pub fn aborted_streams(&self) -> usize {
        self.lock().aborted_streams
    }
}

/// Serves the emulator on a free local port; the client's base URL is `{http_url}/v1`.
pub async fn spawn(config: Config) -> std::io::Result<(Running, Handle)> {
    spawn_on(config, ([127, 0, 0, 1], 0).into()).await
}

/// Serves the emulator on `addr`.
pub async fn spawn_on(
    config: Config,
    addr: std::net::SocketAddr,
) -> std::io::Result<(Running, Handle)> {
    let handle = Handle::new(config);
    let running = serve(router(handle.clone()), addr).await?;
    Ok((running, handle))
}

/// `POST /v1/chat/completions`, and `POST /chat/completions` for clients whose base has no `/v1`.
pub fn router(handle: Handle) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .with_state(handle)
}
