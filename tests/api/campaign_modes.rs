//! A whole campaign over every emulated persona, dialled by the real dialer through the
//! emulated Exotel, in every reading the emulators offer of the protocol points the vendors'
//! docs leave open: when ElevenLabs says `isFinal` (after `close_context` as documented, also
//! after each flush, never) and how it spells its messages; when Exotel echoes marks (once
//! played as documented, a second late, never); whether Deepgram sends its end-of-turn signals.
//!
//! In every mode: the same outcome for every lead, zero protocol violations counted by the
//! emulated Exotel, no call ended by the callee's patience, every phrase followed by its mark,
//! the goodbye played in full and the call hung up soon after it, the model always told what the
//! agent said first, and no line said twice in a row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use voice_agent::config::Secret;
use voice_agent::config::TtsProvider;
use voice_agent::dialer::Dialer;
use voice_agent::emulators::callee::{
    CallReport, CalleeConfig, EndedBy, Language, MarkEcho, Persona,
};
use voice_agent::emulators::elevenlabs::{FinalAfter, Lifecycle};
use voice_agent::emulators::exotel::{self, ExotelConfig, ExotelHandle};
use voice_agent::emulators::{Running, deepgram, elevenlabs, openai, openai_speech};
use voice_agent::metrics::{ErrorKind, Provider};

use crate::dialer::{exotel_settings, ist, leads};
use crate::helpers::{Backend, TestApp, eventually, spawn_app_with};

/// The emulators' readings for one run.
#[derive(Debug, Clone, Copy, Default)]
struct Modes {
    tts: Lifecycle,
    marks: MarkEcho,
    stt: deepgram::TurnEnd,
    /// Speak through the OpenAI-compatible endpoint (24 kHz, resampled) instead of ElevenLabs.
    openai_speech: bool,
}

/// Every answering persona, and a Hindi speaker; the persona's expected lead status and outcome
/// (the lead's `outcome`, else the carrier's `last_result`).
const LEADS: &[(&str, &str, Persona, Language, &str, &str)] = &[
    (
        "+919800000001",
        "Aarav",
        Persona::Interested,
        Language::En,
        "completed",
        "interested",
    ),
    (
        "+919800000002",
        "Priya",
        Persona::NotInterested,
        Language::En,
        "completed",
        "not_interested",
    ),
    (
        "+919800000003",
        "Rohan",
        Persona::Callback,
        Language::En,
        "callback",
        "callback",
    ),
    (
        "+919800000004",
        "Ananya",
        Persona::WrongNumber,
        Language::En,
        "completed",
        "wrong_number",
    ),
    (
        "+919800000005",
        "Vikram",
        Persona::DoNotCall,
        Language::En,
        "do_not_call",
        "do_not_call",
    ),
    (
        "+919800000006",
        "Meera",
        Persona::Silent,
        Language::En,
        "completed",
        "answered",
    ),
    (
        "+919800000007",
        "Kabir",
        Persona::HangsUp,
        Language::En,
        "completed",
        "answered",
    ),
    (
        "+919800000008",
        "Sneha",
        Persona::Interrupts,
        Language::En,
        "completed",
        "interested",
    ),
    (
        "+919800000009",
        "Arjun",
        Persona::Backchannel,
        Language::En,
        "completed",
        "interested",
    ),
    (
        "+919800000010",
        "Divya",
        Persona::Voicemail,
        Language::En,
        "failed",
        "voicemail",
    ),
    (
        "+919800000011",
        "Rahul",
        Persona::NoAnswer,
        Language::En,
        "failed",
        "no-answer",
    ),
    (
        "+919800000012",
        "Pooja",
        Persona::Busy,
        Language::En,
        "failed",
        "busy",
    ),
    (
        "+919800000013",
        "Amit",
        Persona::Interested,
        Language::Hi,
        "completed",
        "interested",
    ),
];

struct Rig {
    app: TestApp,
    exotel: ExotelHandle,
    llm: openai::Handle,
    _emulators: Vec<Running>,
}

