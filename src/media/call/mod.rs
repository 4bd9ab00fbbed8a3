//! One live call, top to bottom. One task owns all of the call's state and `select!`s over
//! what can happen next ([`run`]); each stage is a file:
//! 1. caller audio arrives on the carrier socket and goes to speech-to-text untouched;
//! 2. `listen`: STT results become the caller's turns (endpointing, backchannels, and barge-in:
//!    real words while the agent talks stop it);
//! 3. `reply`: a finished caller turn is answered by the model; its tokens are cut into phrases
//!    as they stream, and every tool call of a reply runs before the model is asked again;
//! 4. `speak`: phrases go to TTS, its audio into the playout, frames and a mark after each
//!    phrase to the carrier; the marks it echoes say what was played. A turn cut short keeps the
//!    words the caller heard (`heard`), not the ones generated;
//! 5. `waits`: every wait on another system (TTS end of turn, mark echoes, STT finals, the
//!    hang-up) has a deadline derived from what is known; when it passes, the call goes on and
//!    the stall is counted.
//!
//! Every turn is persisted as it happens, through an ordered writer task, so the audio loop
//! never waits on the database.

mod heard;
mod listen;
mod reply;
mod speak;
mod waits;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use tokio::time::Instant;

use crate::agent::lines::{Language, Lines};
use crate::agent::prompt;
use crate::metrics::{CallMeters, Provider};
use crate::store::{CallUsage, Campaign, Lead};
use crate::telephony::carrier::CarrierEvent;
use crate::voice::llm::{ChatModel, Message};
use crate::voice::stt::{self, SttSession};
use crate::voice::tts::{self, TtsSession};

use super::link::{CarrierRx, CarrierTx};
use super::playout::{Playout, Sent};
use super::writer::Writer;
use listen::Listening;
use speak::AgentTurn;

/// Knobs of a live call (defaults suit a sales call).
#[derive(Debug, Clone)]
pub struct CallTuning {
    pub sample_rate: u32,
    pub frame_ms: u32,
    /// How far ahead of real time agent audio is sent to the carrier.
    pub lead: Duration,
    /// No caller speech for this long → one prompt, then a goodbye.
    pub silence_timeout: Duration,
    pub max_duration: Duration,
    /// No first LLM token within this → a filler line, then one more try.
    pub first_token_deadline: Duration,
    /// Turns at most (a loop guard).
    pub max_turns: u32,
    /// A turn's text is complete and its last audio came this long ago, and the TTS has not
    /// said the turn is over: it is (the audio already received is still playing meanwhile).
    pub tts_end_grace: Duration,
    /// A turn's text is complete and no audio at all came for it within this: the TTS stalled,
    /// the turn is spoken over the fallback.
    pub tts_first_audio_wait: Duration,
    /// A mark not echoed this long after the audio before it must have played counts as
    /// played (the carrier keeps quiet, or echoes late).
    pub mark_grace: Duration,
    /// The caller's words have not changed for this long and STT has not ended the turn
    /// (`speech_final`, `UtteranceEnd`): ask it to finalise, or end the turn with the finals.
    pub stt_settle: Duration,
    /// After a `Finalize`, the longest wait for its answer; then the turn ends with what is known.
    pub finalize_wait: Duration,
}

impl Default for CallTuning {
    fn default() -> Self {
        Self {
            sample_rate: 8000,
            frame_ms: 100,
            lead: Duration::from_millis(200),
            silence_timeout: Duration::from_secs(8),
            max_duration: Duration::from_secs(600),
            first_token_deadline: Duration::from_millis(2500),
            max_turns: 40,
            tts_end_grace: Duration::from_secs(1),
            tts_first_audio_wait: Duration::from_secs(3),
            mark_grace: Duration::from_millis(1500),
            // Deepgram's `UtteranceEnd` follows the last word by `utterance_end_ms` (1 s), the
            // final holding it by `endpointing` (300 ms): this is past both.
            stt_settle: Duration::from_millis(1500),
            finalize_wait: Duration::from_secs(1),
        }
    }
}

