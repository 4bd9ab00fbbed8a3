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
//! Emulator-only code: the product never imports it, and it imports nothing of the product.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Running, serve};

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

// ---------------------------------------------------------------------------------------------
// The endpoint: auth, validation, faults
// ---------------------------------------------------------------------------------------------

enum Fault {
    Quota,
    RateLimit(Option<Duration>),
    Server,
    Hang,
}

async fn chat_completions(
    State(handle): State<Handle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (number, expected_key) = {
        let mut s = handle.lock();
        s.requests += 1;
        (s.requests, s.config.api_key.clone())
    };
    if let Some(response) = check_auth(&headers, &expected_key) {
        return response;
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "We could not parse the JSON body of your request. (HINT: This likely means you \
                 aren't using your HTTP library correctly.)",
                "invalid_request_error",
                None,
                None,
            );
        }
    };
    {
        let mut s = handle.lock();
        if s.bodies.len() == KEPT_BODIES {
            s.bodies.pop_front();
        }
        s.bodies.push_back(request.clone());
    }
    if let Some(response) = validate(&request) {
        return response;
    }
    let stream = request["stream"] == json!(true);
    let (config, fault, mid_stream_error) = {
        let mut s = handle.lock();
        let f = &mut s.config.faults;
        let fault = if take(&mut f.insufficient_quota) {
            Some(Fault::Quota)
        } else if take(&mut f.rate_limited) {
            Some(Fault::RateLimit(f.retry_after))
        } else if take(&mut f.server_errors) {
            Some(Fault::Server)
        } else if take(&mut f.hangs) {
            Some(Fault::Hang)
        } else {
            None
        };
        let mid = fault.is_none() && stream && take(&mut f.mid_stream_errors);
        (s.config.clone(), fault, mid)
    };
    let model = request["model"]
        .as_str()
        .unwrap_or("gpt-4o-mini")
        .to_string();
    match fault {
        Some(Fault::Quota) => {
            return error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                None,
                Some("insufficient_quota"),
            );
        }
        Some(Fault::RateLimit(retry_after)) => {
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Rate limit reached for {model} in organization org-emulator on requests per \
                     min (RPM): Limit 3, Used 3, Requested 1."
                ),
                "requests",
                None,
                Some("rate_limit_exceeded"),
            );
            if let Some(wait) = retry_after {
                let h = response.headers_mut();
                h.insert("retry-after-ms", HeaderValue::from(wait.as_millis() as u64));
                h.insert(
                    "retry-after",
                    HeaderValue::from(wait.as_secs_f64().ceil() as u64),
                );
            }
            return response;
        }
        Some(Fault::Server) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
                None,
            );
        }
        Some(Fault::Hang) | None => {}
    }
    let hang = matches!(fault, Some(Fault::Hang));
    let reply = partner::Conversation::from_request(&request).reply();
    let plan = Plan {
        id: format!("chatcmpl-emu{number}"),
        created: chrono::Utc::now().timestamp(),
        model,
        prompt_tokens: prompt_tokens(&request),
        reuse_tool_index: config.faults.reuse_tool_index,
        usage_on_every_chunk: config.faults.usage_on_every_chunk,
        include_usage: request["stream_options"]["include_usage"] == json!(true),
        ttft: config.time_to_first_token,
        per_token: if config.tokens_per_second > 0.0 {
            Duration::from_secs_f64(1.0 / config.tokens_per_second)
        } else {
            Duration::ZERO
        },
        hang,
        mid_stream_error,
    };
    if stream {
        stream_response(handle, plan, reply)
    } else {
        json_response(plan, reply).await
    }
}

fn take(counter: &mut u32) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    (status, axum::Json(body)).into_response()
}

/// The 401 to send, if the bearer key is missing or wrong.
fn check_auth(headers: &HeaderMap, expected: &str) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(key) if key == expected => None,
        Some(key) => {
            let shown: String = if key.chars().count() > 8 {
                let head: String = key.chars().take(3).collect();
                let tail: String = key
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!("{head}***{tail}")
            } else {
                "***".into()
            };
            Some(error_response(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "Incorrect API key provided: {shown}. You can find your API key at \
                     https://platform.openai.com/account/api-keys."
                ),
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ))
        }
        None => Some(error_response(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization \
             header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            None,
            None,
        )),
    }
}

/// The 400 the real API would send for this request, if any: the cases a client can get wrong
/// by itself.
fn validate(request: &Value) -> Option<Response> {
    let bad = |message: &str, param: &str| {
        Some(error_response(
            StatusCode::BAD_REQUEST,
            message,
            "invalid_request_error",
            Some(param),
            None,
        ))
    };
    if !request["model"].is_string() {
        return bad("you must provide a model parameter", "model");
    }
    let Some(messages) = request["messages"].as_array().filter(|m| !m.is_empty()) else {
        return bad("[] is too short - 'messages'", "messages");
    };
    if !request["stream_options"].is_null() && request["stream"] != json!(true) {
        return bad(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        );
    }
    // Each assistant `tool_calls` message must be followed by one `tool` message per call, and
    // every `tool` message must answer such a call.
    let mut open: Option<(usize, Vec<String>)> = None;
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or("");
        if role == "tool" {
            let id = message["tool_call_id"].as_str().unwrap_or("");
            match &mut open {
                Some((_, ids)) if ids.iter().any(|x| x == id) => ids.retain(|x| x != id),
                _ => {
                    return bad(
                        "Invalid parameter: messages with role 'tool' must be a response to a \
                         preceeding message with 'tool_calls'.",
                        &format!("messages.[{i}].role"),
                    );
                }
            }
            continue;
        }
        if let Some((at, ids)) = open.take()
            && !ids.is_empty()
        {
            return bad(
                &format!(
                    "An assistant message with 'tool_calls' must be followed by tool messages \
                     responding to each 'tool_call_id'. The following tool_call_ids did not have \
                     response messages: {}",
                    ids.join(", ")
                ),
                &format!("messages.[{at}].role"),
            );
        }
        if role == "assistant"
            && let Some(calls) = message["tool_calls"].as_array().filter(|c| !c.is_empty())
        {
            let ids = calls
                .iter()
                .map(|c| c["id"].as_str().unwrap_or("").to_string())
                .collect();
            open = Some((i, ids));
        }
    }
    if let Some((at, ids)) = open
        && !ids.is_empty()
    {
        return bad(
            &format!(
                "An assistant message with 'tool_calls' must be followed by tool messages \
                 responding to each 'tool_call_id'. The following tool_call_ids did not have \
                 response messages: {}",
                ids.join(", ")
            ),
            &format!("messages.[{at}].role"),
        );
    }
    match request["response_format"]["type"].as_str() {
        Some("json_object") => {
            let mentions_json = messages.iter().any(|m| {
                partner::text_of(&m["content"])
                    .to_lowercase()
                    .contains("json")
            });
            if !mentions_json {
                return bad(
                    "'messages' must contain the word 'json' in some form, to use \
                     'response_format' of type 'json_object'.",
                    "messages",
                );
            }
        }
        Some("json_schema") if !request["response_format"]["json_schema"]["name"].is_string() => {
            return bad(
                "Missing required parameter: 'response_format.json_schema.name'.",
                "response_format.json_schema.name",
            );
        }
        _ => {}
    }
    None
}

fn prompt_tokens(request: &Value) -> u64 {
    let chars: usize = request["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| partner::text_of(&m["content"]).chars().count())
                .sum()
        })
        .unwrap_or(0);
    (chars / 4 + 1) as u64
}

// ---------------------------------------------------------------------------------------------
// Responses: streamed and whole
// ---------------------------------------------------------------------------------------------

/// Everything about one response except its content.
struct Plan {
    id: String,
    created: i64,
    model: String,
    prompt_tokens: u64,
    reuse_tool_index: bool,
    usage_on_every_chunk: bool,
    include_usage: bool,
    ttft: Duration,
    per_token: Duration,
    hang: bool,
    mid_stream_error: bool,
}

impl Plan {
    fn chunk(&self, choices: Value, usage: Option<Value>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_emulator",
            "choices": choices,
        });
        if self.include_usage || usage.is_some() {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        chunk
    }

    fn usage(&self, completion_tokens: u64) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        })
    }
}

