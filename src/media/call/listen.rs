//! Listening: caller audio to STT, and STT results to the caller's turns.
//!
//! A caller turn ends on `speech_final`, or on `UtteranceEnd` when that never came (Deepgram
//! sends several finals for a long utterance; only the last carries `speech_final`), and is
//! answered once. Should STT say neither, the turn still ends: once the caller's words have not
//! changed for [`CallTuning::stt_settle`](super::CallTuning), STT is asked to `Finalize` what it
//! holds, and the turn ends with its answer or, after `finalize_wait`, with what is known.
//!
//! Barge-in: complete, non-backchannel words while the agent talks or thinks stop it
//! ([`Call::interrupt`]); "haan" or "hmm" over the agent are not turns. A turn whose audio has
//! all played but whose marks have not come back is over for this purpose: the caller's answer
//! is an answer, not an interruption.

use bytes::Bytes;
use tokio::time::Instant;

use crate::agent::turns;
use crate::metrics::{ErrorKind, ReconnectKind};
use crate::store::TranscriptTurn;
use crate::voice::llm::Message;
use crate::voice::stt::SttEvent;

use super::{Call, CallTuning, Ending};
use crate::media::writer::Write;

/// The caller's side of the conversation.
#[derive(Debug, Default)]
pub(super) struct Listening {
    /// Finals of the utterance so far.
    heard: String,
    /// The latest interim result beyond the finals.
    interim: String,
    /// Speech started and the utterance has not ended.
    speaking: bool,
    last_voiced_at: Option<Instant>,
    started_ms: Option<i64>,
    /// When STT last said something new about the pending words.
    progress_at: Option<Instant>,
    /// When we asked STT to finalise (its answer is awaited).
    finalize_sent_at: Option<Instant>,
}

impl Listening {
    /// The caller is talking, or has words not yet answered.
    pub fn caller_busy(&self) -> bool {
        self.speaking || !self.heard.is_empty()
    }

    fn pending(&self) -> bool {
        !self.heard.trim().is_empty() || !self.interim.trim().is_empty()
    }

    /// When STT's silence about the pending words ends the wait for its end of turn.
    pub fn settle_due(&self, tuning: &CallTuning) -> Option<Instant> {
        if !self.pending() {
            return None;
        }
        match self.finalize_sent_at {
            Some(sent) => Some(sent + tuning.finalize_wait),
            None => self.progress_at.map(|t| t + tuning.stt_settle),
        }
    }

    /// Takes the utterance; the interim's words too when STT never confirmed them.
    fn take(&mut self, with_interim: bool) -> String {
        let mut text = std::mem::take(&mut self.heard);
        let interim = std::mem::take(&mut self.interim);
        if with_interim && !interim.trim().is_empty() {
            text.push(' ');
            text.push_str(interim.trim());
        }
        self.speaking = false;
        self.progress_at = None;
        self.finalize_sent_at = None;
        text.trim().to_string()
    }
}

impl Call {
    /// Caller audio goes to STT untouched (Exotel's PCM is Deepgram's linear16).
    pub(super) fn on_caller_audio(&mut self, pcm: Bytes) {
        if crate::pcm::peak(&pcm) > 500 {
            self.listening.last_voiced_at = Some(Instant::now());
        }
        if let Err(e) = self.stt.send_audio(pcm) {
            tracing::debug!(error = %e, "audio not forwarded to STT");
        }
    }

    pub(super) async fn on_stt(&mut self, ev: SttEvent) {
        let provider = self.stt.provider();
        match ev {
            SttEvent::SpeechStarted => {
                let now = Instant::now();
                self.listening.speaking = true;
                self.listening.progress_at = Some(now);
                self.listening.started_ms.get_or_insert(self.ms(now));
                self.last_activity = now;
            }
            SttEvent::Interim { text } => self.on_words(text, false, false, false).await,
            SttEvent::Final {
                text,
                end_of_turn,
                finalized,
            } => self.on_words(text, true, end_of_turn, finalized).await,
            SttEvent::EndOfTurn => {
                // Backstop when endpointing never said speech_final (noise).
                if !self.listening.heard.trim().is_empty() {
                    self.caller_turn_ended(false).await;
                }
            }
            SttEvent::Reconnected { attempts, replayed } => {
                let providers = &self.meters.providers;
                providers.error(provider, ErrorKind::Dropped);
                providers.reconnect(provider, ReconnectKind::Reconnect);
                tracing::warn!(
                    attempts,
                    replayed_ms = replayed.as_millis() as u64,
                    "STT reconnected"
                );
            }
            SttEvent::Closed { reason } => {
                // Mid-call (the call stops listening before it closes the session itself).
                self.meters.providers.error(provider, ErrorKind::Dropped);
                tracing::warn!(%reason, "STT closed");
            }
            SttEvent::Error { description } => {
                self.meters.providers.error(provider, ErrorKind::Stream);
                tracing::warn!(%description, "STT error");
            }
        }
    }

