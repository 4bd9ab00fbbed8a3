//! Live calls over real sockets: a scripted Exotel caller on `/media`, and the Deepgram, OpenAI
//! and ElevenLabs emulators behind the real clients.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use voice_agent::config::Secret;
use voice_agent::emulators::{Running, deepgram, elevenlabs, openai, speech};
use voice_agent::store::TranscriptTurn;

use crate::helpers::{Backend, TestApp, eventually, send_json, spawn_app_with};

pub struct LiveRig {
    pub app: TestApp,
    pub call_id: i64,
    pub campaign_id: i64,
    pub dg: deepgram::Handle,
    pub llm: openai::Handle,
    pub tts: elevenlabs::Handle,
    _emulators: Vec<Running>,
}

pub async fn live_rig(
    backend: Backend,
    greeting: &str,
    language: &str,
    dg_config: deepgram::Config,
) -> Option<LiveRig> {
    live_rig_with(
        backend,
        greeting,
        language,
        dg_config,
        elevenlabs::Config::fast(),
    )
    .await
}

pub async fn live_rig_with(
    backend: Backend,
    greeting: &str,
    language: &str,
    dg_config: deepgram::Config,
    el_config: elevenlabs::Config,
) -> Option<LiveRig> {
    let (dg_run, dg) = deepgram::spawn(dg_config).await.unwrap();
    let (oa_run, llm) = openai::spawn(openai::Config {
        time_to_first_token: Duration::from_millis(50),
        tokens_per_second: 400.0,
        ..openai::Config::default()
    })
    .await
    .unwrap();
    let (el_run, el) = elevenlabs::spawn(el_config).await.unwrap();
    let app = spawn_app_with(backend, |s| {
        s.deepgram.url = format!("{}/v1/listen", dg_run.ws_url());
        s.deepgram.api_key = Some(Secret::new("dg-key"));
        s.openai.base_url = format!("{}/v1", oa_run.http_url());
        s.openai.api_key = Some(Secret::new("sk-emulator"));
        s.elevenlabs.base_url = el_run.http_url();
        s.elevenlabs.api_key = Some(Secret::new("emulated-elevenlabs-key"));
        s.elevenlabs.voice_id = Some("voice-1".into());
    })
    .await?;
    let res = app
        .post_json("/campaigns", json!({"name": "Live", "greeting": greeting, "language": language,
            "instructions": "You sell rooftop solar panels for SunRise Solar. A site visit is free."}))
        .await;
    let campaign_id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    app.upload_report(campaign_id, "phone,name\n9876543210,Asha\n")
        .await;
    let started = app.post(&format!("/campaigns/{campaign_id}/start")).await;
    assert_eq!(started.status(), 200);
    let call_id = dial_next(&app, campaign_id, "CA-live-1").await;
    Some(LiveRig {
        app,
        call_id,
        campaign_id,
        dg,
        llm,
        tts: el,
        _emulators: vec![dg_run, oa_run, el_run],
    })
}

/// The rig with the default Deepgram and a short English greeting.
pub async fn hello_rig(backend: Backend) -> Option<LiveRig> {
    live_rig(backend, HELLO, "en-IN", deepgram::Config::default()).await
}

/// The rig with the default Deepgram and the full English sales greeting, `GREETING`.
pub async fn greeting_rig(backend: Backend) -> Option<LiveRig> {
    live_rig(backend, GREETING, "en-IN", deepgram::Config::default()).await
}

/// Claims the campaign's next due lead and marks its call dialled as `call_sid`; returns the call.
pub async fn dial_next(app: &TestApp, campaign_id: i64, call_sid: &str) -> i64 {
    let now = app.state.clock.now();
    let call_id = app.claim(campaign_id, now, 10, 1).await[0].call_id;
    app.state
        .store
        .mark_dialing(call_id, call_sid, now)
        .await
        .unwrap();
    call_id
}

/// One 429 (retry after 200 ms) from the LLM.
pub fn rate_limited_once() -> openai::Faults {
    openai::Faults {
        rate_limited: 1,
        retry_after: Some(Duration::from_millis(200)),
        ..Default::default()
    }
}

/// TTS at half real time whose first socket is cut after one second: the greeting (about five
/// seconds of speech, `SHORT_GREETING`) is still being generated when it goes.
pub fn tts_dropping_mid_greeting() -> elevenlabs::Config {
    elevenlabs::Config {
        real_time_factor: 0.5,
        faults: elevenlabs::Faults {
            drop_ws_after: Some(Duration::from_secs(1)),
            drop_first_ws: 1,
            ..Default::default()
        },
        ..elevenlabs::Config::fast()
    }
}

