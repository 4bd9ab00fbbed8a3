//! The simulated callee against a small scripted bot written here: a WebSocket server on port 0
//! that talks Exotel's protocol from the bot's side (emulated speech in 3,200-byte frames, marks,
//! clears), listens with a `SpeechDecoder`, and records everything the callee sends.
//!
//! Calls run at real-time pace, so conversations are kept short; assertions on timing are loose
//! (behaviour, not speed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use voice_agent::emulators::callee::{
    self, CallReport, CalleeConfig, EndedBy, Language, LineKind, Persona, StartInfo,
};
use voice_agent::emulators::exotel::{self, ExotelConfig};
use voice_agent::emulators::speech::{self, SpeechDecoder};

const WAIT: Duration = Duration::from_secs(10);
/// The bot's frame: Exotel's minimum guidance, 200 ms at 8 kHz.
const BOT_FRAME: usize = 3_200;
const BOT_FRAME_TIME: Duration = Duration::from_millis(200);
/// Silence after which the bot takes the callee's line as finished.
const END_OF_LINE: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------------------------------------
// The scripted bot

#[derive(Default)]
struct Log {
    /// Every message the callee sent, as received.
    events: Vec<(Instant, Value)>,
    /// Characters decoded from the callee's audio, with the arrival time of their frame.
    heard: Vec<(Instant, char)>,
    decoder: SpeechDecoder,
    closed: bool,
}

impl Log {
    fn of(&self, event: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|(_, v)| v["event"] == event)
            .map(|(_, v)| v)
            .collect()
    }

    fn mark_echo(&self, name: &str) -> Option<Instant> {
        self.events
            .iter()
            .find(|(_, v)| v["event"] == "mark" && v["mark"]["name"] == name)
            .map(|(t, _)| *t)
    }

    fn text_from(&self, from: usize) -> String {
        self.heard[from.min(self.heard.len())..]
            .iter()
            .map(|(_, c)| c)
            .collect()
    }
}

struct Bot {
    listener: TcpListener,
    /// `ws://127.0.0.1:PORT`
    base: String,
}

impl Bot {
    async fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("ws://{}", listener.local_addr().unwrap());
        Self { listener, base }
    }

    async fn accept(&self) -> BotConn {
        let (tcp, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the callee connects")
            .unwrap();
        accept(tcp).await
    }
}

/// One call, from the bot's side.
struct BotConn {
    out: mpsc::UnboundedSender<Message>,
    log: Arc<Mutex<Log>>,
    /// Path and query of the handshake request.
    target: String,
    authorization: Option<String>,
    sid: String,
}

async fn accept(tcp: tokio::net::TcpStream) -> BotConn {
    let mut target = String::new();
    let mut authorization = None;
    // tungstenite's callback type fixes the error type; it is never returned here.
    #[allow(clippy::result_large_err)]
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
        target = req.uri().to_string();
        authorization = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string());
        Ok(resp)
    })
    .await
    .unwrap();
    let (mut sink, mut stream) = ws.split();
    let (out, mut rx) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
    });
    let log = Arc::new(Mutex::new(Log::default()));
    let reader_log = log.clone();
    tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            let Message::Text(text) = m else { continue };
            let now = Instant::now();
            let v: Value = serde_json::from_str(&text).expect("the callee sends JSON");
            let mut log = reader_log.lock().unwrap();
            if v["event"] == "media" {
                let pcm = B64.decode(v["media"]["payload"].as_str().unwrap()).unwrap();
                let chars = log.decoder.push_bytes(&pcm);
                log.heard.extend(chars.iter().map(|d| (now, d.ch)));
            }
            log.events.push((now, v));
        }
        reader_log.lock().unwrap().closed = true;
    });
    BotConn {
        out,
        log,
        target,
        authorization,
        sid: String::new(),
    }
}

