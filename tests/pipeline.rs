//! The call pipeline (`media::call::run`) over in-memory doubles of its ports, in paused time:
//! scripted STT events, a TTS that speaks 60 ms a character at once, a chat model that follows
//! a script, and a phone on the other end of the carrier socket that plays the agent's audio
//! in (virtual) real time and echoes marks, or does not. Time only moves when every task waits,
//! so each duration below is exact and the tests take milliseconds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::Message as WsMessage;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use voice_agent::config::Settings;
use voice_agent::media::call::{self, CallSetup, CallTuning, Ending};
use voice_agent::media::link;
use voice_agent::media::writer::{Write, Writer};
use voice_agent::metrics::Metrics;
use voice_agent::store::{Campaign, CampaignStatus};
use voice_agent::telephony::carrier::Exotel;
use voice_agent::voice::llm::{
    ChatModel, ChatRequest, ChatStream, FinishReason, JsonCompletion, LlmError, LlmEvent, Message,
    ToolCall,
};
use voice_agent::voice::stt::{SttError, SttEvent, SttSession};
use voice_agent::voice::tts::{Alignment, TtsError, TtsEvent, TtsSession, TurnId};
use voice_agent::voice::{ErrorKind, Provider};

/// 8 kHz 16-bit: 16 bytes a millisecond; the doubles speak 60 ms a character.
const BYTES_PER_CHAR: usize = 960;
const CHAR_MS: u64 = 60;

// ---------------------------------------------------------------------------------------------
// The doubles

struct FakeStt {
    events: mpsc::UnboundedReceiver<SttEvent>,
    finalizes: Arc<AtomicUsize>,
}

