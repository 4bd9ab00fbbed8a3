//! The real Deepgram client against the Deepgram emulator, over real local sockets.
//!
//! Audio is the emulated speech of `emulators::speech`; it is mostly sent faster than real time,
//! which is fine because the emulator, like Deepgram, works on audio time. Timeouts below only
//! stop a broken test from hanging; nothing asserts on speed.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::time::{sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use voice_agent::config::{DeepgramSettings, Secret};
use voice_agent::emulators::Running;
use voice_agent::emulators::deepgram::{self as emulator, Config, DropAfter, DropFault, Ended};
use voice_agent::emulators::deepgram::{Handle, RejectFault, Stats};
use voice_agent::emulators::speech::{silence, synthesize, to_bytes};
use voice_agent::providers::deepgram::{
    DeepgramClient, ListenOptions, SessionTuning, SttError, SttEvent, SttEvents, SttSession,
    Transcript,
};

const RATE: u32 = 8000;
const KEY: &str = "dg-test-key";
const WAIT: Duration = Duration::from_secs(10);

struct Emulator {
    running: Running,
    handle: Handle,
}

impl Emulator {
    async fn start(config: Config) -> Self {
        let config = Config {
            api_key: Some(KEY.into()),
            ..config
        };
        let (running, handle) = emulator::spawn(config).await.expect("emulator starts");
        Self { running, handle }
    }

    fn client(&self, key: &str, tuning: SessionTuning) -> DeepgramClient {
        DeepgramClient::new(&DeepgramSettings {
            api_key: Some(Secret::new(key)),
            url: format!("{}/v1/listen", self.running.ws_url()),
        })
        .with_tuning(tuning)
    }

    async fn connect(&self, options: &ListenOptions) -> (SttSession, SttEvents) {
        self.client(KEY, tuning())
            .connect(options)
            .await
            .expect("session opens")
    }
}

fn tuning() -> SessionTuning {
    SessionTuning {
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        close_timeout: Duration::from_secs(2),
        ..SessionTuning::default()
    }
}

fn options() -> ListenOptions {
    ListenOptions {
        language: "en-IN".into(),
        endpointing_ms: Some(300),
        utterance_end_ms: Some(1000),
        ..ListenOptions::default()
    }
}

/// PCM bytes of `(text, silence after in ms)` pieces.
fn speech(parts: &[(&str, u32)]) -> Vec<u8> {
    let mut samples = Vec::new();
    for (text, pause) in parts {
        samples.extend(synthesize(text, RATE));
        samples.extend(silence(*pause, RATE));
    }
    to_bytes(&samples)
}

/// Sends `audio` in 100 ms frames, as fast as the queue takes them.
fn send_all(session: &SttSession, audio: &[u8]) {
    for frame in audio.chunks((RATE / 10 * 2) as usize) {
        session
            .send_audio(Bytes::copy_from_slice(frame))
            .expect("frame queued");
    }
}

