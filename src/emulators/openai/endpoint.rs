//! The endpoint: bearer auth, the 400s a client can cause by itself, and the configured faults,
//! in that order; a request that passes them is answered by the scripted partner through
//! [`super::respond`].

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::respond::{Plan, json_response, stream_response};
use super::{Handle, KEPT_BODIES, partner};

enum Fault {
    Quota,
    RateLimit(Option<Duration>),
    Server,
    Hang,
}

pub(super) async fn chat_completions(
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

pub(super) fn error_response(
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
