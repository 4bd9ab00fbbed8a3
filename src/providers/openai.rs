//! Client of an OpenAI-compatible chat-completions API (OpenAI, Groq, vLLM, Ollama, or the
//! emulator: it cannot tell which).
//!
//! It owns the wire format (see the shared `protocols/openai.md`): request bodies, the SSE
//! stream of chunks, tool-call fragments assembled per index, error bodies mapped to
//! [`LlmError`], and the retry policy. It knows nothing of calls, prompts or tools' meaning.
//!
//! Latency rules for a live call: [`OpenAiClient::stream_chat`] takes a deadline for the first
//! token. Retries (on 408, 409, 429, 5xx and connection failures) happen only while they can still
//! finish before it; when it passes, the stream yields [`LlmError::Timeout`] so the pipeline can
//! speak a filler instead of leaving silence. Dropping the [`ChatStream`] (barge-in) or
//! cancelling its token aborts the HTTP request at once.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::config::{OpenAiSettings, Secret};

// ---------------------------------------------------------------------------------------------
// Request types
// ---------------------------------------------------------------------------------------------

/// One message of the conversation, serialised exactly as the API expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    /// A reply; `tool_calls` is present when the model called tools (content may then be absent).
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call, answering the assistant message that made it.
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self::System {
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::User {
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::Assistant {
            content: Some(content.into()),
            tool_calls: Vec::new(),
        }
    }

    /// An assistant turn that called tools, with the text it said alongside (if any).
    pub fn assistant_tool_calls(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self::Assistant {
            content: content.filter(|c| !c.is_empty()),
            tool_calls,
        }
    }

    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::Tool {
            tool_call_id: tool_call_id.into(),
            content: content.into(),
        }
    }
}

/// A complete tool call: on the wire `{"id","type":"function","function":{"name","arguments"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireToolCall", from = "WireToolCall")]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: a JSON object, not yet validated.
    pub arguments_json: String,
}

#[derive(Serialize, Deserialize)]
struct WireToolCall {
    id: String,
    #[serde(rename = "type", default = "function_type")]
    kind: String,
    function: WireFunction,
}

#[derive(Serialize, Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

fn function_type() -> String {
    "function".into()
}

impl From<ToolCall> for WireToolCall {
    fn from(c: ToolCall) -> Self {
        Self {
            id: c.id,
            kind: function_type(),
            function: WireFunction {
                name: c.name,
                arguments: c.arguments_json,
            },
        }
    }
}

impl From<WireToolCall> for ToolCall {
    fn from(c: WireToolCall) -> Self {
        Self {
            id: c.id,
            name: c.function.name,
            arguments_json: c.function.arguments,
        }
    }
}

/// A tool the model may call; `parameters` is a JSON Schema object.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

impl Serialize for ToolSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            }
        })
        .serialize(s)
    }
}

/// Structured output.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Any JSON object; the API refuses it unless a message mentions "json".
    JsonObject,
    /// An object matching `schema`.
    JsonSchema {
        name: String,
        schema: Value,
        strict: bool,
    },
}

impl Serialize for ResponseFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::JsonObject => serde_json::json!({"type": "json_object"}),
            Self::JsonSchema {
                name,
                schema,
                strict,
            } => serde_json::json!({
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": strict},
            }),
        }
        .serialize(s)
    }
}

/// What to ask; the model comes from the client's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub response_format: Option<ResponseFormat>,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tools: &'a [ToolSpec],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a ResponseFormat>,
}

// ---------------------------------------------------------------------------------------------
// Events and errors
// ---------------------------------------------------------------------------------------------

/// What a streamed reply yields, in order: tokens, then (if the model called tools) every tool
/// call of the reply at once, then usage (if the server reported it), then `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    Token(String),
    /// All the tool calls of this reply, assembled; run them all, then ask the model once.
    ToolCalls(Vec<ToolCall>),
    Usage(TokenUsage),
    Done {
        finish_reason: FinishReason,
        /// From the `stream_chat` call to the first content or tool-call fragment, retries
        /// included; `None` if the reply had neither.
        time_to_first_token: Option<Duration>,
        /// HTTP attempts made (1 when the first succeeded).
        attempts: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct TokenUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    Other(String),
}

