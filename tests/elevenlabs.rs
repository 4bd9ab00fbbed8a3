//! The real ElevenLabs client against the ElevenLabs emulator, over local sockets.
//!
//! Audio is emulated speech (`speech::synthesize`), so every test can check the exact text the
//! caller would hear.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use voice_agent::config::Secret;
use voice_agent::emulators::Running;
use voice_agent::emulators::elevenlabs::{
    self as emulator, BusyKind, Config, FinalAfter, Handle, Lifecycle,
};
use voice_agent::emulators::speech;
use voice_agent::metrics::ProviderMetrics;
use voice_agent::providers::elevenlabs::{
    ElevenLabs, ElevenLabsConfig, ElevenLabsError, OutputFormat, RetryAdvice, TtsSession,
};
use voice_agent::voice::tts::{self, TtsEvent, TtsSession as _, TurnId};
use voice_agent::voice::{ErrorKind, Provider, ReconnectKind};

const VOICE: &str = "voice-1";
const WAIT: Duration = Duration::from_secs(10);

async fn start(config: Config) -> (Running, Handle, ElevenLabsConfig) {
    let (running, handle) = emulator::spawn(config).await.expect("emulator starts");
    let key = Secret::new(handle.config().api_key.clone());
    let mut client = ElevenLabsConfig::new(&running.http_url(), key, VOICE);
    client.connect_timeout = Duration::from_secs(3);
    (running, handle, client)
}

fn pcm_text(bytes: &[u8]) -> String {
    speech::transcribe(&speech::from_bytes(bytes))
}

/// A session with its own metrics, which a test may read.
async fn connect(config: ElevenLabsConfig) -> (TtsSession, ProviderMetrics) {
    let metrics = ProviderMetrics::default();
    let session = TtsSession::connect(config, reqwest::Client::new(), metrics.clone())
        .await
        .unwrap();
    (session, metrics)
}

async fn next_event(session: &mut TtsSession) -> TtsEvent {
    tokio::time::timeout(WAIT, tts::next_event(session))
        .await
        .expect("an event in time")
        .expect("session still running")
}