impl SttSession for FakeStt {
    fn provider(&self) -> Provider {
        Provider::Deepgram
    }
    fn send_audio(&mut self, _pcm: Bytes) -> Result<(), SttError> {
        Ok(())
    }
    fn finalize(&mut self) -> Result<(), SttError> {
        self.finalizes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<SttEvent>> {
        self.events.poll_recv(cx)
    }
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Speaks every phrase at once, aligned; says `TurnDone` at the end of a turn if `says_done`.
struct FakeTts {
    says_done: bool,
    turn: Option<TurnId>,
    ready: VecDeque<TtsEvent>,
    texts: Arc<Mutex<Vec<String>>>,
}

impl TtsSession for FakeTts {
    fn provider(&self) -> Provider {
        Provider::ElevenLabs
    }
    fn start_turn(&mut self, turn: TurnId) -> Result<(), TtsError> {
        self.cancel_turn()?;
        self.turn = Some(turn);
        Ok(())
    }
    fn send_text(&mut self, text: &str) -> Result<(), TtsError> {
        let turn = self.turn.ok_or(TtsError::NoTurn)?;
        self.texts.lock().unwrap().push(text.to_string());
        let chars = text.chars().count();
        self.ready.push_back(TtsEvent::Audio {
            turn,
            pcm: Bytes::from(vec![0x40; chars * BYTES_PER_CHAR]),
            alignment: Some(Alignment {
                chars,
                ends_ms: (1..=chars as u32).map(|i| i * CHAR_MS as u32).collect(),
            }),
        });
        Ok(())
    }
    fn flush(&mut self) -> Result<(), TtsError> {
        Ok(())
    }
    fn end_turn(&mut self) -> Result<(), TtsError> {
        let turn = self.turn.ok_or(TtsError::NoTurn)?;
        if self.says_done {
            self.ready.push_back(TtsEvent::TurnDone {
                turn,
                first_audio: Some(Duration::ZERO),
            });
        }
        Ok(())
    }
    fn cancel_turn(&mut self) -> Result<(), TtsError> {
        if let Some(turn) = self.turn.take() {
            self.ready.retain(|e| match e {
                TtsEvent::Audio { turn: t, .. } | TtsEvent::TurnDone { turn: t, .. } => *t != turn,
                _ => true,
            });
        }
        Ok(())
    }
    fn poll_event(&mut self, _cx: &mut Context<'_>) -> Poll<Option<TtsEvent>> {
        // The call polls after every command it gives, so nothing needs waking.
        match self.ready.pop_front() {
            Some(e) => Poll::Ready(Some(e)),
            None => Poll::Pending,
        }
    }
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// One reply of the script: tokens, then tool calls, after a delay.
#[derive(Debug, Clone, Default)]
struct Reply {
    after: Duration,
    tokens: Vec<&'static str>,
    tools: Vec<ToolCall>,
}

#[derive(Debug, Default)]
struct FakeLlm {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<ChatRequest>>,
}

impl ChatModel for FakeLlm {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }
    fn stream_reply(&self, request: &ChatRequest, _first_token: Instant) -> ChatStream {
        self.requests.lock().unwrap().push(request.clone());
        let reply = self.script.lock().unwrap().pop_front().unwrap_or_default();
        let mut events: Vec<Result<LlmEvent, LlmError>> = reply
            .tokens
            .iter()
            .map(|t| Ok(LlmEvent::Token(t.to_string())))
            .collect();
        if !reply.tools.is_empty() {
            events.push(Ok(LlmEvent::ToolCalls(reply.tools)));
        }
        events.push(Ok(LlmEvent::Done {
            finish_reason: FinishReason::Stop,
            time_to_first_token: Some(reply.after),
            attempts: 1,
        }));
        let after = reply.after;
        Box::pin(
            futures::stream::once(async move { tokio::time::sleep(after).await })
                .flat_map(move |()| futures::stream::iter(events.clone())),
        )
    }
    fn complete_json<'a>(
        &'a self,
        _request: &'a ChatRequest,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<JsonCompletion, LlmError>> {
        Box::pin(async { Err(LlmError::Cancelled) })
    }
}

fn tool(name: &str, arguments: Value) -> ToolCall {
    ToolCall {
        id: format!("call_{name}"),
        name: name.into(),
        arguments_json: arguments.to_string(),
    }
}

/// What the phone saw, with (virtual) times from the call's start.
#[derive(Debug, Default)]
struct PhoneLog {
    /// Marks as sent, with when the audio before them finished playing.
    marks: Vec<(String, Duration)>,
    clears: Vec<Duration>,
    media_bytes: usize,
    /// When the last agent audio finished playing.
    played_until: Duration,
    closed_at: Option<Duration>,
}

/// The far end of the carrier socket: plays audio in real time, echoes each mark when the
/// audio before it has played (if `echo`), honours `clear`.
fn phone(
    mut from_call: futures::channel::mpsc::UnboundedReceiver<WsMessage>,
    to_call: futures::channel::mpsc::UnboundedSender<Result<WsMessage, axum::Error>>,
    echo: bool,
    t0: Instant,
) -> Arc<Mutex<PhoneLog>> {
    let log = Arc::new(Mutex::new(PhoneLog::default()));
    let out = log.clone();
    tokio::spawn(async move {
        let mut play_until = t0;
        while let Some(msg) = from_call.next().await {
            let now = Instant::now();
            let WsMessage::Text(text) = msg else {
                if matches!(msg, WsMessage::Close(_)) {
                    log.lock().unwrap().closed_at = Some(now - t0);
                }
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            match v["event"].as_str() {
                Some("media") => {
                    use base64::Engine;
                    let payload = v["media"]["payload"].as_str().unwrap();
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(payload)
                        .unwrap();
                    play_until =
                        play_until.max(now) + Duration::from_micros(bytes.len() as u64 * 1000 / 16);
                    let mut l = log.lock().unwrap();
                    l.media_bytes += bytes.len();
                    l.played_until = play_until - t0;
                }
                Some("mark") => {
                    let name = v["mark"]["name"].as_str().unwrap().to_string();
                    let due = play_until.max(now);
                    log.lock().unwrap().marks.push((name.clone(), due - t0));
                    if echo {
                        let to_call = to_call.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep_until(due).await;
                            let echo = json!({"event": "mark", "stream_sid": "MZ1", "mark": {"name": name}});
                            let _ = to_call
                                .unbounded_send(Ok(WsMessage::Text(echo.to_string().into())));
                        });
                    }
                }
                Some("clear") => {
                    play_until = now;
                    log.lock().unwrap().clears.push(now - t0);
                }
                _ => {}
            }
        }
        log.lock()
            .unwrap()
            .closed_at
            .get_or_insert(Instant::now() - t0);
    });
    out
}

