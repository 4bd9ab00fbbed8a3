//! The chat-model port: what a live call (and the post-call summary) needs of a language model.
//!
//! A reply streams as [`LlmEvent`]s: tokens as they come, then all of the reply's tool calls at
//! once, usage, and `Done`; the first token must come before a deadline the caller gives
//! (retries included), and dropping the stream aborts the request (barge-in). A JSON-schema
//! completion ([`ChatModel::complete_json`]) answers the summary. Requests and replies are in
//! the chat-completions format ([`messages`]), which every OpenAI-compatible server speaks.

mod error;
mod events;
mod messages;

use std::pin::Pin;

use futures::Stream;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::time::Instant;

pub use error::LlmError;
pub use events::{FinishReason, LlmEvent, TokenUsage};
pub use messages::{ChatRequest, Message, ResponseFormat, ToolCall, ToolSpec};

use super::kinds::Provider;

/// The events of one streamed reply; ends after `Done` or one error. Dropping it aborts the
/// request.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<LlmEvent, LlmError>> + Send>>;

/// A JSON reply and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCompletion {
    pub value: Value,
    pub usage: Option<TokenUsage>,
}

/// A chat model, chosen by configuration.
pub trait ChatModel: Send + Sync + std::fmt::Debug {
    /// The vendor, for the metrics' labels.
    fn provider(&self) -> Provider;
    /// Streams one reply; the first token must come before `first_token`.
    fn stream_reply(&self, request: &ChatRequest, first_token: Instant) -> ChatStream;
    /// One JSON reply (`request.response_format`), all of it before `deadline`.
    fn complete_json<'a>(
        &'a self,
        request: &'a ChatRequest,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<JsonCompletion, LlmError>>;
}