/// Collects events up to and including the first one for which `done` is true.
async fn until(events: &mut SttEvents, mut done: impl FnMut(&SttEvent) -> bool) -> Vec<SttEvent> {
    let mut seen = Vec::new();
    loop {
        let event = timeout(WAIT, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no expected event; so far: {seen:#?}"))
            .unwrap_or_else(|| panic!("events ended; so far: {seen:#?}"));
        let stop = done(&event);
        seen.push(event);
        if stop {
            return seen;
        }
    }
}

/// The emulator's stats once `ready` holds (it records some things just after the client sees them).
async fn stats_when(handle: &Handle, ready: impl Fn(&Stats) -> bool) -> Stats {
    let poll = async {
        loop {
            let stats = handle.stats();
            if ready(&stats) {
                return stats;
            }
            sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(WAIT, poll)
        .await
        .unwrap_or_else(|_| panic!("emulator never got there: {:?}", handle.stats()))
}

fn speech_final(event: &SttEvent) -> bool {
    matches!(event, SttEvent::Transcript(t) if t.speech_final)
}

/// Final results that carry words.
fn finals(events: &[SttEvent]) -> Vec<&Transcript> {
    events
        .iter()
        .filter_map(|e| match e {
            SttEvent::Transcript(t) if t.is_final && !t.text.is_empty() => Some(t),
            _ => None,
        })
        .collect()
}

fn joined(finals: &[&Transcript]) -> String {
    finals
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn utterance_then_silence_gives_interims_and_one_speech_final() {
    let dg = Emulator::start(Config::default()).await;
    let (session, mut events) = dg.connect(&options()).await;
    let text = "Yes, I am interested in solar panels.";

    send_all(&session, &speech(&[(text, 1000)]));
    let seen = until(&mut events, speech_final).await;

    let interims = seen
        .iter()
        .filter(|e| matches!(e, SttEvent::Transcript(t) if !t.is_final && !t.text.is_empty()));
    assert!(interims.count() >= 2, "{seen:#?}");
    let finals = finals(&seen);
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0].text, text);
    assert_eq!(finals[0].words[0].word, "yes");
    assert_eq!(finals[0].words[0].punctuated_word, "Yes,");
    let query = &dg.handle.stats().queries[0];
    for pair in [("endpointing", "300"), ("interim_results", "true")] {
        assert!(query.contains(&(pair.0.into(), pair.1.into())), "{query:?}");
    }
}

#[tokio::test]
async fn long_utterance_is_finalised_in_pieces_with_only_the_last_speech_final() {
    let dg = Emulator::start(Config::default()).await;
    let (session, mut events) = dg.connect(&options()).await;
    let text = "I have been thinking about putting solar panels on the roof of my house \
                for a long time but the price always seemed too high for us";

    send_all(&session, &speech(&[(text, 800)]));
    let seen = until(&mut events, speech_final).await;

    let finals = finals(&seen);
    assert!(finals.len() >= 2, "expected pieces: {finals:#?}");
    assert!(finals[..finals.len() - 1].iter().all(|t| !t.speech_final));
    assert_eq!(joined(&finals), text);
}

#[tokio::test]
async fn speech_started_marks_each_onset_after_silence_in_audio_time() {
    let dg = Emulator::start(Config::default()).await;
    let (session, mut events) = dg.connect(&options()).await;

    send_all(
        &session,
        &speech(&[("", 500), ("hello", 600), ("again", 800)]),
    );
    let mut starts = Vec::new();
    let seen = until(&mut events, |e| {
        if let SttEvent::SpeechStarted { timestamp } = e {
            starts.push(*timestamp);
        }
        starts.len() == 2
    })
    .await;

    assert!((starts[0] - 0.5).abs() < 0.005, "{seen:#?}");
    assert!((starts[1] - 1.4).abs() < 0.005, "{seen:#?}");
}

#[tokio::test]
async fn utterance_end_reports_the_last_word_when_endpointing_is_off() {
    let dg = Emulator::start(Config::default()).await;
    let options = ListenOptions {
        endpointing_ms: None,
        ..options()
    };
    let (session, mut events) = dg.connect(&options).await;

    send_all(&session, &speech(&[("hello there", 1500)]));
    let seen = until(&mut events, |e| matches!(e, SttEvent::UtteranceEnd { .. })).await;

    let Some(SttEvent::UtteranceEnd { last_word_end }) = seen.last() else {
        unreachable!()
    };
    assert!((last_word_end - 0.66).abs() < 0.005, "{seen:#?}");
    assert!(!seen.iter().any(speech_final), "{seen:#?}");
}

#[tokio::test]
async fn keepalive_holds_an_idle_socket_open_past_the_idle_timeout() {
    let dg = Emulator::start(Config {
        idle_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let tuning = SessionTuning {
        keepalive_every: Duration::from_millis(250),
        ..tuning()
    };
    let (session, mut events) = dg.client(KEY, tuning).connect(&options()).await.unwrap();

    send_all(&session, &speech(&[("hi", 100)]));
    sleep(Duration::from_millis(2500)).await;

    let stats = dg.handle.stats();
    assert!(stats.keepalives >= 3, "{stats:?}");
    assert!(stats.ended.is_empty(), "{stats:?}");
    assert_eq!(session.reconnects(), 0);
    assert!(session.close().await.unwrap().is_some());
    let seen = until(&mut events, |e| matches!(e, SttEvent::Closed { .. })).await;
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, SttEvent::Reconnected { .. }))
    );
}

#[tokio::test]
async fn a_silent_socket_is_closed_with_1011_and_the_client_reconnects() {
    let dg = Emulator::start(Config {
        idle_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let tuning = SessionTuning {
        keepalive_every: Duration::from_secs(60),
        ..tuning()
    };
    let (_session, mut events) = dg.client(KEY, tuning).connect(&options()).await.unwrap();

    until(&mut events, |e| matches!(e, SttEvent::Reconnected { .. })).await;

    let stats = stats_when(&dg.handle, |s| !s.ended.is_empty()).await;
    let Some(Ended::ServerClosed { code, reason }) = stats.ended.first() else {
        panic!("{stats:?}");
    };
    assert_eq!(*code, 1011);
    assert!(reason.contains("NET-0001"), "{reason}");
    assert_eq!(stats.connections, 2);
}

#[tokio::test]
async fn finalize_flushes_pending_words_marked_from_finalize() {
    let dg = Emulator::start(Config::default()).await;
    let (session, mut events) = dg.connect(&options()).await;

    send_all(&session, &speech(&[("call me tomorrow", 0)]));
    session.finalize().unwrap();
    let seen = until(
        &mut events,
        |e| matches!(e, SttEvent::Transcript(t) if t.is_final),
    )
    .await;
    session.finalize().unwrap();
    let again = until(
        &mut events,
        |e| matches!(e, SttEvent::Transcript(t) if t.is_final),
    )
    .await;

    let Some(SttEvent::Transcript(first)) = seen.last() else {
        unreachable!()
    };
    assert_eq!(first.text, "call me tomorrow");
    assert!(first.from_finalize && !first.speech_final);
    let Some(SttEvent::Transcript(second)) = again.last() else {
        unreachable!()
    };
    assert!(second.from_finalize && second.text.is_empty());
    assert_eq!(dg.handle.stats().finalizes, 2);
}

#[tokio::test]
async fn close_stream_flushes_then_sends_metadata_then_closes_normally() {
    let dg = Emulator::start(Config::default()).await;
    let (session, mut events) = dg.connect(&options()).await;
    let audio = speech(&[("bye now", 0)]);

    send_all(&session, &audio);
    let metadata = session.close().await.unwrap().expect("metadata");
    let seen = until(&mut events, |e| matches!(e, SttEvent::Closed { .. })).await;

    assert!((metadata.duration - 7.0 * 0.06).abs() < 1e-6);
    let kinds: Vec<&str> = seen
        .iter()
        .filter_map(|e| match e {
            SttEvent::Transcript(t) if t.is_final && !t.text.is_empty() => Some("final"),
            SttEvent::Metadata(_) => Some("metadata"),
            SttEvent::Closed {
                code: Some(1000), ..
            } => Some("closed"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["final", "metadata", "closed"], "{seen:#?}");
    assert_eq!(finals(&seen)[0].text, "bye now");
    let stats = stats_when(&dg.handle, |s| !s.ended.is_empty()).await;
    assert!(session.send_audio(Bytes::from_static(&[0, 0])).is_err());
    assert_eq!(stats.close_streams, 1);
    assert_eq!(
        stats.ended[0],
        Ended::ServerClosed {
            code: 1000,
            reason: String::new()
        }
    );
    assert_eq!(stats.audio_bytes, audio.len() as u64);
}

#[tokio::test]
async fn a_bad_key_is_a_permanent_error_and_is_not_retried() {
    let dg = Emulator::start(Config::default()).await;

    let result = dg.client("wrong", tuning()).connect(&options()).await;

    let Err(err @ SttError::Rejected { status: 401, .. }) = result else {
        panic!("expected 401, got {result:?}");
    };
    assert!(err.is_permanent());
    assert!(err.to_string().contains("Invalid credentials"), "{err}");
    assert_eq!(dg.handle.stats().handshakes, 1);
}

#[tokio::test]
async fn transient_handshake_failures_are_retried() {
    let dg = Emulator::start(Config {
        reject_handshakes: Some(RejectFault {
            status: 503,
            first: 2,
        }),
        ..Config::default()
    })
    .await;

    let (session, mut events) = dg.connect(&options()).await;
    send_all(&session, &speech(&[("ok", 500)]));
    until(&mut events, speech_final).await;

    let stats = dg.handle.stats();
    assert_eq!((stats.handshakes, stats.connections), (3, 1));
}

#[tokio::test]
async fn a_socket_dropped_mid_utterance_is_reconnected_with_no_word_lost_or_repeated() {
    let first = "Good morning.";
    let second = "I would like to know more about the solar offer";
    // Drop the first connection 1.5 s into the second utterance.
    let drop_at = 13 * 60 + 600 + 1500;
    let dg = Emulator::start(Config {
        result_latency: Duration::ZERO,
        drop_connections: Some(DropFault {
            first: 1,
            after: DropAfter::AudioTime(Duration::from_millis(drop_at)),
        }),
        ..Config::default()
    })
    .await;
    let (session, mut events) = dg.connect(&options()).await;

    // About four times real time, so the first utterance is final before the drop.
    let audio = speech(&[(first, 600), (second, 800)]);
    for frame in audio.chunks((RATE / 10 * 2) as usize) {
        session.send_audio(Bytes::copy_from_slice(frame)).unwrap();
        sleep(Duration::from_millis(25)).await;
    }
    let mut utterances = 0;
    let seen = until(&mut events, |e| {
        utterances += usize::from(speech_final(e));
        utterances == 2
    })
    .await;

    let finals = finals(&seen);
    assert_eq!(joined(&finals), format!("{first} {second}"), "{seen:#?}");
    assert_eq!(session.reconnects(), 1);
    assert!(
        seen.iter()
            .any(|e| matches!(e, SttEvent::Reconnected { .. }))
    );
    stats_when(&dg.handle, |s| s.ended.contains(&Ended::Dropped)).await;
    let onsets = seen
        .iter()
        .filter(|e| matches!(e, SttEvent::SpeechStarted { .. }));
    assert_eq!(onsets.count(), 2, "one per utterance: {seen:#?}");
    // Times after the reconnect are still call times.
    let second_start = finals[1].words[0].start;
    assert!(
        (second_start - (13.0 * 0.06 + 0.6)).abs() < 0.001,
        "{seen:#?}"
    );
}

#[tokio::test]
async fn hindi_speech_round_trips() {
    let dg = Emulator::start(Config::default()).await;
    let options = ListenOptions {
        language: "hi".into(),
        ..options()
    };
    let (session, mut events) = dg.connect(&options).await;
    let text = "नमस्ते, मुझे सोलर पैनल के बारे में जानना है।";

    send_all(&session, &speech(&[(text, 800)]));
    let seen = until(&mut events, speech_final).await;

    assert_eq!(joined(&finals(&seen)), text);
}

#[tokio::test]
async fn undecodable_audio_ends_the_session_with_1008_and_no_reconnect() {
    let dg = Emulator::start(Config::default()).await;
    let options = ListenOptions {
        encoding: "mulaw".into(),
        ..options()
    };
    let (session, mut events) = dg.connect(&options).await;

    send_all(&session, &speech(&[("hello", 0)]));
    let seen = until(&mut events, |e| matches!(e, SttEvent::Closed { .. })).await;

    assert!(matches!(
        seen.last(),
        Some(SttEvent::Closed {
            code: Some(1008),
            ..
        })
    ));
    assert_eq!(session.reconnects(), 0);
    assert_eq!(dg.handle.stats().connections, 1);
}

/// Protocol corners the product client never exercises, checked with a bare WebSocket.
#[tokio::test]
async fn emulator_answers_bad_messages_with_error_and_an_empty_frame_closes_the_stream() {
    let dg = Emulator::start(Config::default()).await;
    let base = format!("{}/v1/listen", dg.running.ws_url());
    let request = |query: &str| {
        let mut r = format!("{base}?{query}").into_client_request().unwrap();
        r.headers_mut()
            .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
        r
    };

    let missing_rate = tokio_tungstenite::connect_async(request("encoding=linear16")).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = missing_rate else {
        panic!("expected HTTP 400");
    };
    assert_eq!(response.status(), 400);
    assert!(response.headers().contains_key("dg-error"));

    let (mut ws, _) =
        tokio_tungstenite::connect_async(request("encoding=linear16&sample_rate=8000"))
            .await
            .unwrap();
    ws.send(Message::text("hello?")).await.unwrap();
    let reply = timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert!(
        reply.to_text().unwrap().contains(r#""type":"Error""#),
        "{reply:?}"
    );
    ws.send(Message::binary(Bytes::new())).await.unwrap();
    let mut kinds = Vec::new();
    while let Ok(Some(Ok(message))) = timeout(WAIT, ws.next()).await {
        match message {
            Message::Text(t) if t.contains(r#""type":"Metadata""#) => kinds.push("metadata"),
            Message::Close(Some(frame)) => kinds.push(if u16::from(frame.code) == 1000 {
                "close 1000"
            } else {
                "other close"
            }),
            _ => {}
        }
    }
    assert_eq!(kinds, ["metadata", "close 1000"]);
}

#[tokio::test]
async fn a_drop_after_a_long_utterance_was_partly_final_replays_from_the_piece_boundary() {
    let text = "so what I really want to understand is how much the whole installation \
                would cost including the inverter and the battery";
    let dg = Emulator::start(Config {
        result_latency: Duration::ZERO,
        drop_connections: Some(DropFault {
            first: 1,
            after: DropAfter::AudioTime(Duration::from_millis(4500)),
        }),
        ..Config::default()
    })
    .await;
    let (session, mut events) = dg.connect(&options()).await;

    for frame in speech(&[(text, 800)]).chunks((RATE / 10 * 2) as usize) {
        session.send_audio(Bytes::copy_from_slice(frame)).unwrap();
        sleep(Duration::from_millis(25)).await;
    }
    let seen = until(&mut events, speech_final).await;

    let finals = finals(&seen);
    assert_eq!(joined(&finals), text, "{seen:#?}");
    assert_eq!(session.reconnects(), 1);
    let onsets = seen
        .iter()
        .filter(|e| matches!(e, SttEvent::SpeechStarted { .. }));
    assert_eq!(onsets.count(), 1, "{seen:#?}");
    let starts: Vec<f64> = finals
        .iter()
        .flat_map(|t| t.words.iter().map(|w| w.start))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
}

#[tokio::test]
async fn a_connection_dropped_after_a_wall_clock_delay_is_reconnected() {
    let dg = Emulator::start(Config {
        drop_connections: Some(DropFault {
            first: 1,
            after: DropAfter::WallClock(Duration::from_millis(300)),
        }),
        ..Config::default()
    })
    .await;
    let (session, mut events) = dg.connect(&options()).await;

    until(&mut events, |e| matches!(e, SttEvent::Reconnected { .. })).await;
    send_all(&session, &speech(&[("still here", 600)]));
    let seen = until(&mut events, speech_final).await;

    assert_eq!(joined(&finals(&seen)), "still here");
    let stats = stats_when(&dg.handle, |s| !s.ended.is_empty()).await;
    assert_eq!(stats.ended[0], Ended::Dropped);
    assert_eq!(stats.connections, 2);
}