async fn rig(backend: Backend, modes: Modes) -> Option<Rig> {
    let (dg_run, _) = deepgram::spawn(deepgram::Config {
        turn_end: modes.stt,
        ..deepgram::Config::default()
    })
    .await
    .unwrap();
    let (oa_run, llm) = openai::spawn(openai::Config::default()).await.unwrap();
    let (el_run, _) = elevenlabs::spawn(elevenlabs::Config {
        lifecycle: modes.tts,
        ..elevenlabs::Config::default()
    })
    .await
    .unwrap();
    let (speech_run, _) = openai_speech::spawn(openai_speech::Config::default())
        .await
        .unwrap();
    let exotel_config = ExotelConfig {
        ring_delay: Duration::from_millis(100),
        personas: LEADS.iter().map(|l| (l.0.to_string(), l.2)).collect(),
        languages: LEADS.iter().map(|l| (l.0.to_string(), l.3)).collect(),
        callee: CalleeConfig {
            max_duration: Duration::from_secs(120),
            marks: modes.marks,
            ..CalleeConfig::default()
        },
        ..ExotelConfig::default()
    };
    let (exo_run, exotel) = exotel::spawn(exotel_config.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let app = spawn_app_with(backend, |s| {
        exotel_settings(s, &exo_run, &exotel_config);
        s.dialer.direct_stream = true;
        s.dialer.tick = Duration::from_millis(100);
        s.max_concurrent_calls = 50;
        s.deepgram.url = format!("{}/v1/listen", dg_run.ws_url());
        s.deepgram.api_key = Some(Secret::new("dg-key"));
        s.openai.base_url = format!("{}/v1", oa_run.http_url());
        s.openai.api_key = Some(Secret::new(openai::Config::default().api_key));
        s.elevenlabs.base_url = el_run.http_url();
        s.elevenlabs.api_key = Some(Secret::new(elevenlabs::Config::default().api_key));
        s.elevenlabs.voice_id = Some("voice-1".into());
        if modes.openai_speech {
            s.vendors.tts = TtsProvider::OpenAi;
            s.vendors.openai_speech.base_url = format!("{}/v1", speech_run.http_url());
        }
    })
    .await?;
    app.state.clock.set(ist(25, 12, 0));
    Some(Rig {
        app,
        exotel,
        llm,
        _emulators: vec![dg_run, oa_run, el_run, exo_run, speech_run],
    })
}

/// Runs the campaign to its end and checks everything the module promises.
async fn whole_campaign(backend: Backend, modes: Modes, hangup_within: Duration) {
    let Some(rig) = rig(backend, modes).await else {
        return;
    };
    let app = &rig.app;
    let res = app
        .post_json(
            "/campaigns",
            json!({
                "name": "Every persona",
                "greeting": "Namaste {name}, this is Asha from SunRise Solar. Do you have a minute to talk about rooftop solar?",
                "instructions": "You are Asha, calling for SunRise Solar about rooftop solar panels. A site visit is free.",
                "calling_window": {"start": "09:00", "end": "21:00", "weekdays": ["mon","tue","wed","thu","fri","sat","sun"]},
                "max_attempts": 1,
                "max_concurrent_calls": 20,
                "qualification_fields": [{"name": "roof_type", "description": "flat or sloped"}],
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let csv: String = std::iter::once("phone,name\n".to_string())
        .chain(LEADS.iter().map(|l| format!("{},{}\n", l.0, l.1)))
        .collect();
    let report = app.upload_report(id, csv).await;
    assert_eq!(report["imported"], LEADS.len(), "{report}");
    assert_eq!(
        app.post(&format!("/campaigns/{id}/start")).await.status(),
        200
    );
    let dialer = Arc::new(Dialer::new(&app.state));
    app.state
        .tasks
        .spawn(dialer.run(app.state.shutdown.clone()));

    let all = eventually(150, "every lead settled", || async {
        let all = leads(app, id).await;
        all.iter()
            .all(|l| {
                !matches!(
                    l["status"].as_str(),
                    Some("pending" | "in_progress" | "retry")
                )
            })
            .then_some(all)
    })
    .await;
    // The post-call summaries and webhooks may still be finishing; the reports are all in.
    let reports = eventually(30, "every conversation reported", || async {
        let r = rig.exotel.reports();
        (r.len() >= LEADS.len() - 2).then_some(r)
    })
    .await;

    let by_phone: HashMap<&str, &Value> = all
        .iter()
        .map(|l| (l["phone"].as_str().unwrap(), l))
        .collect();
    let mut wrong = Vec::new();
    for (phone, name, persona, _, status, outcome) in LEADS {
        let lead = by_phone[phone];
        let got_outcome = lead["outcome"]
            .as_str()
            .or(lead["last_result"].as_str())
            .unwrap_or("-");
        if lead["status"] != *status || got_outcome != *outcome {
            wrong.push(format!(
                "{name} ({persona}): {} / {got_outcome}, expected {status} / {outcome}",
                lead["status"]
            ));
        }
    }
    assert!(wrong.is_empty(), "{modes:?}: {wrong:#?}");
    assert_eq!(
        rig.exotel.violations().total(),
        0,
        "{:?}",
        rig.exotel.violations()
    );
    for r in &reports {
        check_call(r, &modes, hangup_within);
    }
    check_history(&rig.llm);
    check_stalls(app, &modes);
}

/// A bounded wait ends only a wait the mode makes endless: under the documented readings no
/// provider ever stalls (the client follows the lifecycle instead of waiting it out), and each
/// missing signal is counted against its provider.
fn check_stalls(app: &TestApp, modes: &Modes) {
    let stalls = |p| app.state.metrics.providers.errors_of(p, ErrorKind::Stalled);
    let tts = stalls(if modes.openai_speech {
        Provider::OpenAiSpeech
    } else {
        Provider::ElevenLabs
    });
    let carrier = stalls(Provider::Exotel);
    let stt = stalls(Provider::Deepgram);
    let tts_silent = modes.tts.is_final == FinalAfter::Never && !modes.tts.mark_last_audio;
    assert_eq!(tts > 0, tts_silent, "{modes:?}: {tts} TTS stalls");
    match modes.marks {
        MarkEcho::Played => assert_eq!(carrier, 0, "{modes:?}"),
        MarkEcho::Never => assert!(carrier > 0, "{modes:?}"),
        // A second late is within the 1.5 s the call waits; under load an echo may miss it.
        MarkEcho::Late(_) => {}
    }
    let stt_silent = !modes.stt.speech_final && !modes.stt.utterance_end;
    assert_eq!(stt > 0, stt_silent, "{modes:?}: {stt} STT stalls");
    assert_eq!(stalls(Provider::OpenAi), 0, "{modes:?}");
}

/// What a caller would notice.
fn check_call(r: &CallReport, modes: &Modes, hangup_within: Duration) {
    let who = format!("{} ({}) in {modes:?}", r.persona, r.call_sid);
    assert_ne!(
        r.ended_by,
        EndedBy::Impatient,
        "{who}: the bot never hung up: {:?}",
        r.heard
    );
    let expected = if r.persona == Persona::HangsUp {
        EndedBy::Callee
    } else {
        EndedBy::Bot
    };
    assert_eq!(r.ended_by, expected, "{who}: {:?}", r.heard);
    if r.ended_by == EndedBy::Bot {
        assert_eq!(
            r.stats.unplayed_at_end,
            Duration::ZERO,
            "{who}: hung up over its goodbye"
        );
        assert_eq!(
            r.stats.unmarked_at_end,
            Duration::ZERO,
            "{who}: a phrase without its mark"
        );
        let after = r.stats.hangup_after_audio.expect("hung up after its audio");
        assert!(
            after <= hangup_within,
            "{who}: hung up {after:?} after the goodbye"
        );
        // The last line was heard to its end, not cut mid-word.
        let last = r.heard.last().map(|l| l.trim()).unwrap_or("");
        assert!(
            last.ends_with(['.', '!', '?', '।']),
            "{who}: the last line, whole, is the last thing heard: {:?}",
            r.heard
        );
    }
    for pair in r.heard.windows(2) {
        assert!(
            pair[0] != pair[1] || !pair[0].contains('?'),
            "{who}: asked twice: {:?}",
            r.heard
        );
    }
}

/// Every request of a conversation with a caller who lets the agent speak first tells the model
/// what it said first: the greeting. (A caller who talks over it may have heard none of it, and
/// then the model is rightly not told it greeted.)
fn check_history(llm: &openai::Handle) {
    let talks_over_the_greeting: Vec<String> = LEADS
        .iter()
        .filter(|l| {
            matches!(
                l.2,
                Persona::Voicemail | Persona::HangsUp | Persona::Interrupts
            )
        })
        .map(|l| format!("Name: {}\n", l.1))
        .collect();
    for request in llm.requests() {
        if request["stream"] != json!(true) {
            continue; // the post-call summary
        }
        let messages = request["messages"].as_array().unwrap();
        let system = messages[0]["content"].as_str().unwrap_or("");
        if talks_over_the_greeting
            .iter()
            .any(|n| system.contains(n.as_str()))
        {
            continue;
        }
        let first = &messages[1];
        assert_eq!(first["role"], "assistant", "{messages:?}");
        let said = first["content"].as_str().unwrap_or("");
        assert!(
            said.starts_with("Namaste") || said.starts_with("नमस्ते"),
            "the model does not know it greeted: {messages:?}"
        );
    }
}

const SOON: Duration = Duration::from_millis(1_000);
/// Marks echoed late or never: the bounded wait (`mark_grace`, 1.5 s) plus a margin.
const BOUNDED: Duration = Duration::from_millis(2_200);

#[tokio::test]
async fn documented_readings_on_sqlite() {
    whole_campaign(Backend::Sqlite, Modes::default(), SOON).await;
}

#[tokio::test]
async fn documented_readings_on_postgres() {
    whole_campaign(Backend::Postgres, Modes::default(), SOON).await;
}

/// The other TTS vendor: each phrase one request to an OpenAI-compatible endpoint at 24 kHz,
/// resampled to the call's 8 kHz.
#[tokio::test]
async fn the_openai_compatible_speech_endpoint_on_sqlite() {
    let modes = Modes {
        openai_speech: true,
        ..Modes::default()
    };
    whole_campaign(Backend::Sqlite, modes, SOON).await;
}

#[tokio::test]
async fn the_openai_compatible_speech_endpoint_on_postgres() {
    let modes = Modes {
        openai_speech: true,
        ..Modes::default()
    };
    whole_campaign(Backend::Postgres, modes, SOON).await;
}

#[tokio::test]
async fn is_final_also_after_each_flush() {
    let tts = Lifecycle {
        is_final: FinalAfter::FlushAndClose,
        ..Lifecycle::default()
    };
    let modes = Modes {
        tts,
        ..Modes::default()
    };
    whole_campaign(Backend::Sqlite, modes, SOON).await;
}

#[tokio::test]
async fn is_final_never_comes() {
    let tts = Lifecycle {
        is_final: FinalAfter::Never,
        ..Lifecycle::default()
    };
    let modes = Modes {
        tts,
        ..Modes::default()
    };
    whole_campaign(Backend::Sqlite, modes, SOON).await;
}

#[tokio::test]
async fn snake_case_context_ids_and_a_marked_last_chunk() {
    let tts = Lifecycle {
        is_final: FinalAfter::Never,
        snake_case_context: true,
        mark_last_audio: true,
    };
    let modes = Modes {
        tts,
        ..Modes::default()
    };
    whole_campaign(Backend::Sqlite, modes, SOON).await;
}

#[tokio::test]
async fn marks_echoed_a_second_late() {
    let modes = Modes {
        marks: MarkEcho::Late(Duration::from_secs(1)),
        ..Modes::default()
    };
    whole_campaign(Backend::Sqlite, modes, BOUNDED).await;
}

#[tokio::test]
async fn marks_never_echoed() {
    let modes = Modes {
        marks: MarkEcho::Never,
        ..Modes::default()
    };
    whole_campaign(Backend::Sqlite, modes, BOUNDED).await;
}

#[tokio::test]
async fn no_signal_at_all_is_awaited_for_ever() {
    let modes = Modes {
        tts: Lifecycle {
            is_final: FinalAfter::Never,
            ..Lifecycle::default()
        },
        marks: MarkEcho::Never,
        stt: deepgram::TurnEnd::NEITHER,
        openai_speech: false,
    };
    whole_campaign(Backend::Sqlite, modes, BOUNDED).await;
}