impl FinishReason {
    fn parse(s: &str) -> Self {
        match s {
            "stop" => Self::Stop,
            "length" => Self::Length,
            "tool_calls" | "function_call" => Self::ToolCalls,
            "content_filter" => Self::ContentFilter,
            other => Self::Other(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// 429 rate limit; retried while the deadline allows.
    #[error("rate limited (HTTP 429): {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 429 `insufficient_quota`: waiting does not help; alert an operator.
    #[error("insufficient quota: {message}")]
    InsufficientQuota { message: String },
    /// 401/403: the key is wrong or lacks access.
    #[error("authentication refused (HTTP {status}): {message}")]
    Auth { status: u16, message: String },
    /// 400, 404, 422: the request itself is wrong; retrying cannot help.
    #[error("request refused (HTTP {status}, code {code:?}): {message}")]
    BadRequest {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// 408, 409, 5xx after the retries the deadline allowed.
    #[error("server error (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    /// No first token before the deadline, or the stream stalled after it.
    #[error("timed out after {elapsed:?} (first token received: {first_token_received})")]
    Timeout {
        elapsed: Duration,
        first_token_received: bool,
    },
    /// An error event inside a stream that had started with HTTP 200.
    #[error("error event mid-stream (code {code:?}): {message}")]
    MidStream {
        code: Option<String>,
        message: String,
    },
    #[error("connection failed: {message}")]
    Connection { message: String },
    /// A response that does not follow the protocol (bad JSON, stream cut before its end).
    #[error("unexpected response: {message}")]
    Protocol { message: String },
    #[error("cancelled")]
    Cancelled,
}

impl LlmError {
    /// Errors no retry can fix (configuration or billing): alert rather than retry the lead.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::InsufficientQuota { .. } | Self::Auth { .. } | Self::BadRequest { .. }
        )
    }

    fn protocol(message: impl Into<String>) -> Self {
        Self::Protocol {
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// Retry and timeout policy; the defaults follow the protocol doc.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A server's `retry-after` longer than this is ignored in favour of backoff.
    pub max_retry_after: Duration,
    /// Once tokens flow, the longest wait for the next chunk.
    pub stall_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(10),
        }
    }
}

/// Cheap to clone; shares the service's one `reqwest::Client`.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    http: reqwest::Client,
    endpoint: String,
    api_key: Option<Secret>,
    model: String,
    options: ClientOptions,
    /// Where failed attempts are counted; retries happen in here, unseen by the caller.
    metrics: Option<crate::metrics::ProviderMetrics>,
}

/// A failed attempt and whether another may help.
struct Failure {
    error: LlmError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl OpenAiClient {
    /// `base_url` is the API base (`https://api.openai.com/v1`); `/chat/completions` is appended.
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        api_key: Option<Secret>,
        model: impl Into<String>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
                api_key,
                model: model.into(),
                options: ClientOptions::default(),
                metrics: None,
            }),
        }
    }

    pub fn from_settings(http: reqwest::Client, settings: &OpenAiSettings) -> Self {
        Self::new(
            http,
            &settings.base_url,
            settings.api_key.clone(),
            settings.model.clone(),
        )
    }

    pub fn with_options(self, options: ClientOptions) -> Self {
        let inner = Arc::unwrap_or_clone(self.inner);
        Self {
            inner: Arc::new(Inner { options, ..inner }),
        }
    }

    /// Counts every failed attempt (`voice_agent_provider_errors_total{provider="openai"}`).
    pub fn with_metrics(self, metrics: crate::metrics::ProviderMetrics) -> Self {
        let inner = Arc::unwrap_or_clone(self.inner);
        Self {
            inner: Arc::new(Inner {
                metrics: Some(metrics),
                ..inner
            }),
        }
    }

    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// Streams one reply. The first token must arrive before `deadline` (retries included);
    /// cancelling `cancel` or dropping the returned stream aborts the request. Must be called
    /// within a Tokio runtime (the request runs on a task of its own).
    pub fn stream_chat(
        &self,
        request: &ChatRequest,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> ChatStream {
        let (tx, rx) = mpsc::channel(64);
        let cancel = cancel.child_token();
        let stream = ChatStream {
            rx,
            cancel: cancel.clone(),
        };
        let body = match self.inner.body(request, true) {
            Ok(body) => body,
            Err(e) => {
                let _ = tx.try_send(Err(e));
                return stream;
            }
        };
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(LlmError::Cancelled),
                r = inner.stream(body, started, deadline, &tx) => r,
            };
            if let Err(e) = result {
                if !matches!(e, LlmError::Cancelled) {
                    tracing::warn!(error = %e, model = %inner.model, "LLM stream failed");
                }
                let _ = tx.send(Err(e)).await;
            }
        });
        stream
    }

    /// One non-streamed completion whose content is parsed as JSON: for structured extraction
    /// (`response_format` `json_schema`) after a call. Retries like `stream_chat`; the whole
    /// exchange must finish before `deadline`.
    pub async fn complete_json(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<JsonCompletion, LlmError> {
        let started = Instant::now();
        let inner = &self.inner;
        let body = inner.body(request, false)?;
        let (response, _) = inner.send_with_retries(&body, started, deadline).await?;
        inner.observed(read_completion(response, started, deadline).await)
    }
}

