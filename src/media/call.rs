//! One live call, top to bottom: caller audio → STT → turn-taking → LLM → phrases → TTS →
//! playout → carrier. One task owns all of the call's state; barge-in is one branch
//! ([`Call::interrupt`]). Every turn is persisted as it happens (through an ordered writer task,
//! so the audio loop never waits on the database).

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::agent::phrases::PhraseSplitter;
use crate::agent::tools::{self, Action};
use crate::agent::{prompt, turns};
use crate::metrics::{CallMeters, ErrorKind, Provider, ReconnectKind, observe_ms};
use crate::providers::deepgram::{SttEvent, SttEvents, SttSession};
use crate::providers::elevenlabs::{AudioStream, ContextId, ElevenLabs, TtsEvent, TtsSession};
use crate::providers::openai::{
    ChatRequest, ChatStream, LlmError, LlmEvent, Message, OpenAiClient, ToolCall,
};
use crate::store::{CallUsage, Campaign, Lead, TranscriptTurn};
use crate::telephony::carrier::{CarrierCommand, CarrierEvent};

use super::link::{CarrierRx, CarrierTx};
use super::playout::Playout;
use super::writer::{Write, Writer};

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
    /// After the goodbye, wait at most this long for its mark before hanging up.
    pub hangup_wait: Duration,
    /// Turns at most (a loop guard).
    pub max_turns: u32,
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
            hangup_wait: Duration::from_secs(5),
            max_turns: 40,
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

/// One agent turn in flight.
struct AgentTurn {
    seq: i32,
    context: ContextId,
    llm: Option<ChatStream>,
    splitter: PhraseSplitter,
    /// Text sent to TTS, phrase by phrase: (text, cumulative chars, mark, heard).
    phrases: Vec<(String, usize, String, bool)>,
    chars_sent: usize,
    chars_aligned: usize,
    marks_placed: usize,
    tool_calls: Vec<ToolCall>,
    follow_ups: u32,
    flushed: bool,
    tts_done: bool,
    /// The TTS socket failed mid-turn: the rest is spoken through the HTTP stream.
    tts_broken: bool,
    fallback_started: bool,
    end_after: bool,
    /// When the caller's turn ended (for voice-to-voice), and latency parts.
    caller_done_at: Option<Instant>,
    stt_ms: Option<i32>,
    llm_started: Instant,
    llm_ttft: Option<Duration>,
    text_sent_at: Option<Instant>,
    tts_first: Option<Duration>,
    /// When the first TTS audio of the turn arrived (our playout overhead starts here).
    first_audio_at: Option<Instant>,
    first_frame_at: Option<Instant>,
    started_ms: i64,
}

impl AgentTurn {
    fn text(&self) -> String {
        self.phrases
            .iter()
            .map(|p| p.0.as_str())
            .collect::<String>()
            .trim()
            .to_string()
    }

    fn heard_text(&self) -> String {
        self.phrases
            .iter()
            .filter(|p| p.3)
            .map(|p| p.0.as_str())
            .collect::<String>()
            .trim()
            .to_string()
    }
}

pub struct Call {
    setup: CallSetup,
    tuning: CallTuning,
    llm: OpenAiClient,
    stt: SttSession,
    tts: TtsSession,
    /// HTTP streaming TTS, for finishing a turn whose WebSocket failed.
    tts_http: Option<(ElevenLabs, String)>,
    fallback: Option<AudioStream>,
    /// The carrier socket's write half: agent audio, marks and `clear` go out from here.
    out: CarrierTx,
    writer: Writer,
    playout: Playout,
    history: Vec<Message>,
    agent: Option<AgentTurn>,
    /// The caller's utterance so far (finals), and whether they are mid-speech.
    heard: String,
    caller_speaking: bool,
    last_voiced_at: Option<Instant>,
    caller_started_ms: Option<i64>,
    seq: i32,
    started: Instant,
    last_activity: Instant,
    prompted_for_silence: bool,
    ending: Option<Ending>,
    hangup_mark_sent: Option<Instant>,
    llm_failures: u32,
    language: String,
    /// The model's previous reply and how many times in a row it was said again.
    last_reply: String,
    repeats: u32,
    /// Tokens and characters the paid providers billed, written once when the call ends.
    usage: CallUsage,
    /// This call's metric handles (resolved once; the audio loop only bumps atomics).
    meters: CallMeters,
}

