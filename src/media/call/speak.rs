//! Speaking: an agent turn's phrases go to TTS, its audio into the playout, frames and a mark
//! after each phrase to the carrier; the marks the carrier echoes say what was played.
//!
//! A turn's speech moves through [`Speech`]: the text streams in, then the turn is ended at the
//! TTS and its last audio awaited (bounded: `waits`). How the vendor recovers from its own
//! failures is its own business (`voice::tts`). The turn is over once all of its audio is in and
//! every mark is resolved (echoed, or past its bounded wait). Barge-in ([`Call::interrupt`]) and hang-ups cut
//! the turn at the last word the caller heard.

use chrono::Utc;
use tokio::time::Instant;

use crate::agent::phrases::PhraseSplitter;
use crate::metrics::observe_ms;
use crate::store::TranscriptTurn;
use crate::telephony::carrier::CarrierCommand;
use crate::voice::llm::{ChatStream, Message, ToolCall};
use crate::voice::tts::{TtsEvent, TurnId};

use super::heard::{Timeline, cut_at_word};
use super::{Call, Ending};
use crate::media::link::LinkClosed;
use crate::media::writer::Write;

/// The name of the mark that follows the goodbye: its echo means the call may be hung up.
pub(super) const HANGUP_MARK: &str = "hangup";

/// One phrase of an agent turn, as sent to TTS.
pub(super) struct Phrase {
    /// The phrase, ending in a space.
    pub text: String,
    /// Characters of the turn's text up to the end of this phrase.
    pub end_char: usize,
    /// The mark that follows its audio (`t{turn}-p{n}`).
    pub mark: String,
    pub echo: Echo,
}

/// Where a phrase's mark is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Echo {
    /// Its audio is not all in yet, or the mark waits in the playout.
    Unsent,
    /// Sent: the audio before it will have played by then.
    Sent { played_by: Instant },
    /// The carrier echoed it.
    Echoed,
    /// Never echoed within its bounded wait: taken as played.
    Assumed,
}

impl Echo {
    pub fn resolved(self) -> bool {
        matches!(self, Echo::Echoed | Echo::Assumed)
    }
}

/// Where a turn's speech is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Speech {
    /// Text is still coming (the model), sent to TTS phrase by phrase.
    Streaming,
    /// All text sent and the turn ended at the TTS at `since`; its last audio is awaited.
    Ending { since: Instant },
    /// All of the turn's audio is in the playout.
    Done,
}

/// Latency parts of one turn, stored with it.
#[derive(Debug, Default)]
pub(super) struct Latency {
    /// When the caller's turn ended (voice-to-voice starts here) and STT's share.
    pub caller_done_at: Option<Instant>,
    pub stt_ms: Option<i32>,
    pub llm_started: Option<Instant>,
    pub llm_ttft: Option<std::time::Duration>,
    pub text_sent_at: Option<Instant>,
    pub tts_first: Option<std::time::Duration>,
    /// When the turn's first frame went to the carrier.
    pub first_frame_at: Option<Instant>,
}

/// One agent turn in flight.
pub(super) struct AgentTurn {
    pub seq: i32,
    /// The TTS's name for it.
    pub tts_turn: TurnId,
    pub llm: Option<ChatStream>,
    pub splitter: PhraseSplitter,
    pub phrases: Vec<Phrase>,
    pub chars_sent: usize,
    /// Characters the TTS alignment has covered.
    pub chars_aligned: usize,
    /// Phrases whose mark is in the playout.
    pub marks_placed: usize,
    pub tool_calls: Vec<ToolCall>,
    pub follow_ups: u32,
    /// The call ends once this turn has been played.
    pub end_after: bool,
    pub speech: Speech,
    /// Where the turn's characters fall in its audio.
    pub timeline: Timeline,
    /// The playout's stream position where this turn's audio begins.
    pub audio_base: u64,
    pub last_audio_at: Option<Instant>,
    pub latency: Latency,
    pub started_ms: i64,
    /// The turn's trace span (a child of the call's): its model requests are children of it,
    /// and it records the turn's latencies when the turn ends.
    pub span: tracing::Span,
}

impl AgentTurn {
    /// Everything sent to TTS, as one string.
    pub fn text(&self) -> String {
        self.phrases.iter().map(|p| p.text.as_str()).collect()
    }

    /// Still generating, or audio still to come: not just waiting for marks.
    pub fn producing(&self) -> bool {
        self.llm.is_some() || self.speech != Speech::Done
    }
}