/// The call's fixed facts.
pub struct CallSetup {
    pub call_id: i64,
    pub campaign: Campaign,
    pub lead: Option<Lead>,
    /// The carrier's stream id and when the stream began: every session snapshot carries
    /// them, since each one replaces the previous.
    pub stream_sid: String,
    pub started_at: chrono::DateTime<Utc>,
}

/// Why the call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    AgentHungUp,
    CallerHungUp,
    Silence,
    MaxDuration,
    Shutdown,
    ProviderFailed(String),
}

pub struct Call {
    setup: CallSetup,
    tuning: CallTuning,
    /// The campaign's language tag (backchannel words) and its family's fixed lines.
    language: String,
    lines: &'static Lines,
    llm: Arc<dyn ChatModel>,
    stt: Box<dyn SttSession>,
    tts: Box<dyn TtsSession>,
    /// The carrier socket's write half: agent audio, marks and `clear` go out from here.
    out: CarrierTx,
    /// Commands due this frame (a buffer reused for every frame).
    due: Vec<Sent>,
    writer: Writer,
    playout: Playout,
    history: Vec<Message>,
    /// The caller's side: the utterance so far and the turn-taking state.
    listening: Listening,
    agent: Option<AgentTurn>,
    seq: i32,
    started: Instant,
    last_activity: Instant,
    prompted_for_silence: bool,
    ending: Option<Ending>,
    /// The hang-up mark went out; hang up once it is echoed or by this instant.
    hangup_due: Option<Instant>,
    llm_failures: u32,
    /// The model's previous reply and how many times in a row it was said again.
    last_reply: String,
    repeats: u32,
    /// Tokens and characters the paid providers billed, written once when the call ends.
    usage: CallUsage,
    /// This call's metric handles (resolved once; the audio loop only bumps atomics).
    meters: CallMeters,
    /// Providers whose stall has been logged on this call (each is logged once, counted always).
    stalls_logged: Vec<Provider>,
}

