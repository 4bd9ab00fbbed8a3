//! The real OpenAI client against the OpenAI emulator, over local sockets: streaming, tool calls,
//! retries, deadlines, cancellation, structured extraction, and the scripted sales agent.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voice_agent::config::Secret;
use voice_agent::emulators::Running;
use voice_agent::emulators::openai::{self as emulator, Config, Faults, Handle};
use voice_agent::providers::openai::{
    ChatRequest, ChatStream, ClientOptions, FinishReason, LlmError, LlmEvent, Message,
    OpenAiClient, ResponseFormat, ToolCall, ToolSpec,
};

const KEY: &str = "sk-test-key";

const PROMPT_EN: &str = "You are Priya, a friendly sales agent for SunPower Solar. \
Campaign language: en-IN. Current time: 2025-01-15T10:30:00+05:30. \
We install rooftop solar panels with a 40% government subsidy. \
Plans start at Rs. 1,999 per month on EMI. \
Qualifying question: What is your monthly electricity bill? \
Keep replies short and use the tools to record the outcome and end the call.";

const PROMPT_HI: &str = "You are Priya from SunPower Solar. Campaign language: hi-IN. \
Current time: 2025-01-15T10:30:00+05:30. हम छत पर सोलर पैनल लगाते हैं और 40% सरकारी सब्सिडी मिलती है। \
Qualifying question: आपका महीने का बिजली का बिल कितना आता है?";

struct Setup {
    _server: Running,
    handle: Handle,
    client: OpenAiClient,
}

/// An emulator with test-speed latency, and a client whose backoff is short.
async fn setup() -> Setup {
    setup_with(Faults::default()).await
}

async fn setup_with(faults: Faults) -> Setup {
    let config = Config {
        api_key: KEY.into(),
        time_to_first_token: Duration::from_millis(10),
        tokens_per_second: 2000.0,
        faults,
    };
    let (server, handle) = emulator::spawn(config).await.expect("emulator starts");
    let client = client_for(&server, KEY);
    Setup {
        _server: server,
        handle,
        client,
    }
}

fn client_for(server: &Running, key: &str) -> OpenAiClient {
    OpenAiClient::new(
        reqwest::Client::new(),
        &format!("{}/v1", server.http_url()),
        Some(Secret::new(key)),
        "gpt-4o-mini",
    )
    .with_options(ClientOptions {
        initial_backoff: Duration::from_millis(20),
        ..ClientOptions::default()
    })
}

fn in_ms(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

fn product_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "end_call".into(),
            description: "Hang up after the closing line.".into(),
            parameters: json!({"type": "object", "properties": {"reason": {"type": "string"}},
                               "required": ["reason"]}),
        },
        ToolSpec {
            name: "record_outcome".into(),
            description: "Record the outcome of the call.".into(),
            parameters: json!({"type": "object", "properties": {
                "intent": {"type": "string", "enum": ["interested", "not_interested", "callback",
                                                      "wrong_number", "do_not_call"]},
                "notes": {"type": "string"},
                "qualification": {"type": "object", "properties": {"monthly_bill": {"type": "string"}}},
            }, "required": ["intent", "notes"]}),
        },
        ToolSpec {
            name: "schedule_callback".into(),
            description: "Schedule a callback.".into(),
            parameters: json!({"type": "object", "properties": {
                "at": {"type": "string", "format": "date-time"}}, "required": ["at"]}),
        },
    ]
}

fn request(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        messages,
        tools: product_tools(),
        temperature: Some(0.3),
        max_tokens: Some(200),
        response_format: None,
    }
}

/// A conversation so far: the prompt, the greeting, then the caller's `lines` (and the agent's
/// replies in between are up to the test).
fn opening(prompt: &str, caller: &str) -> Vec<Message> {
    vec![
        Message::system(prompt),
        Message::assistant("Namaste! This is Priya from SunPower Solar. Do you have a minute?"),
        Message::user(caller),
    ]
}