/// Polls `path` every 100 ms, `polls` times, collecting the entries of its array `field`.
pub fn watch(
    app: &TestApp,
    path: &str,
    field: &'static str,
    polls: usize,
) -> JoinHandle<Vec<Value>> {
    let (client, url) = (app.client.clone(), app.url(path));
    tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..polls {
            let v = send_json(client.get(&url)).await;
            seen.extend(v[field].as_array().cloned().unwrap_or_default());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    })
}

/// What the scripted caller saw.
#[derive(Default)]
pub struct Heard {
    pub text: String,
    pub media_frames: u64,
    pub misaligned_frames: u64,
    pub clears: u64,
    pub marks: u64,
    pub closed_by_bot: bool,
    pub first_audio_after_start: Option<Duration>,
    /// When the caller last heard agent audio play (playback clock).
    pub playing_until: Option<Instant>,
}

/// A caller: says `lines` in turn, each once the agent has stopped talking; `during_greeting`
/// is said `after` into the greeting; `hang_up_after` ends the call from the caller's side.
pub struct Script {
    pub lines: Vec<&'static str>,
    pub during_greeting: Option<(&'static str, Duration)>,
    pub hang_up_after: Option<Duration>,
    pub max: Duration,
}

impl Script {
    /// Says `lines`, neither during the greeting nor hanging up, for at most `max_secs`.
    pub fn saying(lines: Vec<&'static str>, max_secs: u64) -> Self {
        Script {
            lines,
            during_greeting: None,
            hang_up_after: None,
            max: Duration::from_secs(max_secs),
        }
    }

    /// Also ends the call from the caller's side `after` the start.
    pub fn hanging_up_after(self, after: Duration) -> Self {
        Script {
            hang_up_after: Some(after),
            ..self
        }
    }

    /// Also says `line` `after` into the greeting.
    pub fn interrupting(self, line: &'static str, after: Duration) -> Self {
        Script {
            during_greeting: Some((line, after)),
            ..self
        }
    }