/// One step of a streamed response.
enum Step {
    Wait(Duration),
    Send(Bytes),
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn tool_call_id(plan: &Plan, index: usize) -> String {
    // Deterministic per response: a stable function of the response id and the call index.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in plan.id.bytes().chain(index.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("call_{h:016x}{index:02}")
}

/// Splits text the way a tokenizer roughly does: a word with its leading space, punctuation on
/// its own, long words in pieces.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        let word_len = cur.trim_start().chars().count();
        if c.is_whitespace() {
            if word_len > 0 {
                out.push(std::mem::take(&mut cur));
            }
            cur.push(c);
        } else if c.is_ascii_punctuation() || matches!(c, '।' | '॥') {
            if word_len > 0 {
                out.push(std::mem::take(&mut cur));
            }
            cur.push(c);
            out.push(std::mem::take(&mut cur));
        } else {
            if word_len >= 6 {
                out.push(std::mem::take(&mut cur));
            }
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Tool-call arguments in fragments of a few characters.
fn fragments(arguments: &str) -> Vec<String> {
    let chars: Vec<char> = arguments.chars().collect();
    chars.chunks(8).map(|c| c.iter().collect()).collect()
}

fn stream_steps(plan: &Plan, reply: &partner::Reply) -> Vec<Step> {
    let mut steps = vec![Step::Wait(plan.ttft)];
    let delta_chunk = |delta: Value, finish: Option<&str>, tokens: u64| {
        let usage = plan.usage_on_every_chunk.then(|| plan.usage(tokens));
        plan.chunk(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
            usage,
        )
    };
    steps.push(Step::Send(sse(&delta_chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
        0,
    ))));
    if plan.hang {
        // Never a token; keep-alive comments let the server notice when the client leaves.
        for _ in 0..600 {
            steps.push(Step::Wait(Duration::from_secs(1)));
            steps.push(Step::Send(Bytes::from_static(b": keep-alive\n\n")));
        }
        return steps;
    }
    let content = pieces(&reply.content);
    let error_after = if plan.mid_stream_error {
        Some(content.len().div_ceil(2).max(1))
    } else {
        None
    };
    let mut sent: u64 = 0;
    let error_event = || {
        sse(&json!({"error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error", "param": null, "code": null,
        }}))
    };
    for piece in &content {
        steps.push(Step::Wait(plan.per_token));
        sent += 1;
        steps.push(Step::Send(sse(&delta_chunk(
            json!({"content": piece}),
            None,
            sent,
        ))));
        if error_after == Some(sent as usize) {
            steps.push(Step::Send(error_event()));
            return steps;
        }
    }
    for (i, call) in reply.tool_calls.iter().enumerate() {
        let index = if plan.reuse_tool_index { 0 } else { i };
        let first = json!({"tool_calls": [{
            "index": index, "id": tool_call_id(plan, i), "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }]});
        steps.push(Step::Wait(plan.per_token));
        sent += 1;
        steps.push(Step::Send(sse(&delta_chunk(first, None, sent))));
        if error_after.is_some() && content.is_empty() {
            steps.push(Step::Send(error_event()));
            return steps;
        }
        for fragment in fragments(&call.arguments.to_string()) {
            steps.push(Step::Wait(plan.per_token));
            sent += 1;
            let delta =
                json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]});
            steps.push(Step::Send(sse(&delta_chunk(delta, None, sent))));
        }
    }
    let finish = if reply.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    steps.push(Step::Send(sse(&delta_chunk(json!({}), Some(finish), sent))));
    if plan.include_usage {
        steps.push(Step::Send(sse(
            &plan.chunk(json!([]), Some(plan.usage(sent)))
        )));
    }
    steps.push(Step::Send(Bytes::from_static(b"data: [DONE]\n\n")));
    steps
}

/// Counts a streamed response as completed or aborted when the server drops it.
struct StreamGuard {
    handle: Handle,
    finished: bool,
}

impl StreamGuard {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut s = self.handle.lock();
        if self.finished {
            s.completed_streams += 1;
        } else {
            s.aborted_streams += 1;
        }
    }
}