/// Reads and parses the body of a `complete_json` answer.
async fn read_completion(
    response: reqwest::Response,
    started: Instant,
    deadline: Instant,
) -> Result<JsonCompletion, LlmError> {
    let timeout = || LlmError::Timeout {
        elapsed: started.elapsed(),
        first_token_received: false,
    };
    let bytes = timeout_at(deadline, response.bytes())
        .await
        .map_err(|_| timeout())?
        .map_err(|e| LlmError::Connection {
            message: e.to_string(),
        })?;
    let wire: WireCompletion = serde_json::from_slice(&bytes)
        .map_err(|e| LlmError::protocol(format!("completion body: {e}")))?;
    let choice = wire
        .choices
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| LlmError::protocol("completion without choices"))?;
    if choice.finish_reason.as_deref() == Some("length") {
        return Err(LlmError::protocol("JSON reply cut at max_tokens"));
    }
    let content = match (choice.message.content, choice.message.refusal) {
        (Some(c), _) if !c.is_empty() => c,
        (_, Some(refusal)) => return Err(LlmError::protocol(format!("refused: {refusal}"))),
        _ => return Err(LlmError::protocol("completion without content")),
    };
    let value = serde_json::from_str(&content)
        .map_err(|e| LlmError::protocol(format!("content is not JSON: {e}")))?;
    Ok(JsonCompletion {
        value,
        usage: wire.usage,
    })
}

/// The parsed content of a `complete_json` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCompletion {
    pub value: Value,
    pub usage: Option<TokenUsage>,
}

/// The events of one streamed reply; ends after `Done` or one error. Dropping it aborts the
/// request.
#[derive(Debug)]
pub struct ChatStream {
    rx: mpsc::Receiver<Result<LlmEvent, LlmError>>,
    cancel: CancellationToken,
}