    /// An interested caller who agrees twice, until the agent hangs up (a minute at most).
    pub fn interested() -> Self {
        Script::saying(
            vec![
                "Yes, I am interested. Tell me more.",
                "Yes, that works for me.",
                "Yes, that works for me.",
            ],
            60,
        )
    }
}

/// Runs the caller and returns what it heard, once it is done.
pub async fn hear(app: &TestApp, script: Script) -> Heard {
    let heard = run_caller(app, script).await;
    std::mem::take(&mut *heard.lock().unwrap())
}

pub async fn run_caller(app: &TestApp, script: Script) -> Arc<Mutex<Heard>> {
    run_caller_as(app, script, "CA-live-1", "+919876543210").await
}

/// The same caller on a stream with another carrier call id and number.
pub async fn run_caller_as(
    app: &TestApp,
    script: Script,
    call_sid: &str,
    from: &str,
) -> Arc<Mutex<Heard>> {
    let secret = app.state.settings.webhook_secret.expose().to_string();
    let url = format!(
        "{}/media?secret={secret}",
        app.base.replacen("http", "ws", 1)
    );
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("media connects");
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::text(json!({"event": "connected"}).to_string()))
        .await
        .unwrap();
    let start = json!({"event": "start", "sequence_number": "1", "stream_sid": "MZ1", "start": {
        "stream_sid": "MZ1", "call_sid": call_sid, "account_sid": "AC1", "from": from,
        "to": "+918044556677", "custom_parameters": {},
        "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"}}});
    tx.send(Message::text(start.to_string())).await.unwrap();
    let started = Instant::now();
    let heard = Arc::new(Mutex::new(Heard::default()));
    let (mark_tx, mut mark_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();

    // Receiving: decode the agent's speech as it would play, echo marks once played.
    let h = heard.clone();
    let receiver = tokio::spawn(async move {
        let mut decoder = speech::SpeechDecoder::new();
        while let Some(Ok(msg)) = rx.next().await {
            let Message::Text(text) = msg else {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            let mut heard = h.lock().unwrap();
            match v["event"].as_str() {
                Some("media") => {
                    let pcm = base64::engine::general_purpose::STANDARD
                        .decode(v["media"]["payload"].as_str().unwrap())
                        .unwrap();
                    heard.media_frames += 1;
                    if !pcm.len().is_multiple_of(320) {
                        heard.misaligned_frames += 1;
                    }
                    heard
                        .first_audio_after_start
                        .get_or_insert(started.elapsed());
                    let now = Instant::now();
                    let from = heard.playing_until.filter(|t| *t > now).unwrap_or(now);
                    heard.playing_until =
                        Some(from + Duration::from_micros(pcm.len() as u64 * 1_000_000 / 16_000));
                    let chars: String = decoder.push_bytes(&pcm).iter().map(|d| d.ch).collect();
                    heard.text.push_str(&chars);
                }
                Some("mark") => {
                    let at = heard.playing_until.unwrap_or_else(Instant::now);
                    let _ = mark_tx.send((v["mark"]["name"].as_str().unwrap().to_string(), at));
                }
                Some("clear") => {
                    heard.clears += 1;
                    heard.playing_until = None;
                }
                _ => {}
            }
        }
        h.lock().unwrap().closed_by_bot = true;
    });

    // Sending: 100 ms frames in real time, speech when the script says so, and mark echoes.
    let frame = 800; // samples per 100 ms
    let mut queue: std::collections::VecDeque<i16> = Default::default();
    let mut lines = script.lines.into_iter();
    let mut greeting_line = script.during_greeting;
    let mut last_spoke = started;
    let mut seq = 2u64;
    let mut pending_marks: Vec<(String, Instant)> = vec![];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let now = Instant::now();
        let (closed, playing) = {
            let heard = heard.lock().unwrap();
            (
                heard.closed_by_bot,
                heard.playing_until.is_some_and(|t| t > now),
            )
        };
        if closed || started.elapsed() > script.max {
            break;
        }
        if script.hang_up_after.is_some_and(|d| started.elapsed() >= d) {
            let stop = json!({"event": "stop", "sequence_number": seq.to_string(), "stream_sid": "MZ1",
                "stop": {"call_sid": call_sid, "account_sid": "AC1", "reason": "callended"}});
            let _ = tx.send(Message::text(stop.to_string())).await;
            let _ = tx.close().await;
            break;
        }
        while let Ok(m) = mark_rx.try_recv() {
            pending_marks.push(m);
        }
        // A clear drops pending marks.
        if heard.lock().unwrap().playing_until.is_none() && !pending_marks.is_empty() && !playing {
            let cleared = heard.lock().unwrap().clears > 0;
            if cleared {
                pending_marks.retain(|(_, at)| *at <= now);
            }
        }
        let (due, later): (Vec<_>, Vec<_>) =
            pending_marks.drain(..).partition(|(_, at)| *at <= now);
        pending_marks = later;
        for (name, _) in due {
            heard.lock().unwrap().marks += 1;
            let echo = json!({"event": "mark", "sequence_number": seq.to_string(), "stream_sid": "MZ1", "mark": {"name": name}});
            seq += 1;
            let _ = tx.send(Message::text(echo.to_string())).await;
        }
        if queue.is_empty() {
            if let Some((line, after)) = greeting_line
                && started.elapsed() >= after
            {
                queue.extend(speech::synthesize(line, 8000));
                queue.extend(speech::silence(700, 8000));
                greeting_line = None;
            } else if !playing
                && now.duration_since(last_spoke) > Duration::from_millis(600)
                && pending_marks.is_empty()
            {
                let idle = heard
                    .lock()
                    .unwrap()
                    .playing_until
                    .is_none_or(|t| now.duration_since(t) > Duration::from_millis(400));
                if idle
                    && heard.lock().unwrap().media_frames > 0
                    && let Some(line) = lines.next()
                {
                    queue.extend(speech::synthesize(line, 8000));
                    queue.extend(speech::silence(700, 8000));
                }
            }
        }
        let samples: Vec<i16> = (0..frame).map(|_| queue.pop_front().unwrap_or(0)).collect();
        if speech::is_voiced(&samples) {
            last_spoke = now;
        }
        let payload = base64::engine::general_purpose::STANDARD.encode(speech::to_bytes(&samples));
        let media = json!({"event": "media", "sequence_number": seq.to_string(), "stream_sid": "MZ1",
            "media": {"chunk": seq.to_string(), "timestamp": started.elapsed().as_millis().to_string(), "payload": payload}});
        seq += 1;
        if tx.send(Message::text(media.to_string())).await.is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), receiver).await;
    heard
}