fn stream_response(handle: Handle, plan: Plan, reply: partner::Reply) -> Response {
    let steps: VecDeque<Step> = stream_steps(&plan, &reply).into();
    let guard = StreamGuard {
        handle,
        finished: false,
    };
    let body = futures::stream::unfold((steps, guard), |(mut steps, mut guard)| async move {
        loop {
            match steps.pop_front() {
                Some(Step::Wait(d)) => {
                    if !d.is_zero() {
                        tokio::time::sleep(d).await;
                    }
                }
                Some(Step::Send(bytes)) => {
                    return Some((Ok::<_, std::convert::Infallible>(bytes), (steps, guard)));
                }
                None => {
                    guard.finish();
                    return None;
                }
            }
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    add_rate_limit_headers(h, &plan.id);
    response
}

async fn json_response(plan: Plan, reply: partner::Reply) -> Response {
    if plan.hang {
        tokio::time::sleep(Duration::from_secs(600)).await;
        return error_response(
            StatusCode::GATEWAY_TIMEOUT,
            "Request timed out.",
            "server_error",
            None,
            None,
        );
    }
    let content_tokens = pieces(&reply.content).len();
    let tool_tokens: usize = reply
        .tool_calls
        .iter()
        .map(|c| 1 + fragments(&c.arguments.to_string()).len())
        .sum();
    let tokens = (content_tokens + tool_tokens) as u64;
    tokio::time::sleep(plan.ttft + plan.per_token * tokens as u32).await;
    let mut message = json!({"role": "assistant", "content": reply.content, "refusal": null});
    if !reply.tool_calls.is_empty() {
        if reply.content.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = reply
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({"id": tool_call_id(&plan, i), "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments.to_string()}})
            })
            .collect();
    }
    let finish = if reply.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let body = json!({
        "id": plan.id,
        "object": "chat.completion",
        "created": plan.created,
        "model": plan.model,
        "system_fingerprint": "fp_emulator",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": plan.usage(tokens),
    });
    let mut response = axum::Json(body).into_response();
    add_rate_limit_headers(response.headers_mut(), &plan.id);
    response
}

fn add_rate_limit_headers(h: &mut HeaderMap, request_id: &str) {
    const RATE_LIMITS: [(&str, &str); 6] = [
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-limit-tokens", "10000000"),
        ("x-ratelimit-remaining-tokens", "9999000"),
        ("x-ratelimit-reset-tokens", "6ms"),
    ];
    for (name, value) in RATE_LIMITS {
        h.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
}

// ---------------------------------------------------------------------------------------------
// The scripted sales agent
// ---------------------------------------------------------------------------------------------

/// Reads a request the way a model would (instructions, history, the caller's last line) and
/// decides the reply by keyword rules, in English or Hindi. Deterministic: the same request
/// always gets the same reply (given a current time in the prompt).
mod partner {
    use chrono::{
        DateTime, Datelike, Days, FixedOffset, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone,
        Timelike, Utc, Weekday,
    };
    use serde_json::{Value, json};

    pub(super) struct Reply {
        pub content: String,
        pub tool_calls: Vec<Call>,
    }

    impl Reply {
        fn text(content: impl Into<String>) -> Self {
            Self {
                content: content.into(),
                tool_calls: Vec::new(),
            }
        }
    }

    pub(super) struct Call {
        pub name: String,
        pub arguments: Value,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Lang {
        En,
        Hi,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Intent {
        Interested,
        NotInterested,
        Callback,
        WrongNumber,
        DoNotCall,
    }

    impl Intent {
        pub(super) fn as_str(self) -> &'static str {
            match self {
                Self::Interested => "interested",
                Self::NotInterested => "not_interested",
                Self::Callback => "callback",
                Self::WrongNumber => "wrong_number",
                Self::DoNotCall => "do_not_call",
            }
        }

        fn parse(s: &str) -> Option<Self> {
            [
                Self::Interested,
                Self::NotInterested,
                Self::Callback,
                Self::WrongNumber,
                Self::DoNotCall,
            ]
            .into_iter()
            .find(|i| i.as_str() == s)
        }
    }

    /// What the conversation established, for structured extraction.
    pub(super) struct Facts {
        pub lang: Lang,
        pub intent: Option<Intent>,
        pub callback_at: Option<DateTime<FixedOffset>>,
        pub questions: Vec<String>,
        /// The caller's answer to the qualifying question.
        pub answer: Option<String>,
        pub now: DateTime<FixedOffset>,
    }

    struct Turn {
        role: String,
        text: String,
        calls: Vec<Call>,
    }

    pub(super) struct Conversation {
        system: String,
        turns: Vec<Turn>,
        /// Offered tools: name and parameters schema.
        tools: Vec<(String, Value)>,
        response_format: Value,
        now: DateTime<FixedOffset>,
        lang: Lang,
    }

    /// The text of a message `content`: a string or an array of `{type: text, text}` parts.
    pub(super) fn text_of(content: &Value) -> String {
        match content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    }

    fn pick(lang: Lang, en: &'static str, hi: &'static str) -> &'static str {
        match lang {
            Lang::En => en,
            Lang::Hi => hi,
        }
    }

    const REPEAT: (&str, &str) = (
        "Sorry, I didn't catch that. Could you please repeat?",
        "माफ़ कीजिए, आपकी आवाज़ साफ़ नहीं आई। क्या आप फिर से बोल सकते हैं?",
    );
    const GIVE_UP: (&str, &str) = (
        "Sorry, the line doesn't seem clear. We will call you back another time.",
        "माफ़ कीजिए, लाइन साफ़ नहीं है। हम आपको बाद में फिर कॉल करेंगे।",
    );
    const QUALIFIER: (&str, &str) = (
        "Could you tell me a little about your current requirement?",
        "क्या आप अपनी ज़रूरत के बारे में थोड़ा बता सकते हैं?",
    );
    const ABOUT: (&str, &str) = (
        "We are calling about a special offer that could save you money.",
        "हम आपके लिए एक खास ऑफ़र लेकर आए हैं, जिससे आपकी बचत हो सकती है।",
    );
    const PRICE: (&str, &str) = (
        "The exact price depends on your requirement, and our team will share a detailed quote.",
        "कीमत आपकी ज़रूरत पर निर्भर करती है, हमारी टीम आपको पूरी जानकारी देगी।",
    );
    const ASK_INTEREST: (&str, &str) = ("Would you be interested?", "क्या आप इसमें रुचि रखेंगे?");
    const GREAT: (&str, &str) = ("Great!", "बहुत बढ़िया!");
    const NEUTRAL: (&str, &str) = (
        "I see. Would you like to know more about our offer?",
        "ठीक है। क्या आप हमारे ऑफ़र के बारे में और जानना चाहेंगे?",
    );

    fn say(lang: Lang, text: (&'static str, &'static str)) -> &'static str {
        pick(lang, text.0, text.1)
    }

    /// What is said alongside the tool calls that conclude the call.
    fn acknowledgement(lang: Lang, intent: Intent, when: Option<String>) -> String {
        match intent {
            Intent::Interested => pick(
                lang,
                "Thank you, I have noted your interest.",
                "धन्यवाद, मैंने आपकी रुचि नोट कर ली है।",
            )
            .into(),
            Intent::NotInterested => pick(
                lang,
                "No problem, thank you for your time.",
                "कोई बात नहीं, आपके समय के लिए धन्यवाद।",
            )
            .into(),
            Intent::Callback => {
                let when = when.unwrap_or_default();
                match lang {
                    Lang::En => format!("Sure, we will call you back {when}."),
                    Lang::Hi => format!("ज़रूर, हम आपको {when} कॉल करेंगे।"),
                }
            }
            Intent::WrongNumber => pick(
                lang,
                "Sorry for the trouble, it seems we have the wrong number.",
                "माफ़ कीजिए, लगता है यह गलत नंबर है।",
            )
            .into(),
            Intent::DoNotCall => pick(
                lang,
                "I am sorry for the disturbance; we will not call you again.",
                "परेशानी के लिए माफ़ी चाहते हैं, हम आपको दोबारा कॉल नहीं करेंगे।",
            )
            .into(),
        }
    }

    /// The last sentence of a call, after the tools have run.
    fn closing(lang: Lang, intent: Option<Intent>) -> &'static str {
        match intent {
            Some(Intent::Interested) => pick(
                lang,
                "Our team will contact you shortly with the details. Have a great day!",
                "हमारी टीम जल्द ही आपसे संपर्क करेगी। आपका दिन शुभ हो!",
            ),
            Some(Intent::Callback) => {
                pick(lang, "Talk to you then. Goodbye!", "तब बात करते हैं, धन्यवाद!")
            }
            Some(Intent::WrongNumber) => pick(
                lang,
                "Apologies again. Goodbye!",
                "परेशानी के लिए क्षमा करें। नमस्ते!",
            ),
            Some(Intent::NotInterested | Intent::DoNotCall) => {
                pick(lang, "Have a good day. Goodbye!", "आपका दिन शुभ हो, नमस्ते!")
            }
            None => pick(lang, "Thank you. Goodbye!", "धन्यवाद, नमस्ते!"),
        }
    }

    fn end_reason(intent: Intent) -> &'static str {
        match intent {
            Intent::Interested => "caller interested; sales team to follow up",
            Intent::NotInterested => "caller not interested",
            Intent::Callback => "callback scheduled",
            Intent::WrongNumber => "wrong number",
            Intent::DoNotCall => "caller asked not to be called again",
        }
    }

    impl Conversation {
        pub(super) fn from_request(body: &Value) -> Self {
            let mut system = String::new();
            let mut turns = Vec::new();
            for m in body["messages"].as_array().into_iter().flatten() {
                let role = m["role"].as_str().unwrap_or("").to_string();
                let text = text_of(&m["content"]);
                if role == "system" || role == "developer" {
                    system.push_str(&text);
                    system.push('\n');
                    continue;
                }
                let calls = m["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| Call {
                        name: c["function"]["name"].as_str().unwrap_or("").to_string(),
                        arguments: c["function"]["arguments"]
                            .as_str()
                            .and_then(|a| serde_json::from_str(a).ok())
                            .unwrap_or(Value::Null),
                    })
                    .collect();
                turns.push(Turn { role, text, calls });
            }
            let tools = body["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    let f = &t["function"];
                    Some((f["name"].as_str()?.to_string(), f["parameters"].clone()))
                })
                .collect();
            let now = find_now(&system).unwrap_or_else(|| Utc::now().with_timezone(&ist()));
            let last_user = turns
                .iter()
                .rev()
                .find(|t| t.role == "user")
                .map(|t| t.text.as_str())
                .unwrap_or("");
            let lang = detect_lang(&system, last_user);
            Self {
                system,
                turns,
                tools,
                response_format: body["response_format"].clone(),
                now,
                lang,
            }
        }

        pub(super) fn reply(&self) -> Reply {
            match self.response_format["type"].as_str() {
                Some("json_schema") => {
                    let schema = &self.response_format["json_schema"]["schema"];
                    return Reply::text(super::schema::fill(schema, &self.facts()).to_string());
                }
                Some("json_object") => {
                    return Reply::text(super::schema::default_object(&self.facts()).to_string());
                }
                _ => {}
            }
            if self.turns.last().is_some_and(|t| t.role == "tool") {
                return Reply::text(closing(self.lang, self.concluded_intent()));
            }
            let Some(at) = self.turns.iter().rposition(|t| t.role == "user") else {
                return Reply::text(self.greeting());
            };
            let previous = self.turns[..at]
                .iter()
                .rev()
                .find(|t| t.role == "assistant" && !t.text.is_empty())
                .map(|t| t.text.as_str())
                .unwrap_or("");
            self.respond(&self.turns[at].text, previous)
        }

        fn respond(&self, said: &str, previous: &str) -> Reply {
            let lang = self.lang;
            let qualifier = self.qualifier();
            let qualifying = previous.contains(qualifier.as_str());
            let heard = match classify(said) {
                // "About 3000 rupees" answers the qualifying question; it does not ask the price.
                Said::Question(_) if qualifying && !said.contains(['?', '？']) => Said::Other,
                heard => heard,
            };
            match heard {
                Said::DoNotCall => self.conclude(Intent::DoNotCall, said, previous, None),
                Said::WrongNumber => self.conclude(Intent::WrongNumber, said, previous, None),
                Said::Callback => {
                    let at = callback_time(said, self.now);
                    self.conclude(Intent::Callback, said, previous, Some(at))
                }
                // A bare "no" answers the qualifying question; it does not refuse the offer.
                Said::Refusal { strong: false } | Said::Positive { .. } | Said::Other
                    if qualifying =>
                {
                    self.conclude(Intent::Interested, said, previous, None)
                }
                Said::Refusal { .. } => self.conclude(Intent::NotInterested, said, previous, None),
                Said::Unclear if previous.contains(say(lang, REPEAT)) => {
                    let mut reply = Reply::text(say(lang, GIVE_UP));
                    if self.offers("end_call").is_some() {
                        reply.tool_calls.push(Call {
                            name: "end_call".into(),
                            arguments: json!({"reason": "line unclear"}),
                        });
                    }
                    reply
                }
                Said::Unclear => Reply::text(say(lang, REPEAT)),
                Said::Question(Topic::Identity) => {
                    Reply::text(format!("{} {}", self.introduction(), self.about()))
                }
                Said::Question(topic) => {
                    let answer = match topic {
                        Topic::Price => self.price(),
                        _ => self.about(),
                    };
                    let follow = if qualifying {
                        qualifier
                    } else {
                        say(lang, ASK_INTEREST).to_string()
                    };
                    Reply::text(format!("{answer} {follow}"))
                }
                Said::Positive { more: true } => {
                    Reply::text(format!("{} {qualifier}", self.about()))
                }
                Said::Positive { more: false } => {
                    Reply::text(format!("{} {qualifier}", say(lang, GREAT)))
                }
                Said::Other => Reply::text(say(lang, NEUTRAL)),
            }
        }

        fn offers(&self, tool: &str) -> Option<&Value> {
            self.tools.iter().find(|(n, _)| n == tool).map(|(_, p)| p)
        }

        /// The acknowledgement and the tool calls that end the call with `intent`; without
        /// tools, the closing line is said at once.
        fn conclude(
            &self,
            intent: Intent,
            said: &str,
            question: &str,
            at: Option<DateTime<FixedOffset>>,
        ) -> Reply {
            let mut calls = Vec::new();
            let at_text = at.map(|a| a.to_rfc3339_opts(SecondsFormat::Secs, true));
            if let (Some(at), Some(_)) = (&at_text, self.offers("schedule_callback")) {
                calls.push(Call {
                    name: "schedule_callback".into(),
                    arguments: json!({"at": at}),
                });
            }
            if let Some(params) = self.offers("record_outcome") {
                let notes = match intent {
                    Intent::Interested => {
                        format!("Caller is interested. Asked \"{question}\", answered \"{said}\".")
                    }
                    Intent::Callback => format!(
                        "Caller asked to be called back at {}: \"{said}\".",
                        at_text.clone().unwrap_or_default()
                    ),
                    _ => format!("Caller said: \"{said}\"."),
                };
                let qualification = if intent == Intent::Interested {
                    qualification(&params["properties"]["qualification"], question, said)
                } else {
                    json!({})
                };
                let mut args = json!({"intent": intent.as_str(), "notes": notes, "qualification": qualification});
                // Send only what the offered schema declares, when it declares anything.
                if let (Some(props), Some(obj)) =
                    (params["properties"].as_object(), args.as_object_mut())
                {
                    obj.retain(|k, _| props.contains_key(k));
                }
                calls.push(Call {
                    name: "record_outcome".into(),
                    arguments: args,
                });
            }
            if self.offers("end_call").is_some() {
                calls.push(Call {
                    name: "end_call".into(),
                    arguments: json!({"reason": end_reason(intent)}),
                });
            }
            let when = at.map(|a| when_phrase(self.lang, a, self.now));
            let mut content = acknowledgement(self.lang, intent, when);
            if calls.is_empty() {
                content.push(' ');
                content.push_str(closing(self.lang, Some(intent)));
            }
            Reply {
                content,
                tool_calls: calls,
            }
        }

        /// The outcome recorded by the last assistant turn that called tools.
        fn concluded_intent(&self) -> Option<Intent> {
            let turn = self.turns.iter().rev().find(|t| !t.calls.is_empty())?;
            let recorded = turn
                .calls
                .iter()
                .find(|c| c.name == "record_outcome")
                .and_then(|c| Intent::parse(c.arguments["intent"].as_str()?));
            recorded.or_else(|| {
                turn.calls
                    .iter()
                    .any(|c| c.name == "schedule_callback")
                    .then_some(Intent::Callback)
            })
        }

        /// Sentences of the instructions that state facts (not orders to the model), in the
        /// reply language.
        fn fact_sentences(&self) -> Vec<String> {
            sentences(&self.system)
                .into_iter()
                .filter_map(|s| strip_label(&s))
                .filter(|s| !is_instruction(s) && !s.ends_with(['?', '？']))
                .filter(|s| has_devanagari(s) == (self.lang == Lang::Hi))
                .collect()
        }

        fn about(&self) -> String {
            let facts = self.fact_sentences();
            let offer = facts
                .iter()
                .find(|s| contains_any(&s.to_lowercase(), OFFER_WORDS));
            offer
                .or(facts.first())
                .cloned()
                .unwrap_or_else(|| say(self.lang, ABOUT).into())
        }

        fn price(&self) -> String {
            self.fact_sentences()
                .into_iter()
                .find(|s| s.contains('₹') || has(&normalize(s), PRICE_FACT_WORDS))
                .unwrap_or_else(|| say(self.lang, PRICE).into())
        }

        /// The qualifying question: the first question after "qualif…" in the instructions, or
        /// any question there, or a generic one.
        fn qualifier(&self) -> String {
            let lower = self.system.to_lowercase();
            let from = lower
                .find("qualif")
                .or_else(|| self.system.find("योग्यता"))
                .unwrap_or(0);
            // Byte offsets of `lower` match `system` only for ASCII; fall back to the start.
            let tail = self.system.get(from..).unwrap_or(&self.system);
            let question = |text: &str| {
                sentences(text)
                    .into_iter()
                    .filter_map(|s| strip_label(&s))
                    .find(|s| {
                        (s.ends_with('?') || s.ends_with('？'))
                            && has_devanagari(s) == (self.lang == Lang::Hi)
                    })
            };
            question(tail)
                .or_else(|| question(&self.system))
                .unwrap_or_else(|| say(self.lang, QUALIFIER).into())
        }

        /// Agent name and company from "You are Priya, … from/for/at SunPower Solar".
        fn identity(&self) -> (Option<String>, Option<String>) {
            let Some(at) = self
                .system
                .find("You are ")
                .or(self.system.find("you are "))
            else {
                return (None, None);
            };
            let rest = &self.system[at + "You are ".len()..];
            let end = rest.find(['.', '\n', '!', '?', '।']).unwrap_or(rest.len());
            let sentence = &rest[..end];
            let first = sentence
                .split(|c: char| c.is_whitespace() || c == ',')
                .next()
                .unwrap_or("");
            let name = (first.chars().next().is_some_and(char::is_uppercase)
                && !["A", "An", "The"].contains(&first))
            .then(|| first.to_string());
            let company = [" from ", " for ", " at ", " with "].iter().find_map(|k| {
                let i = sentence.find(k)?;
                let c = &sentence[i + k.len()..];
                let c = c
                    .split([',', ';', '('])
                    .next()?
                    .split(" to ")
                    .next()?
                    .trim();
                (!c.is_empty()).then(|| c.to_string())
            });
            (name, company)
        }

        fn introduction(&self) -> String {
            match (self.lang, self.identity()) {
                (Lang::En, (Some(n), Some(c))) => format!("This is {n} from {c}."),
                (Lang::En, (None, Some(c))) => format!("I am calling from {c}."),
                (Lang::En, (Some(n), None)) => format!("This is {n}."),
                (Lang::Hi, (_, Some(c))) => format!("यह कॉल {c} की ओर से है।"),
                (Lang::En, _) => "I am calling with a quick offer.".into(),
                (Lang::Hi, _) => "मैं एक खास ऑफ़र के बारे में कॉल कर रही हूँ।".into(),
            }
        }

        fn greeting(&self) -> String {
            match self.lang {
                Lang::En => format!(
                    "Namaste! {} Do you have a minute to talk?",
                    self.introduction()
                ),
                Lang::Hi => format!(
                    "नमस्ते! {} क्या आपके पास बात करने के लिए एक मिनट है?",
                    self.introduction()
                ),
            }
        }

        pub(super) fn facts(&self) -> Facts {
            // A transcript pasted into a message ("Caller: …" lines), else the user turns that are
            // not the extraction instruction itself.
            let mut lines: Vec<String> = std::iter::once(self.system.as_str())
                .chain(self.turns.iter().map(|t| t.text.as_str()))
                .flat_map(str::lines)
                .filter_map(caller_line)
                .collect();
            if lines.is_empty() {
                lines = self
                    .turns
                    .iter()
                    .filter(|t| t.role == "user")
                    .filter(|t| {
                        let l = t.text.to_lowercase();
                        !(l.contains("json") || l.contains("summar") || l.contains("extract"))
                    })
                    .map(|t| t.text.clone())
                    .collect();
            }
            let mut facts = Facts {
                lang: detect_lang(&self.system, lines.last().map_or("", String::as_str)),
                intent: None,
                callback_at: None,
                questions: Vec::new(),
                answer: None,
                now: self.now,
            };
            for line in &lines {
                match classify(line) {
                    Said::DoNotCall => facts.intent = Some(Intent::DoNotCall),
                    Said::WrongNumber => facts.intent = Some(Intent::WrongNumber),
                    Said::Callback => {
                        facts.intent = Some(Intent::Callback);
                        facts.callback_at = Some(callback_time(line, self.now));
                    }
                    Said::Refusal { strong: false } | Said::Other
                        if facts.intent == Some(Intent::Interested) =>
                    {
                        facts.answer = Some(line.clone());
                    }
                    Said::Refusal { .. } => facts.intent = Some(Intent::NotInterested),
                    Said::Question(_) => facts.questions.push(line.clone()),
                    Said::Positive { .. } => {
                        if facts.intent == Some(Intent::Interested) {
                            facts.answer = Some(line.clone());
                        }
                        facts.intent = Some(Intent::Interested);
                    }
                    Said::Unclear | Said::Other => {}
                }
            }
            // What the agent recorded with its tools is authoritative.
            for call in self.turns.iter().flat_map(|t| &t.calls) {
                match call.name.as_str() {
                    "record_outcome" => {
                        if let Some(i) = call.arguments["intent"].as_str().and_then(Intent::parse) {
                            facts.intent = Some(i);
                        }
                    }
                    "schedule_callback" => {
                        if let Some(at) = call.arguments["at"]
                            .as_str()
                            .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
                        {
                            facts.callback_at = Some(at);
                        }
                    }
                    _ => {}
                }
            }
            facts
        }
    }

    /// `qualification` for `record_outcome`: the schema's fields filled from the answer, or
    /// the question and answer.
    fn qualification(schema: &Value, question: &str, answer: &str) -> Value {
        let Some(props) = schema["properties"].as_object().filter(|p| !p.is_empty()) else {
            return json!({"question": question, "answer": answer});
        };
        let number = first_number(answer);
        props
            .iter()
            .map(|(k, p)| {
                let v = match p["type"].as_str() {
                    Some("number") | Some("integer") => json!(number.unwrap_or(0.0)),
                    Some("boolean") => json!(true),
                    _ => json!(answer),
                };
                (k.clone(), v)
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    pub(super) fn first_number(text: &str) -> Option<f64> {
        text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .find(|w| w.chars().any(|c| c.is_ascii_digit()))
            .and_then(|w| w.trim_matches('.').parse().ok())
    }

    fn caller_line(line: &str) -> Option<String> {
        let (speaker, rest) = line.trim().split_once(':')?;
        let speaker = speaker.trim().to_lowercase();
        [
            "caller",
            "user",
            "customer",
            "lead",
            "callee",
            "human",
            "ग्राहक",
        ]
        .contains(&speaker.as_str())
        .then(|| rest.trim().to_string())
    }

    // ------------------------------------------------------------------ reading the caller

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Topic {
        Price,
        Identity,
        About,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Said {
        DoNotCall,
        WrongNumber,
        Callback,
        /// `strong`: an explicit refusal ("not interested"), not a bare "no".
        Refusal {
            strong: bool,
        },
        Question(Topic),
        /// `more`: asked for details ("tell me more").
        Positive {
            more: bool,
        },
        Unclear,
        Other,
    }

    #[rustfmt::skip]
    const FILLERS: &[&str] = &[
        "hmm", "hm", "hmmm", "uh", "um", "umm", "ah", "huh", "hello", "hallo", "helo", "what",
        "sorry", "pardon", "kya", "हेलो", "हैलो", "क्या", "हम्म", "अं",
    ];
    #[rustfmt::skip]
    const DO_NOT_CALL: &[&str] = &[
        "dont call", "do not call", "stop calling", "never call", "remove my number", "remove me",
        "take me off", "unsubscribe", "do not disturb", "dnd", "call mat", "phone mat", "कॉल मत",
        "फोन मत", "फ़ोन मत", "परेशान मत",
    ];
    #[rustfmt::skip]
    const WRONG_NUMBER: &[&str] = &[
        "wrong number", "galat number", "wrong person", "no one by that name",
        "nobody by that name", "not the right person", "गलत नंबर", "ग़लत नंबर", "रॉन्ग नंबर",
    ];
    const BARE_WHO: &[&str] = &["who", "kaun", "kon", "कौन"];
    #[rustfmt::skip]
    const CALLBACK: &[&str] = &[
        "call me later", "call later", "call back", "call me back", "callback", "call me tomorrow",
        "call me in", "call me at", "call me after", "call me on", "later", "tomorrow", "busy",
        "not now", "not a good time", "another time", "some other time", "in a meeting", "driving",
        "baad mein", "baad me", "baad main", "bad me", "abhi nahi", "abhi nahin", "abhi busy",
        "kal", "parso", "parson", "dobara call", "phir se call", "fir se call", "बाद में",
        "अभी नहीं", "व्यस्त", "बिज़ी", "बिजी", "कल", "परसों", "फिर से कॉल", "दोबारा कॉल",
    ];
    #[rustfmt::skip]
    const UNSURE: &[&str] = &[
        "not sure", "dont know", "pata nahi", "maybe", "shayad", "पता नहीं", "शायद",
    ];
    #[rustfmt::skip]
    const STRONG_REFUSAL: &[&str] = &[
        "not interested", "no thanks", "no thank you", "nahi chahiye", "nahin chahiye",
        "interest nahi", "interested nahi", "interest nahin", "dont want", "do not want",
        "not looking", "not required", "no need", "zarurat nahi", "jarurat nahi", "नहीं चाहिए",
        "रुचि नहीं", "दिलचस्पी नहीं", "ज़रूरत नहीं", "जरूरत नहीं", "इंटरेस्ट नहीं",
    ];
    #[rustfmt::skip]
    const WEAK_REFUSAL: &[&str] = &[
        "no", "nope", "nah", "nahi", "nahin", "na", "नहीं", "नही", "ना",
    ];
    #[rustfmt::skip]
    const QUESTION_START: &[&str] = &[
        "what", "whats", "how", "why", "which", "where", "when", "who", "is", "are", "does", "can",
        "could", "kya", "kaise", "kitna", "kitne", "kitni", "kaun", "kyun", "kyon", "kab", "kahan",
        "क्या", "कैसे", "कितना", "कितने", "कितनी", "कौन", "क्यों", "कब", "कहाँ",
    ];
    #[rustfmt::skip]
    const QUESTION_ANYWHERE: &[&str] = &[
        "kya hai", "kya he", "kaun hai", "kaun ho", "kaun bol", "kitna hai", "what is this",
        "क्या है", "कितना है", "कौन है", "कौन हो", "कौन बोल",
    ];
    #[rustfmt::skip]
    const PRICE_WORDS: &[&str] = &[
        "price", "cost", "costs", "charges", "charge", "fees", "fee", "rate", "emi", "how much",
        "kitna", "kitne", "kitni", "paisa", "paise", "rupees", "rupaye", "kimat", "keemat", "daam",
        "कीमत", "दाम", "कितना", "कितने", "पैसे", "रुपये", "खर्च",
    ];
    #[rustfmt::skip]
    const IDENTITY_WORDS: &[&str] = &[
        "who are you", "who is this", "who is calling", "kaun ho", "kaun hai", "kaun bol",
        "which company", "calling from", "कौन हो", "कौन है", "कौन बोल",
    ];
    #[rustfmt::skip]
    const POSITIVE: &[&str] = &[
        "yes", "yeah", "yep", "yup", "ya", "sure", "ok", "okay", "interested", "tell me more",
        "go ahead", "sounds good", "of course", "why not", "definitely", "absolutely", "haan",
        "haa", "han", "ha", "ji", "haanji", "bilkul", "theek hai", "thik hai", "achha", "accha",
        "acha", "batao", "bataiye", "bataye", "boliye", "bolo", "zaroor", "zarur", "jarur", "हाँ",
        "हां", "जी", "हाँजी", "ज़रूर", "जरूर", "बिल्कुल", "बिलकुल", "ठीक है", "अच्छा", "बताइए",
        "बताइये", "बताओ", "बोलिए", "इंटरेस्टेड",
    ];
    #[rustfmt::skip]
    const MORE: &[&str] = &[
        "tell me more", "more", "details", "explain", "batao", "bataiye", "bataye", "jaankari",
        "बताइए", "बताइये", "बताओ", "जानकारी",
    ];
    #[rustfmt::skip]
    const OFFER_WORDS: &[&str] = &[
        "offer", "we ", "our ", "provide", "sell", "scheme", "plan", "product", "service", "loan",
        "policy", "subsidy", "हम", "हमारी", "हमारा", "ऑफ़र", "ऑफर", "योजना",
    ];
    #[rustfmt::skip]
    const PRICE_FACT_WORDS: &[&str] = &[
        "rs", "inr", "rupee", "rupees", "price", "prices", "cost", "costs", "emi", "per month",
        "lakh", "discount", "कीमत", "रुपये", "रुपए",
    ];

    fn contains_any(text: &str, needles: &[&str]) -> bool {
        needles.iter().any(|n| text.contains(n))
    }

    /// Whole-word (or whole-phrase) match in a `normalize`d text.
    fn has(normalized: &str, phrases: &[&str]) -> bool {
        phrases
            .iter()
            .any(|p| normalized.contains(&format!(" {p} ")))
    }

    fn devanagari_digit(c: char) -> char {
        match c {
            '०'..='९' => char::from(b'0' + (c as u32 - '०' as u32) as u8),
            c => c,
        }
    }

    /// Lower case, ASCII digits, punctuation as spaces (apostrophes dropped, `5.30` → `5:30`),
    /// single spaces, and a space at each end so phrases can be matched as whole words.
    pub(super) fn normalize(text: &str) -> String {
        let chars: Vec<char> = text.chars().map(devanagari_digit).collect();
        let mut out = String::with_capacity(text.len() + 2);
        out.push(' ');
        for (i, &c) in chars.iter().enumerate() {
            let between_digits = i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(char::is_ascii_digit);
            match c {
                '\'' | '’' | '‘' => {}
                '.' | ':' if between_digits => out.push(':'),
                c if c.is_ascii_punctuation() => out.push(' '),
                '।' | '॥' | '“' | '”' | '…' | '？' | '،' => out.push(' '),
                c => out.extend(c.to_lowercase()),
            }
        }
        let mut collapsed = String::with_capacity(out.len() + 2);
        collapsed.push(' ');
        for w in out.split_whitespace() {
            collapsed.push_str(w);
            collapsed.push(' ');
        }
        collapsed
    }

    pub(super) fn classify(text: &str) -> Said {
        let n = normalize(text);
        let t = n.trim();
        let asked = text.contains('?') || text.contains('？');
        if t.is_empty() || FILLERS.contains(&t) {
            return Said::Unclear;
        }
        if has(&n, DO_NOT_CALL) {
            return Said::DoNotCall;
        }
        if has(&n, WRONG_NUMBER) || BARE_WHO.contains(&t) {
            return Said::WrongNumber;
        }
        if has(&n, CALLBACK) {
            return Said::Callback;
        }
        if has(&n, UNSURE) {
            return Said::Other;
        }
        if has(&n, STRONG_REFUSAL) {
            return Said::Refusal { strong: true };
        }
        let first = t.split(' ').next().unwrap_or("");
        let question = (asked
            || QUESTION_START.contains(&first)
            || has(&n, QUESTION_ANYWHERE)
            || has(&n, PRICE_WORDS))
            && !t.starts_with("why not");
        if question {
            return Said::Question(if has(&n, PRICE_WORDS) {
                Topic::Price
            } else if has(&n, IDENTITY_WORDS) {
                Topic::Identity
            } else {
                Topic::About
            });
        }
        if has(&n, WEAK_REFUSAL) {
            return Said::Refusal { strong: false };
        }
        if has(&n, POSITIVE) {
            return Said::Positive {
                more: has(&n, MORE),
            };
        }
        Said::Other
    }

    pub(super) fn has_devanagari(text: &str) -> bool {
        text.chars().any(|c| ('\u{0900}'..='\u{097F}').contains(&c))
    }

    fn detect_lang(system: &str, caller: &str) -> Lang {
        if has_devanagari(caller) {
            return Lang::Hi;
        }
        let lower = system.to_lowercase();
        if lower.contains("hi-in") {
            return Lang::Hi;
        }
        if ["en-in", "en-us", "en-gb"]
            .iter()
            .any(|c| lower.contains(c))
        {
            return Lang::En;
        }
        if has_devanagari(system) || lower.contains("in hindi") || lower.contains("language: hindi")
        {
            Lang::Hi
        } else {
            Lang::En
        }
    }

    // ------------------------------------------------------------------ reading the instructions

    /// Splits text into sentences at `.`/`!`/`?`/`।` followed by a space, and at line ends;
    /// numbers (`3.5`) and `Rs.`/`Mr.`/`Dr.` stay whole.
    fn sentences(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let chars: Vec<char> = text.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if c == '\n' {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            cur.push(c);
            let next_is_space = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
            if matches!(c, '!' | '?' | '？' | '।' | '॥') && next_is_space {
                out.push(std::mem::take(&mut cur));
            } else if c == '.' && next_is_space {
                let word = cur[..cur.len() - 1]
                    .rsplit(char::is_whitespace)
                    .next()
                    .unwrap_or("")
                    .to_lowercase();
                if !["rs", "mr", "mrs", "ms", "dr", "no", "pvt", "st"].contains(&word.as_str()) {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
        out.push(cur);
        out.into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Drops list markers and a short `Label:` prefix; `None` for labels that carry no fact.
    fn strip_label(sentence: &str) -> Option<String> {
        let s = sentence
            .trim_start_matches(|c: char| c == '-' || c == '*' || c == '•' || c.is_whitespace());
        let s = match s.split_once(['.', ')']) {
            Some((n, rest)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => rest,
            _ => s,
        }
        .trim();
        if let Some((label, rest)) = s.split_once(':')
            && label.split_whitespace().count() <= 3
            && !label.chars().any(|c| c.is_ascii_digit())
        {
            let label = label.trim().to_lowercase();
            #[rustfmt::skip]
            const NO_FACT: &[&str] = &[
                "language", "time", "current", "now", "tool", "lead", "name", "phone", "campaign",
                "caller", "agent", "voice", "date", "today",
            ];
            if NO_FACT.iter().any(|w| label.contains(w)) {
                return None;
            }
            return Some(rest.trim().to_string()).filter(|r| !r.is_empty());
        }
        Some(s.to_string()).filter(|s| !s.is_empty())
    }

    fn is_instruction(sentence: &str) -> bool {
        let l = sentence.to_lowercase();
        #[rustfmt::skip]
        const STARTS: &[&str] = &[
            "you ", "your ", "be ", "keep", "do not", "don't", "dont", "always", "never", "use ",
            "ask", "if ", "when ", "reply", "respond", "speak", "talk", "call ", "end ", "record",
            "say", "greet", "introduce", "answer", "follow", "only", "make sure", "remember",
            "note", "the caller", "the lead", "the customer", "qualif", "collect", "schedule",
            "आप एक", "हमेशा", "कभी",
        ];
        STARTS.iter().any(|s| l.starts_with(s)) || l.contains('{')
    }

    // ------------------------------------------------------------------ time

    pub(super) fn ist() -> FixedOffset {
        FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("valid offset")
    }

    /// The "current time" of the prompt: an RFC 3339 time, or `YYYY-MM-DD HH:MM[:SS]` (IST).
    pub(super) fn find_now(system: &str) -> Option<DateTime<FixedOffset>> {
        let trim = |w: &str| {
            w.trim_matches(|c: char| matches!(c, ',' | ';' | '(' | ')' | '[' | ']' | '"' | '\''))
                .trim_end_matches('.')
                .to_string()
        };
        let words: Vec<String> = system.split_whitespace().map(trim).collect();
        for (i, w) in words.iter().enumerate() {
            if let Ok(t) = DateTime::parse_from_rfc3339(w) {
                return Some(t);
            }
            if let Some(next) = words.get(i + 1) {
                let joined = format!("{w} {next}");
                for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
                    if let Ok(naive) = NaiveDateTime::parse_from_str(&joined, f) {
                        return ist().from_local_datetime(&naive).single();
                    }
                }
            }
        }
        None
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum PartOfDay {
        Morning,
        Afternoon,
        Evening,
        Night,
    }

    fn number_word(w: &str) -> Option<u32> {
        const WORDS: &[(&[&str], u32)] = &[
            (&["one", "ek", "एक"], 1),
            (&["two", "do", "दो"], 2),
            (&["three", "teen", "तीन"], 3),
            (&["four", "char", "chaar", "चार"], 4),
            (&["five", "paanch", "panch", "पांच", "पाँच"], 5),
            (&["six", "chhe", "che", "छह", "छः"], 6),
            (&["seven", "saat", "सात"], 7),
            (&["eight", "aath", "आठ"], 8),
            (&["nine", "nau", "नौ"], 9),
            (&["ten", "das", "दस"], 10),
            (&["eleven", "gyarah", "ग्यारह"], 11),
            (&["twelve", "barah", "बारह"], 12),
        ];
        WORDS
            .iter()
            .find(|(ws, _)| ws.contains(&w))
            .map(|(_, n)| *n)
    }

    #[rustfmt::skip]
    const HOUR_UNITS: &[&str] = &[
        "hour", "hours", "hr", "hrs", "ghante", "ghanta", "घंटे", "घंटा",
    ];
    const MINUTE_UNITS: &[&str] = &["min", "mins", "minute", "minutes", "minat", "मिनट"];
    const CLOCK_MARKERS: &[&str] = &["am", "pm", "baje", "बजे", "oclock", "o"];

    /// "in 2 hours", "30 minute baad", "half an hour", "ek ghante".
    fn relative(words: &[&str], n: &str) -> Option<chrono::Duration> {
        if has(
            n,
            &[
                "half an hour",
                "aadhe ghante",
                "aadha ghanta",
                "आधे घंटे",
                "आधा घंटा",
            ],
        ) {
            return Some(chrono::Duration::minutes(30));
        }
        for (i, w) in words.iter().enumerate() {
            let Some(unit) = words.get(i + 1) else { break };
            let count = w
                .parse::<i64>()
                .ok()
                .or_else(|| number_word(w).map(i64::from))
                .or_else(|| (*w == "an" || *w == "a").then_some(1));
            let Some(count) = count else { continue };
            if HOUR_UNITS.contains(unit) {
                return Some(chrono::Duration::hours(count));
            }
            if MINUTE_UNITS.contains(unit) {
                return Some(chrono::Duration::minutes(count));
            }
        }
        None
    }

    /// A clock time said in `words`: `(hour, minute, Some(pm))`.
    fn clock(words: &[&str], part: Option<PartOfDay>) -> Option<(u32, u32, Option<bool>)> {
        for (i, w) in words.iter().enumerate() {
            let next = words.get(i + 1).copied().unwrap_or("");
            let prev = if i > 0 { words[i - 1] } else { "" };
            let (digits, suffix) = match w.find(|c: char| !(c.is_ascii_digit() || c == ':')) {
                Some(at) => w.split_at(at),
                None => (*w, ""),
            };
            let mut meridiem = match (suffix, next) {
                ("am", _) | ("", "am") => Some(false),
                ("pm", _) | ("", "pm") => Some(true),
                _ => None,
            };
            if suffix.is_empty() && next == "p" && words.get(i + 2) == Some(&"m") {
                meridiem = Some(true);
            } else if suffix.is_empty() && next == "a" && words.get(i + 2) == Some(&"m") {
                meridiem = Some(false);
            }
            if !suffix.is_empty() && meridiem.is_none() {
                continue;
            }
            let marked = meridiem.is_some() || CLOCK_MARKERS.contains(&next);
            let (h, m) = if digits.is_empty() {
                match number_word(w) {
                    Some(h) if marked => (h, 0),
                    _ => continue,
                }
            } else {
                let mut parts = digits.splitn(2, ':');
                let h: u32 = parts.next()?.parse().ok()?;
                let m: u32 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
                let cued = marked
                    || digits.contains(':')
                    || ["at", "around", "by", "after", "before", "about"].contains(&prev)
                    || part.is_some();
                if !cued || HOUR_UNITS.contains(&next) || MINUTE_UNITS.contains(&next) {
                    continue;
                }
                (h, m)
            };
            if h <= 23 && m <= 59 {
                return Some((h, m, meridiem));
            }
        }
        None
    }

    /// When the caller asked to be called back, relative to `now` (in `now`'s offset).
    pub(super) fn callback_time(text: &str, now: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        let n = normalize(text);
        let words: Vec<&str> = n.split_whitespace().collect();
        let at_minute = |t: DateTime<FixedOffset>| {
            t.with_second(0)
                .and_then(|t| t.with_nanosecond(0))
                .unwrap_or(t)
        };
        if let Some(d) = relative(&words, &n) {
            return at_minute(now + d);
        }
        let weekday = [
            (Weekday::Mon, ["monday", "somvar", "somwar", "सोमवार"]),
            (
                Weekday::Tue,
                ["tuesday", "mangalvar", "mangalwar", "मंगलवार"],
            ),
            (Weekday::Wed, ["wednesday", "budhvar", "budhwar", "बुधवार"]),
            (Weekday::Thu, ["thursday", "guruvar", "guruwar", "गुरुवार"]),
            (Weekday::Fri, ["friday", "shukravar", "shukrawar", "शुक्रवार"]),
            (Weekday::Sat, ["saturday", "shanivar", "shaniwar", "शनिवार"]),
            (Weekday::Sun, ["sunday", "ravivar", "raviwar", "रविवार"]),
        ]
        .into_iter()
        .find(|(_, names)| has(&n, names))
        .map(|(d, _)| d);
        let day: Option<u64> = if has(&n, &["day after tomorrow", "parso", "parson", "परसों"])
        {
            Some(2)
        } else if has(&n, &["tomorrow", "tmrw", "kal", "कल"]) {
            Some(1)
        } else if has(&n, &["today", "aaj", "आज", "tonight"]) {
            Some(0)
        } else if let Some(wd) = weekday {
            let ahead = (7 + wd.num_days_from_monday() - now.weekday().num_days_from_monday()) % 7;
            Some(if ahead == 0 { 7 } else { ahead.into() })
        } else if has(&n, &["next week", "agle hafte", "अगले हफ्ते", "अगले हफ़्ते"])
        {
            Some(7)
        } else {
            None
        };
        let part = if has(&n, &["morning", "subah", "सुबह"]) {
            Some(PartOfDay::Morning)
        } else if has(&n, &["afternoon", "dopahar", "dopehar", "दोपहर"]) {
            Some(PartOfDay::Afternoon)
        } else if has(&n, &["evening", "shaam", "sham", "शाम"]) {
            Some(PartOfDay::Evening)
        } else if has(&n, &["night", "tonight", "raat", "रात"]) {
            Some(PartOfDay::Night)
        } else {
            None
        };
        let time = match clock(&words, part) {
            Some((h, m, meridiem)) => {
                let h = match (meridiem, part) {
                    (Some(true), _) if h < 12 => h + 12,
                    (Some(false), _) if h == 12 => 0,
                    (Some(_), _) => h,
                    (None, _) if h >= 13 => h,
                    (None, Some(PartOfDay::Morning)) => h % 12,
                    (None, Some(_)) if h < 12 => h + 12,
                    (None, Some(_)) => h,
                    // Business hours: "at 5" means 5 PM, "at 10" means 10 AM.
                    (None, None) if (1..=7).contains(&h) => h + 12,
                    (None, None) => h,
                };
                NaiveTime::from_hms_opt(h, m, 0)
            }
            None => match part {
                Some(PartOfDay::Morning) => NaiveTime::from_hms_opt(10, 0, 0),
                Some(PartOfDay::Afternoon) => NaiveTime::from_hms_opt(14, 0, 0),
                Some(PartOfDay::Evening) => NaiveTime::from_hms_opt(18, 0, 0),
                Some(PartOfDay::Night) => NaiveTime::from_hms_opt(20, 0, 0),
                None => day.and_then(|_| NaiveTime::from_hms_opt(11, 0, 0)),
            },
        };
        let Some(time) = time else {
            // "Later", "busy": two hours from now, on a quarter hour.
            let t = at_minute(now + chrono::Duration::hours(2));
            let pad = (15 - t.minute() % 15) % 15;
            return t + chrono::Duration::minutes(pad.into());
        };
        let date = now.date_naive() + Days::new(day.unwrap_or(0));
        let at = now
            .offset()
            .from_local_datetime(&date.and_time(time))
            .single()
            .unwrap_or(now);
        if day.is_none() && at <= now {
            at + chrono::Duration::days(1)
        } else {
            at
        }
    }

    /// "tomorrow at 5 PM" / "कल शाम 5 बजे".
    fn when_phrase(lang: Lang, at: DateTime<FixedOffset>, now: DateTime<FixedOffset>) -> String {
        let days = (at.date_naive() - now.date_naive()).num_days();
        let (h, m) = (at.hour(), at.minute());
        let h12 = if h % 12 == 0 { 12 } else { h % 12 };
        let clock = if m == 0 {
            format!("{h12}")
        } else {
            format!("{h12}:{m:02}")
        };
        match lang {
            Lang::En => {
                let day = match days {
                    0 => "today".to_string(),
                    1 => "tomorrow".to_string(),
                    _ => format!("on {}", at.format("%A")),
                };
                let meridiem = if h < 12 { "AM" } else { "PM" };
                format!("{day} at {clock} {meridiem}")
            }
            Lang::Hi => {
                let weekdays = [
                    "सोमवार",
                    "मंगलवार",
                    "बुधवार",
                    "गुरुवार",
                    "शुक्रवार",
                    "शनिवार",
                    "रविवार",
                ];
                let day = match days {
                    0 => "आज".to_string(),
                    1 => "कल".to_string(),
                    2 => "परसों".to_string(),
                    _ => format!(
                        "{} को",
                        weekdays[at.weekday().num_days_from_monday() as usize]
                    ),
                };
                let part = match h {
                    0..=11 => "सुबह",
                    12..=15 => "दोपहर",
                    16..=19 => "शाम",
                    _ => "रात",
                };
                format!("{day} {part} {clock} बजे")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Structured output
// ---------------------------------------------------------------------------------------------

/// Fills a JSON Schema with plausible values from what the conversation established.
mod schema {
    use chrono::SecondsFormat;
    use serde_json::{Map, Value, json};

    use super::partner::{Facts, Intent, Lang, first_number};

    pub(super) fn fill(schema: &Value, facts: &Facts) -> Value {
        fill_at(schema, "", facts, schema, 0)
    }

    /// For `response_format: json_object` (no schema).
    pub(super) fn default_object(facts: &Facts) -> Value {
        json!({
            "intent": intent(facts),
            "summary": summary(facts),
            "callback_at": facts.callback_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            "language": language(facts),
        })
    }

    fn intent(facts: &Facts) -> &'static str {
        facts.intent.map_or("unknown", Intent::as_str)
    }

    fn language(facts: &Facts) -> &'static str {
        match facts.lang {
            Lang::En => "en-IN",
            Lang::Hi => "hi-IN",
        }
    }

    fn sentiment(facts: &Facts) -> &'static str {
        match facts.intent {
            Some(Intent::Interested) => "positive",
            Some(Intent::NotInterested | Intent::DoNotCall) => "negative",
            _ => "neutral",
        }
    }

    fn summary(facts: &Facts) -> String {
        let mut s = match facts.intent {
            Some(Intent::Interested) => match &facts.answer {
                Some(a) => format!(
                    "The caller is interested in the offer and described their requirement: \"{a}\"."
                ),
                None => "The caller is interested in the offer.".to_string(),
            },
            Some(Intent::NotInterested) => {
                "The caller said they were not interested; the call ended politely.".to_string()
            }
            Some(Intent::Callback) => format!(
                "The caller asked to be called back at {}.",
                facts
                    .callback_at
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                    .unwrap_or_else(|| "a later time".into())
            ),
            Some(Intent::WrongNumber) => {
                "The number did not belong to the intended lead (wrong number).".to_string()
            }
            Some(Intent::DoNotCall) => "The caller asked not to be called again.".to_string(),
            None => "The call ended without a clear outcome.".to_string(),
        };
        if let Some(q) = facts.questions.first() {
            s.push_str(&format!(" The caller asked: \"{q}\"."));
        }
        s
    }

    fn next_step(facts: &Facts) -> &'static str {
        match facts.intent {
            Some(Intent::Interested) => "Sales team to follow up with details.",
            Some(Intent::Callback) => "Call back at the agreed time.",
            Some(Intent::DoNotCall) => "Add the number to the do-not-call list.",
            Some(Intent::WrongNumber) => "Correct the lead's phone number.",
            _ => "No follow-up needed.",
        }
    }

    /// Words of field names whose value the conversation always gives (see `string_for`).
    #[rustfmt::skip]
    const KNOWN_FIELDS: &[&str] = &[
        "summary", "intent", "outcome", "disposition", "sentiment", "lang", "note", "reason",
        "comment", "next", "action", "follow", "question", "objection", "score", "confidence",
        "probability", "likelihood",
    ];

    /// Whether a nullable field of type `ty` should be `null` because the call did not
    /// establish it: a callback time without a callback, a qualification field without an answer.
    fn unknown(name: &str, ty: &str, facts: &Facts) -> bool {
        let n = name.to_lowercase();
        let is_time = n.contains("callback") || n.ends_with("_at") || n.contains("time");
        let is_answer = matches!(ty, "string" | "number" | "integer")
            && !is_time
            && !KNOWN_FIELDS.iter().any(|w| n.contains(w));
        (is_time && facts.callback_at.is_none()) || (is_answer && facts.answer.is_none())
    }

    fn fill_at(schema: &Value, name: &str, facts: &Facts, root: &Value, depth: u32) -> Value {
        if depth > 8 {
            return Value::Null;
        }
        if let Some(target) = schema["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| root.pointer(p))
        {
            return fill_at(target, name, facts, root, depth + 1);
        }
        if let Some(c) = schema.get("const") {
            return c.clone();
        }
        if let Some(options) = schema["anyOf"].as_array().or(schema["oneOf"].as_array()) {
            let nullable = options.iter().any(|o| o["type"] == "null");
            let chosen = options
                .iter()
                .find(|o| o["type"] != "null")
                .or(options.first());
            let ty = chosen.and_then(|o| o["type"].as_str()).unwrap_or("string");
            if nullable && unknown(name, ty, facts) {
                return Value::Null;
            }
            return chosen.map_or(Value::Null, |o| fill_at(o, name, facts, root, depth + 1));
        }
        if let Some(values) = schema["enum"].as_array() {
            return pick_enum(values, facts);
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ if schema.get("properties").is_some() => vec!["object"],
            _ => vec!["string"],
        };
        let ty = types
            .iter()
            .find(|t| **t != "null")
            .copied()
            .unwrap_or("null");
        if types.contains(&"null") && unknown(name, ty, facts) {
            return Value::Null;
        }
        match ty {
            "object" => {
                let props = schema["properties"].as_object();
                let out: Map<String, Value> = props
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), fill_at(v, k, facts, root, depth + 1)))
                    .collect();
                Value::Object(out)
            }
            "array" => {
                let n = name.to_lowercase();
                let mut items: Vec<Value> = if n.contains("question") || n.contains("objection") {
                    facts.questions.iter().map(|q| json!(q)).collect()
                } else {
                    Vec::new()
                };
                let min = schema["minItems"].as_u64().unwrap_or(0) as usize;
                while items.len() < min {
                    items.push(fill_at(&schema["items"], name, facts, root, depth + 1));
                }
                Value::Array(items)
            }
            "string" => Value::String(string_for(name, schema, facts)),
            "integer" | "number" => number_for(name, schema, facts),
            "boolean" => Value::Bool(bool_for(name, facts)),
            _ => Value::Null,
        }
    }

    fn pick_enum(values: &[Value], facts: &Facts) -> Value {
        let wanted = [
            intent(facts),
            sentiment(facts),
            language(facts),
            &language(facts)[..2],
        ];
        values
            .iter()
            .find(|v| {
                v.as_str()
                    .is_some_and(|s| wanted.iter().any(|w| w.eq_ignore_ascii_case(s)))
            })
            .or_else(|| values.iter().find(|v| *v == "unknown" || *v == "other"))
            .or(values.first())
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn string_for(name: &str, schema: &Value, facts: &Facts) -> String {
        let n = name.to_lowercase();
        if schema["format"] == "date-time"
            || n.contains("callback")
            || n.ends_with("_at")
            || n.contains("time")
            || n.contains("date")
        {
            return facts
                .callback_at
                .unwrap_or(facts.now)
                .to_rfc3339_opts(SecondsFormat::Secs, true);
        }
        if n.contains("summary") {
            summary(facts)
        } else if n.contains("intent") || n.contains("outcome") || n.contains("disposition") {
            intent(facts).into()
        } else if n.contains("sentiment") {
            sentiment(facts).into()
        } else if n.contains("lang") {
            language(facts).into()
        } else if n.contains("note") || n.contains("reason") || n.contains("comment") {
            summary(facts)
        } else if n.contains("next") || n.contains("action") || n.contains("follow") {
            next_step(facts).into()
        } else if n.contains("question") || n.contains("objection") {
            facts.questions.join("; ")
        } else {
            // A qualification field ("monthly_bill"): what the caller answered.
            facts.answer.clone().unwrap_or_default()
        }
    }

    fn number_for(name: &str, schema: &Value, facts: &Facts) -> Value {
        let n = name.to_lowercase();
        let min = schema["minimum"].as_f64();
        let max = schema["maximum"].as_f64();
        let v = if ["score", "confidence", "probability", "likelihood"]
            .iter()
            .any(|w| n.contains(w))
        {
            let high = facts.intent == Some(Intent::Interested);
            let top = max.unwrap_or(if n.contains("score") { 10.0 } else { 1.0 });
            top * if high { 0.9 } else { 0.2 }
        } else {
            facts
                .answer
                .as_deref()
                .and_then(first_number)
                .unwrap_or(0.0)
        };
        let v = v.max(min.unwrap_or(f64::MIN)).min(max.unwrap_or(f64::MAX));
        if schema["type"] == "integer" {
            json!(v.round() as i64)
        } else {
            json!(v)
        }
    }

    fn bool_for(name: &str, facts: &Facts) -> bool {
        let n = name.to_lowercase();
        let is = |i: Intent| facts.intent == Some(i);
        if n.contains("not_interested") || n.contains("not interested") {
            is(Intent::NotInterested)
        } else if n.contains("interested") || n.contains("qualified") {
            is(Intent::Interested)
        } else if n.contains("callback") {
            is(Intent::Callback)
        } else if n.contains("do_not_call") || n.contains("dnc") {
            is(Intent::DoNotCall)
        } else if n.contains("wrong") {
            is(Intent::WrongNumber)
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::partner::{Said, Topic, callback_time, classify, find_now};
    use super::*;

    fn at(s: &str) -> chrono::DateTime<chrono::FixedOffset> {
        chrono::DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn caller_lines_are_classified_in_english_hinglish_and_hindi() {
        let cases = [
            ("Yes, tell me more", Said::Positive { more: true }),
            ("haan ji", Said::Positive { more: false }),
            ("हाँ, बताइए", Said::Positive { more: true }),
            ("Not interested, thanks", Said::Refusal { strong: true }),
            ("nahi", Said::Refusal { strong: false }),
            ("मुझे नहीं चाहिए", Said::Refusal { strong: true }),
            ("I'm busy, call me tomorrow at 5", Said::Callback),
            ("abhi nahi, baad mein", Said::Callback),
            ("कल शाम को कॉल कीजिए", Said::Callback),
            ("Wrong number", Said::WrongNumber),
            ("who?", Said::WrongNumber),
            ("galat number hai", Said::WrongNumber),
            ("Don't call me again", Said::DoNotCall),
            ("please stop calling", Said::DoNotCall),
            ("What is this about?", Said::Question(Topic::About)),
            ("price kitna hai?", Said::Question(Topic::Price)),
            ("Who is this?", Said::Question(Topic::Identity)),
            ("ye kya hai", Said::Question(Topic::About)),
            ("", Said::Unclear),
            ("hmm?", Said::Unclear),
            ("sure, why not", Said::Positive { more: false }),
            ("I am not sure", Said::Other),
        ];
        for (line, expected) in cases {
            assert_eq!(classify(line), expected, "{line:?}");
        }
    }

    #[test]
    fn callback_phrases_become_concrete_times() {
        let now = at("2025-01-15T10:30:00+05:30"); // a Wednesday
        let cases = [
            ("call me tomorrow at 5", "2025-01-16T17:00:00+05:30"),
            ("tomorrow 10:30 am", "2025-01-16T10:30:00+05:30"),
            ("kal shaam 6 baje", "2025-01-16T18:00:00+05:30"),
            ("कल सुबह ११ बजे", "2025-01-16T11:00:00+05:30"),
            ("call me in 2 hours", "2025-01-15T12:30:00+05:30"),
            ("half an hour baad", "2025-01-15T11:00:00+05:30"),
            ("at 9", "2025-01-16T09:00:00+05:30"),
            ("call me at 4.30", "2025-01-15T16:30:00+05:30"),
            ("Monday morning", "2025-01-20T10:00:00+05:30"),
            ("parso", "2025-01-17T11:00:00+05:30"),
            ("baad mein", "2025-01-15T12:30:00+05:30"),
            ("in the evening", "2025-01-15T18:00:00+05:30"),
        ];
        for (line, expected) in cases {
            assert_eq!(callback_time(line, now), at(expected), "{line:?}");
        }
    }

    #[test]
    fn the_current_time_is_read_from_the_prompt() {
        assert_eq!(
            find_now("Current time: 2025-01-15T10:30:00+05:30."),
            Some(at("2025-01-15T10:30:00+05:30"))
        );
        assert_eq!(
            find_now("Now is 2025-01-15 10:30 IST"),
            Some(at("2025-01-15T10:30:00+05:30"))
        );
        assert_eq!(find_now("no time here"), None);
    }

    #[test]
    fn text_is_cut_into_token_like_pieces_that_reassemble() {
        let text = "Namaste! हम ₹3.5 lakh tak subsidy dete hain.";
        let p = pieces(text);
        assert!(p.len() > 10, "{p:?}");
        assert_eq!(p.concat(), text);
    }
}
