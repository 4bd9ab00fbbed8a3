//! What a reply yields: the [`LlmEvent`]s of a stream, token usage, the finish reason.

use std::time::Duration;

use serde::Deserialize;

use super::messages::ToolCall;

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
    /// The API's `finish_reason` string.
    pub fn parse(s: &str) -> Self {
        match s {
            "stop" => Self::Stop,
            "length" => Self::Length,
            "tool_calls" | "function_call" => Self::ToolCalls,
            "content_filter" => Self::ContentFilter,
            other => Self::Other(other.to_string()),
        }
    }
}