async fn turns(app: &TestApp, call_id: i64) -> Vec<TranscriptTurn> {
    app.state.store.turns_of_call(call_id).await.unwrap()
}

/// The call's turns once there are at least `n` of them (within 10 s).
async fn turns_at_least(app: &TestApp, call_id: i64, n: usize, what: &str) -> Vec<TranscriptTurn> {
    eventually(10, what, || async {
        let t = turns(app, call_id).await;
        (t.len() >= n).then_some(t)
    })
    .await
}

pub const GREETING: &str = "Namaste {name}, this is Asha from SunRise Solar. We help families save on power bills with rooftop solar panels. Do you have a minute?";

/// A greeting of about five seconds of speech.
pub const SHORT_GREETING: &str = "Namaste {name}, this is Asha from SunRise Solar. We install rooftop panels. Do you have a minute?";

const HELLO: &str = "Hello {name}, do you have a minute?";

crate::on_each_backend!(
    full_call_greets_talks_records_outcome_and_hangs_up,
    barge_in_clears_playback_and_trims_the_agent_turn,
    backchannel_does_not_interrupt_the_agent,
    caller_hanging_up_mid_sentence_keeps_everything_said,
    caller_vanishing_mid_greeting_ends_the_call_and_keeps_what_was_heard,
    deepgram_dropping_mid_utterance_loses_no_words,
    llm_rate_limit_is_retried_within_the_turn,
    llm_never_answering_gives_a_filler_then_a_graceful_end,
    hindi_passes_through_intact,
    an_unknown_stream_is_an_inbound_call_from_a_new_contact,
    first_inbound_calls_arriving_together_share_one_campaign_and_one_lead_per_number,
    tts_socket_dropping_mid_turn_is_finished_over_http,
);

async fn tts_socket_dropping_mid_turn_is_finished_over_http(backend: Backend) {
    let el = tts_dropping_mid_greeting();
    let dg = deepgram::Config::default();
    let Some(rig) = live_rig_with(backend, SHORT_GREETING, "en-IN", dg, el).await else {
        return;
    };
    let script = Script::saying(vec![], 20).hanging_up_after(Duration::from_secs(12));
    let heard = hear(&rig.app, script).await;
    assert!(
        heard.text.starts_with("Namaste Asha, this is Asha from SunRise Solar. We install rooftop panels. Do you have a minute?"),
        "the whole greeting was heard: {:?}",
        heard.text
    );
    assert!(
        rig.tts.stats().http_requests >= 1,
        "the rest came over HTTP"
    );
    assert_eq!(heard.misaligned_frames, 0);
}

async fn an_unknown_stream_is_an_inbound_call_from_a_new_contact(backend: Backend) {
    let Some(rig) = hello_rig(backend).await else {
        return;
    };
    let script =
        Script::saying(vec!["What is this about?"], 20).hanging_up_after(Duration::from_secs(9));
    run_caller_as(&rig.app, script, "CA-inbound-7", "+919812312312").await;
    let store = &rig.app.state.store;
    let lead = eventually(10, "inbound lead", || async {
        store.find_lead_by_phone("+919812312312").await.unwrap()
    })
    .await;
    let campaign = store.get_campaign(lead.campaign_id).await.unwrap();
    assert_eq!(campaign.spec.name, "Inbound calls");
    let call = eventually(10, "inbound call ended", || async {
        let c = store.find_call_by_sid("CA-inbound-7").await.unwrap()?;
        (c.status == voice_agent::store::CallStatus::Completed).then_some(c)
    })
    .await;
    assert_eq!(call.direction, "inbound");
    let turns = store.turns_of_call(call.id).await.unwrap();
    assert!(
        turns
            .iter()
            .any(|t| t.speaker == "caller" && t.text == "What is this about?"),
        "{turns:?}"
    );
    // The outbound call placed for the campaign's own lead is untouched.
    assert_eq!(store.get_call(rig.call_id).await.unwrap().stream_sid, None);
}