#[derive(Debug, Default)]
struct Reply {
    text: String,
    tokens: usize,
    tool_calls: Vec<ToolCall>,
    usage: Option<(u32, u32)>,
    done: Option<(FinishReason, Option<Duration>, u32)>,
    error: Option<LlmError>,
    events_after_end: usize,
}

async fn collect(mut stream: ChatStream) -> Reply {
    let mut reply = Reply::default();
    while let Some(event) = stream.next().await {
        if reply.done.is_some() || reply.error.is_some() {
            reply.events_after_end += 1;
        }
        match event {
            Ok(LlmEvent::Token(t)) => {
                reply.tokens += 1;
                reply.text.push_str(&t);
            }
            Ok(LlmEvent::ToolCalls(calls)) => reply.tool_calls.extend(calls),
            Ok(LlmEvent::Usage(u)) => reply.usage = Some((u.prompt_tokens, u.completion_tokens)),
            Ok(LlmEvent::Done {
                finish_reason,
                time_to_first_token,
                attempts,
            }) => reply.done = Some((finish_reason, time_to_first_token, attempts)),
            Err(e) => reply.error = Some(e),
        }
    }
    reply
}

/// One streamed reply, errors included.
async fn attempt(client: &OpenAiClient, messages: Vec<Message>, deadline: Instant) -> Reply {
    collect(client.stream_chat(&request(messages), deadline, &CancellationToken::new())).await
}

/// One streamed reply that must succeed.
async fn turn(client: &OpenAiClient, messages: Vec<Message>) -> Reply {
    let reply = attempt(client, messages, in_ms(5_000)).await;
    assert!(reply.error.is_none(), "unexpected error: {:?}", reply.error);
    reply
}

fn names(calls: &[ToolCall]) -> Vec<&str> {
    calls.iter().map(|c| c.name.as_str()).collect()
}

fn args(call: &ToolCall) -> Value {
    serde_json::from_str(&call.arguments_json).expect("arguments are JSON")
}

