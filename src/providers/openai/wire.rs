//! The response's wire types: error bodies, streamed chunks and their deltas, whole completions.

use serde::Deserialize;
use serde_json::Value;

use crate::voice::llm::TokenUsage;

#[derive(Deserialize, Default)]
pub(super) struct WireErrorBody {
    pub(super) error: Option<WireError>,
}

#[derive(Deserialize, Default)]
pub(super) struct WireError {
    pub(super) message: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) code: Option<Value>,
}

impl WireError {
    pub(super) fn code_string(&self) -> Option<String> {
        match &self.code {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct WireChunk {
    #[serde(default)]
    pub(super) choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    pub(super) usage: Option<TokenUsage>,
    #[serde(default)]
    pub(super) error: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct WireChoice {
    #[serde(default)]
    pub(super) delta: Option<WireDelta>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct WireDelta {
    #[serde(default)]
    pub(super) content: Option<String>,
    #[serde(default)]
    pub(super) tool_calls: Option<Vec<WireToolCallDelta>>,
}

#[derive(Deserialize)]
pub(super) struct WireToolCallDelta {
    #[serde(default)]
    pub(super) index: Option<u32>,
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) function: Option<WireFunctionDelta>,
}

#[derive(Deserialize)]
pub(super) struct WireFunctionDelta {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) arguments: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireCompletion {
    #[serde(default)]
    pub(super) choices: Option<Vec<WireCompletionChoice>>,
    #[serde(default)]
    pub(super) usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
pub(super) struct WireCompletionChoice {
    pub(super) message: WireCompletionMessage,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireCompletionMessage {
    #[serde(default)]
    pub(super) content: Option<String>,
    #[serde(default)]
    pub(super) refusal: Option<String>,
}