/// Three first calls from unknown numbers at once, two of them from one number: one "Inbound
/// calls" campaign (its creation is serialised), one lead per number (one `INSERT … ON
/// CONFLICT`, no lock), and each call on its number's lead.
async fn first_inbound_calls_arriving_together_share_one_campaign_and_one_lead_per_number(
    backend: Backend,
) {
    let Some(rig) = hello_rig(backend).await else {
        return;
    };
    let caller = || Script::saying(vec![], 20).hanging_up_after(Duration::from_secs(3));
    tokio::join!(
        run_caller_as(&rig.app, caller(), "CA-in-a1", "+919812300001"),
        run_caller_as(&rig.app, caller(), "CA-in-a2", "+919812300001"),
        run_caller_as(&rig.app, caller(), "CA-in-b1", "+919812300002"),
    );
    let store = &rig.app.state.store;
    let call_of = |sid: &'static str| async move {
        eventually(10, sid, || async {
            let c = store.find_call_by_sid(sid).await.unwrap()?;
            (c.status == voice_agent::store::CallStatus::Completed).then_some(c)
        })
        .await
    };
    let (a1, a2, b1) = (
        call_of("CA-in-a1").await,
        call_of("CA-in-a2").await,
        call_of("CA-in-b1").await,
    );
    let inbound: Vec<_> = store
        .list_campaigns()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.spec.name == "Inbound calls")
        .collect();
    assert_eq!(inbound.len(), 1, "one inbound campaign: {inbound:?}");
    let page = store
        .list_leads(
            inbound[0].id,
            &voice_agent::store::LeadQuery {
                status: None,
                limit: 10,
                offset: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 2, "one lead per number: {:?}", page.leads);
    assert_eq!(
        a1.lead_id, a2.lead_id,
        "both calls from one number share its lead"
    );
    assert_ne!(a1.lead_id, b1.lead_id);
    assert!(page.leads.iter().any(|l| Some(l.id) == b1.lead_id));
}

async fn deepgram_dropping_mid_utterance_loses_no_words(backend: Backend) {
    let dg = deepgram::Config {
        drop_connections: Some(deepgram::DropFault {
            first: 1,
            after: deepgram::DropAfter::AudioTime(Duration::from_millis(10_300)),
        }),
        ..deepgram::Config::default()
    };
    let Some(rig) = live_rig(
        backend,
        "Namaste {name}, this is Asha from SunRise Solar. Do you have a minute?",
        "en-IN",
        dg,
    )
    .await
    else {
        return;
    };
    let script = Script::saying(
        vec!["Yes, I am interested in rooftop solar panels for my house. Tell me more."],
        30,
    )
    .hanging_up_after(Duration::from_secs(16));
    run_caller(&rig.app, script).await;
    assert!(
        rig.dg.stats().connections >= 2,
        "the STT socket was dropped and reopened"
    );
    let turns = turns_at_least(&rig.app, rig.call_id, 3, "turns").await;
    assert_eq!(
        turns[1].text,
        "Yes, I am interested in rooftop solar panels for my house. Tell me more."
    );
    assert_eq!(turns[2].speaker, "agent", "the call went on");
}

async fn llm_rate_limit_is_retried_within_the_turn(backend: Backend) {
    let Some(rig) = hello_rig(backend).await else {
        return;
    };
    rig.llm.set_faults(rate_limited_once());
    let script =
        Script::saying(vec!["What is this about?"], 20).hanging_up_after(Duration::from_secs(10));
    let heard = run_caller(&rig.app, script).await;
    assert!(
        !heard.lock().unwrap().text.contains("one moment"),
        "no filler was needed"
    );
    let turns = turns(&rig.app, rig.call_id).await;
    let reply = turns
        .iter()
        .find(|t| t.speaker == "agent" && t.seq > 2)
        .expect("the agent answered");
    assert!(!reply.text.is_empty());
    // The turn's own request went twice (the 429, then its retry, with the same messages);
    // the post-call summary is another request and does not count.
    let turn_requests: Vec<Value> = rig
        .llm
        .requests()
        .into_iter()
        .filter(|r| {
            r["stream"] == true
                && r["messages"].as_array().is_some_and(|m| {
                    m.last().is_some_and(|last| {
                        last["role"] == "user"
                            && last["content"]
                                .as_str()
                                .is_some_and(|c| c.contains("What is this about"))
                    })
                })
        })
        .collect();
    assert_eq!(
        turn_requests.len(),
        2,
        "the 429 was retried: {turn_requests:#?}"
    );
    assert_eq!(
        turn_requests[0]["messages"], turn_requests[1]["messages"],
        "the retry resent the turn"
    );
}