/// Runs the call until it ends; returns why.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    setup: CallSetup,
    tuning: CallTuning,
    llm: Arc<dyn ChatModel>,
    stt: Box<dyn SttSession>,
    tts: Box<dyn TtsSession>,
    (mut carrier, out): (CarrierRx, CarrierTx),
    writer: Writer,
    shutdown: tokio_util::sync::CancellationToken,
    meters: CallMeters,
) -> Ending {
    let now = Instant::now();
    let language = setup.campaign.spec.language.clone();
    let system = prompt::system_prompt(&setup.campaign, setup.lead.as_ref(), Utc::now());
    let greeting = prompt::render_greeting(&setup.campaign.spec.greeting, setup.lead.as_ref());
    let mut call = Call {
        playout: Playout::new(tuning.sample_rate, tuning.frame_ms, 320, tuning.lead)
            .with_meters(meters.frames.clone()),
        setup,
        tuning,
        lines: Language::from_tag(&language).lines(),
        language,
        llm,
        stt,
        tts,
        out,
        due: Vec::new(),
        writer,
        history: vec![Message::system(system)],
        listening: Listening::default(),
        agent: None,
        seq: 0,
        started: now,
        last_activity: now,
        prompted_for_silence: false,
        ending: None,
        hangup_due: None,
        llm_failures: 0,
        last_reply: String::new(),
        repeats: 0,
        usage: CallUsage::default(),
        meters,
        stalls_logged: Vec::new(),
    };
    // The greeting needs no model: speak it at once.
    call.say(&greeting, None).await;

    let max_end = call.started + call.tuning.max_duration;
    loop {
        let now = Instant::now();
        let next_frame = call.playout.next_due(now.into_std()).map(Instant::from_std);
        let silence_due = call.silence_deadline();
        let wait_due = call.next_wait();
        let llm_next = async {
            match call.agent.as_mut().and_then(|a| a.llm.as_mut()) {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if call.ending.is_none() => {
                call.goodbye(Ending::Shutdown).await;
            }
            _ = sleep_opt(next_frame) => {
                // The carrier socket failed or stopped reading: the caller is gone. Keep what
                // was said and heard, as when they hang up.
                if call.send_due_frames().await.is_err() {
                    call.ending.get_or_insert(Ending::CallerHungUp);
                    call.caller_hung_up().await;
                    break;
                }
            }
            ev = carrier.recv() => match ev {
                Some(CarrierEvent::Media { pcm, .. }) => call.on_caller_audio(pcm),
                Some(CarrierEvent::Mark { name }) => {
                    if call.on_mark(&name) {
                        break;
                    }
                }
                Some(CarrierEvent::Stop { .. }) | None => {
                    call.ending.get_or_insert(Ending::CallerHungUp);
                    call.caller_hung_up().await;
                    break;
                }
                Some(CarrierEvent::Dtmf { digit }) => tracing::debug!(%digit, "DTMF ignored"),
                Some(_) => {}
            },
            ev = stt::next_event(call.stt.as_mut()) => match ev {
                Some(ev) => call.on_stt(ev).await,
                None => {
                    call.goodbye(Ending::ProviderFailed("speech-to-text ended".into())).await;
                }
            },
            ev = tts::next_event(call.tts.as_mut()) => match ev {
                Some(ev) => call.on_tts(ev).await,
                None => {
                    if call.ending.is_none() {
                        call.ending = Some(Ending::ProviderFailed("text-to-speech ended".into()));
                    }
                    break;
                }
            },
            ev = llm_next => call.on_llm(ev).await,
            _ = sleep_opt(silence_due) => call.on_silence().await,
            _ = tokio::time::sleep_until(max_end), if call.ending.is_none() => {
                call.goodbye(Ending::MaxDuration).await;
            }
            _ = sleep_opt(wait_due) => {
                if call.on_waits_due().await {
                    break;
                }
            }
        }
        call.finish_turn_if_over().await;
        if call.hang_up_now().await {
            break;
        }
    }
    call.finish().await
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Call {
    fn ms(&self, at: Instant) -> i64 {
        at.duration_since(self.started).as_millis() as i64
    }

    fn next_seq(&mut self) -> i32 {
        self.seq += 1;
        self.seq
    }

    /// The agent holds the floor: a turn is in progress or its audio is still playing.
    fn agent_busy(&self) -> bool {
        self.agent.is_some() || !self.playout.is_idle(Instant::now().into_std())
    }

    /// A provider kept quiet past a deadline: counted every time, logged once per call.
    fn stalled(&mut self, provider: Provider, what: &str) {
        self.meters.providers.stalled(provider);
        if !self.stalls_logged.contains(&provider) {
            self.stalls_logged.push(provider);
            tracing::warn!(
                call_id = self.setup.call_id,
                provider = provider.as_str(),
                what,
                "provider stalled: the call goes on without its signal"
            );
        }
    }

    fn silence_deadline(&self) -> Option<Instant> {
        if self.ending.is_some()
            || self.listening.caller_busy()
            || self.agent_busy()
            || self.hangup_due.is_some()
        {
            return None;
        }
        Some(self.last_activity + self.tuning.silence_timeout)
    }

    async fn on_silence(&mut self) {
        self.last_activity = Instant::now();
        if !self.prompted_for_silence {
            self.prompted_for_silence = true;
            self.say(self.lines.still_there, None).await;
        } else {
            self.say(self.lines.silence_goodbye, Some(Ending::Silence))
                .await;
        }
    }

    async fn goodbye(&mut self, why: Ending) {
        if self.ending.is_some() {
            return;
        }
        self.interrupt().await;
        self.say(self.lines.goodbye, Some(why)).await;
    }

    /// Hangs up (closes the carrier socket), closes the providers and returns why the call
    /// ended.
    async fn finish(mut self) -> Ending {
        let now = Instant::now();
        if self.agent.is_some() {
            let heard = self.heard_text(now);
            self.finish_agent_turn(Some(heard)).await;
        }
        if !self.usage.is_empty() {
            self.writer
                .send(super::writer::Write::Usage(std::mem::take(&mut self.usage)));
        }
        self.out.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stt.close()).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.tts.close()).await;
        self.ending.unwrap_or(Ending::CallerHungUp)
    }
}
