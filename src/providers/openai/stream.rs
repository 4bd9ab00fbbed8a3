//! The streamed reply: the SSE body read into [`LlmEvent`]s (tokens as they come, then the tool
//! calls, usage and `Done`) under the first-token deadline and the stall timeout; an error event
//! mid-stream ends it.

use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

use super::assemble::ReplyAssembler;
use super::client::Inner;
use super::wire::{WireChunk, WireErrorBody};
use crate::voice::llm::LlmError;
use crate::voice::llm::{FinishReason, LlmEvent};

impl Inner {
    /// Reads one streamed reply into `tx`.
    pub(super) async fn stream(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::openai::TokenUsage;

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
}