async fn llm_never_answering_gives_a_filler_then_a_graceful_end(backend: Backend) {
    let Some(rig) = hello_rig(backend).await else {
        return;
    };
    rig.llm.set_faults(openai::Faults {
        hangs: 10,
        ..Default::default()
    });
    let heard = hear(&rig.app, Script::saying(vec!["What is this about?"], 30)).await;
    assert!(
        heard.text.contains("one moment"),
        "a filler instead of silence: {}",
        heard.text
    );
    assert!(
        heard.text.contains("call you back"),
        "a graceful goodbye: {}",
        heard.text
    );
    assert!(heard.closed_by_bot, "the agent hung up");
}

async fn hindi_passes_through_intact(backend: Backend) {
    let greeting = "नमस्ते {name} जी, मैं सनराइज़ सोलर से आशा बोल रही हूँ।";
    let Some(rig) = live_rig(backend, greeting, "hi-IN", deepgram::Config::default()).await else {
        return;
    };
    let script =
        Script::saying(vec!["हाँ, मुझे दिलचस्पी है।"], 20).hanging_up_after(Duration::from_secs(12));
    let heard = run_caller(&rig.app, script).await;
    assert!(
        heard
            .lock()
            .unwrap()
            .text
            .starts_with("नमस्ते Asha जी, मैं सनराइज़ सोलर से आशा बोल रही हूँ।")
    );
    let turns = turns(&rig.app, rig.call_id).await;
    assert_eq!(turns[1].text, "हाँ, मुझे दिलचस्पी है।");
    let reply = turns
        .iter()
        .find(|t| t.speaker == "agent" && t.seq > 2)
        .expect("a reply");
    assert!(
        reply
            .text
            .chars()
            .any(|c| ('\u{0900}'..='\u{097F}').contains(&c)),
        "Devanagari reply: {}",
        reply.text
    );
}