    /// Words from STT: `is_final` fixed, `end_of_turn` the vendor's endpointing, `finalized` the
    /// answer to our `finalize`.
    async fn on_words(&mut self, text: String, is_final: bool, end_of_turn: bool, finalized: bool) {
        let now = Instant::now();
        let answered_finalize = finalized && self.listening.finalize_sent_at.is_some();
        if text.trim().is_empty() {
            if (end_of_turn || answered_finalize) && self.listening.pending() {
                self.caller_turn_ended(answered_finalize).await;
            }
            return;
        }
        self.last_activity = now;
        self.listening.progress_at = Some(now);
        self.listening.started_ms.get_or_insert(self.ms(now));
        // The agent's audio has all played and only its marks are awaited: the caller is
        // answering a finished turn, not interrupting it.
        if self.agent.as_ref().is_some_and(|a| !a.producing())
            && self.playout.is_idle(now.into_std())
        {
            self.finish_agent_turn(None).await;
        }
        // Barge-in: real words (not a backchannel) while the agent talks or thinks. An
        // interim's last word may still be growing ("h", "ha", "haan"), so only the words
        // before it count; a final counts whole.
        let pending = format!("{} {}", self.listening.heard, text);
        let mut words = turns::words(&pending);
        if !is_final {
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
        if is_final {
            self.listening.heard.push(' ');
            self.listening.heard.push_str(text.trim());
            self.listening.interim.clear();
            if end_of_turn || answered_finalize {
                self.caller_turn_ended(false).await;
            }
        } else {
            self.listening.interim = text;
        }
    }

    /// STT kept quiet about the pending words past their deadline: finalise, or end the turn.
    pub(super) async fn on_stt_settle_due(&mut self) {
        if self.listening.finalize_sent_at.is_some() {
            self.stalled(self.stt.provider(), "no answer to Finalize");
            self.caller_turn_ended(true).await;
        } else if !self.listening.interim.trim().is_empty() {
            if self.stt.finalize().is_err() {
                self.caller_turn_ended(true).await;
            } else {
                self.listening.finalize_sent_at = Some(Instant::now());
            }
        } else {
            self.stalled(self.stt.provider(), "no end of turn after the finals");
            self.caller_turn_ended(false).await;
        }
    }

    /// The caller finished an utterance: persist it, then answer it (once).
    async fn caller_turn_ended(&mut self, with_interim: bool) {
        let text = self.listening.take(with_interim);
        if text.is_empty() {
            return;
        }
        let now = Instant::now();
        if self.agent_busy() && turns::is_backchannel(&text, &self.language) {
            tracing::debug!("backchannel while the agent talks: not a turn");
            self.listening.started_ms = None;
            return;
        }
        let stt_ms = self
            .listening
            .last_voiced_at
            .map(|t| now.saturating_duration_since(t).as_millis() as i32);
        let seq = self.next_seq();
        let started_ms = self
            .listening
            .started_ms
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

    /// The caller hung up (or vanished): keep what they said and what they heard.
    pub(super) async fn caller_hung_up(&mut self) {
        let text = self.listening.take(true);
        if !text.is_empty() {
            let seq = self.next_seq();
            self.writer.send(Write::Turn(TranscriptTurn {
                started_ms: self.listening.started_ms.take(),
                ended_ms: Some(self.ms(Instant::now())),
                ..TranscriptTurn::new(self.setup.call_id, seq, "caller", text)
            }));
        }
        if self.agent.is_some() {
            let heard = self.heard_text(Instant::now());
            self.finish_agent_turn(Some(heard)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_settle_wait_runs_from_the_last_new_words_then_from_finalize() {
        let tuning = CallTuning::default();
        let t = Instant::now();
        let mut l = Listening::default();
        assert_eq!(
            l.settle_due(&tuning),
            None,
            "nothing pending, nothing awaited"
        );
        l.interim = "hello".into();
        l.progress_at = Some(t);
        assert_eq!(l.settle_due(&tuning), Some(t + tuning.stt_settle));
        // New words move it.
        l.progress_at = Some(t + Duration::from_secs(1));
        assert_eq!(
            l.settle_due(&tuning),
            Some(t + Duration::from_secs(1) + tuning.stt_settle)
        );
        // Once Finalize is asked for, its answer is awaited for `finalize_wait`.
        l.finalize_sent_at = Some(t + Duration::from_secs(3));
        assert_eq!(
            l.settle_due(&tuning),
            Some(t + Duration::from_secs(3) + tuning.finalize_wait)
        );
        l.heard = " Yes,".into();
        assert_eq!(l.take(true), "Yes, hello", "the unconfirmed words are kept");
        assert_eq!(l.settle_due(&tuning), None);
        assert!(!l.caller_busy());
    }

    #[test]
    fn without_the_interim_only_the_finals_are_taken() {
        let mut l = Listening {
            heard: " I am interested.".into(),
            interim: "tell".into(),
            ..Listening::default()
        };
        assert_eq!(l.take(false), "I am interested.");
        assert!(l.interim.is_empty());
    }
}