/// A new turn id for each turn of a test.
fn new_turn() -> TurnId {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    TurnId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Audio of `turn` until its `TurnDone`; panics on an error or on audio of another turn.
async fn speak_turn(session: &mut TtsSession, turn: TurnId) -> Vec<u8> {
    let mut audio = Vec::new();
    loop {
        match next_event(session).await {
            TtsEvent::Audio { turn: of, pcm, .. } => {
                assert_eq!(of, turn, "audio of another turn leaked");
                assert_eq!(pcm.len() % 2, 0, "whole samples");
                audio.extend_from_slice(&pcm);
            }
            TtsEvent::Spoken { turn: of, .. } if of == turn => {}
            TtsEvent::TurnDone { turn: of, .. } if of == turn => return audio,
            other => panic!("unexpected event {other:?}"),
        }
    }
}

async fn say(session: &mut TtsSession, phrases: &[&str]) -> TurnId {
    let turn = new_turn();
    session.start_turn(turn).unwrap();
    for phrase in phrases {
        session.send_text(phrase).unwrap();
    }
    session.end_turn().unwrap();
    turn
}

/// Polls the emulator's counters until `done` holds (bounded).
async fn until(handle: &Handle, done: impl Fn(&emulator::Stats) -> bool) -> emulator::Stats {
    for _ in 0..200 {
        let stats = handle.stats();
        if done(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.stats()
}

async fn collect(stream: voice_agent::providers::elevenlabs::AudioStream) -> Vec<bytes::Bytes> {
    stream.map(|c| c.expect("audio chunk")).collect().await
}

// ---------------------------------------------------------------------------------------------
// HTTP streaming

#[tokio::test]
async fn http_stream_returns_whole_samples_that_transcribe_to_the_text() {
    let (_emu, handle, config) = start(Config::fast()).await;
    let tts = ElevenLabs::new(reqwest::Client::new(), config);
    let text = "Namaste! We install rooftop solar panels for homes.";

    let chunks = collect(tts.synthesize_stream(text, VOICE).await.unwrap()).await;

    assert!(chunks.len() > 3, "streamed in several chunks");
    assert!(chunks.iter().all(|c| c.len() % 2 == 0), "re-aligned");
    assert!(handle.stats().http_odd_chunks > 0, "server sent odd chunks");
    assert_eq!(pcm_text(&chunks.concat()), text);
}

#[tokio::test]
async fn http_stream_round_trips_hindi() {
    let (_emu, _handle, mut config) = start(Config::fast()).await;
    config.language_code = Some("hi".into());
    let tts = ElevenLabs::new(reqwest::Client::new(), config);
    let text = "नमस्ते, क्या आप सोलर पैनल में रुचि रखते हैं?";

    let chunks = collect(tts.synthesize_stream(text, VOICE).await.unwrap()).await;

    assert_eq!(pcm_text(&chunks.concat()), text);
}

#[tokio::test]
async fn forgotten_output_format_gets_mp3_not_pcm() {
    let (emu, handle, _config) = start(Config::fast()).await;
    let url = format!("{}/v1/text-to-speech/{VOICE}/stream", emu.http_url());

    let response = reqwest::Client::new()
        .post(url)
        .header("xi-api-key", &handle.config().api_key)
        .json(&json!({"text": "Hello there.", "model_id": "eleven_flash_v2_5"}))
        .send()
        .await
        .unwrap();
    let bytes = response.bytes().await.unwrap();

    assert!(bytes.starts_with(b"ID3"), "MP3 by default");
    assert_eq!(pcm_text(&bytes), "", "garbage when read as PCM");
}

#[tokio::test]
async fn ulaw_output_decodes_to_the_synthesized_speech() {
    let (_emu, _handle, mut config) = start(Config::fast()).await;
    config.output_format = OutputFormat::Ulaw8000;
    let tts = ElevenLabs::new(reqwest::Client::new(), config);
    let text = "Twilio wants mu-law.";

    let bytes = collect(tts.synthesize_stream(text, VOICE).await.unwrap())
        .await
        .concat();

    let expected = speech::synthesize(text, 8000);
    assert_eq!(bytes.len(), expected.len(), "one byte per sample");
    for (byte, want) in bytes.iter().zip(&expected) {
        let got = mulaw_decode(*byte) as i32;
        let want = *want as i32;
        // μ-law keeps about 4 significant bits plus exponent: error under 1/16 + a step.
        assert!(
            (got - want).abs() <= want.abs() / 16 + 16,
            "{got} vs {want}"
        );
    }
}

/// Reference G.711 μ-law decoder, independent of the emulator's encoder.
fn mulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

#[tokio::test]
async fn http_429_is_typed_and_retryable() {
    let mut emu_config = Config::fast();
    emu_config.faults.busy_first_http = 2;
    let (_emu, _handle, config) = start(emu_config).await;
    let tts = ElevenLabs::new(reqwest::Client::new(), config);

    let first = tts.synthesize_stream("Hello.", VOICE).await.err().unwrap();
    assert!(
        matches!(first, ElevenLabsError::TooManyConcurrentRequests(_)),
        "{first}"
    );
    assert_eq!(first.retry_advice(), RetryAdvice::Retry);
    assert!(tts.synthesize_stream("Hello.", VOICE).await.is_err());

    let third = tts.synthesize_stream("Hello.", VOICE).await.unwrap();
    assert_eq!(pcm_text(&collect(third).await.concat()), "Hello.");
}

#[tokio::test]
async fn http_system_busy_means_back_off() {
    let mut emu_config = Config::fast();
    emu_config.faults.busy_first_http = 1;
    emu_config.faults.busy_kind = BusyKind::SystemBusy;
    let (_emu, _handle, config) = start(emu_config).await;
    let tts = ElevenLabs::new(reqwest::Client::new(), config);

    let error = tts.synthesize_stream("Hello.", VOICE).await.err().unwrap();

    assert!(matches!(error, ElevenLabsError::SystemBusy(_)), "{error}");
    assert_eq!(error.retry_advice(), RetryAdvice::BackOff);
}

#[tokio::test]
async fn bad_key_is_invalid_api_key_on_http_and_websocket() {
    let (_emu, _handle, mut config) = start(Config::fast()).await;
    config.api_key = Secret::new("wrong");

    let http = ElevenLabs::new(reqwest::Client::new(), config.clone());
    let error = http.synthesize_stream("Hello.", VOICE).await.err().unwrap();
    assert!(
        matches!(error, ElevenLabsError::InvalidApiKey(_)),
        "{error}"
    );
    assert_eq!(error.retry_advice(), RetryAdvice::GiveUp);

    let error = TtsSession::connect(config, reqwest::Client::new(), ProviderMetrics::default())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, ElevenLabsError::InvalidApiKey(_)),
        "{error}"
    );
}

#[tokio::test]
async fn unknown_voice_is_voice_not_found() {
    let mut emu_config = Config::fast();
    emu_config.known_voices = vec![VOICE.into()];
    let (_emu, _handle, config) = start(emu_config).await;
    let tts = ElevenLabs::new(reqwest::Client::new(), config);

    let error = tts
        .synthesize_stream("Hello.", "nobody")
        .await
        .err()
        .unwrap();

    assert!(
        matches!(error, ElevenLabsError::VoiceNotFound(_)),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// WebSocket session

#[tokio::test]
async fn streamed_phrases_are_spoken_with_their_spaces() {
    let (_emu, handle, config) = start(Config::fast()).await;
    let (mut tts, _metrics) = connect(config).await;

    let turn = say(&mut tts, &["Solar.", "We install panels."]).await;
    let audio = speak_turn(&mut tts, turn).await;

    assert_eq!(pcm_text(&audio), "Solar. We install panels. ");
    let stats = handle.stats();
    assert_eq!(stats.texts_received, ["Solar. ", "We install panels. "]);
    assert_eq!(stats.last_ws_output_format.as_deref(), Some("pcm_8000"));
    assert_eq!(stats.last_ws_model.as_deref(), Some("eleven_flash_v2_5"));
}

#[tokio::test]
async fn alignment_matches_the_audio_it_comes_with() {
    let (_emu, _handle, config) = start(Config::fast()).await;
    let (mut tts, _metrics) = connect(config).await;

    let turn = say(&mut tts, &["हाँ जी, बोलिए।"]).await;

    let symbol_bytes = speech::symbol_samples(8000) * 2;
    let mut spoken = String::new();
    loop {
        match next_event(&mut tts).await {
            TtsEvent::Audio { pcm, alignment, .. } => {
                let alignment = alignment.expect("alignment with every chunk");
                assert_eq!(alignment.chars * symbol_bytes, pcm.len());
                assert_eq!(alignment.ends_ms.len(), alignment.chars);
                // Each character ends one symbol after the one before it.
                for (i, end) in alignment.ends_ms.iter().enumerate() {
                    assert_eq!(*end, (i as u32 + 1) * speech::SYMBOL_MS);
                }
                spoken.push_str(&pcm_text(&pcm));
            }
            TtsEvent::TurnDone {
                turn: of,
                first_audio,
            } => {
                assert_eq!(of, turn);
                assert!(first_audio.is_some(), "time to first audio measured");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(spoken, "हाँ जी, बोलिए। ");
}

#[tokio::test]
async fn barge_in_drops_late_audio_and_the_next_turn_uses_the_same_socket() {
    let mut emu_config = Config::fast();
    emu_config.real_time_factor = 0.2;
    emu_config.chars_per_message = 4;
    let (_emu, handle, config) = start(emu_config).await;
    let (mut tts, _metrics) = connect(config).await;
    let long = "Our panels come with a twenty five year warranty. \
                We also handle the subsidy paperwork for you. \
                Installation takes about two days.";

    let first = say(&mut tts, &[long]).await;
    match next_event(&mut tts).await {
        TtsEvent::Audio { turn, .. } => assert_eq!(turn, first),
        other => panic!("expected audio, got {other:?}"),
    }
    tts.cancel_turn().unwrap();
    let second = say(&mut tts, &["Sorry, go ahead."]).await;
    let audio = speak_turn(&mut tts, second).await;

    assert_eq!(pcm_text(&audio), "Sorry, go ahead. ");
    let stats = until(&handle, |s| s.contexts_closed == 2).await;
    assert!(
        stats.audio_after_close >= 1,
        "the emulator did send late audio"
    );
    assert_eq!(stats.ws_connections, 1, "same socket");
    assert_eq!(stats.contexts_closed, 2);
}

#[tokio::test]
async fn contexts_are_closed_after_every_turn() {
    let (_emu, handle, config) = start(Config::fast()).await;
    let (mut tts, _metrics) = connect(config).await;

    for i in 0..7 {
        let phrase = format!("Turn number {i}.");
        let turn = say(&mut tts, &[phrase.as_str()]).await;
        assert_eq!(pcm_text(&speak_turn(&mut tts, turn).await), phrase + " ");
    }

    let stats = until(&handle, |s| s.open_contexts == 0).await;
    assert_eq!(stats.open_contexts, 0);
    assert!(stats.max_open_contexts <= 1, "{}", stats.max_open_contexts);
    assert_eq!(stats.contexts_opened, 7);
    assert_eq!(stats.contexts_closed, 7);
    assert_eq!(stats.ws_connections, 1);
}

#[tokio::test]
async fn an_empty_turn_is_done_without_audio() {
    let (_emu, handle, config) = start(Config::fast()).await;
    let (mut tts, _metrics) = connect(config).await;

    let turn = say(&mut tts, &[]).await;

    assert!(speak_turn(&mut tts, turn).await.is_empty());
    assert_eq!(
        until(&handle, |s| s.open_contexts == 0).await.open_contexts,
        0
    );
}

#[tokio::test]
async fn keepalive_holds_a_slow_turn_and_never_reopens_a_closed_context() {
    let (_emu, handle, mut config) = start(Config::fast()).await;
    config.inactivity_timeout_secs = 1;
    config.keepalive_interval = Duration::from_millis(200);
    let (mut tts, _metrics) = connect(config).await;

    // The model is slow: nothing to say for longer than the inactivity timeout.
    let turn = new_turn();
    tts.start_turn(turn).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tts.send_text("Sorry for the wait.").unwrap();
    tts.end_turn().unwrap();
    assert_eq!(
        pcm_text(&speak_turn(&mut tts, turn).await),
        "Sorry for the wait. "
    );
    // Idle between turns: no keep-alive goes to the closed context, the server drops the socket.
    let stats = until(&handle, |s| !s.ws_errors.is_empty()).await;
    assert_eq!(stats.ws_errors, ["input_timeout_exceeded"]);
    assert_eq!(stats.contexts_opened, 1, "closed context not reopened");
    assert_eq!(stats.contexts_timed_out, 0);

    // The next turn opens a new socket.
    let turn = say(&mut tts, &["Anything else?"]).await;
    assert_eq!(
        pcm_text(&speak_turn(&mut tts, turn).await),
        "Anything else? "
    );
    assert_eq!(handle.stats().ws_connections, 2);
}

/// The socket drops mid-turn: the session finishes the turn itself over the HTTP stream, from
/// where the alignment had got to, counts the drop and the fallback, and the next turn opens a
/// new socket.
#[tokio::test]
async fn a_socket_dropped_mid_turn_is_finished_over_http_and_the_next_turn_reconnects() {
    let mut emu_config = Config::fast();
    emu_config.real_time_factor = 0.5;
    emu_config.chars_per_message = 4;
    emu_config.faults.drop_ws_after = Some(Duration::from_millis(500));
    emu_config.faults.drop_first_ws = 1;
    let (_emu, handle, config) = start(emu_config).await;
    let (mut tts, metrics) = connect(config).await;
    let text = "This sentence is long enough to be cut off by the fault.";

    let turn = say(&mut tts, &[text]).await;
    let audio = speak_turn(&mut tts, turn).await;

    // Every word once: the socket's part, then the rest over HTTP (the seam loses a space).
    let heard: String = pcm_text(&audio).split_whitespace().collect();
    let said: String = text.split_whitespace().collect();
    assert_eq!(heard, said);
    assert_eq!(handle.stats().http_requests, 1, "the rest went over HTTP");
    assert_eq!(
        metrics.errors_of(Provider::ElevenLabs, ErrorKind::Dropped),
        1
    );
    assert_eq!(
        metrics.reconnects_of(Provider::ElevenLabs, ReconnectKind::HttpFallback),
        1
    );

    let turn = say(&mut tts, &["Let me repeat."]).await;
    assert_eq!(
        pcm_text(&speak_turn(&mut tts, turn).await),
        "Let me repeat. "
    );
    assert_eq!(handle.stats().ws_connections, 2);
}

#[tokio::test]
async fn close_ends_the_session() {
    let (_emu, handle, config) = start(Config::fast()).await;
    let (tts, _metrics) = connect(config).await;

    tokio::time::timeout(WAIT, Box::new(tts).close())
        .await
        .expect("closed within its bound");

    assert_eq!(
        until(&handle, |s| s.open_contexts == 0).await.open_contexts,
        0
    );
}

// ---------------------------------------------------------------------------------------------
// A turn's context lifecycle, in every reading the emulator offers

fn with_lifecycle(lifecycle: Lifecycle) -> Config {
    Config {
        lifecycle,
        ..Config::fast()
    }
}

/// The documented reading: `isFinal` only once the context is closed. The client closes it as
/// soon as the turn's text is flushed, so the turn ends right after its audio.
#[tokio::test]
async fn a_turn_ends_when_its_closed_context_says_is_final() {
    let (_emu, handle, config) = start(with_lifecycle(Lifecycle::default())).await;
    let (mut tts, _metrics) = connect(config).await;

    let turn = say(&mut tts, &["Great.", "Do you own your home?"]).await;
    let audio = speak_turn(&mut tts, turn).await;

    assert_eq!(pcm_text(&audio), "Great. Do you own your home? ");
    let stats = until(&handle, |s| s.contexts_closed == 1).await;
    assert_eq!(stats.contexts_closed, 1, "closed right after the flush");
    assert_eq!(stats.open_contexts, 0);
}

/// A server that also says `isFinal` after a flush: a flush in the middle of a turn (the filler
/// before a slow answer) must not end it.
#[tokio::test]
async fn is_final_after_a_mid_turn_flush_does_not_end_the_turn() {
    let lifecycle = Lifecycle {
        is_final: FinalAfter::FlushAndClose,
        ..Lifecycle::default()
    };
    let (_emu, _handle, config) = start(with_lifecycle(lifecycle)).await;
    let (mut tts, _metrics) = connect(config).await;

    let turn = new_turn();
    tts.start_turn(turn).unwrap();
    tts.send_text("Sorry, one moment please.").unwrap();
    tts.flush().unwrap();
    // The filler is spoken (and its isFinal read) before the answer comes.
    let mut audio = Vec::new();
    while pcm_text(&audio) != "Sorry, one moment please. " {
        match next_event(&mut tts).await {
            TtsEvent::Audio { pcm, .. } => audio.extend_from_slice(&pcm),
            other => panic!("unexpected {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    tts.send_text("We install rooftop solar.").unwrap();
    tts.end_turn().unwrap();
    audio.extend(speak_turn(&mut tts, turn).await);

    assert_eq!(
        pcm_text(&audio),
        "Sorry, one moment please. We install rooftop solar. "
    );
}

/// `context_id` instead of `contextId`, and the last chunk marked `is_final_audio_for_turn`
/// with no `isFinal` at all: the turn still ends, and only its own audio is played.
#[tokio::test]
async fn the_other_spellings_end_a_turn_too() {
    let lifecycle = Lifecycle {
        is_final: FinalAfter::Never,
        snake_case_context: true,
        mark_last_audio: true,
    };
    let (_emu, _handle, config) = start(with_lifecycle(lifecycle)).await;
    let (mut tts, _metrics) = connect(config).await;

    for text in ["Namaste.", "Is this a good time?"] {
        let turn = say(&mut tts, &[text]).await;
        assert_eq!(
            pcm_text(&speak_turn(&mut tts, turn).await),
            format!("{text} ")
        );
    }
}

/// A server that never says a context is over: the session plays all the audio and then says
/// nothing more; ending the turn is the pipeline's bounded wait (`media::call::waits`). The
/// next turn still works and no context is left open.
#[tokio::test]
async fn without_is_final_the_audio_still_comes_whole_and_the_next_turn_works() {
    let lifecycle = Lifecycle {
        is_final: FinalAfter::Never,
        ..Lifecycle::default()
    };
    let (_emu, handle, config) = start(with_lifecycle(lifecycle)).await;
    let (mut tts, _metrics) = connect(config).await;

    let first = say(&mut tts, &["Hello there."]).await;
    let mut audio = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(500), tts::next_event(&mut tts)).await
    {
        match event {
            TtsEvent::Audio { turn, pcm, .. } if turn == first => audio.extend_from_slice(&pcm),
            other => panic!("no end of turn comes in this mode: {other:?}"),
        }
    }
    assert_eq!(pcm_text(&audio), "Hello there. ");

    let second = say(&mut tts, &["Anything else?"]).await;
    let mut audio = Vec::new();
    while pcm_text(&audio) != "Anything else? " {
        match next_event(&mut tts).await {
            TtsEvent::Audio { turn, pcm, .. } => {
                assert_eq!(turn, second);
                audio.extend_from_slice(&pcm);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let stats = until(&handle, |s| s.contexts_closed == 2).await;
    assert_eq!((stats.contexts_closed, stats.open_contexts), (2, 0));
    assert_eq!(stats.ws_connections, 1);
}

// ---------------------------------------------------------------------------------------------
// Emulator behaviour a careless client would meet (raw WebSocket)

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_connect(emu: &Running, handle: &Handle, endpoint_and_query: &str) -> RawSocket {
    let url = format!(
        "{}/v1/text-to-speech/{VOICE}/{endpoint_and_query}",
        emu.ws_url()
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("xi-api-key", handle.config().api_key.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

async fn send_json(socket: &mut RawSocket, value: Value) {
    socket.send(Message::text(value.to_string())).await.unwrap();
}

async fn raw_next(socket: &mut RawSocket) -> Message {
    tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("a message in time")
        .expect("socket open")
        .expect("no transport error")
}

fn close_code(message: &Message) -> Option<u16> {
    match message {
        Message::Close(Some(frame)) => Some(frame.code.into()),
        _ => None,
    }
}

#[tokio::test]
async fn chunks_without_trailing_spaces_are_glued_verbatim() {
    let (emu, handle, _config) = start(Config::fast()).await;
    let mut socket = raw_connect(&emu, &handle, "stream-input?output_format=pcm_8000").await;

    send_json(&mut socket, json!({"text": " "})).await;
    send_json(&mut socket, json!({"text": "Solar."})).await;
    send_json(&mut socket, json!({"text": "We install panels."})).await;
    send_json(&mut socket, json!({"text": ""})).await;

    let mut audio = Vec::new();
    loop {
        let message = raw_next(&mut socket).await;
        if let Message::Text(text) = &message {
            let value: Value = serde_json::from_str(text).unwrap();
            if let Some(b64) = value["audio"].as_str() {
                use base64::Engine as _;
                audio.extend(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                );
            }
            if value["isFinal"] == json!(true) {
                break;
            }
        }
    }
    assert_eq!(pcm_text(&audio), "Solar.We install panels.");
    assert_eq!(close_code(&raw_next(&mut socket).await), Some(1000));
}

#[tokio::test]
async fn a_sixth_open_context_closes_the_socket_with_1008() {
    let (emu, handle, _config) = start(Config::fast()).await;
    let mut socket = raw_connect(&emu, &handle, "multi-stream-input?output_format=pcm_8000").await;

    for i in 1..=6 {
        send_json(
            &mut socket,
            json!({"text": " ", "context_id": format!("c{i}")}),
        )
        .await;
    }

    let error = raw_next(&mut socket).await;
    let error: Value = serde_json::from_str(error.to_text().unwrap()).unwrap();
    assert_eq!(error["error"], "max_active_conversations");
    assert_eq!(error["code"], 1008);
    assert_eq!(close_code(&raw_next(&mut socket).await), Some(1008));
    assert_eq!(handle.stats().max_open_contexts, 5);
}

#[tokio::test]
async fn an_idle_socket_is_closed_after_the_inactivity_timeout() {
    let (emu, handle, _config) = start(Config::fast()).await;
    let mut socket = raw_connect(
        &emu,
        &handle,
        "multi-stream-input?output_format=pcm_8000&inactivity_timeout=1",
    )
    .await;

    send_json(&mut socket, json!({"text": " ", "context_id": "c1"})).await;

    let error = raw_next(&mut socket).await;
    let error: Value = serde_json::from_str(error.to_text().unwrap()).unwrap();
    assert_eq!(error["error"], "input_timeout_exceeded");
    assert_eq!(close_code(&raw_next(&mut socket).await), Some(1008));
}