/// Runs the call until it ends; returns why.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    setup: CallSetup,
    tuning: CallTuning,
    llm: OpenAiClient,
    (stt, mut stt_events): (SttSession, SttEvents),
    (tts, mut tts_events): (TtsSession, mpsc::Receiver<TtsEvent>),
    tts_http: Option<(ElevenLabs, String)>,
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
        llm,
        stt,
        tts,
        tts_http,
        fallback: None,
        out,
        writer,
        history: vec![Message::system(system)],
        agent: None,
        heard: String::new(),
        caller_speaking: false,
        last_voiced_at: None,
        caller_started_ms: None,
        seq: 0,
        started: now,
        last_activity: now,
        prompted_for_silence: false,
        ending: None,
        hangup_mark_sent: None,
        llm_failures: 0,
        language,
        last_reply: String::new(),
        repeats: 0,
        usage: CallUsage::default(),
        meters,
    };
    // The greeting needs no model: speak it at once.
    call.say(&greeting, None).await;

    let max_end = call.started + call.tuning.max_duration;
    loop {
        let now = Instant::now();
        let next_frame = call.playout.next_due(now.into_std()).map(Instant::from_std);
        let silence_due = call.silence_deadline();
        let hangup_due = call.hangup_mark_sent.map(|t| t + call.tuning.hangup_wait);
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
                let mut gone = false;
                for cmd in call.playout.pop_due(Instant::now().into_std()) {
                    if matches!(cmd, CarrierCommand::Media(_))
                        && let Some(a) = call.agent.as_mut()
                        && a.first_frame_at.is_none()
                    {
                        a.first_frame_at = Some(Instant::now());
                    }
                    if call.out.send(&cmd).await.is_err() {
                        gone = true;
                        break;
                    }
                }
                // The carrier socket failed or stopped reading: the caller is gone. Keep what
                // was said and heard, as when they hang up.
                if gone {
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
            ev = stt_events.recv() => match ev {
                Some(ev) => call.on_stt(ev).await,
                None => {
                    call.goodbye(Ending::ProviderFailed("speech-to-text ended".into())).await;
                }
            },
            ev = tts_events.recv() => match ev {
                Some(ev) => call.on_tts(ev).await,
                None => {
                    if call.ending.is_none() {
                        call.ending = Some(Ending::ProviderFailed("text-to-speech ended".into()));
                    }
                    break;
                }
            },
            ev = llm_next => call.on_llm(ev).await,
            chunk = async {
                match call.fallback.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            } => call.on_fallback_audio(chunk),
            _ = sleep_opt(silence_due) => call.on_silence().await,
            _ = tokio::time::sleep_until(max_end), if call.ending.is_none() => {
                call.goodbye(Ending::MaxDuration).await;
            }
            _ = sleep_opt(hangup_due) => break,
        }
        call.finish_if_played().await;
        if call.ready_to_hang_up() {
            call.send_hangup_mark().await;
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

    fn agent_busy(&self) -> bool {
        self.agent.is_some() || !self.playout.is_idle(Instant::now().into_std())
    }

    /// Caller audio goes to STT untouched (Exotel's PCM is Deepgram's linear16).
    fn on_caller_audio(&mut self, pcm: Bytes) {
        if voiced(&pcm) {
            self.last_voiced_at = Some(Instant::now());
        }
        if let Err(e) = self.stt.send_audio(pcm) {
            tracing::debug!(error = %e, "audio not forwarded to STT");
        }
    }

    async fn on_stt(&mut self, ev: SttEvent) {
        match ev {
            SttEvent::SpeechStarted { .. } => {
                self.caller_speaking = true;
                self.caller_started_ms
                    .get_or_insert(self.ms(Instant::now()));
                self.last_activity = Instant::now();
            }
            SttEvent::Transcript(t) => {
                if t.text.trim().is_empty() {
                    if t.speech_final && !self.heard.trim().is_empty() {
                        self.caller_turn_ended().await;
                    }
                    return;
                }
                self.last_activity = Instant::now();
                self.caller_started_ms
                    .get_or_insert(self.ms(Instant::now()));
                // Barge-in: real words (not a backchannel) while the agent talks or thinks. An
                // interim's last word may still be growing ("h", "ha", "haan"), so only the
                // words before it count; a final counts whole.
                let pending = format!("{} {}", self.heard, t.text);
                let mut words = turns::words(&pending);
                if !t.is_final {
                    words.pop();
                }
                let spoken = words.join(" ");
                if self.agent_busy()
                    && self.ending.is_none()
                    && !spoken.is_empty()
                    && !turns::is_backchannel(&spoken, &self.language)
                {
                    self.interrupt().await;
                }
                if t.is_final {
                    self.heard.push(' ');
                    self.heard.push_str(t.text.trim());
                    if t.speech_final {
                        self.caller_turn_ended().await;
                    }
                }
            }
            SttEvent::UtteranceEnd { .. } => {
                // Backstop when endpointing never said speech_final (noise).
                if !self.heard.trim().is_empty() {
                    self.caller_turn_ended().await;
                }
            }
            SttEvent::Reconnected { attempts, replayed } => {
                let providers = &self.meters.providers;
                providers.error(Provider::Deepgram, ErrorKind::Dropped);
                providers.reconnect(Provider::Deepgram, ReconnectKind::Reconnect);
                tracing::warn!(
                    attempts,
                    replayed_ms = replayed.as_millis() as u64,
                    "STT reconnected"
                );
            }
            SttEvent::Closed { code, reason } => {
                // Mid-call (the call stops listening before it closes the session itself).
                self.meters
                    .providers
                    .error(Provider::Deepgram, ErrorKind::Dropped);
                tracing::warn!(?code, %reason, "STT closed");
            }
            SttEvent::Error { description } => {
                self.meters
                    .providers
                    .error(Provider::Deepgram, ErrorKind::Stream);
                tracing::warn!(%description, "STT error");
            }
            SttEvent::Metadata(_) => {}
        }
    }

    /// The caller finished an utterance: persist it, then answer it (once).
    async fn caller_turn_ended(&mut self) {
        let text = std::mem::take(&mut self.heard).trim().to_string();
        self.caller_speaking = false;
        if text.is_empty() {
            return;
        }
        let now = Instant::now();
        if self.agent_busy() && turns::is_backchannel(&text, &self.language) {
            tracing::debug!("backchannel while the agent talks: not a turn");
            self.caller_started_ms = None;
            return;
        }
        let stt_ms = self
            .last_voiced_at
            .map(|t| now.saturating_duration_since(t).as_millis() as i32);
        let seq = self.next_seq();
        let started_ms = self
            .caller_started_ms
            .take()
            .unwrap_or_else(|| self.ms(now));
        self.writer.send(Write::Turn(TranscriptTurn {
            started_ms: Some(started_ms),
            ended_ms: Some(self.ms(now)),
            stt_ms,
            ..TranscriptTurn::new(self.setup.call_id, seq, "caller", text.clone())
        }));
        self.history.push(Message::user(text));
        self.prompted_for_silence = false;
        if self.ending.is_some() {
            return;
        }
        if self.seq as u32 >= self.tuning.max_turns * 2 {
            self.goodbye(Ending::AgentHungUp).await;
            return;
        }
        self.respond(Some(now), stt_ms).await;
    }

    /// Starts an agent turn answered by the model.
    async fn respond(&mut self, caller_done_at: Option<Instant>, stt_ms: Option<i32>) {
        let Some(mut turn) = self.start_turn(caller_done_at).await else {
            return;
        };
        turn.stt_ms = stt_ms;
        turn.llm = Some(self.ask_model());
        turn.llm_started = Instant::now();
        self.agent = Some(turn);
    }

    fn ask_model(&self) -> ChatStream {
        let request = ChatRequest {
            messages: self.history.clone(),
            tools: tools::specs(&self.setup.campaign.spec.qualification_fields),
            temperature: Some(0.3),
            max_tokens: Some(200),
            response_format: None,
        };
        let deadline = Instant::now() + self.tuning.first_token_deadline;
        self.llm.stream_chat(
            &request,
            deadline,
            &tokio_util::sync::CancellationToken::new(),
        )
    }

    async fn start_turn(&mut self, caller_done_at: Option<Instant>) -> Option<AgentTurn> {
        let context = match self.tts.start_turn().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "TTS turn could not start");
                self.ending
                    .get_or_insert(Ending::ProviderFailed(format!("text-to-speech: {e}")));
                return None;
            }
        };
        let seq = self.next_seq();
        Some(AgentTurn {
            seq,
            context,
            llm: None,
            splitter: PhraseSplitter::new(),
            phrases: vec![],
            chars_sent: 0,
            chars_aligned: 0,
            marks_placed: 0,
            tool_calls: vec![],
            follow_ups: 0,
            flushed: false,
            tts_done: false,
            tts_broken: false,
            fallback_started: false,
            end_after: false,
            caller_done_at,
            stt_ms: None,
            llm_started: Instant::now(),
            llm_ttft: None,
            text_sent_at: None,
            tts_first: None,
            first_audio_at: None,
            first_frame_at: None,
            started_ms: self.ms(Instant::now()),
        })
    }

    /// Speaks fixed text (greeting, prompts, fillers, goodbyes) as its own agent turn.
    async fn say(&mut self, text: &str, end_after: Option<Ending>) {
        if let Some(e) = end_after {
            self.ending.get_or_insert(e);
        }
        self.finish_agent_turn(false).await;
        let Some(mut turn) = self.start_turn(None).await else {
            return;
        };
        turn.end_after = self.ending.is_some();
        self.agent = Some(turn);
        self.send_phrase(&format!("{} ", text.trim())).await;
        self.flush_turn().await;
        self.history.push(Message::assistant(text.trim()));
    }

    async fn send_phrase(&mut self, phrase: &str) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        turn.chars_sent += phrase.chars().count();
        let mark = format!("t{}-p{}", turn.seq, turn.phrases.len() + 1);
        turn.phrases
            .push((phrase.to_string(), turn.chars_sent, mark, false));
        turn.text_sent_at.get_or_insert(Instant::now());
        if turn.tts_broken {
            return; // spoken by the HTTP fallback once the reply is complete
        }
        self.usage.tts_characters += phrase.chars().count() as u32;
        if let Err(e) = self.tts.send_text(phrase).await {
            tracing::warn!(error = %e, "TTS refused text");
        }
    }

    async fn flush_turn(&mut self) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        if turn.flushed {
            return;
        }
        turn.flushed = true;
        if turn.phrases.is_empty() {
            turn.tts_done = true;
            return;
        }
        if turn.tts_broken {
            self.start_fallback().await;
            return;
        }
        if let Err(e) = self.tts.flush().await {
            tracing::warn!(error = %e, "TTS flush failed");
            turn.tts_done = true;
        }
    }

    async fn on_llm(&mut self, ev: Option<Result<LlmEvent, LlmError>>) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        match ev {
            Some(Ok(LlmEvent::Token(t))) => {
                turn.llm_ttft.get_or_insert(turn.llm_started.elapsed());
                let phrases = turn.splitter.push(&t);
                for p in phrases {
                    self.send_phrase(&p).await;
                }
            }
            Some(Ok(LlmEvent::ToolCalls(calls))) => {
                turn.llm_ttft.get_or_insert(turn.llm_started.elapsed());
                turn.tool_calls.extend(calls);
            }
            Some(Ok(LlmEvent::Usage(u))) => {
                self.usage.llm_prompt_tokens += u.prompt_tokens;
                self.usage.llm_completion_tokens += u.completion_tokens;
            }
            Some(Ok(LlmEvent::Done { .. })) | None => self.model_reply_done().await,
            Some(Err(e)) => self.model_failed(e).await,
        }
    }

    /// The model's reply is complete: speak the rest, run every tool call, ask once more only
    /// if the reply said nothing.
    async fn model_reply_done(&mut self) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        turn.llm = None;
        if let Some(rest) = turn.splitter.finish() {
            self.send_phrase(&rest).await;
        }
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        let calls = std::mem::take(&mut turn.tool_calls);
        let said = turn.text();
        // A model saying the same thing again and again is stuck: end politely.
        if !said.is_empty() && said == self.last_reply {
            self.repeats += 1;
        } else if !said.is_empty() {
            self.repeats = 0;
            self.last_reply = said.clone();
        }
        if self.repeats >= 2 && self.ending.is_none() {
            tracing::warn!(
                call_id = self.setup.call_id,
                "the model keeps repeating itself: ending the call"
            );
            self.ending = Some(Ending::AgentHungUp);
            if let Some(t) = self.agent.as_mut() {
                t.end_after = true;
            }
        }
        if calls.is_empty() {
            if !said.is_empty() {
                self.history.push(Message::assistant(said));
            }
            self.flush_turn().await;
            return;
        }
        self.history.push(Message::assistant_tool_calls(
            (!said.is_empty()).then_some(said.clone()),
            calls.clone(),
        ));
        for call in &calls {
            let result = self.run_tool(call);
            self.history
                .push(Message::tool_result(call.id.clone(), result));
        }
        let turn = self.agent.as_mut().expect("turn is live");
        if said.is_empty() && turn.follow_ups == 0 {
            turn.follow_ups += 1;
            turn.llm_started = Instant::now();
            let stream = self.ask_model();
            if let Some(t) = self.agent.as_mut() {
                t.llm = Some(stream);
            }
        } else {
            self.flush_turn().await;
        }
    }

    fn run_tool(&mut self, call: &ToolCall) -> String {
        let now = Utc::now();
        match tools::parse(call) {
            Action::EndCall { reason } => {
                tracing::info!(call_id = self.setup.call_id, %reason, "agent ends the call");
                self.ending.get_or_insert(Ending::AgentHungUp);
                if let Some(t) = self.agent.as_mut() {
                    t.end_after = true;
                }
                "ok: the call will end after your last sentence".into()
            }
            Action::RecordOutcome {
                intent,
                notes,
                qualification,
            } => {
                self.writer.send(Write::Outcome {
                    intent: intent.clone(),
                    qualification,
                    summary: notes,
                    at: now,
                });
                format!("recorded: {intent}")
            }
            Action::ScheduleCallback { at } => {
                if let Some(lead) = &self.setup.lead {
                    self.writer.send(Write::Callback {
                        lead_id: lead.id,
                        at,
                        now,
                    });
                }
                format!("callback scheduled for {}", at.to_rfc3339())
            }
            Action::Invalid { error } => format!("error: {error}"),
        }
    }

    async fn model_failed(&mut self, e: LlmError) {
        tracing::warn!(error = %e, "LLM turn failed");
        self.llm_failures += 1;
        let hindi = self.language.starts_with("hi");
        if self.llm_failures >= 2 || e.is_permanent() {
            let bye = if hindi {
                "माफ़ कीजिए, अभी तकनीकी दिक्कत है। हम आपको बाद में कॉल करेंगे।"
            } else {
                "Sorry, I am having trouble right now. We will call you back later. Goodbye."
            };
            self.say(bye, Some(Ending::ProviderFailed(e.to_string())))
                .await;
            return;
        }
        // A short filler instead of silence, then one more try.
        let filler = if hindi {
            "एक पल दीजिए।"
        } else {
            "Sorry, one moment please."
        };
        let caller_done_at = self.agent.as_ref().and_then(|a| a.caller_done_at);
        self.say(filler, None).await;
        if let Some(t) = self.agent.as_mut() {
            t.caller_done_at = caller_done_at;
            t.llm_started = Instant::now();
        }
        self.history.pop(); // the filler is not part of the conversation the model sees
        let stream = self.ask_model();
        if let Some(t) = self.agent.as_mut() {
            t.flushed = false;
            t.llm = Some(stream);
        }
    }

    async fn on_tts(&mut self, ev: TtsEvent) {
        match ev {
            TtsEvent::Audio {
                context,
                pcm,
                alignment,
            } => {
                let Some(turn) = self.agent.as_mut() else {
                    return;
                };
                if turn.context != context {
                    return; // a cancelled turn's late audio
                }
                if turn.tts_first.is_none() {
                    turn.tts_first = turn.text_sent_at.map(|t| t.elapsed());
                    turn.first_audio_at = Some(Instant::now());
                }
                self.playout.push_audio(&pcm, Instant::now().into_std());
                // A mark right after the chunk that completes each phrase.
                if let Some(a) = alignment {
                    turn.chars_aligned += a.chars.count;
                    while turn.marks_placed < turn.phrases.len()
                        && turn.phrases[turn.marks_placed].1 <= turn.chars_aligned
                    {
                        self.playout
                            .end_phrase(turn.phrases[turn.marks_placed].2.clone());
                        turn.marks_placed += 1;
                    }
                }
            }
            TtsEvent::TurnDone { context, .. } => {
                let Some(turn) = self.agent.as_mut() else {
                    return;
                };
                if turn.context != context {
                    return;
                }
                while turn.marks_placed < turn.phrases.len() {
                    self.playout
                        .end_phrase(turn.phrases[turn.marks_placed].2.clone());
                    turn.marks_placed += 1;
                }
                turn.tts_done = true;
            }
            TtsEvent::Error { error, context } => {
                self.meters.providers.tts_session_error(&error);
                tracing::warn!(?error, "TTS failed mid-turn: finishing the turn over HTTP");
                let Some(t) = self.agent.as_mut() else { return };
                if context.as_ref().is_some_and(|c| *c != t.context) || t.tts_done {
                    return;
                }
                t.tts_broken = true;
                if t.flushed {
                    self.start_fallback().await;
                }
            }
            TtsEvent::Closed => {}
        }
    }

    /// Speaks what the failed TTS socket had not voiced yet, through the HTTP stream.
    async fn start_fallback(&mut self) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        if turn.fallback_started {
            return;
        }
        turn.fallback_started = true;
        let text: String = turn
            .phrases
            .iter()
            .map(|p| p.0.as_str())
            .collect::<String>()
            .chars()
            .skip(turn.chars_aligned)
            .collect();
        let Some((http, voice)) = self.tts_http.clone() else {
            turn.tts_done = true;
            return;
        };
        if text.trim().is_empty() {
            turn.tts_done = true;
            return;
        }
        self.usage.tts_characters += text.trim().chars().count() as u32;
        self.meters
            .providers
            .reconnect(Provider::ElevenLabs, ReconnectKind::HttpFallback);
        match http.synthesize_stream(text.trim(), &voice).await {
            Ok(stream) => self.fallback = Some(stream),
            Err(e) => {
                self.meters.providers.tts_error(&e);
                tracing::error!(error = %e, "HTTP TTS fallback failed too");
                if let Some(t) = self.agent.as_mut() {
                    t.tts_done = true;
                }
            }
        }
    }

    fn on_fallback_audio(
        &mut self,
        chunk: Option<Result<Bytes, crate::providers::elevenlabs::TtsError>>,
    ) {
        match chunk {
            Some(Ok(pcm)) => {
                if let Some(t) = self.agent.as_mut() {
                    t.first_audio_at.get_or_insert(Instant::now());
                }
                self.playout.push_audio(&pcm, Instant::now().into_std());
            }
            Some(Err(e)) => {
                self.meters.providers.tts_error(&e);
                tracing::warn!(error = %e, "HTTP TTS fallback stream failed");
                self.fallback = None;
            }
            None => {
                self.fallback = None;
                if let Some(turn) = self.agent.as_mut() {
                    while turn.marks_placed < turn.phrases.len() {
                        self.playout
                            .end_phrase(turn.phrases[turn.marks_placed].2.clone());
                        turn.marks_placed += 1;
                    }
                    turn.tts_done = true;
                }
            }
        }
    }

    /// A mark came back: that phrase was heard. Returns true when it was the hang-up mark.
    fn on_mark(&mut self, name: &str) -> bool {
        if name == "hangup" {
            return true;
        }
        let heard = self.agent.as_mut().map(|t| &mut t.phrases);
        if let Some(phrases) = heard {
            for p in phrases.iter_mut() {
                if p.2 == name {
                    p.3 = true;
                }
            }
        }
        self.last_activity = Instant::now();
        false
    }

    /// An agent turn is over once it has been generated and played (every mark echoed), or,
    /// should the carrier never echo, a moment after its audio must have finished.
    async fn finish_if_played(&mut self) {
        let Some(turn) = self.agent.as_ref() else {
            return;
        };
        if !turn.tts_done || turn.llm.is_some() {
            return;
        }
        let all_heard = turn.phrases.iter().all(|p| p.3);
        let now = Instant::now();
        let silent_for_long = self
            .playout
            .is_idle((now - Duration::from_millis(1500)).into_std())
            && self.playout.is_idle(now.into_std());
        if all_heard || silent_for_long {
            self.finish_agent_turn(false).await;
        }
    }

    /// Barge-in: stop the agent's audio, cancel the model and TTS, and keep in the history only
    /// what the caller heard.
    async fn interrupt(&mut self) {
        let now = Instant::now();
        if self.playout.clear(now.into_std()) {
            let _ = self.out.send(&CarrierCommand::Clear).await;
        }
        if self.agent.is_none() {
            return;
        }
        let _ = self.tts.cancel_turn().await;
        if let Some(t) = self.agent.as_mut() {
            t.llm = None; // dropping the stream aborts the request
            t.tool_calls.clear();
        }
        tracing::info!(call_id = self.setup.call_id, "barge-in: agent stopped");
        self.finish_agent_turn(true).await;
    }

    /// Persists the agent turn (trimmed to what was heard if interrupted) and forgets it.
    async fn finish_agent_turn(&mut self, interrupted: bool) {
        let Some(turn) = self.agent.take() else {
            return;
        };
        let text = if interrupted {
            turn.heard_text()
        } else {
            turn.text()
        };
        if interrupted {
            // The model must not believe it said what the caller never heard.
            if let Some(Message::Assistant { .. }) = self.history.last() {
                self.history.pop();
            }
            if !text.is_empty() {
                self.history.push(Message::assistant(text.clone()));
            }
        }
        if turn.phrases.is_empty() {
            return;
        }
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as i32);
        let v2v = match (turn.caller_done_at, turn.first_frame_at) {
            (Some(a), Some(b)) => Some(b.saturating_duration_since(a).as_millis() as i32),
            _ => None,
        };
        let added =
            v2v.map(|v| v - ms(turn.llm_ttft).unwrap_or(0) - ms(turn.tts_first).unwrap_or(0));
        // The same figures as the stored turn, so dashboards and transcripts agree.
        let m = &self.meters;
        observe_ms(&m.stt, turn.stt_ms);
        observe_ms(&m.llm_first_token, ms(turn.llm_ttft));
        observe_ms(&m.tts_first_byte, ms(turn.tts_first));
        observe_ms(&m.voice_to_voice, v2v);
        observe_ms(&m.added, added);
        self.writer.send(Write::Turn(TranscriptTurn {
            call_id: self.setup.call_id,
            seq: turn.seq,
            speaker: "agent".into(),
            text,
            started_ms: Some(turn.started_ms),
            ended_ms: Some(self.ms(Instant::now())),
            interrupted,
            stt_ms: turn.stt_ms,
            llm_first_token_ms: ms(turn.llm_ttft),
            tts_first_byte_ms: ms(turn.tts_first),
            voice_to_voice_ms: v2v,
            added_ms: added,
        }));
        if turn.end_after {
            self.ending.get_or_insert(Ending::AgentHungUp);
        }
        self.writer.send(Write::Snapshot(serde_json::json!({
            "call_id": self.setup.call_id,
            "campaign_id": self.setup.campaign.id,
            "stream_sid": self.setup.stream_sid,
            "started_at": self.setup.started_at,
            "state": if self.ending.is_some() { "ending" } else { "live" },
            "turns": self.seq,
            "duration_ms": self.ms(Instant::now()),
            "last_turn": {
                "seq": turn.seq, "interrupted": interrupted, "stt_ms": turn.stt_ms,
                "llm_first_token_ms": ms(turn.llm_ttft), "tts_first_byte_ms": ms(turn.tts_first),
                "voice_to_voice_ms": v2v, "added_ms": added,
            },
            "updated_at": Utc::now(),
        })));
    }

    fn silence_deadline(&self) -> Option<Instant> {
        if self.ending.is_some()
            || self.caller_speaking
            || self.agent_busy()
            || !self.heard.is_empty()
        {
            return None;
        }
        Some(self.last_activity + self.tuning.silence_timeout)
    }

    async fn on_silence(&mut self) {
        self.last_activity = Instant::now();
        let hindi = self.language.starts_with("hi");
        if !self.prompted_for_silence {
            self.prompted_for_silence = true;
            let prompt = if hindi {
                "क्या आप मुझे सुन पा रहे हैं?"
            } else {
                "Hello, are you still there?"
            };
            self.say(prompt, None).await;
        } else {
            let bye = if hindi {
                "कोई बात नहीं, हम बाद में बात करेंगे। धन्यवाद।"
            } else {
                "No problem, we will talk another time. Goodbye."
            };
            self.say(bye, Some(Ending::Silence)).await;
        }
    }

    async fn goodbye(&mut self, why: Ending) {
        if self.ending.is_some() {
            return;
        }
        let hindi = self.language.starts_with("hi");
        let bye = if hindi {
            "धन्यवाद, हम आपसे फिर संपर्क करेंगे।"
        } else {
            "Thank you for your time. Goodbye."
        };
        self.interrupt().await;
        self.say(bye, Some(why)).await;
    }

    /// The goodbye has been fully sent: the next mark tells us it was played.
    fn ready_to_hang_up(&self) -> bool {
        self.ending.is_some()
            && self.hangup_mark_sent.is_none()
            && self.agent.is_none()
            && !self.playout.has_queued_audio()
    }

    async fn send_hangup_mark(&mut self) {
        self.hangup_mark_sent = Some(Instant::now());
        self.playout.end_phrase("hangup");
        for cmd in self.playout.pop_due(Instant::now().into_std()) {
            let _ = self.out.send(&cmd).await;
        }
    }

    async fn caller_hung_up(&mut self) {
        if !self.heard.trim().is_empty() {
            // Keep what the caller said before hanging up.
            let text = std::mem::take(&mut self.heard);
            let seq = self.next_seq();
            self.writer.send(Write::Turn(TranscriptTurn {
                started_ms: self.caller_started_ms,
                ended_ms: Some(self.ms(Instant::now())),
                ..TranscriptTurn::new(self.setup.call_id, seq, "caller", text.trim())
            }));
        }
        // The agent was cut off: keep what was heard.
        self.finish_agent_turn(true).await;
    }

    /// Hangs up (closes the carrier socket), closes the providers and returns why the call
    /// ended.
    async fn finish(mut self) -> Ending {
        self.finish_agent_turn(true).await;
        if !self.usage.is_empty() {
            self.writer.send(Write::Usage(self.usage));
        }
        self.out.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stt.close()).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.tts.close()).await;
        self.ending.unwrap_or(Ending::CallerHungUp)
    }
}

/// True when 16-bit PCM carries more than background noise.
fn voiced(pcm: &[u8]) -> bool {
    crate::pcm::peak(pcm) > 500
}