impl Call {
    /// Starts an agent turn (a new TTS context). `None` when TTS refuses: the call ends.
    pub(super) fn start_turn(&mut self, caller_done_at: Option<Instant>) -> Option<AgentTurn> {
        let seq = self.next_seq();
        let tts_turn = TurnId(seq as u64);
        if let Err(e) = self.tts.start_turn(tts_turn) {
            tracing::error!(error = %e, "TTS turn could not start");
            self.ending
                .get_or_insert(Ending::ProviderFailed(format!("text-to-speech: {e}")));
            return None;
        }
        let span = tracing::info_span!(
            "turn",
            seq,
            call_id = self.setup.call_id,
            campaign_id = self.setup.campaign.id,
            interrupted = tracing::field::Empty,
            stt_ms = tracing::field::Empty,
            llm_first_token_ms = tracing::field::Empty,
            tts_first_byte_ms = tracing::field::Empty,
            voice_to_voice_ms = tracing::field::Empty,
        );
        Some(AgentTurn {
            span,
            seq,
            tts_turn,
            llm: None,
            splitter: PhraseSplitter::new(),
            phrases: vec![],
            chars_sent: 0,
            chars_aligned: 0,
            marks_placed: 0,
            tool_calls: vec![],
            follow_ups: 0,
            end_after: false,
            speech: Speech::Streaming,
            timeline: Timeline::new(self.tuning.sample_rate),
            audio_base: self.playout.pushed(),
            last_audio_at: None,
            latency: Latency {
                caller_done_at,
                ..Latency::default()
            },
            started_ms: self.ms(Instant::now()),
        })
    }

    /// Speaks fixed text (greeting, prompts, fillers, goodbyes) as its own agent turn.
    pub(super) async fn say(&mut self, text: &str, end_after: Option<Ending>) {
        if let Some(e) = end_after {
            self.ending.get_or_insert(e);
        }
        if self.agent.is_some() {
            self.finish_agent_turn(None).await;
        }
        let Some(mut turn) = self.start_turn(None) else {
            return;
        };
        turn.end_after = self.ending.is_some();
        self.agent = Some(turn);
        self.send_phrase(&format!("{} ", text.trim()));
        self.end_text().await;
        self.history.push(Message::assistant(text.trim()));
    }