/// The conversation after the agent's tool-calling reply and the product's tool results.
fn with_tool_results(mut messages: Vec<Message>, reply: &Reply) -> Vec<Message> {
    messages.push(Message::assistant_tool_calls(
        Some(reply.text.clone()),
        reply.tool_calls.clone(),
    ));
    for call in &reply.tool_calls {
        messages.push(Message::tool_result(&call.id, r#"{"ok":true}"#));
    }
    messages
}

fn is_devanagari(text: &str) -> bool {
    text.chars().any(|c| ('\u{0900}'..='\u{097F}').contains(&c))
}

// ------------------------------------------------------------------------------- streaming

#[tokio::test]
async fn streamed_text_assembles_with_usage_and_time_to_first_token() {
    let s = setup().await;

    let reply = turn(&s.client, opening(PROMPT_EN, "What is this about?")).await;

    assert!(reply.tokens > 3, "text came in pieces: {}", reply.tokens);
    assert_eq!(
        reply.text,
        "We install rooftop solar panels with a 40% government subsidy. Would you be interested?"
    );
    assert!(reply.tool_calls.is_empty());
    let (prompt_tokens, completion_tokens) = reply.usage.expect("usage reported");
    assert!(prompt_tokens > 0 && completion_tokens as usize >= reply.tokens);
    let (finish, ttft, attempts) = reply.done.expect("done");
    assert_eq!(finish, FinishReason::Stop);
    assert!(ttft.is_some());
    assert_eq!(attempts, 1);
    assert_eq!(reply.events_after_end, 0);
    let sent = s.handle.last_request().expect("request recorded");
    assert_eq!(sent["stream"], json!(true));
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["tool_choice"], "auto");
}

#[tokio::test]
async fn a_refusal_brings_two_tool_calls_in_one_reply_with_text() {
    let s = setup().await;

    let reply = turn(&s.client, opening(PROMPT_EN, "No thanks, not interested.")).await;

    assert_eq!(names(&reply.tool_calls), ["record_outcome", "end_call"]);
    assert_ne!(reply.tool_calls[0].id, reply.tool_calls[1].id);
    assert_eq!(args(&reply.tool_calls[0])["intent"], "not_interested");
    assert!(args(&reply.tool_calls[1])["reason"].is_string());
    assert_eq!(reply.text, "No problem, thank you for your time.");
    assert_eq!(reply.done.unwrap().0, FinishReason::ToolCalls);
}

#[tokio::test]
async fn parallel_calls_at_a_reused_index_are_told_apart_by_id() {
    let s = setup_with(Faults {
        reuse_tool_index: true,
        usage_on_every_chunk: true,
        ..Faults::default()
    })
    .await;

    let reply = turn(&s.client, opening(PROMPT_EN, "Please don't call me again")).await;

    assert_eq!(names(&reply.tool_calls), ["record_outcome", "end_call"]);
    assert_eq!(args(&reply.tool_calls[0])["intent"], "do_not_call");
    assert_eq!(
        args(&reply.tool_calls[1])["reason"],
        "caller asked not to be called again"
    );
    assert!(reply.usage.is_some());
}

// ------------------------------------------------------------------------------- retries

// Real time, with a wait long enough to stand out: paused time cannot be used with real
// sockets (the runtime jumps to the next timer, the 5 s deadline, whenever every task waits on
// the socket). Only a lower bound is asserted, so a loaded machine cannot fail it.
#[tokio::test]
async fn a_rate_limited_request_is_retried_after_retry_after_ms() {
    let s = setup_with(Faults {
        rate_limited: 1,
        retry_after: Some(Duration::from_millis(500)),
        ..Faults::default()
    })
    .await;

    let started = Instant::now();
    let reply = turn(&s.client, opening(PROMPT_EN, "yes")).await;
    let elapsed = started.elapsed();

    assert_eq!(reply.done.expect("done").2, 2, "two attempts");
    assert_eq!(s.handle.request_count(), 2);
    assert!(!reply.text.is_empty());
    assert!(
        elapsed >= Duration::from_millis(500),
        "the retry waited the server's retry-after (500 ms): {elapsed:?}"
    );
}

#[tokio::test]
async fn a_retry_that_would_pass_the_deadline_is_not_attempted() {
    let s = setup_with(Faults {
        rate_limited: 1,
        retry_after: Some(Duration::from_secs(30)),
        ..Faults::default()
    })
    .await;

    let reply = attempt(&s.client, opening(PROMPT_EN, "yes"), in_ms(2_000)).await;

    match reply.error {
        Some(LlmError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(30)))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(s.handle.request_count(), 1);
}

#[tokio::test]
async fn a_server_error_is_retried_with_backoff() {
    let s = setup_with(Faults {
        server_errors: 1,
        ..Faults::default()
    })
    .await;
    // A backoff long enough to stand out from the emulator's latency.
    let client = OpenAiClient::new(
        reqwest::Client::new(),
        &format!("{}/v1", s._server.http_url()),
        Some(Secret::new(KEY)),
        "gpt-4o-mini",
    )
    .with_options(ClientOptions {
        initial_backoff: Duration::from_millis(400),
        ..ClientOptions::default()
    });

    let started = Instant::now();
    let reply = turn(&client, opening(PROMPT_EN, "yes")).await;
    let elapsed = started.elapsed();

    assert_eq!(reply.done.expect("done").2, 2);
    assert_eq!(s.handle.request_count(), 2);
    // The first backoff is the initial one less up to 25 % of jitter: at least 300 ms.
    assert!(
        elapsed >= Duration::from_millis(300),
        "the retry waited its backoff: {elapsed:?}"
    );
}

#[tokio::test]
async fn persistent_server_errors_stop_after_two_retries() {
    let s = setup_with(Faults {
        server_errors: 10,
        ..Faults::default()
    })
    .await;

    let reply = attempt(&s.client, opening(PROMPT_EN, "yes"), in_ms(5_000)).await;

    assert!(
        matches!(reply.error, Some(LlmError::Server { status: 500, .. })),
        "{:?}",
        reply.error
    );
    assert_eq!(s.handle.request_count(), 3);
}

#[tokio::test]
async fn insufficient_quota_fails_fast_without_retries() {
    let s = setup_with(Faults {
        insufficient_quota: 5,
        ..Faults::default()
    })
    .await;

    let reply = attempt(&s.client, opening(PROMPT_EN, "yes"), in_ms(5_000)).await;

    let error = reply.error.expect("an error");
    assert!(
        matches!(error, LlmError::InsufficientQuota { .. }),
        "{error:?}"
    );
    assert!(error.is_permanent());
    assert_eq!(s.handle.request_count(), 1);
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_and_not_retried() {
    let s = setup().await;
    let client = client_for(&s._server, "sk-wrong-key-123");

    let reply = attempt(&client, opening(PROMPT_EN, "yes"), in_ms(5_000)).await;

    assert!(
        matches!(reply.error, Some(LlmError::Auth { status: 401, .. })),
        "{:?}",
        reply.error
    );
    assert_eq!(s.handle.request_count(), 1);
}

// ------------------------------------------------------------------------------- deadlines, errors, cancellation

#[tokio::test]
async fn a_hanging_server_hits_the_first_token_deadline() {
    let s = setup_with(Faults {
        hangs: 1,
        ..Faults::default()
    })
    .await;
    let started = Instant::now();

    let reply = attempt(&s.client, opening(PROMPT_EN, "yes"), in_ms(300)).await;

    match reply.error {
        Some(LlmError::Timeout {
            first_token_received,
            ..
        }) => assert!(!first_token_received),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(reply.text.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the deadline was not ignored"
    );
}

#[tokio::test]
async fn a_mid_stream_error_event_ends_the_stream_with_an_error() {
    let s = setup_with(Faults {
        mid_stream_errors: 1,
        ..Faults::default()
    })
    .await;

    let reply = attempt(
        &s.client,
        opening(PROMPT_EN, "What is this about?"),
        in_ms(5_000),
    )
    .await;

    assert!(reply.tokens > 0, "some text came before the error");
    assert!(
        matches!(reply.error, Some(LlmError::MidStream { .. })),
        "{:?}",
        reply.error
    );
    assert!(reply.done.is_none());
    assert_eq!(reply.events_after_end, 0);
}

/// Waits (bounded) until the emulator has seen its client go away.
async fn wait_for_abort(handle: &Handle) {
    for _ in 0..100 {
        if handle.aborted_streams() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("the emulator never saw the request aborted");
}

#[tokio::test]
async fn dropping_the_stream_aborts_the_request() {
    let s = setup().await;
    s.handle.set_latency(Duration::from_millis(10), 20.0);
    let mut stream = s.client.stream_chat(
        &request(opening(PROMPT_EN, "What is this about?")),
        in_ms(5_000),
        &CancellationToken::new(),
    );
    let first = stream.next().await;
    assert!(matches!(first, Some(Ok(LlmEvent::Token(_)))), "{first:?}");

    drop(stream);

    wait_for_abort(&s.handle).await;
    assert_eq!(s.handle.completed_streams(), 0);
}

#[tokio::test]
async fn cancelling_the_token_ends_the_stream_with_cancelled() {
    let s = setup().await;
    s.handle.set_latency(Duration::from_millis(10), 20.0);
    let barge_in = CancellationToken::new();
    let mut stream = s.client.stream_chat(
        &request(opening(PROMPT_EN, "What is this about?")),
        in_ms(5_000),
        &barge_in,
    );
    assert!(matches!(stream.next().await, Some(Ok(LlmEvent::Token(_)))));

    barge_in.cancel();

    let mut rest = Vec::new();
    while let Some(e) = stream.next().await {
        rest.push(e);
    }
    assert!(
        matches!(rest.last(), Some(Err(LlmError::Cancelled))),
        "{rest:?}"
    );
    wait_for_abort(&s.handle).await;
}

// ------------------------------------------------------------------------------- validation

#[tokio::test]
async fn the_emulator_refuses_what_the_real_api_refuses() {
    let s = setup().await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", s._server.http_url());
    let post = |body: Value| http.post(&url).bearer_auth(KEY).json(&body).send();
    let user = json!({"role": "user", "content": "hi"});

    let r =
        post(json!({"model": "m", "messages": [user], "stream_options": {"include_usage": true}}))
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["param"],
        "stream_options"
    );

    let r = post(json!({"model": "m", "messages": [user,
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["param"],
        "messages.[1].role"
    );

    let r = post(json!({"model": "m", "messages": [user,
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "end_call", "arguments": "{}"}}]},
        user]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);

    let r =
        post(json!({"model": "m", "messages": [user], "response_format": {"type": "json_object"}}))
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["param"],
        "messages"
    );

    let r = http
        .post(&url)
        .json(&json!({"model": "m", "messages": [user]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());

    let root = format!("{}/chat/completions", s._server.http_url());
    let r = http
        .post(&root)
        .bearer_auth(KEY)
        .json(&json!({"model": "m", "messages": [user]}))
        .send();
    assert_eq!(
        r.await.unwrap().status(),
        200,
        "the path without /v1 works too"
    );
}

#[tokio::test]
async fn a_bad_request_is_a_typed_permanent_error() {
    let s = setup().await;
    let bad = ChatRequest {
        messages: vec![Message::user("hi")],
        response_format: Some(ResponseFormat::JsonObject),
        ..ChatRequest::default()
    };

    let error = s
        .client
        .complete_json(&bad, in_ms(5_000))
        .await
        .unwrap_err();

    assert!(
        matches!(error, LlmError::BadRequest { status: 400, .. }),
        "{error:?}"
    );
    assert!(error.is_permanent());
    assert_eq!(s.handle.request_count(), 1);
}

// ------------------------------------------------------------------------------- extraction

#[tokio::test]
async fn json_schema_extraction_returns_an_object_matching_the_schema() {
    let s = setup().await;
    let schema = json!({
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": ["interested", "not_interested", "callback",
                                                  "wrong_number", "do_not_call", "unknown"]},
            "summary": {"type": "string"},
            "callback_at": {"type": ["string", "null"], "format": "date-time"},
            "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
            "interested": {"type": "boolean"},
            "monthly_bill": {"type": ["string", "null"]},
        },
        "required": ["intent", "summary", "callback_at", "sentiment", "interested", "monthly_bill"],
        "additionalProperties": false,
    });
    let transcript = "Agent: Namaste! This is Priya from SunPower Solar.\n\
                      Caller: I'm driving, call me tomorrow at 5.\n\
                      Agent: Sure, we will call you back tomorrow at 5 PM.";
    let extraction = ChatRequest {
        messages: vec![
            Message::system(
                "Current time: 2025-01-15T10:30:00+05:30. Extract the outcome of this sales call.",
            ),
            Message::user(format!("Transcript:\n{transcript}")),
        ],
        response_format: Some(ResponseFormat::JsonSchema {
            name: "call_outcome".into(),
            schema,
            strict: true,
        }),
        ..ChatRequest::default()
    };

    let out = s
        .client
        .complete_json(&extraction, in_ms(5_000))
        .await
        .expect("extraction");

    let v = out.value;
    assert_eq!(v["intent"], "callback");
    assert_eq!(v["callback_at"], "2025-01-16T17:00:00+05:30");
    assert!(v["summary"].as_str().unwrap().contains("called back"));
    assert_eq!(v["sentiment"], "neutral");
    assert_eq!(v["interested"], false);
    assert_eq!(v["monthly_bill"], Value::Null);
    assert_eq!(v.as_object().unwrap().len(), 6);
    assert!(out.usage.is_some());
    let sent = s.handle.last_request().unwrap();
    assert_eq!(sent["stream"], false);
    assert!(sent.get("stream_options").is_none());
    assert_eq!(
        sent["response_format"]["json_schema"]["name"],
        "call_outcome"
    );
}

// ------------------------------------------------------------------------------- the scripted agent

#[tokio::test]
async fn an_interested_caller_is_qualified_then_recorded_then_closed() {
    let s = setup().await;
    let mut messages = opening(PROMPT_EN, "Yes, sure");

    let first = turn(&s.client, messages.clone()).await;
    assert_eq!(first.text, "Great! What is your monthly electricity bill?");
    assert!(first.tool_calls.is_empty());

    messages.push(Message::assistant(first.text.clone()));
    messages.push(Message::user("About 3000 rupees a month"));
    let second = turn(&s.client, messages.clone()).await;
    assert_eq!(names(&second.tool_calls), ["record_outcome", "end_call"]);
    let outcome = args(&second.tool_calls[0]);
    assert_eq!(outcome["intent"], "interested");
    assert_eq!(
        outcome["qualification"]["monthly_bill"],
        "About 3000 rupees a month"
    );

    let closing = turn(&s.client, with_tool_results(messages, &second)).await;
    assert!(closing.tool_calls.is_empty(), "no repeated tool calls");
    assert!(!closing.text.is_empty());
    assert_ne!(closing.text, second.text, "the goodbye is not said twice");
    assert_eq!(s.handle.request_count(), 3);
}

/// One caller line and the product's tool results: the calls the agent made and its last line.
async fn conclude(client: &OpenAiClient, prompt: &str, caller: &str) -> (Reply, Reply) {
    let messages = opening(prompt, caller);
    let reply = turn(client, messages.clone()).await;
    let closing = turn(client, with_tool_results(messages, &reply)).await;
    assert!(
        closing.tool_calls.is_empty(),
        "{caller:?}: no tool calls after the results"
    );
    assert!(
        !closing.text.is_empty() && closing.text != reply.text,
        "{caller:?}"
    );
    (reply, closing)
}

#[tokio::test]
async fn each_kind_of_caller_gets_the_expected_tool_calls() {
    let s = setup().await;
    let cases = [
        ("Not interested, thank you", "not_interested"),
        ("nahi chahiye", "not_interested"),
        ("Sorry, wrong number", "wrong_number"),
        ("who?", "wrong_number"),
        ("Stop calling me, don't call me again", "do_not_call"),
    ];
    for (caller, intent) in cases {
        let (reply, _) = conclude(&s.client, PROMPT_EN, caller).await;
        assert_eq!(
            names(&reply.tool_calls),
            ["record_outcome", "end_call"],
            "{caller:?}"
        );
        assert_eq!(args(&reply.tool_calls[0])["intent"], intent, "{caller:?}");
    }
}

#[tokio::test]
async fn a_callback_request_schedules_a_concrete_rfc3339_time() {
    let s = setup().await;
    let cases = [
        (
            "I'm busy, call me tomorrow at 5",
            "2025-01-16T17:00:00+05:30",
        ),
        (
            "abhi nahi, kal shaam 6 baje call karna",
            "2025-01-16T18:00:00+05:30",
        ),
        ("call me in 2 hours", "2025-01-15T12:30:00+05:30"),
    ];
    for (caller, expected) in cases {
        let (reply, closing) = conclude(&s.client, PROMPT_EN, caller).await;
        assert_eq!(
            names(&reply.tool_calls),
            ["schedule_callback", "record_outcome", "end_call"],
            "{caller:?}"
        );
        let at = args(&reply.tool_calls[0])["at"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(chrono::DateTime::parse_from_rfc3339(&at).is_ok(), "{at}");
        assert_eq!(at, expected, "{caller:?}");
        assert_eq!(args(&reply.tool_calls[1])["intent"], "callback");
        assert!(
            reply.text.starts_with("Sure, we will call you back"),
            "{}",
            reply.text
        );
        assert_eq!(closing.text, "Talk to you then. Goodbye!");
    }
}

#[tokio::test]
async fn a_question_is_answered_from_the_instructions() {
    let s = setup().await;

    let price = turn(&s.client, opening(PROMPT_EN, "What's the price?")).await;
    let who = turn(&s.client, opening(PROMPT_EN, "Who is this?")).await;

    assert!(
        price
            .text
            .starts_with("Plans start at Rs. 1,999 per month on EMI."),
        "{}",
        price.text
    );
    assert!(
        who.text.starts_with("This is Priya from SunPower Solar."),
        "{}",
        who.text
    );
    assert!(price.tool_calls.is_empty() && who.tool_calls.is_empty());
}

#[tokio::test]
async fn an_unclear_line_is_asked_again_once_then_the_call_ends() {
    let s = setup().await;
    let mut messages = opening(PROMPT_EN, "");

    let first = turn(&s.client, messages.clone()).await;
    assert_eq!(
        first.text,
        "Sorry, I didn't catch that. Could you please repeat?"
    );
    assert!(first.tool_calls.is_empty());

    messages.push(Message::assistant(first.text));
    messages.push(Message::user("hmm"));
    let second = turn(&s.client, messages).await;
    assert_eq!(names(&second.tool_calls), ["end_call"]);
}

#[tokio::test]
async fn hindi_callers_get_devanagari_replies() {
    let s = setup().await;

    let positive = turn(&s.client, opening(PROMPT_EN, "हाँ, बताइए")).await;
    assert!(is_devanagari(&positive.text), "{}", positive.text);
    assert!(
        !positive.text.chars().any(|c| c.is_ascii_alphabetic()),
        "{}",
        positive.text
    );

    // A hi-IN campaign answers in Hindi even when the transcript is romanised.
    let (refusal, closing) = conclude(&s.client, PROMPT_HI, "nahi chahiye").await;
    assert_eq!(args(&refusal.tool_calls[0])["intent"], "not_interested");
    assert!(is_devanagari(&refusal.text) && is_devanagari(&closing.text));

    let qualify = turn(&s.client, opening(PROMPT_HI, "हाँ जी")).await;
    assert!(
        qualify
            .text
            .contains("आपका महीने का बिजली का बिल कितना आता है?"),
        "{}",
        qualify.text
    );

    let (callback, _) = conclude(&s.client, PROMPT_HI, "कल सुबह 11 बजे कॉल कीजिए").await;
    assert_eq!(
        args(&callback.tool_calls[0])["at"],
        "2025-01-16T11:00:00+05:30"
    );
    assert!(callback.text.contains("कल सुबह 11 बजे"), "{}", callback.text);
}

#[tokio::test]
async fn without_tools_the_agent_says_the_goodbye_itself() {
    let s = setup().await;
    let plain = ChatRequest {
        messages: opening(PROMPT_EN, "not interested"),
        ..ChatRequest::default()
    };

    let reply = collect(
        s.client
            .stream_chat(&plain, in_ms(5_000), &CancellationToken::new()),
    )
    .await;

    assert!(reply.tool_calls.is_empty());
    assert_eq!(
        reply.text,
        "No problem, thank you for your time. Have a good day. Goodbye!"
    );
    assert!(s.handle.last_request().unwrap().get("tools").is_none());
}

#[tokio::test]
async fn with_no_caller_line_yet_the_agent_greets() {
    let s = setup().await;
    let reply = turn(&s.client, vec![Message::system(PROMPT_EN)]).await;
    assert_eq!(
        reply.text,
        "Namaste! This is Priya from SunPower Solar. Do you have a minute to talk?"
    );
}