// ---------------------------------------------------------------------------------------------
// The rig

struct Rig {
    stt: mpsc::UnboundedSender<SttEvent>,
    to_call: futures::channel::mpsc::UnboundedSender<Result<WsMessage, axum::Error>>,
    phone: Arc<Mutex<PhoneLog>>,
    llm: Arc<FakeLlm>,
    finalizes: Arc<AtomicUsize>,
    metrics: Metrics,
    writes: mpsc::UnboundedReceiver<Write>,
    call: tokio::task::JoinHandle<Ending>,
    t0: Instant,
}

struct Options {
    greeting: &'static str,
    echo_marks: bool,
    tts_says_done: bool,
    script: Vec<Reply>,
}

fn start(o: Options) -> Rig {
    let t0 = Instant::now();
    let settings = Settings::for_database("sqlite::memory:");
    let mut spec = voice_agent::campaigns::default_spec(&settings);
    spec.greeting = o.greeting.into();
    spec.language = "en-IN".into();
    let campaign = Campaign {
        id: 1,
        spec,
        status: CampaignStatus::Running,
        status_reason: None,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    let setup = CallSetup {
        call_id: 7,
        campaign,
        lead: None,
        stream_sid: "MZ1".into(),
        started_at: chrono::Utc::now(),
    };
    let (stt_tx, stt_rx) = mpsc::unbounded_channel();
    let finalizes = Arc::new(AtomicUsize::new(0));
    let stt = FakeStt {
        events: stt_rx,
        finalizes: finalizes.clone(),
    };
    let tts = FakeTts {
        says_done: o.tts_says_done,
        turn: None,
        ready: VecDeque::new(),
        texts: Arc::default(),
    };
    let llm = Arc::new(FakeLlm {
        script: Mutex::new(o.script.into()),
        requests: Mutex::default(),
    });
    let (call_out, phone_in) = futures::channel::mpsc::unbounded::<WsMessage>();
    let (phone_out, call_in) =
        futures::channel::mpsc::unbounded::<Result<WsMessage, axum::Error>>();
    let sink = call_out.sink_map_err(axum::Error::new);
    let carrier = link::link(Box::pin(sink), Box::pin(call_in), &Exotel, "MZ1".into());
    let phone = phone(phone_in, phone_out.clone(), o.echo_marks, t0);
    let (writer, writes) = Writer::detached();
    let metrics = Metrics::default();
    let meters = metrics.call_meters();
    let call = tokio::spawn(call::run(
        setup,
        CallTuning::default(),
        llm.clone(),
        Box::new(stt),
        Box::new(tts),
        carrier,
        writer,
        tokio_util::sync::CancellationToken::new(),
        meters,
    ));
    Rig {
        stt: stt_tx,
        to_call: phone_out,
        phone,
        llm,
        finalizes,
        metrics,
        writes,
        call,
        t0,
    }
}

impl Rig {
    /// Waits (virtual time) until `at` from the call's start.
    async fn at(&self, at: Duration) {
        tokio::time::sleep_until(self.t0 + at).await;
    }

    fn says(&self, text: &str) {
        self.stt
            .send(SttEvent::Final {
                text: text.into(),
                end_of_turn: true,
                finalized: false,
            })
            .unwrap();
    }

    fn hangs_up(&self) {
        let stop = json!({"event": "stop", "stream_sid": "MZ1", "stop": {"reason": "callended"}});
        let _ = self
            .to_call
            .unbounded_send(Ok(WsMessage::Text(stop.to_string().into())));
    }

    /// The call's end, and the agent and caller turns it stored, in order.
    async fn end(
        mut self,
    ) -> (
        Ending,
        Vec<(String, String, bool)>,
        Arc<Mutex<PhoneLog>>,
        Metrics,
    ) {
        let ending = tokio::time::timeout(Duration::from_secs(120), self.call)
            .await
            .expect("the call ends")
            .unwrap();
        let mut turns = Vec::new();
        while let Ok(w) = self.writes.try_recv() {
            if let Write::Turn(t) = w {
                turns.push((t.speaker, t.text, t.interrupted));
            }
        }
        (ending, turns, self.phone, self.metrics)
    }
}

fn stalls(metrics: &Metrics, provider: Provider) -> u64 {
    metrics.providers.errors_of(provider, ErrorKind::Stalled)
}

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test(start_paused = true)]
async fn a_turn_is_answered_after_the_greeting_has_played_and_every_phrase_is_marked() {
    let rig = start(Options {
        greeting: "Hello, this is Asha.",
        echo_marks: true,
        tts_says_done: true,
        script: vec![Reply {
            after: Duration::from_millis(300),
            tokens: vec!["Sure. ", "We install ", "rooftop solar. "],
            tools: vec![],
        }],
    });
    // 21 characters with the space that ends every phrase: 1.26 s of greeting.
    rig.at(Duration::from_millis(1_600)).await;
    rig.says("Yes, tell me more.");
    rig.at(Duration::from_secs(6)).await;
    rig.hangs_up();
    let llm = rig.llm.clone();
    let (ending, turns, phone, metrics) = rig.end().await;

    assert_eq!(ending, Ending::CallerHungUp);
    assert_eq!(
        turns,
        [
            ("agent".into(), "Hello, this is Asha.".into(), false),
            ("caller".into(), "Yes, tell me more.".into(), false),
            (
                "agent".into(),
                "Sure. We install rooftop solar.".into(),
                false
            ),
        ]
    );
    let phone = phone.lock().unwrap();
    let marks: Vec<&str> = phone.marks.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        marks,
        ["t1-p1", "t3-p1", "t3-p2"],
        "a mark after every phrase"
    );
    // The greeting's mark falls when its 1.26 s of audio has played.
    assert_eq!(phone.marks[0].1, Duration::from_millis(1_260));
    // The model was told the greeting before the answer.
    let request = &llm.requests.lock().unwrap()[0];
    assert_eq!(
        request.messages[1],
        Message::assistant("Hello, this is Asha.")
    );
    assert_eq!(request.messages[2], Message::user("Yes, tell me more."));
    for provider in [Provider::ElevenLabs, Provider::Exotel, Provider::Deepgram] {
        assert_eq!(stalls(&metrics, provider), 0, "{provider:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_barge_in_clears_the_audio_and_keeps_the_words_the_caller_heard() {
    let rig = start(Options {
        greeting: "Namaste Sneha, this is Asha from SunRise Solar. Do you have a minute?",
        echo_marks: true,
        tts_says_done: true,
        script: vec![Reply {
            after: Duration::from_millis(200),
            tokens: vec!["Of course. ", "It is about solar panels. "],
            tools: vec![],
        }],
    });
    // One second in: "Namaste Sneha, t" has played (16 characters of 60 ms).
    rig.at(Duration::from_millis(1_000)).await;
    rig.says("Wait, what is this about?");
    rig.at(Duration::from_secs(5)).await;
    rig.hangs_up();
    let llm = rig.llm.clone();
    let (_, turns, phone, _) = rig.end().await;

    assert_eq!(
        turns[0],
        ("agent".into(), "Namaste Sneha,".into(), true),
        "cut at the last word heard"
    );
    assert_eq!(phone.lock().unwrap().clears, [Duration::from_millis(1_000)]);
    let request = &llm.requests.lock().unwrap()[0];
    assert_eq!(
        request.messages[1],
        Message::assistant("Namaste Sneha,"),
        "the model knows what it had said"
    );
    assert_eq!(turns[2].1, "Of course. It is about solar panels.");
}

#[tokio::test(start_paused = true)]
async fn a_backchannel_over_the_agent_does_not_stop_it() {
    let rig = start(Options {
        greeting: "Namaste, this is Asha from SunRise Solar calling about rooftop panels.",
        echo_marks: true,
        tts_says_done: true,
        script: vec![],
    });
    rig.at(Duration::from_millis(1_500)).await;
    rig.says("haan");
    rig.at(Duration::from_secs(6)).await;
    rig.hangs_up();
    let (_, turns, phone, _) = rig.end().await;
    assert!(
        phone.lock().unwrap().clears.is_empty(),
        "no clear for a backchannel"
    );
    assert_eq!(turns.len(), 1, "no caller turn either: {turns:?}");
    assert!(!turns[0].2, "the greeting was not interrupted");
}

#[tokio::test(start_paused = true)]
async fn with_no_end_of_turn_and_no_mark_echo_the_call_still_says_goodbye_and_hangs_up() {
    let rig = start(Options {
        greeting: "Hello.",
        echo_marks: false,
        tts_says_done: false,
        script: vec![Reply {
            after: Duration::from_millis(300),
            tokens: vec!["Thank you, goodbye. "],
            tools: vec![tool("end_call", json!({"reason": "done"}))],
        }],
    });
    rig.at(Duration::from_secs(3)).await;
    rig.says("No thanks.");
    let (ending, turns, phone, metrics) = rig.end().await;

    assert_eq!(ending, Ending::AgentHungUp);
    assert_eq!(turns[2].1, "Thank you, goodbye.");
    let phone = phone.lock().unwrap();
    // The goodbye (20 characters, 1.2 s) played in full before the hang-up, and the hang-up
    // came at its bounded wait: the marks' 1.5 s, with the TTS's 1 s inside it.
    let closed = phone.closed_at.expect("hung up");
    let after = closed - phone.played_until;
    assert!(
        after <= Duration::from_millis(1_600),
        "hung up {after:?} after the goodbye played"
    );
    assert!(
        stalls(&metrics, Provider::ElevenLabs) >= 1,
        "the missing end of turn is counted"
    );
    assert!(
        stalls(&metrics, Provider::Exotel) >= 1,
        "the missing echoes are counted"
    );
}

#[tokio::test(start_paused = true)]
async fn words_that_stt_never_ends_are_finalised_then_answered() {
    let rig = start(Options {
        greeting: "Hello.",
        echo_marks: true,
        tts_says_done: true,
        script: vec![Reply {
            after: Duration::from_millis(100),
            tokens: vec!["Tell me more. "],
            tools: vec![],
        }],
    });
    rig.at(Duration::from_secs(1)).await;
    rig.stt
        .send(SttEvent::Interim {
            text: "I am interested in".into(),
        })
        .unwrap();
    // No final, no end of turn: 1.5 s later a Finalize, unanswered for 1 s, then the turn ends.
    rig.at(Duration::from_millis(2_400)).await;
    assert_eq!(rig.finalizes.load(Ordering::SeqCst), 0, "not before 1.5 s");
    rig.at(Duration::from_millis(2_600)).await;
    assert_eq!(rig.finalizes.load(Ordering::SeqCst), 1);
    rig.at(Duration::from_secs(6)).await;
    rig.hangs_up();
    let llm = rig.llm.clone();
    let (_, turns, _, metrics) = rig.end().await;

    assert_eq!(
        turns[1],
        ("caller".into(), "I am interested in".into(), false)
    );
    assert_eq!(
        llm.requests.lock().unwrap()[0].messages.last(),
        Some(&Message::user("I am interested in"))
    );
    assert_eq!(stalls(&metrics, Provider::Deepgram), 1);
}

#[tokio::test(start_paused = true)]
async fn every_tool_call_of_a_reply_runs_before_the_model_is_asked_once_more() {
    let rig = start(Options {
        greeting: "Hello.",
        echo_marks: true,
        tts_says_done: true,
        script: vec![
            Reply {
                after: Duration::from_millis(200),
                tokens: vec![],
                tools: vec![
                    tool("record_outcome", json!({"intent": "interested"})),
                    tool("end_call", json!({"reason": "done"})),
                ],
            },
            Reply {
                after: Duration::from_millis(200),
                tokens: vec!["Thank you, goodbye. "],
                tools: vec![],
            },
        ],
    });
    rig.at(Duration::from_secs(1)).await;
    rig.says("Yes, I am interested.");
    let llm = rig.llm.clone();
    let (ending, turns, _, _) = rig.end().await;

    assert_eq!(ending, Ending::AgentHungUp);
    let requests = llm.requests.lock().unwrap();
    assert_eq!(requests.len(), 2, "asked once more, not once per tool");
    let tool_results = requests[1]
        .messages
        .iter()
        .filter(|m| matches!(m, Message::Tool { .. }))
        .count();
    assert_eq!(
        tool_results, 2,
        "both calls answered before the second request"
    );
    assert_eq!(turns.last().unwrap().1, "Thank you, goodbye.");
}