impl BotConn {
    async fn until<T>(&self, what: &str, f: impl Fn(&Log) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(t) = f(&self.log.lock().unwrap()) {
                return t;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for `start`; later messages carry its `stream_sid`.
    async fn started(&mut self) -> Value {
        let start = self
            .until("start", |l| l.of("start").first().map(|v| (*v).clone()))
            .await;
        self.sid = start["stream_sid"].as_str().unwrap().to_string();
        start
    }

    fn raw(&self, text: impl Into<String>) {
        let _ = self.out.send(Message::text(text.into()));
    }

    fn send(&self, v: Value) {
        self.raw(v.to_string());
    }

    fn media(&self, pcm: &[u8]) {
        self.send(media_json(&self.sid, pcm));
    }

    fn mark(&self, name: &str) {
        self.send(json!({"event": "mark", "stream_sid": self.sid, "mark": {"name": name}}));
    }

    fn clear(&self) {
        self.send(json!({"event": "clear", "stream_sid": self.sid}));
    }

    fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }

    /// Sends `text` at once, then a mark.
    fn say_now(&self, text: &str, mark: &str) {
        for frame in frames(text).chunks(BOT_FRAME) {
            self.media(frame);
        }
        self.mark(mark);
    }

    /// Sends `text` at real-time pace, two frames ahead, then a mark. Abort to stop sending.
    fn say_paced(&self, text: &str, mark: &str) -> JoinHandle<()> {
        let out = self.out.clone();
        let sid = self.sid.clone();
        let audio = frames(text);
        let mark = json!({"event": "mark", "stream_sid": sid, "mark": {"name": mark}});
        tokio::spawn(async move {
            let t0 = Instant::now();
            for (i, frame) in audio.chunks(BOT_FRAME).enumerate() {
                let due = (t0 + BOT_FRAME_TIME * i as u32).checked_sub(BOT_FRAME_TIME * 2);
                tokio::time::sleep_until(due.unwrap_or(t0)).await;
                let _ = out.send(Message::text(media_json(&sid, frame).to_string()));
            }
            let _ = out.send(Message::text(mark.to_string()));
        })
    }

    fn heard_count(&self) -> usize {
        self.log.lock().unwrap().heard.len()
    }

    /// The callee's next line: characters after `from`, once it has been silent for a while.
    async fn hear_line(&self, from: usize) -> String {
        self.until("the callee's line", |l| {
            let (last, _) = l.heard.last()?;
            (l.heard.len() > from && last.elapsed() >= END_OF_LINE).then(|| l.text_from(from))
        })
        .await
    }

    async fn mark_echoed(&self, name: &str) -> Instant {
        self.until(&format!("mark {name}"), |l| l.mark_echo(name))
            .await
    }

    async fn closed(&self) {
        self.until("the callee to close", |l| l.closed.then_some(()))
            .await;
    }
}

fn media_json(sid: &str, pcm: &[u8]) -> Value {
    json!({"event": "media", "stream_sid": sid, "media": {"payload": B64.encode(pcm)}})
}

/// Emulated speech, zero-padded to a 320-byte multiple.
fn frames(text: &str) -> Vec<u8> {
    let mut pcm = speech::to_bytes(&speech::synthesize(text, 8000));
    pcm.resize(pcm.len().div_ceil(320) * 320, 0);
    pcm
}

// ---------------------------------------------------------------------------------------------
// The callee

fn config(persona: Persona) -> CalleeConfig {
    CalleeConfig {
        persona,
        seed: 7,
        max_duration: Duration::from_secs(20),
        patience: Duration::from_secs(1),
        ..CalleeConfig::default()
    }
}

fn start_info() -> StartInfo {
    StartInfo::new("CA1", "+919876543210", "+918044556677")
}

fn dial(url: String, config: CalleeConfig) -> JoinHandle<CallReport> {
    tokio::spawn(async move {
        callee::run_call(&url, start_info(), config)
            .await
            .expect("the stream starts")
    })
}

async fn ended(call: JoinHandle<CallReport>) -> CallReport {
    tokio::time::timeout(WAIT * 2, call)
        .await
        .expect("the call ends")
        .unwrap()
}

/// A greeting, the callee's first line as the bot recovers it, then the bot hangs up.
async fn first_line(persona: Persona, language: Language, greeting: &str) -> (String, CallReport) {
    let bot = Bot::new().await;
    let mut cfg = config(persona);
    cfg.language = language;
    let call = dial(format!("{}/media", bot.base), cfg);
    let mut conn = bot.accept().await;
    conn.started().await;
    conn.say_paced(greeting, "greeting");
    let line = conn.hear_line(0).await;
    conn.close();
    (line, ended(call).await)
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn callee_sends_connected_start_then_a_media_frame_every_100_ms() {
    let bot = Bot::new().await;
    let url = format!(
        "{}/media?call_id=42&campaign=7&token=abc&extra=1",
        bot.base.replace("ws://", "ws://user:s3cret@")
    );
    let mut cfg = config(Persona::Silent);
    cfg.max_duration = Duration::from_millis(1_500);
    let call = dial(url, cfg);
    let mut conn = bot.accept().await;
    let start = conn.started().await;
    conn.closed().await;
    let report = ended(call).await;

    assert_eq!(
        conn.target,
        "/media?call_id=42&campaign=7&token=abc&extra=1"
    );
    assert_eq!(
        conn.authorization.as_deref(),
        Some(format!("Basic {}", B64.encode("user:s3cret")).as_str())
    );
    let log = conn.log.lock().unwrap();
    assert_eq!(log.events[0].1, json!({"event": "connected"}));
    assert_eq!(log.events[1].1["event"], "start");
    let sid = start["stream_sid"].as_str().unwrap();
    assert!(sid.starts_with("MZ"), "{sid}");
    assert_eq!(start["sequence_number"], "1");
    assert_eq!(
        start["start"],
        json!({
            "stream_sid": sid, "call_sid": "CA1", "account_sid": "emulated-account",
            "from": "+919876543210", "to": "+918044556677",
            "custom_parameters": {"call_id": "42", "campaign": "7", "token": "abc"},
            "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"}
        })
    );
    let media: Vec<(Instant, &Value)> = log
        .events
        .iter()
        .filter(|(_, v)| v["event"] == "media")
        .map(|(t, v)| (*t, v))
        .collect();
    assert!((12..=16).contains(&media.len()), "{} frames", media.len());
    for (i, (_, m)) in media.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(m["stream_sid"], sid);
        assert_eq!(m["sequence_number"], (n + 1).to_string());
        assert_eq!(m["media"]["chunk"], n.to_string());
        assert_eq!(m["media"]["timestamp"], (n * 100).to_string());
        let pcm = B64.decode(m["media"]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(pcm.len(), 1_600, "100 ms at 8 kHz");
        assert!(pcm.iter().all(|b| *b == 0), "a silent person sends silence");
    }
    let span = media.last().unwrap().0 - media[0].0;
    let expected = Duration::from_millis(100) * (media.len() as u32 - 1);
    assert!(
        span + Duration::from_millis(300) > expected
            && span < expected + Duration::from_millis(300),
        "{span:?} for {} frames",
        media.len()
    );
    let stop = log.of("stop");
    assert_eq!(stop.len(), 1);
    assert_eq!(
        *stop[0],
        json!({"event": "stop", "sequence_number": (media.len() + 2).to_string(), "stream_sid": sid,
               "stop": {"call_sid": "CA1", "account_sid": "emulated-account", "reason": "stopped"}})
    );
    assert_eq!(report.ended_by, EndedBy::MaxDuration);
    assert_eq!(report.stats.frames_sent, media.len() as u64);
    assert!(report.said.is_empty());
}

#[tokio::test]
async fn marks_are_echoed_only_after_the_audio_before_them_has_played() {
    let bot = Bot::new().await;
    let call = dial(format!("{}/media", bot.base), config(Persona::Silent));
    let mut conn = bot.accept().await;
    let sid = conn.started().await["stream_sid"].clone();
    let sent = Instant::now();
    conn.say_now("abcdefghijklmnop", "m1"); // 16 symbols: 960 ms
    let echoed = conn.mark_echoed("m1").await;
    conn.close();
    let report = ended(call).await;

    let played = echoed - sent;
    assert!(
        played >= Duration::from_millis(930) && played < Duration::from_millis(1_500),
        "mark echoed after {played:?}"
    );
    let log = conn.log.lock().unwrap();
    let echo = log.of("mark")[0].clone();
    assert_eq!(echo["stream_sid"], sid);
    assert_eq!(echo["mark"], json!({"name": "m1"}));
    assert!(
        echo["sequence_number"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 1
    );
    assert_eq!(report.ended_by, EndedBy::Bot);
    assert_eq!(report.heard, ["abcdefghijklmnop"]);
    assert_eq!(report.stats.marks_echoed, 1);
    assert_eq!(report.stats.frames_received, 5);
    assert_eq!(report.violations.total(), 0, "{:?}", report.violations);
}

#[tokio::test]
async fn clear_drops_unplayed_audio_and_pending_marks() {
    let bot = Bot::new().await;
    let call = dial(format!("{}/media", bot.base), config(Persona::Silent));
    let mut conn = bot.accept().await;
    conn.started().await;
    let sentence = "The quick brown fox jumps over the lazy dog.";
    conn.say_now(sentence, "long");
    tokio::time::sleep(Duration::from_millis(500)).await;
    conn.clear();
    conn.say_now("ok", "short");
    conn.mark_echoed("short").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.clear(); // nothing is playing any more
    conn.mark("last");
    conn.mark_echoed("last").await;
    conn.close();
    let report = ended(call).await;

    assert_eq!(conn.log.lock().unwrap().mark_echo("long"), None);
    let heard = report.heard_text();
    assert!(
        heard.starts_with("The qu") && heard.ends_with("ok"),
        "{heard}"
    );
    assert!(
        heard.len() < 20,
        "only ~0.5 s of the sentence was played: {heard}"
    );
    assert_eq!(report.stats.clears_received, 2);
    assert_eq!(report.stats.useless_clears, 1);
    assert_eq!(report.stats.marks_cancelled, 1);
    assert_eq!(report.stats.marks_echoed, 2);
}

#[tokio::test]
async fn violations_in_what_the_bot_sends_are_counted() {
    let bot = Bot::new().await;
    let call = dial(format!("{}/media", bot.base), config(Persona::Silent));
    let mut conn = bot.accept().await;
    conn.started().await;
    let sid = conn.sid.clone();
    conn.media(&[0; 321]); // not a 320 multiple
    conn.send(json!({"event": "media", "stream_sid": sid, "media": {"payload": "!!not base64!!"}}));
    conn.media(&[0; 100]); // too small, not a multiple
    conn.media(&vec![0; 320 * 313]); // over 100,000 bytes
    conn.send(json!({"event": "playAudio", "stream_sid": sid}));
    conn.send(json!({"event": "media", "media": {"payload": B64.encode([0u8; 320])}}));
    conn.send(json!({"event": "mark", "stream_sid": "MZother", "mark": {"name": "x"}}));
    conn.raw("not json");
    conn.send(json!({"event": "media", "stream_sid": sid}));
    let _ = conn.out.send(Message::binary(vec![0u8; 320]));
    conn.clear(); // no need to sit through 6 s of silence
    conn.mark("sync");
    conn.mark_echoed("sync").await;
    conn.close();
    let v = ended(call).await.violations;

    assert_eq!(v.misaligned_payload, 2);
    assert_eq!(v.undersized_payload, 1);
    assert_eq!(v.oversized_payload, 1);
    assert_eq!(v.bad_base64, 1);
    assert_eq!(v.unknown_event, 1);
    assert_eq!(v.missing_stream_sid, 1);
    assert_eq!(v.wrong_stream_sid, 1);
    assert_eq!(v.bad_json, 1);
    assert_eq!(v.malformed, 1);
    assert_eq!(v.binary_frames, 1);
    assert_eq!(v.total(), 11);
}

#[tokio::test]
async fn each_persona_first_line_is_what_the_bot_hears() {
    let personas = [
        Persona::Interested,
        Persona::NotInterested,
        Persona::Callback,
        Persona::WrongNumber,
        Persona::DoNotCall,
    ];
    let calls = personas.map(|p| tokio::spawn(first_line(p, Language::En, "Hello, this is Asha.")));
    for (persona, call) in personas.into_iter().zip(calls) {
        let (line, report) = call.await.unwrap();
        let expected = persona.first_line(Language::En).unwrap();
        assert_eq!(line, expected, "{persona}");
        assert_eq!(report.heard, ["Hello, this is Asha."], "{persona}");
        assert_eq!(report.said(LineKind::Turn), [expected], "{persona}");
        assert!(
            !report.said[0].over_agent_audio,
            "{persona} waited its turn"
        );
        assert_eq!(report.ended_by, EndedBy::Bot);
        assert_eq!(report.stats.late_frames, 0, "{persona}");
        let first_audio = report.first_agent_audio.expect("agent audio");
        assert!(first_audio < Duration::from_secs(1), "{first_audio:?}");
    }
}

#[tokio::test]
async fn voicemail_speaks_first_and_silent_never_speaks() {
    let voicemail = tokio::spawn(async {
        let bot = Bot::new().await;
        let call = dial(format!("{}/media", bot.base), config(Persona::Voicemail));
        let mut conn = bot.accept().await;
        conn.started().await;
        let line = conn
            .until("the first sentence", |l| {
                let t = l.text_from(0);
                t.find('.').map(|i| t[..=i].to_string())
            })
            .await;
        conn.close();
        (line, ended(call).await)
    });
    let bot = Bot::new().await;
    let call = dial(format!("{}/media", bot.base), config(Persona::Silent));
    let mut conn = bot.accept().await;
    conn.started().await;
    conn.say_paced("Hello?", "greeting");
    conn.mark_echoed("greeting").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    conn.close();
    let silent = ended(call).await;

    assert_eq!(conn.heard_count(), 0);
    assert!(silent.said.is_empty());
    assert_eq!(silent.heard, ["Hello?"]);
    let (line, report) = voicemail.await.unwrap();
    assert_eq!(line, "The person you are calling is not available.");
    assert_eq!(report.said[0].kind, LineKind::Voicemail);
}

#[tokio::test]
async fn interested_person_answers_a_question_and_the_gap_is_measured() {
    let bot = Bot::new().await;
    let call = dial(format!("{}/media", bot.base), config(Persona::Interested));
    let mut conn = bot.accept().await;
    conn.started().await;
    conn.say_paced("Hi, I am Asha.", "t1");
    let first = conn.hear_line(0).await;
    let n = conn.heard_count();
    conn.say_now("Can we meet at 5?", "t2");
    let second = conn.hear_line(n).await;
    conn.close();
    let report = ended(call).await;

    assert_eq!(first, "Yes, I am interested. Tell me more.");
    assert_eq!(second, "Yes, that works for me.");
    assert_eq!(report.heard, ["Hi, I am Asha.", "Can we meet at 5?"]);
    assert_eq!(
        report.voice_to_voice.len(),
        1,
        "{:?}",
        report.voice_to_voice
    );
    // The bot answered only after noticing 400 ms of silence, in frames of 100 ms.
    let gap = report.voice_to_voice[0];
    assert!(
        gap >= Duration::from_millis(300) && gap < Duration::from_millis(1_500),
        "{gap:?}"
    );
}

#[tokio::test]
async fn backchannel_happens_while_agent_audio_is_playing() {
    let bot = Bot::new().await;
    let call = dial(format!("{}/media", bot.base), config(Persona::Backchannel));
    let mut conn = bot.accept().await;
    conn.started().await;
    let greeting = "Hello, I am calling from Sunrise Solar.";
    conn.say_paced(greeting, "greeting");
    let first_heard = conn
        .until("a backchannel", |l| l.heard.first().map(|(t, _)| *t))
        .await;
    let greeting_played = conn.mark_echoed("greeting").await;
    let answer = conn
        .until("the answer", |l| {
            let text = l.text_from(0);
            text.ends_with("Tell me more.").then_some(text)
        })
        .await;
    conn.close();
    let report = ended(call).await;

    assert!(
        first_heard < greeting_played,
        "the backchannel came during the greeting"
    );
    let backchannels = report.said(LineKind::Backchannel);
    assert!(!backchannels.is_empty());
    for word in &backchannels {
        assert!(["haan", "hmm", "ok"].contains(word), "{word}");
    }
    assert!(
        report
            .said
            .iter()
            .filter(|l| l.kind == LineKind::Backchannel)
            .all(|l| l.over_agent_audio && l.duration < Duration::from_millis(500))
    );
    assert!(answer.starts_with(backchannels[0]), "{answer}");
    assert_eq!(
        report.said(LineKind::Turn),
        ["Yes, I am interested. Tell me more."]
    );
    assert_eq!(report.heard, [greeting]);
    assert_eq!(report.stats.late_frames, 0);
}

#[tokio::test]
async fn interrupts_persona_talks_over_the_greeting() {
    let bot = Bot::new().await;
    let call = dial(format!("{}/media", bot.base), config(Persona::Interrupts));
    let mut conn = bot.accept().await;
    conn.started().await;
    let greeting = "Hello, I am calling from Sunrise Solar about rooftop panels for you.";
    let speaker = conn.say_paced(greeting, "greeting");
    conn.until("the callee to talk", |l| l.heard.first().map(|_| ()))
        .await;
    // Barge-in: stop sending and flush what is queued at the carrier.
    speaker.abort();
    conn.clear();
    let interruption = conn.hear_line(0).await;
    let n = conn.heard_count();
    conn.say_now("Solar panels.", "answer");
    let next = conn.hear_line(n).await;
    conn.close();
    let report = ended(call).await;

    assert_eq!(interruption, "Wait, wait, what is this about?");
    assert_eq!(next, "Yes, I am interested. Tell me more.");
    assert_eq!(report.said[0].kind, LineKind::Interruption);
    assert!(report.said[0].over_agent_audio);
    assert_eq!(report.stats.marks_cancelled + report.stats.marks_echoed, 1);
    assert_eq!(report.stats.useless_clears, 0);
    let heard_greeting = &report.heard[0];
    assert!(
        greeting.starts_with(heard_greeting.as_str()) && heard_greeting.len() < greeting.len(),
        "the greeting was cut: {heard_greeting}"
    );
}

#[tokio::test]
async fn hangs_up_persona_sends_stop_callended_mid_sentence() {
    let bot = Bot::new().await;
    let call = dial(format!("{}/media", bot.base), config(Persona::HangsUp));
    let mut conn = bot.accept().await;
    let sid = conn.started().await["stream_sid"].clone();
    conn.closed().await;
    let report = ended(call).await;

    let log = conn.log.lock().unwrap();
    let stop = log.of("stop");
    assert_eq!(stop.len(), 1);
    assert_eq!(stop[0]["stream_sid"], sid);
    assert_eq!(
        stop[0]["stop"],
        json!({"call_sid": "CA1", "account_sid": "emulated-account", "reason": "callended"})
    );
    let heard = log.text_from(0);
    assert!(heard.starts_with("Hello, who is"), "{heard}");
    assert!(heard.len() < "Hello, who is this?".len(), "{heard}");
    assert_eq!(report.ended_by, EndedBy::Callee);
    assert_eq!(report.said[0].text, heard);
    assert!(
        report.duration >= Duration::from_secs(1) && report.duration < Duration::from_secs(3),
        "{:?}",
        report.duration
    );
}

#[tokio::test]
async fn the_bot_closing_the_socket_ends_the_call() {
    let bot = Bot::new().await;
    let polite = dial(format!("{}/media", bot.base), config(Persona::Silent));
    let mut conn = bot.accept().await;
    conn.started().await;
    conn.say_now("Goodbye.", "bye");
    conn.mark_echoed("bye").await;
    conn.close();
    let polite = ended(polite).await;

    let hasty = dial(format!("{}/media", bot.base), config(Persona::Silent));
    let mut conn = bot.accept().await;
    conn.started().await;
    conn.say_now("Goodbye and have a nice day.", "bye");
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.close();
    let hasty = ended(hasty).await;

    assert_eq!(polite.ended_by, EndedBy::Bot);
    assert_eq!(polite.heard, ["Goodbye."]);
    assert_eq!(polite.stats.unplayed_at_end, Duration::ZERO);
    assert_eq!(polite.error, None);
    assert_eq!(hasty.ended_by, EndedBy::Bot);
    assert!(hasty.stats.unplayed_at_end > Duration::from_millis(1_000));
    assert_eq!(hasty.stats.marks_pending_at_end, 1);
    assert!(hasty.heard_text().len() < 8, "{}", hasty.heard_text());
}

#[tokio::test]
async fn hindi_lines_round_trip() {
    let greeting = "नमस्ते, मैं आशा बोल रही हूँ।";
    let (line, report) = first_line(Persona::Interested, Language::Hi, greeting).await;

    assert_eq!(line, "हाँ, मुझे दिलचस्पी है। और बताइए।");
    assert_eq!(report.heard, [greeting]);
    assert_eq!(report.said(LineKind::Turn), [line.as_str()]);
}

// ---------------------------------------------------------------------------------------------
// Through the Exotel REST emulator

#[tokio::test]
async fn exotel_emulator_holds_the_conversation_and_reports_it() {
    // A bot that greets every caller, listens to one sentence and hangs up.
    let bot = Bot::new().await;
    let bot_base = bot.base.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = bot.listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut conn = accept(tcp).await;
                conn.started().await;
                conn.say_now("Hello?", "greeting");
                conn.until("a sentence", |l| {
                    l.text_from(0).contains(['.', '?']).then_some(())
                })
                .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                conn.close();
            });
        }
    });
    // Where Exotel sends its status callbacks.
    let callbacks: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = callbacks.clone();
    let hooks = axum::Router::new().route(
        "/cb",
        post(move |Json(v): Json<Value>| async move {
            sink.lock().unwrap().push(v);
        }),
    );
    let hooks = voice_agent::emulators::serve(hooks, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = ExotelConfig {
        ring_delay: Duration::from_millis(50),
        media_url: Some(format!("{bot_base}/media?call_id=flow")),
        callee: CalleeConfig {
            patience: Duration::from_secs(1),
            ..CalleeConfig::default()
        },
        personas: HashMap::from([
            ("+919800000001".to_string(), Persona::Voicemail),
            ("+919800000002".to_string(), Persona::Busy),
        ]),
        ..ExotelConfig::default()
    };
    let (emulator, handle) = exotel::spawn(config.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut sids = HashMap::new();
    for (number, stream_url) in [
        ("+919800000001", None),
        ("+919800000002", None),
        ("+919800000003", None),
        (
            "+919800000004",
            Some(format!("{bot_base}/media?call_id=direct")),
        ),
    ] {
        let mut form = vec![
            ("From", number.to_string()),
            ("CallerId", "+918044556677".to_string()),
            ("StatusCallback", format!("{}/cb", hooks.http_url())),
            ("StatusCallbackEvents[]", "terminal".to_string()),
            ("StatusCallbackContentType", "application/json".to_string()),
        ];
        match stream_url {
            Some(url) => form.push(("StreamUrl", url)),
            None => form.push(("Url", "http://my.exotel.com/exoml/start_voice/1".into())),
        }
        let res: Value = http
            .post(format!(
                "{}/v1/Accounts/{}/Calls/connect.json",
                emulator.http_url(),
                config.account_sid
            ))
            .basic_auth(&config.api_key, Some(&config.api_token))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sids.insert(number, res["Call"]["Sid"].as_str().unwrap().to_string());
    }
    let deadline = Instant::now() + WAIT;
    while callbacks.lock().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "four terminal callbacks");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let by_sid: HashMap<String, Value> = callbacks
        .lock()
        .unwrap()
        .iter()
        .map(|v| (v["CallSid"].as_str().unwrap().to_string(), v.clone()))
        .collect();
    let cb = |number: &str| &by_sid[&sids[number]];
    assert_eq!(cb("+919800000002")["Status"], "busy");
    assert_eq!(cb("+919800000001")["Legs"][0]["AnsweredBy"], "Machine");
    let human = cb("+919800000003");
    assert_eq!(human["Status"], "completed");
    assert_eq!(human["Legs"][0]["AnsweredBy"], "Human");
    let talked: u64 = human["ConversationDuration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&talked), "{talked} s");

    assert_eq!(handle.conversations(), 3);
    assert_eq!(handle.media_failures(), 0);
    assert_eq!(handle.violations().total(), 0);
    let interested = handle.report(&sids["+919800000003"]).expect("report");
    assert_eq!(interested.ended_by, EndedBy::Bot);
    assert_eq!(interested.heard, ["Hello?"]);
    // The bot hung up after the first sentence, cutting the person off.
    let said = interested.said(LineKind::Turn);
    assert!(said[0].starts_with("Yes, I am interested."), "{said:?}");
    assert_eq!(
        interested.custom_parameters,
        [("call_id".to_string(), "flow".to_string())]
    );
    let direct = handle.report(&sids["+919800000004"]).expect("report");
    assert_eq!(
        direct.custom_parameters,
        [("call_id".to_string(), "direct".to_string())]
    );
    let voicemail = handle.report(&sids["+919800000001"]).expect("report");
    assert_eq!(voicemail.said[0].kind, LineKind::Voicemail);
    assert_eq!(handle.reports().len(), 3);
}

/// The cadence check in a size CI runs every time: 100 silent calls for 2 s, each sending its
/// 100 ms frames on time (20 expected; a stalled sender falls short, a bursting one goes over).
#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_silent_calls_keep_their_cadence() {
    silent_calls_keep_their_cadence(100, Duration::from_secs(2), 18..=21).await;
}

