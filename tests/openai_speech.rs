//! The OpenAI-compatible TTS vendor against its emulator, over local sockets: each phrase one
//! request, resampled from the server's 24 kHz to the call's 8 kHz, spoken in order, cut by a
//! barge-in, failures reported as the port's events.

use std::time::Duration;

use voice_agent::config::Secret;
use voice_agent::emulators::openai_speech::{self as emulator, Config, Faults, Handle};
use voice_agent::emulators::{Running, speech};
use voice_agent::metrics::ProviderMetrics;
use voice_agent::providers::openai_speech::{OpenAiSpeech, SpeechConfig};
use voice_agent::voice::tts::{
    self, AudioFormat, TtsEvent, TtsOptions, TtsSession, TtsVendor, TurnId,
};
use voice_agent::voice::{ErrorKind, Provider};

const WAIT: Duration = Duration::from_secs(10);

async fn start(config: Config) -> (Running, Handle, SpeechConfig) {
    let key = config.api_key.clone();
    let (running, handle) = emulator::spawn(config).await.expect("emulator starts");
    let client = SpeechConfig {
        base_url: format!("{}/v1", running.http_url()),
        api_key: key.map(Secret::new),
        model: "gpt-4o-mini-tts".into(),
        voice: "alloy".into(),
        sample_rate: 24_000,
        connect_timeout: Duration::from_secs(2),
        stall_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
    };
    (running, handle, client)
}

async fn open(config: SpeechConfig, metrics: &ProviderMetrics) -> Box<dyn TtsSession> {
    let vendor = OpenAiSpeech::new(config, reqwest::Client::new(), metrics.clone());
    let options = TtsOptions {
        voice: None,
        language: "en-IN".into(),
        format: AudioFormat::Pcm16 { sample_rate: 8000 },
    };
    vendor.open(&options).await.expect("session opens")
}

async fn next(session: &mut Box<dyn TtsSession>) -> TtsEvent {
    tokio::time::timeout(WAIT, tts::next_event(session.as_mut()))
        .await
        .expect("an event in time")
        .expect("session open")
}

fn text_of(pcm: &[u8]) -> String {
    speech::transcribe(&speech::from_bytes(pcm))
}

