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
//!
//! The files: `client` (the [`OpenAiClient`], its options, the two calls and the [`ChatStream`]),
//! `request` (what is sent: messages, tools, structured output, the body), `events` and `error`
//! (what a reply yields), `retry` (one attempt, the failures worth another, backoff), `stream`
//! (the SSE body read into events under the first-token deadline), `wire` (the response's wire
//! types) and `assemble` (tool-call fragments folded into whole calls).

mod assemble;
mod client;
mod request;
mod retry;
mod stream;
mod wire;

pub use client::{ChatStream, ClientOptions, OpenAiClient};
// The port's types, which this client speaks on the wire as they are.
pub use crate::voice::llm::{
    ChatRequest, FinishReason, JsonCompletion, LlmError, LlmEvent, Message, ResponseFormat,
    TokenUsage, ToolCall, ToolSpec,
};