impl ChatStream {
    /// Aborts the request; the stream then ends with [`LlmError::Cancelled`].
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Stream for ChatStream {
    type Item = Result<LlmEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for ChatStream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Inner {
    fn body(&self, request: &ChatRequest, stream: bool) -> Result<Bytes, LlmError> {
        let wire = WireRequest {
            model: &self.model,
            messages: &request.messages,
            stream,
            stream_options: stream.then(|| serde_json::json!({"include_usage": true})),
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            tools: &request.tools,
            tool_choice: (!request.tools.is_empty()).then_some("auto"),
            response_format: request.response_format.as_ref(),
        };
        serde_json::to_vec(&wire)
            .map(Bytes::from)
            .map_err(|e| LlmError::protocol(format!("serialising the request: {e}")))
    }

    /// Sends until a 2xx response arrives, retrying what the protocol says may be retried, as
    /// long as the wait ends before `deadline`. Returns the response and the attempts made.
    async fn send_with_retries(
        &self,
        body: &Bytes,
        started: Instant,
        deadline: Instant,
    ) -> Result<(reqwest::Response, u32), LlmError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match timeout_at(deadline, self.send_once(body.clone())).await {
                Err(_) => {
                    return self.observed(Err(LlmError::Timeout {
                        elapsed: started.elapsed(),
                        first_token_received: false,
                    }));
                }
                Ok(Ok(response)) => return Ok((response, attempt)),
                Ok(Err(failure)) => failure,
            };
            if let Some(m) = &self.metrics {
                m.llm_error(&failure.error);
            }
            if !failure.retryable || attempt > self.options.max_retries {
                return Err(failure.error);
            }
            let wait = failure
                .retry_after
                .filter(|d| *d <= self.options.max_retry_after)
                .unwrap_or_else(|| self.backoff(attempt));
            if Instant::now() + wait >= deadline {
                return Err(failure.error);
            }
            tracing::warn!(error = %failure.error, attempt, wait_ms = wait.as_millis() as u64, "LLM request retried");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(&self, body: Bytes) -> Result<reqwest::Response, Failure> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| Failure {
            error: LlmError::Connection {
                message: e.to_string(),
            },
            retryable: true,
            retry_after: None,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        Err(classify(status.as_u16(), &headers, &body))
    }

    /// Exponential backoff with jitter: `initial · 2^(attempt-1)`, capped, minus up to 25 %.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .options
            .initial_backoff
            .saturating_mul(1 << (attempt - 1).min(16));
        exp.min(self.options.max_backoff)
            .mul_f64(1.0 - 0.25 * rand::random::<f64>())
    }

    /// Reads one streamed reply into `tx`.
    async fn stream(
        &self,
        body: Bytes,
        started: Instant,
        deadline: Instant,
        tx: &mpsc::Sender<Result<LlmEvent, LlmError>>,
    ) -> Result<(), LlmError> {
        let (response, attempts) = self.send_with_retries(&body, started, deadline).await?;
        let timing = Timing {
            started,
            deadline,
            stall_timeout: self.options.stall_timeout,
            attempts,
        };
        self.observed(read_reply(response.bytes_stream(), timing, tx).await)
    }

    /// Counts the error of a failed step (the attempts of `send_with_retries` count themselves).
    fn observed<T>(&self, result: Result<T, LlmError>) -> Result<T, LlmError> {
        if let (Err(e), Some(m)) = (&result, &self.metrics) {
            m.llm_error(e);
        }
        result
    }
}

/// When a reply started and how long each wait may last.
struct Timing {
    started: Instant,
    /// For the first token.
    deadline: Instant,
    /// Between chunks once tokens flow.
    stall_timeout: Duration,
    attempts: u32,
}

/// Reads the SSE body of one reply into `tx`: tokens as they come, then the tool calls, usage
/// and `Done`.
async fn read_reply<S, B, E>(
    body: S,
    timing: Timing,
    tx: &mpsc::Sender<Result<LlmEvent, LlmError>>,
) -> Result<(), LlmError>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let Timing {
        started,
        deadline,
        stall_timeout,
        attempts,
    } = timing;
    let mut events = std::pin::pin!(body.eventsource());
    let mut reply = ReplyAssembler::default();
    let mut ttft = None;
    let mut saw_done = false;
    loop {
        let limit = match ttft {
            None => deadline,
            Some(_) => Instant::now() + stall_timeout,
        };
        let next = timeout_at(limit, events.next())
            .await
            .map_err(|_| LlmError::Timeout {
                elapsed: started.elapsed(),
                first_token_received: ttft.is_some(),
            })?;
        let Some(event) = next else { break };
        let event = event.map_err(|e| LlmError::Connection {
            message: format!("stream: {e}"),
        })?;
        let data = event.data.trim();
        if data == "[DONE]" {
            saw_done = true;
            break;
        }
        if event.event == "error" {
            return Err(mid_stream_error(data));
        }
        let chunk: WireChunk = serde_json::from_str(data)
            .map_err(|e| LlmError::protocol(format!("chunk {data:?}: {e}")))?;
        if chunk.error.is_some() {
            return Err(mid_stream_error(data));
        }
        let token = reply.apply(chunk);
        if ttft.is_none() && reply.progressed {
            ttft = Some(started.elapsed());
        }
        if let Some(token) = token
            && tx.send(Ok(LlmEvent::Token(token))).await.is_err()
        {
            return Ok(()); // nobody listens any more
        }
    }
    if !saw_done && reply.finish_reason.is_none() {
        return Err(LlmError::protocol("stream ended before [DONE]"));
    }
    let mut tail = Vec::with_capacity(3);
    let calls = reply.tool_calls();
    let finish_reason = reply.finish_reason.clone().unwrap_or(if calls.is_empty() {
        FinishReason::Stop
    } else {
        FinishReason::ToolCalls
    });
    if !calls.is_empty() {
        tail.push(LlmEvent::ToolCalls(calls));
    }
    if let Some(usage) = reply.usage {
        tail.push(LlmEvent::Usage(usage));
    }
    tail.push(LlmEvent::Done {
        finish_reason,
        time_to_first_token: ttft,
        attempts,
    });
    for event in tail {
        if tx.send(Ok(event)).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Maps a non-2xx response to an error and a retry decision.
fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> Failure {
    let detail = serde_json::from_slice::<WireErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default();
    let message = detail
        .message
        .clone()
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    let code = detail.code_string();
    let quota = code.as_deref() == Some("insufficient_quota")
        || detail.kind.as_deref() == Some("insufficient_quota");
    let retry_after = retry_after(headers, chrono::Utc::now());
    let error = match status {
        401 | 403 => LlmError::Auth { status, message },
        429 if quota => LlmError::InsufficientQuota { message },
        429 => LlmError::RateLimited {
            retry_after,
            message,
        },
        408 | 409 | 500.. => LlmError::Server { status, message },
        _ => LlmError::BadRequest {
            status,
            code,
            message,
        },
    };
    let by_status = matches!(status, 408 | 409 | 500..) || (status == 429 && !quota);
    let retryable = match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
        Some("true") => true,
        Some("false") => false,
        _ => by_status,
    };
    Failure {
        error,
        retryable,
        retry_after,
    }
}

/// `retry-after-ms`, else `retry-after` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

fn mid_stream_error(data: &str) -> LlmError {
    let detail = serde_json::from_str::<WireErrorBody>(data)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default();
    LlmError::MidStream {
        code: detail.code_string(),
        message: detail.message.unwrap_or_else(|| data.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Response wire types and assembly
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct WireErrorBody {
    error: Option<WireError>,
}

#[derive(Deserialize, Default)]
struct WireError {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<Value>,
}

impl WireError {
    fn code_string(&self) -> Option<String> {
        match &self.code {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        }
    }
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<TokenUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCallDelta>>,
}

#[derive(Deserialize)]
struct WireToolCallDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunctionDelta>,
}

#[derive(Deserialize)]
struct WireFunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    choices: Option<Vec<WireCompletionChoice>>,
    #[serde(default)]
    usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
struct WireCompletionChoice {
    message: WireCompletionMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireCompletionMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

struct PartialCall {
    index: u32,
    id: String,
    name: String,
    arguments: String,
}

/// Accumulates a streamed reply: tool-call fragments per index, the finish reason, usage.
#[derive(Default)]
struct ReplyAssembler {
    calls: Vec<PartialCall>,
    finish_reason: Option<FinishReason>,
    usage: Option<TokenUsage>,
    /// Whether any content or tool-call fragment has arrived (the "first token").
    progressed: bool,
}

impl ReplyAssembler {
    /// Folds one chunk in; returns its text, if any.
    fn apply(&mut self, chunk: WireChunk) -> Option<String> {
        if chunk.usage.is_some() {
            // Some servers repeat (cumulative) usage on every chunk: the last one wins.
            self.usage = chunk.usage;
        }
        let mut text: Option<String> = None;
        // n = 1: every choice is choice 0, whatever its index says.
        for choice in chunk.choices.into_iter().flatten() {
            let delta = choice.delta.unwrap_or_default();
            if let Some(content) = delta.content.filter(|c| !c.is_empty()) {
                self.progressed = true;
                text.get_or_insert_with(String::new).push_str(&content);
            }
            for fragment in delta.tool_calls.into_iter().flatten() {
                self.progressed = true;
                self.add_fragment(fragment);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(FinishReason::parse(&reason));
            }
        }
        text
    }

    fn add_fragment(&mut self, fragment: WireToolCallDelta) {
        let index = fragment.index.unwrap_or(0);
        let id = fragment.id.filter(|id| !id.is_empty());
        let latest = self.calls.iter().rposition(|c| c.index == index);
        // A new id at an index already in use starts a new call: servers that put every
        // parallel call at index 0 tell them apart only by id.
        let position = match (latest, &id) {
            (Some(p), Some(id)) if !self.calls[p].id.is_empty() && self.calls[p].id != *id => None,
            (found, _) => found,
        };
        let position = position.unwrap_or_else(|| {
            self.calls.push(PartialCall {
                index,
                id: String::new(),
                name: String::new(),
                arguments: String::new(),
            });
            self.calls.len() - 1
        });
        let call = &mut self.calls[position];
        if let Some(id) = id
            && call.id.is_empty()
        {
            call.id = id;
        }
        if let Some(function) = fragment.function {
            if let Some(name) = function.name
                && call.name.is_empty()
            {
                call.name = name;
            }
            if let Some(arguments) = function.arguments {
                call.arguments.push_str(&arguments);
            }
        }
    }

    fn tool_calls(&self) -> Vec<ToolCall> {
        self.calls
            .iter()
            .enumerate()
            .map(|(n, c)| ToolCall {
                id: if c.id.is_empty() {
                    format!("call_{n}")
                } else {
                    c.id.clone()
                },
                name: c.name.clone(),
                arguments_json: if c.arguments.trim().is_empty() {
                    "{}".to_string()
                } else {
                    c.arguments.clone()
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(v: Value) -> WireChunk {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn messages_serialise_exactly_as_the_api_expects() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "end_call".into(),
            arguments_json: r#"{"reason":"done"}"#.into(),
        };
        let messages = vec![
            Message::system("be brief"),
            Message::assistant_tool_calls(None, vec![call.clone()]),
            Message::tool_result("call_1", "ok"),
            Message::assistant("Bye."),
        ];
        assert_eq!(
            serde_json::to_value(&messages).unwrap(),
            json!([
                {"role": "system", "content": "be brief"},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "end_call", "arguments": "{\"reason\":\"done\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
                {"role": "assistant", "content": "Bye."},
            ])
        );
        let back: Vec<Message> =
            serde_json::from_value(serde_json::to_value(&messages).unwrap()).unwrap();
        assert_eq!(back, messages);
    }

    #[test]
    fn a_streaming_body_asks_for_usage_and_offers_tools() {
        let client = OpenAiClient::new(reqwest::Client::new(), "http://x/v1/", None, "m");
        let request = ChatRequest {
            messages: vec![Message::user("hi")],
            tools: vec![ToolSpec {
                name: "end_call".into(),
                description: "Hang up".into(),
                parameters: json!({"type": "object"}),
            }],
            ..Default::default()
        };
        let body: Value =
            serde_json::from_slice(&client.inner.body(&request, true).unwrap()).unwrap();
        assert_eq!(client.inner.endpoint, "http://x/v1/chat/completions");
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(body["tool_choice"], "auto");
        assert_eq!(body["tools"][0]["function"]["name"], "end_call");
        let plain: Value =
            serde_json::from_slice(&client.inner.body(&ChatRequest::default(), false).unwrap())
                .unwrap();
        assert!(plain.get("stream_options").is_none() && plain.get("tools").is_none());
    }

    #[test]
    fn fragments_at_a_reused_index_with_new_ids_are_separate_calls() {
        let mut r = ReplyAssembler::default();
        for c in [
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"record_outcome","arguments":""}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"intent\":"}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"x\"}"}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"end_call","arguments":"{}"}}]}}]}),
            json!({"choices":null,"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}),
        ] {
            r.apply(chunk(c));
        }
        let calls = r.tool_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].id.as_str(), calls[0].name.as_str()),
            ("a", "record_outcome")
        );
        assert_eq!(calls[0].arguments_json, r#"{"intent":"x"}"#);
        assert_eq!(
            (calls[1].id.as_str(), calls[1].name.as_str()),
            ("b", "end_call")
        );
        assert_eq!(
            r.usage,
            Some(TokenUsage {
                prompt_tokens: 3,
                completion_tokens: 4
            })
        );
    }

    /// Feeds raw SSE bytes, cut every `cut` bytes (through UTF-8 characters), to `read_reply`.
    async fn read_raw(sse: &str, cut: usize) -> Vec<Result<LlmEvent, LlmError>> {
        let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> =
            sse.as_bytes().chunks(cut).map(|c| Ok(c.to_vec())).collect();
        let (tx, mut rx) = mpsc::channel(256);
        let timing = Timing {
            started: Instant::now(),
            deadline: Instant::now() + Duration::from_secs(5),
            stall_timeout: Duration::from_secs(5),
            attempts: 1,
        };
        if let Err(e) = read_reply(futures::stream::iter(chunks), timing, &tx).await {
            tx.send(Err(e)).await.unwrap();
        }
        drop(tx);
        let mut out = Vec::new();
        while let Some(e) = rx.recv().await {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn the_stream_reader_accepts_every_variant_the_doc_lists() {
        // No space after `data:`, comments, an event split over two `data:` lines, CRLF,
        // `choices: null`, a chunk without `choices`, usage on every chunk.
        let sse = ": keep-alive\n\n\
            data:{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"नमस्ते\"}}],\r\n\
            data: \"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\r\n\r\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" जी।\"},\"finish_reason\":\"stop\"}]}\n\n\
            data: {\"choices\":null,\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n\
            data: {\"id\":\"x\"}\n\n\
            data:[DONE]\n\n";
        for cut in [1, 2, 3, 7, sse.len()] {
            let events = read_raw(sse, cut).await;
            let events: Vec<LlmEvent> = events.into_iter().map(Result::unwrap).collect();
            let text: String = events
                .iter()
                .filter_map(|e| match e {
                    LlmEvent::Token(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(text, "नमस्ते जी।", "cut every {cut} bytes");
            assert!(events.contains(&LlmEvent::Usage(TokenUsage {
                prompt_tokens: 5,
                completion_tokens: 2
            })));
            assert!(matches!(
                events.last(),
                Some(LlmEvent::Done {
                    finish_reason: FinishReason::Stop,
                    time_to_first_token: Some(_),
                    attempts: 1
                })
            ));
        }
    }

    #[tokio::test]
    async fn a_stream_cut_before_its_end_or_carrying_an_error_is_an_error() {
        let cut_short = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        let events = read_raw(cut_short, 4).await;
        assert!(
            matches!(events.last(), Some(Err(LlmError::Protocol { .. }))),
            "{events:?}"
        );

        let error = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n\
                     data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":null}}\n\n";
        let events = read_raw(error, 5).await;
        assert_eq!(events[0], Ok(LlmEvent::Token("Hi".into())));
        assert_eq!(
            events[1],
            Err(LlmError::MidStream {
                code: None,
                message: "overloaded".into()
            })
        );
    }

    #[tokio::test]
    async fn tool_call_fragments_are_emitted_once_all_together() {
        let sse = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"record_outcome\",\"arguments\":\"\"}}]}}]}\n\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"end_call\",\"arguments\":\"{\\\"reason\\\":\"}}]}}]}\n\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"intent\\\":\\\"callback\\\"}\"}}]}}]}\n\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"\\\"bye\\\"}\"}}]}}]}\n\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n\
            data: [DONE]\n\n";
        let events: Vec<LlmEvent> = read_raw(sse, 9)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(events.len(), 2, "{events:?}");
        let LlmEvent::ToolCalls(calls) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(calls[0].arguments_json, r#"{"intent":"callback"}"#);
        assert_eq!(
            (calls[1].id.as_str(), calls[1].arguments_json.as_str()),
            ("c2", r#"{"reason":"bye"}"#)
        );
        assert!(matches!(
            events[1],
            LlmEvent::Done {
                finish_reason: FinishReason::ToolCalls,
                ..
            }
        ));
    }

    #[test]
    fn errors_are_classified_with_their_retry_decision() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        let f = classify(
            429,
            &headers,
            br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert!(f.retryable);
        assert_eq!(f.retry_after, Some(Duration::from_millis(1500)));
        assert!(matches!(f.error, LlmError::RateLimited { .. }));

        let f = classify(429, &HeaderMap::new(), br#"{"error":{"message":"pay","type":"insufficient_quota","code":"insufficient_quota"}}"#);
        assert!(!f.retryable && f.error.is_permanent());

        let mut no_retry = HeaderMap::new();
        no_retry.insert("x-should-retry", "false".parse().unwrap());
        assert!(!classify(503, &no_retry, b"").retryable);
        assert!(classify(409, &HeaderMap::new(), b"").retryable);
        assert!(matches!(
            classify(401, &HeaderMap::new(), b"").error,
            LlmError::Auth { status: 401, .. }
        ));
        assert!(matches!(
            classify(400, &HeaderMap::new(), b"{}").error,
            LlmError::BadRequest { status: 400, .. }
        ));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:30Z")
            .unwrap()
            .to_utc();
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(2)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn backoff_grows_from_half_a_second_and_is_capped() {
        let client = OpenAiClient::new(reqwest::Client::new(), "http://x", None, "m");
        let b1 = client.inner.backoff(1);
        assert!(
            b1 <= Duration::from_millis(500) && b1 >= Duration::from_millis(375),
            "{b1:?}"
        );
        let b2 = client.inner.backoff(2);
        assert!(
            b2 <= Duration::from_secs(1) && b2 >= Duration::from_millis(750),
            "{b2:?}"
        );
        assert!(client.inner.backoff(30) <= Duration::from_secs(8));
    }
}