#[tokio::test]
async fn phrases_are_spoken_in_order_at_the_calls_rate_with_progress_after_each() {
    let (_emu, handle, config) = start(Config::fast()).await;
    let metrics = ProviderMetrics::default();
    let mut session = open(config, &metrics).await;
    let turn = TurnId(1);
    session.start_turn(turn).unwrap();
    session.send_text("Namaste Asha. ").unwrap();
    session.send_text("Do you have a minute? ").unwrap();
    session.end_turn().unwrap();

    let mut audio = Vec::new();
    let mut spoken = Vec::new();
    loop {
        match next(&mut session).await {
            TtsEvent::Audio {
                turn: t,
                pcm,
                alignment,
            } => {
                assert_eq!(t, turn);
                assert!(alignment.is_none(), "this endpoint gives no alignment");
                assert_eq!(pcm.len() % 2, 0, "whole samples");
                audio.extend_from_slice(&pcm);
            }
            TtsEvent::Spoken { turn: t, chars } => {
                assert_eq!(t, turn);
                spoken.push((chars, text_of(&audio)));
            }
            TtsEvent::TurnDone {
                turn: t,
                first_audio,
            } => {
                assert_eq!(t, turn);
                assert!(first_audio.is_some());
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The phrases' marks can follow each phrase: its audio is all in when `Spoken` comes.
    assert_eq!(
        spoken,
        [
            (14, "Namaste Asha.".to_string()),
            (36, "Namaste Asha.Do you have a minute?".to_string())
        ]
    );
    // 8 kHz: a third of the server's samples.
    let symbols = "Namaste Asha.Do you have a minute?".chars().count();
    assert_eq!(audio.len(), symbols * speech::symbol_samples(8000) * 2);
    let stats = handle.stats();
    assert_eq!(stats.inputs, ["Namaste Asha.", "Do you have a minute?"]);
    assert_eq!(stats.completed, 2);
}

#[tokio::test]
async fn a_barge_in_aborts_the_request_and_drops_its_audio() {
    let mut emu = Config::fast();
    emu.real_time_factor = 0.5; // slow enough to be cut mid-phrase
    let (_emu, handle, config) = start(emu).await;
    let metrics = ProviderMetrics::default();
    let mut session = open(config, &metrics).await;
    session.start_turn(TurnId(1)).unwrap();
    session
        .send_text("Our panels come with a twenty five year warranty and free servicing. ")
        .unwrap();
    session.end_turn().unwrap();
    match next(&mut session).await {
        TtsEvent::Audio { turn, .. } => assert_eq!(turn, TurnId(1)),
        other => panic!("expected audio, got {other:?}"),
    }

    session.cancel_turn().unwrap();
    session.start_turn(TurnId(2)).unwrap();
    session.send_text("Sorry, go ahead. ").unwrap();
    session.end_turn().unwrap();
    let mut audio = Vec::new();
    loop {
        match next(&mut session).await {
            TtsEvent::Audio { turn, pcm, .. } => {
                assert_eq!(turn, TurnId(2), "nothing more of the cut turn");
                audio.extend_from_slice(&pcm);
            }
            TtsEvent::Spoken { .. } => {}
            TtsEvent::TurnDone { turn, .. } => {
                assert_eq!(turn, TurnId(2));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(text_of(&audio), "Sorry, go ahead.");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(handle.stats().aborted, 1, "the cut request was aborted");
}

#[tokio::test]
async fn a_failing_server_fails_the_turn_and_the_next_turn_works() {
    let emu = Config {
        faults: Faults {
            fail_first: 1,
            ..Faults::default()
        },
        ..Config::fast()
    };
    let (_emu, _handle, config) = start(emu).await;
    let metrics = ProviderMetrics::default();
    let mut session = open(config, &metrics).await;
    session.start_turn(TurnId(1)).unwrap();
    session.send_text("Hello there. ").unwrap();
    session.end_turn().unwrap();
    match next(&mut session).await {
        TtsEvent::Error { turn, message } => {
            assert_eq!(turn, Some(TurnId(1)));
            assert!(message.contains("500"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(
        metrics.errors_of(Provider::OpenAiSpeech, ErrorKind::Http5xx),
        1
    );

    session.start_turn(TurnId(2)).unwrap();
    session.send_text("Hello again. ").unwrap();
    session.end_turn().unwrap();
    let mut audio = Vec::new();
    loop {
        match next(&mut session).await {
            TtsEvent::Audio { pcm, .. } => audio.extend_from_slice(&pcm),
            TtsEvent::Spoken { .. } => {}
            TtsEvent::TurnDone { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(text_of(&audio), "Hello again.");
}

#[tokio::test]
async fn a_server_that_never_answers_fails_the_turn_within_its_bound() {
    let emu = Config {
        faults: Faults {
            hang_first: 1,
            ..Faults::default()
        },
        ..Config::fast()
    };
    let (_emu, _handle, config) = start(emu).await;
    let metrics = ProviderMetrics::default();
    let mut session = open(config, &metrics).await;
    session.start_turn(TurnId(1)).unwrap();
    session.send_text("Hello there. ").unwrap();
    session.end_turn().unwrap();
    let started = std::time::Instant::now();
    match next(&mut session).await {
        TtsEvent::Error { turn, .. } => assert_eq!(turn, Some(TurnId(1))),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "its connect timeout"
    );
    assert_eq!(
        metrics.errors_of(Provider::OpenAiSpeech, ErrorKind::Timeout),
        1
    );
}

#[tokio::test]
async fn the_key_is_sent_and_a_server_at_the_calls_rate_passes_through() {
    let emu = Config {
        api_key: Some("sk-speech".into()),
        sample_rate: 8000,
        ..Config::fast()
    };
    let (_emu, handle, mut config) = start(emu).await;
    config.sample_rate = 8000;
    let metrics = ProviderMetrics::default();
    let mut session = open(config, &metrics).await;
    session.start_turn(TurnId(1)).unwrap();
    session.send_text("हाँ जी, बोलिए। ").unwrap();
    session.end_turn().unwrap();
    let mut audio = Vec::new();
    loop {
        match next(&mut session).await {
            TtsEvent::Audio { pcm, .. } => audio.extend_from_slice(&pcm),
            TtsEvent::Spoken { .. } => {}
            TtsEvent::TurnDone { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        audio,
        speech::to_bytes(&speech::synthesize("हाँ जी, बोलिए।", 8000))
    );
    assert_eq!(handle.stats().completed, 1);
}