    pub(super) fn send_phrase(&mut self, phrase: &str) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        turn.chars_sent += phrase.chars().count();
        let mark = format!("t{}-p{}", turn.seq, turn.phrases.len() + 1);
        turn.phrases.push(Phrase {
            text: phrase.to_string(),
            end_char: turn.chars_sent,
            mark,
            echo: Echo::Unsent,
        });
        turn.latency.text_sent_at.get_or_insert(Instant::now());
        self.usage.tts_characters += phrase.chars().count() as u32;
        if let Err(e) = self.tts.send_text(phrase) {
            tracing::warn!(error = %e, "TTS refused text");
        }
    }

    /// The turn's text is complete: end it at the TTS (its audio keeps coming).
    pub(super) async fn end_text(&mut self) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        if turn.speech != Speech::Streaming {
            return;
        }
        let ended = self.tts.end_turn();
        if turn.phrases.is_empty() {
            self.speech_done();
        } else if let Err(e) = ended {
            tracing::warn!(error = %e, "TTS did not take the end of the turn");
            self.speech_done();
        } else {
            turn.speech = Speech::Ending {
                since: Instant::now(),
            };
        }
    }

    /// All of the turn's audio is in: the marks of its phrases not yet placed follow it.
    pub(super) fn speech_done(&mut self) {
        self.place_marks_through(usize::MAX);
        if let Some(turn) = self.agent.as_mut() {
            turn.speech = Speech::Done;
        }
    }

    /// Places the mark of every phrase whose text ends by `chars`, right after its audio.
    fn place_marks_through(&mut self, chars: usize) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        while let Some(p) = turn.phrases.get(turn.marks_placed) {
            if p.end_char > chars {
                break;
            }
            turn.timeline.phrase_ended(p.end_char);
            self.playout.end_phrase(p.mark.clone());
            turn.marks_placed += 1;
        }
    }

    pub(super) async fn on_tts(&mut self, ev: TtsEvent) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        // Audio or news of a cancelled turn, or after the turn was taken as done.
        let live = |t: &AgentTurn, of: crate::voice::tts::TurnId| {
            t.tts_turn == of && matches!(t.speech, Speech::Streaming | Speech::Ending { .. })
        };
        match ev {
            TtsEvent::Audio {
                turn: of,
                pcm,
                alignment,
            } => {
                if !live(turn, of) {
                    return;
                }
                let now = Instant::now();
                if turn.latency.tts_first.is_none() {
                    turn.latency.tts_first = turn.latency.text_sent_at.map(|t| now - t);
                }
                turn.last_audio_at = Some(now);
                let ends = alignment.iter().flat_map(|a| a.ends_ms.iter().copied());
                turn.timeline.push(pcm.len(), ends);
                self.playout.push_audio(&pcm, now.into_std());
                // A mark right after the chunk that completes each phrase.
                if let Some(a) = alignment {
                    turn.chars_aligned += a.chars;
                    let aligned = turn.chars_aligned;
                    self.place_marks_through(aligned);
                }
            }
            TtsEvent::Spoken { turn: of, chars } => {
                if live(turn, of) {
                    turn.chars_aligned = turn.chars_aligned.max(chars);
                    self.place_marks_through(chars);
                }
            }
            TtsEvent::TurnDone { turn: of, .. } => {
                if live(turn, of) {
                    self.speech_done();
                }
            }
            TtsEvent::Error { turn: of, message } => {
                if of.is_none_or(|of| live(turn, of)) {
                    tracing::warn!(%message, "TTS gave up on the turn: it ends with what was said");
                    self.speech_done();
                }
            }
            TtsEvent::Closed => {}
        }
    }

    /// Sends the frames and marks due now; an error means the caller is gone.
    pub(super) async fn send_due_frames(&mut self) -> Result<(), LinkClosed> {
        let mut due = std::mem::take(&mut self.due);
        self.playout.pop_due(Instant::now().into_std(), &mut due);
        let mut result = Ok(());
        for sent in due.drain(..) {
            match &sent.command {
                CarrierCommand::Media(_) => {
                    if let Some(t) = self.agent.as_mut() {
                        t.latency.first_frame_at.get_or_insert_with(Instant::now);
                    }
                }
                CarrierCommand::Mark(name) => self.mark_sent(name, sent.played_by.into()),
                CarrierCommand::Clear => {}
            }
            if result.is_ok() {
                result = self.out.send(&sent.command).await;
            }
        }
        self.due = due;
        result
    }

    fn mark_sent(&mut self, name: &str, played_by: Instant) {
        if name == HANGUP_MARK {
            self.hangup_due = Some(played_by + self.tuning.mark_grace);
            return;
        }
        if let Some(p) = self.phrase_mut(name) {
            p.echo = Echo::Sent { played_by };
        }
    }

    /// A mark came back: that phrase was heard. True when it was the hang-up mark.
    pub(super) fn on_mark(&mut self, name: &str) -> bool {
        if name == HANGUP_MARK {
            return true;
        }
        if let Some(p) = self.phrase_mut(name) {
            p.echo = Echo::Echoed;
        }
        self.last_activity = Instant::now();
        false
    }

    fn phrase_mut(&mut self, mark: &str) -> Option<&mut Phrase> {
        let turn = self.agent.as_mut()?;
        turn.phrases.iter_mut().find(|p| p.mark == mark)
    }

    /// An agent turn is over once all of its audio is in and every mark is resolved.
    pub(super) async fn finish_turn_if_over(&mut self) {
        let over = self
            .agent
            .as_ref()
            .is_some_and(|t| !t.producing() && t.phrases.iter().all(|p| p.echo.resolved()));
        if over {
            self.finish_agent_turn(None).await;
        }
    }

    /// What the caller has heard of the current turn by `now`, cut at the last whole word.
    pub(super) fn heard_text(&self, now: Instant) -> String {
        let Some(turn) = self.agent.as_ref() else {
            return String::new();
        };
        let position = self
            .playout
            .heard_position(now.into_std())
            .saturating_sub(turn.audio_base);
        let by_audio = turn.timeline.chars_heard(position);
        let by_marks = turn
            .phrases
            .iter()
            .filter(|p| p.echo == Echo::Echoed)
            .map(|p| p.end_char)
            .max()
            .unwrap_or(0);
        cut_at_word(&turn.text(), by_audio.max(by_marks)).to_string()
    }

    /// Barge-in: stop the agent's audio, cancel the model and TTS, and keep in the history only
    /// what the caller heard.
    pub(super) async fn interrupt(&mut self) {
        let now = Instant::now();
        // Read before the clear, which counts the dropped audio as passed.
        let heard = self.heard_text(now);
        if self.playout.clear(now.into_std()) {
            let _ = self.out.send(&CarrierCommand::Clear).await;
        }
        if self.agent.is_none() {
            return;
        }
        let _ = self.tts.cancel_turn();
        if let Some(t) = self.agent.as_mut() {
            t.llm = None; // dropping the stream aborts the request
            t.tool_calls.clear();
        }
        tracing::info!(call_id = self.setup.call_id, "barge-in: agent stopped");
        self.finish_agent_turn(Some(heard)).await;
    }

    /// Persists the agent turn and forgets it. `cut`: the turn was cut short (barge-in, hang-up)
    /// and this is what the caller heard of it.
    pub(super) async fn finish_agent_turn(&mut self, cut: Option<String>) {
        let Some(turn) = self.agent.take() else {
            return;
        };
        let interrupted = cut.is_some();
        let text = match cut {
            Some(heard) => {
                // The model must not believe it said what the caller never heard.
                if let Some(Message::Assistant { .. }) = self.history.last() {
                    self.history.pop();
                }
                if !heard.is_empty() {
                    self.history.push(Message::assistant(heard.clone()));
                }
                heard
            }
            None => turn.text().trim().to_string(),
        };
        if turn.end_after {
            self.ending.get_or_insert(Ending::AgentHungUp);
        }
        // Nothing was heard: there is no turn to keep.
        if text.is_empty() {
            return;
        }
        let l = &turn.latency;
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as i32);
        let v2v = match (l.caller_done_at, l.first_frame_at) {
            (Some(a), Some(b)) => Some(b.saturating_duration_since(a).as_millis() as i32),
            _ => None,
        };
        let added = v2v.map(|v| v - ms(l.llm_ttft).unwrap_or(0) - ms(l.tts_first).unwrap_or(0));
        // The same figures as the stored turn, so dashboards and transcripts agree.
        let m = &self.meters;
        observe_ms(&m.stt, l.stt_ms);
        observe_ms(&m.llm_first_token, ms(l.llm_ttft));
        observe_ms(&m.tts_first_byte, ms(l.tts_first));
        observe_ms(&m.voice_to_voice, v2v);
        observe_ms(&m.added, added);
        turn.span.record("interrupted", interrupted);
        for (field, value) in [
            ("stt_ms", l.stt_ms),
            ("llm_first_token_ms", ms(l.llm_ttft)),
            ("tts_first_byte_ms", ms(l.tts_first)),
            ("voice_to_voice_ms", v2v),
        ] {
            if let Some(v) = value {
                turn.span.record(field, v);
            }
        }
        self.writer.send(Write::Turn(TranscriptTurn {
            call_id: self.setup.call_id,
            seq: turn.seq,
            speaker: "agent".into(),
            text,
            started_ms: Some(turn.started_ms),
            ended_ms: Some(self.ms(Instant::now())),
            interrupted,
            stt_ms: l.stt_ms,
            llm_first_token_ms: ms(l.llm_ttft),
            tts_first_byte_ms: ms(l.tts_first),
            voice_to_voice_ms: v2v,
            added_ms: added,
        }));
        self.writer.send(Write::Snapshot(serde_json::json!({
            "call_id": self.setup.call_id,
            "campaign_id": self.setup.campaign.id,
            "stream_sid": self.setup.stream_sid,
            "started_at": self.setup.started_at,
            "state": if self.ending.is_some() { "ending" } else { "live" },
            "turns": self.seq,
            "duration_ms": self.ms(Instant::now()),
            "last_turn": {
                "seq": turn.seq, "interrupted": interrupted, "stt_ms": l.stt_ms,
                "llm_first_token_ms": ms(l.llm_ttft), "tts_first_byte_ms": ms(l.tts_first),
                "voice_to_voice_ms": v2v, "added_ms": added,
            },
            "updated_at": Utc::now(),
        })));
    }

    /// Once the call is ending and everything said has played: true to hang up now, else the
    /// hang-up mark goes out and its echo (or its bounded wait) hangs up.
    pub(super) async fn hang_up_now(&mut self) -> bool {
        if self.ending.is_none()
            || self.agent.is_some()
            || self.hangup_due.is_some()
            || self.playout.has_queued_audio()
        {
            return false;
        }
        if self.playout.is_idle(Instant::now().into_std()) {
            return true;
        }
        self.playout.end_phrase(HANGUP_MARK);
        // The caller is gone if this fails; the loop's next send says so.
        let _ = self.send_due_frames().await;
        false
    }
}
