//! Responses, streamed and whole: one [`Plan`] per request (ids, pacing, faults to inject),
//! the reply cut into token-like SSE chunks and tool-call fragments, or sent as one JSON body.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::endpoint::error_response;
use super::{Handle, partner};

/// Everything about one response except its content.
pub(super) struct Plan {
    pub(super) id: String,
    pub(super) created: i64,
    pub(super) model: String,
    pub(super) prompt_tokens: u64,
    pub(super) reuse_tool_index: bool,
    pub(super) usage_on_every_chunk: bool,
    pub(super) include_usage: bool,
    pub(super) ttft: Duration,
    pub(super) per_token: Duration,
    pub(super) hang: bool,
    pub(super) mid_stream_error: bool,
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

pub(super) fn stream_response(handle: Handle, plan: Plan, reply: partner::Reply) -> Response {
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

pub(super) async fn json_response(plan: Plan, reply: partner::Reply) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_into_token_like_pieces_that_reassemble() {
        let text = "Namaste! हम ₹3.5 lakh tak subsidy dete hain.";
        let p = pieces(text);
        assert!(p.len() > 10, "{p:?}");
        assert_eq!(p.concat(), text);
    }
}
