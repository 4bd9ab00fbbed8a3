//! The client: [`OpenAiClient`] (cheap to clone, one shared `reqwest::Client`) with its retry and
//! timeout [`ClientOptions`], the streamed [`OpenAiClient::stream_chat`] and the one-shot
//! [`OpenAiClient::complete_json`], and the [`ChatStream`] whose drop aborts the request.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::config::{OpenAiSettings, Secret};

use super::wire::WireCompletion;
use crate::voice::Provider;
use crate::voice::llm::{self, ChatModel, ChatRequest, JsonCompletion, LlmError, LlmEvent};

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
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) endpoint: String,
    pub(super) api_key: Option<Secret>,
    pub(super) model: String,
    pub(super) options: ClientOptions,
    /// Where failed attempts are counted; retries happen in here, unseen by the caller.
    pub(super) metrics: Option<crate::metrics::ProviderMetrics>,
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
        // A child of the caller's span (the call's turn): the spawned task would have none.
        let span = tracing::info_span!("llm.stream_chat", model = %inner.model);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
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
            },
            span,
        ));
        stream
    }

    /// One non-streamed completion whose content is parsed as JSON: for structured extraction
    /// (`response_format` `json_schema`) after a call. Retries like `stream_chat`; the whole
    /// exchange must finish before `deadline`.
    #[tracing::instrument(name = "llm.complete_json", skip_all, fields(model = %self.inner.model))]
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
    /// Counts the error of a failed step (the attempts of `send_with_retries` count themselves).
    pub(super) fn observed<T>(&self, result: Result<T, LlmError>) -> Result<T, LlmError> {
        if let Err(e) = &result {
            self.count(e);
        }
        result
    }

    /// Counts one failure (a cancellation is none).
    pub(super) fn count(&self, e: &LlmError) {
        if let (Some(kind), Some(m)) = (e.kind(), &self.metrics) {
            m.error(Provider::OpenAi, kind);
        }
    }
}

/// The client as the call's chat model (any OpenAI-compatible server).
impl ChatModel for OpenAiClient {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }

    fn stream_reply(&self, request: &ChatRequest, first_token: Instant) -> llm::ChatStream {
        Box::pin(self.stream_chat(request, first_token, &CancellationToken::new()))
    }

    fn complete_json<'a>(
        &'a self,
        request: &'a ChatRequest,
        deadline: Instant,
    ) -> futures::future::BoxFuture<'a, Result<JsonCompletion, LlmError>> {
        Box::pin(OpenAiClient::complete_json(self, request, deadline))
    }
}