/// Scale check, run by hand: `cargo test --test callee -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a load check: 1,000 concurrent calls for 5 s"]
async fn a_thousand_silent_calls_keep_their_cadence() {
    silent_calls_keep_their_cadence(1_000, Duration::from_secs(5), 45..=52).await;
}

/// `calls` silent callees for `length` against a sink that reads everything; each must have
/// sent a number of frames within `expected`.
async fn silent_calls_keep_their_cadence(
    calls: usize,
    length: Duration,
    expected: std::ops::RangeInclusive<u64>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    let started = std::time::Instant::now();
    let cpu = || std::fs::read_to_string("/proc/self/stat").unwrap();
    let before = cpu();
    let dialled: Vec<_> = (0..calls)
        .map(|_| {
            let mut cfg = config(Persona::Silent);
            cfg.max_duration = length;
            dial(format!("{base}/media"), cfg)
        })
        .collect();
    let mut frames = Vec::new();
    for call in dialled {
        frames.push(ended(call).await.stats.frames_sent);
    }
    let ticks = |stat: String| -> u64 {
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let cpu_s = (ticks(cpu()) - ticks(before)) as f64 / 100.0;
    println!(
        "{calls} calls in {:?}; frames per call min {} max {}; CPU {cpu_s:.1} s",
        started.elapsed(),
        frames.iter().min().unwrap(),
        frames.iter().max().unwrap()
    );
    assert!(frames.iter().all(|f| expected.contains(f)), "{frames:?}");
}