async fn full_call_greets_talks_records_outcome_and_hangs_up(backend: Backend) {
    let Some(rig) = greeting_rig(backend).await else {
        return;
    };
    // Watch /debug/sessions while the call runs.
    let watcher = watch(&rig.app, "/debug/sessions", "sessions", 150);
    let heard = hear(&rig.app, Script::interested()).await;
    assert!(heard.closed_by_bot, "the agent hung up");
    assert!(
        heard
            .text
            .starts_with("Namaste Asha, this is Asha from SunRise Solar."),
        "{}",
        heard.text
    );
    assert_eq!(
        heard.misaligned_frames, 0,
        "every frame a multiple of 320 bytes"
    );
    assert_eq!(heard.clears, 0, "no clear without a barge-in");
    assert!(heard.first_audio_after_start.unwrap() < Duration::from_secs(2));

    let call_id = rig.call_id;
    let turns = turns_at_least(&rig.app, call_id, 4, "turns stored").await;
    assert_eq!(turns[0].speaker, "agent");
    assert!(turns[0].text.starts_with("Namaste Asha"));
    assert_eq!(turns[1].speaker, "caller");
    assert_eq!(turns[1].text, "Yes, I am interested. Tell me more.");
    let agent_replies: Vec<_> = turns
        .iter()
        .filter(|t| t.speaker == "agent" && t.seq > 1)
        .collect();
    assert!(!agent_replies.is_empty());
    assert!(
        agent_replies[0].llm_first_token_ms.is_some()
            && agent_replies[0].voice_to_voice_ms.is_some(),
        "{:?}",
        agent_replies[0]
    );
    let call = eventually(10, "outcome recorded", || async {
        let c = rig.app.state.store.get_call(call_id).await.unwrap();
        c.intent.is_some().then_some(c)
    })
    .await;
    assert_eq!(call.intent.as_deref(), Some("interested"));
    assert!(call.stream_sid.as_deref() == Some("MZ1"));
    let seen = watcher.await.unwrap();
    let after_a_turn: Vec<&Value> = seen
        .iter()
        .filter(|s| s["call_id"] == call_id && s["turns"].as_i64().unwrap_or(0) >= 1)
        .collect();
    assert!(
        !after_a_turn.is_empty(),
        "the live call was visible in /debug/sessions"
    );
    // Each snapshot replaces the previous one: later ones still say which stream and since when.
    for s in after_a_turn {
        assert_eq!(s["stream_sid"], "MZ1", "{s}");
        let started: chrono::DateTime<chrono::Utc> = s["started_at"]
            .as_str()
            .unwrap_or_else(|| panic!("no started_at: {s}"))
            .parse()
            .unwrap();
        assert!(
            (chrono::Utc::now() - started).num_seconds().abs() < 120,
            "{s}"
        );
    }
    eventually(10, "session gone once the call ended", || async {
        let live: Value = rig.app.get_json("/debug/sessions").await;
        live["sessions"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(rig.app.get("/debug/sessions/999").await.status(), 404);
    let _ = rig.campaign_id;
}

async fn barge_in_clears_playback_and_trims_the_agent_turn(backend: Backend) {
    let Some(rig) = greeting_rig(backend).await else {
        return;
    };
    let script = Script::saying(vec!["Yes, that works for me."], 30)
        .interrupting(
            "Wait, wait, what is this about?",
            Duration::from_millis(1500),
        )
        .hanging_up_after(Duration::from_secs(14));
    let heard = run_caller(&rig.app, script).await;
    assert!(heard.lock().unwrap().clears >= 1, "playback was cleared");
    let turns = turns_at_least(&rig.app, rig.call_id, 3, "turns").await;
    let greeting = &turns[0];
    assert!(greeting.interrupted, "{greeting:?}");
    let full = "Namaste Asha, this is Asha from SunRise Solar. We help families save on power bills with rooftop solar panels. Do you have a minute?";
    assert!(
        greeting.text.len() < full.len(),
        "trimmed to what was heard: {:?}",
        greeting.text
    );
    assert!(full.starts_with(&greeting.text), "{:?}", greeting.text);
    // Interrupted 1.5 s in (the barge-in is seen a moment later), its one phrase unmarked: the
    // words that had played are kept, cut at a whole word, not dropped with the phrase.
    let chars = greeting.text.chars().count();
    assert!((15..=60).contains(&chars), "{chars}: {:?}", greeting.text);
    let next = full[greeting.text.len()..].chars().next();
    assert!(
        next.is_none_or(|c| !c.is_alphanumeric()),
        "{:?}",
        greeting.text
    );
    // And the model is told that it said them.
    let reply = rig
        .llm
        .requests()
        .into_iter()
        .find(|r| r["stream"] == json!(true))
        .expect("the model was asked");
    assert_eq!(reply["messages"][1]["role"], "assistant", "{reply}");
    assert_eq!(reply["messages"][1]["content"], greeting.text.as_str());
    assert_eq!(turns[1].speaker, "caller");
    assert!(
        turns[1].text.contains("what is this about"),
        "{:?}",
        turns[1].text
    );
    assert_eq!(turns[2].speaker, "agent", "the question was answered");
}

async fn backchannel_does_not_interrupt_the_agent(backend: Backend) {
    let Some(rig) = greeting_rig(backend).await else {
        return;
    };
    let script = Script::saying(vec![], 30)
        .interrupting("haan", Duration::from_millis(1500))
        .hanging_up_after(Duration::from_secs(12));
    let heard = hear(&rig.app, script).await;
    assert_eq!(heard.clears, 0, "no clear for a backchannel");
    assert!(
        heard.text.contains("Do you have a minute?"),
        "the whole greeting was spoken: {}",
        heard.text
    );
    let turns = turns(&rig.app, rig.call_id).await;
    assert!(!turns[0].interrupted);
    assert!(
        turns
            .iter()
            .all(|t| t.speaker != "caller" || !t.text.contains("haan")),
        "the backchannel is not a caller turn: {turns:?}"
    );
}

async fn caller_hanging_up_mid_sentence_keeps_everything_said(backend: Backend) {
    let Some(rig) = greeting_rig(backend).await else {
        return;
    };
    let script = Script::saying(vec!["Yes, I am interested. Tell me more."], 30)
        .hanging_up_after(Duration::from_millis(12_500));
    run_caller(&rig.app, script).await;
    let call = eventually(15, "call ended", || async {
        let c = rig.app.state.store.get_call(rig.call_id).await.unwrap();
        c.ended_at.is_some().then_some(c)
    })
    .await;
    let turns = turns(&rig.app, rig.call_id).await;
    assert!(
        turns
            .iter()
            .any(|t| t.speaker == "caller" && t.text.contains("interested")),
        "{turns:?}"
    );
    assert!(turns[0].text.starts_with("Namaste"));
    assert!(call.ended_at.is_some());
}

/// The caller's connection is cut (no `stop`, no close frame), as when a carrier's edge dies:
/// the call ends and the greeting is stored as interrupted, with the words that had played.
/// (The lead waits for the carrier's status webhook, as after any outbound call without an
/// outcome.)
async fn caller_vanishing_mid_greeting_ends_the_call_and_keeps_what_was_heard(backend: Backend) {
    let Some(rig) = greeting_rig(backend).await else {
        return;
    };
    let secret = rig.app.state.settings.webhook_secret.expose().to_string();
    let url = format!(
        "{}/media?secret={secret}",
        rig.app.base.replacen("http", "ws", 1)
    );
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("media connects");
    let (mut tx, mut rx) = ws.split();
    let start = json!({"event": "start", "sequence_number": "1", "stream_sid": "MZ1", "start": {
        "stream_sid": "MZ1", "call_sid": "CA-live-1", "account_sid": "AC1",
        "from": "+919876543210", "to": "+918044556677", "custom_parameters": {},
        "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"}}});
    tx.send(Message::text(start.to_string())).await.unwrap();
    // Four seconds of the greeting arrive (marks echoed as they come: audio is paced at real
    // time), then the connection is gone.
    let (mut media, mut marks) = (0, 0);
    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until, rx.next()).await {
        let v: Value = serde_json::from_str(msg.to_text().unwrap_or("{}")).unwrap_or_default();
        match v["event"].as_str() {
            Some("media") => media += 1,
            Some("mark") => {
                marks += 1;
                let echo = json!({"event": "mark", "stream_sid": "MZ1",
                    "mark": {"name": v["mark"]["name"]}});
                tx.send(Message::text(echo.to_string())).await.unwrap();
            }
            _ => {}
        }
    }
    assert!(media > 0, "the greeting started");
    assert_eq!(marks, 0, "the greeting is one phrase, still playing");
    drop((tx, rx));

    let call = eventually(15, "call ended", || async {
        let c = rig.app.state.store.get_call(rig.call_id).await.unwrap();
        c.ended_at.is_some().then_some(c)
    })
    .await;
    assert!(call.ended_at.is_some());
    let turns = turns_at_least(&rig.app, rig.call_id, 1, "greeting stored").await;
    let greeting = &turns[0];
    assert_eq!(greeting.speaker, "agent");
    assert!(greeting.interrupted, "{greeting:?}");
    // No mark came back, but about four seconds of it had played: what was heard is kept, cut
    // at a whole word (the emulated voice speaks about 16 characters a second).
    let said = GREETING.replace("{name}", "Asha");
    assert!(said.starts_with(&greeting.text), "{greeting:?}");
    let chars = greeting.text.chars().count();
    assert!(
        (30..=75).contains(&chars),
        "{chars} characters: {greeting:?}"
    );
    let next = said[greeting.text.len()..].chars().next();
    assert!(
        next.is_none_or(|c| !c.is_alphanumeric()),
        "cut at a word: {greeting:?}"
    );
    assert!(
        greeting.ended_ms.unwrap() >= 3_500,
        "cut after about 4 s: {greeting:?}"
    );
}

#[tokio::test]
async fn media_socket_is_refused_without_the_secret() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = crate::helpers::spawn_app(Backend::Sqlite).await.unwrap();
    let ws = app.base.replacen("http", "ws", 1);
    let secret = app.state.settings.webhook_secret.expose().to_string();
    // Exotel sends URL credentials (`wss://KEY:TOKEN@host/media`) as Basic auth.
    let basic = |user: &str, password: &str| {
        let mut request = format!("{ws}/media").into_client_request().unwrap();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request
            .headers_mut()
            .insert("authorization", format!("Basic {token}").parse().unwrap());
        request
    };
    let refused = [
        format!("{ws}/media").into_client_request().unwrap(),
        format!("{ws}/media?secret=wrong")
            .into_client_request()
            .unwrap(),
        basic("exotel", "wrong"),
    ];
    for request in refused {
        let uri = request.uri().to_string();
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{uri}")
            }
            other => panic!("{uri}: expected 401, got {:?}", other.map(|_| ())),
        }
    }
    assert!(
        tokio_tungstenite::connect_async(basic("exotel", &secret))
            .await
            .is_ok(),
        "Basic auth accepted"
    );
    let with_query = format!("{ws}/media?secret={secret}");
    assert!(
        tokio_tungstenite::connect_async(with_query.as_str())
            .await
            .is_ok(),
        "query secret accepted"
    );
}
