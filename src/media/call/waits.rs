//! Every wait of a live call on another system, with its bound: no turn waits forever on one
//! provider signal. When a deadline passes the call goes on as if the signal had come, and the
//! stall is counted (`provider_errors_total{kind="stalled"}`) and logged once per call.
//!
//! | waiting for | deadline | then |
//! |---|---|---|
//! | the TTS to end a turn (ElevenLabs: `isFinal`) | last audio + `tts_end_grace`; no audio at all: end of text + `tts_first_audio_wait` | the turn's audio is complete (the vendor's own recovery, such as ElevenLabs' HTTP fallback, comes first) |
//! | a mark's echo from the carrier | when the audio before it must have played + `mark_grace` | the phrase counts as played |
//! | the hang-up mark's echo | likewise | hang up |
//! | STT's end of turn (`speech_final`, `UtteranceEnd`) | last new words + `stt_settle` | `Finalize` (or the turn ends on its finals) |
//! | the answer to `Finalize` | `finalize_wait` | the turn ends with what is known |
//!
//! Bounded elsewhere: the model's first token and its stream (the OpenAI client's deadline and
//! stall timeout; a reply that stalls after it began is kept, see `reply`), carrier sends (2 s,
//! `media::link`), the vendors' own socket sends (2 s),
//! the providers' closes (2 s, `Call::finish`) and the post-call summary (15 s, `media::ws`).

use tokio::time::Instant;

use super::Call;
use super::speak::{Echo, Speech};

impl Call {
    /// The earliest deadline among the waits in progress.
    pub(super) fn next_wait(&self) -> Option<Instant> {
        [
            self.tts_end_due(),
            self.marks_due(),
            self.hangup_due,
            self.listening.settle_due(&self.tuning),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn tts_end_due(&self) -> Option<Instant> {
        let turn = self.agent.as_ref()?;
        let Speech::Ending { since } = turn.speech else {
            return None;
        };
        Some(match turn.last_audio_at {
            Some(last) => last.max(since) + self.tuning.tts_end_grace,
            None => since + self.tuning.tts_first_audio_wait,
        })
    }

    fn marks_due(&self) -> Option<Instant> {
        let turn = self.agent.as_ref()?;
        turn.phrases
            .iter()
            .filter_map(|p| match p.echo {
                Echo::Sent { played_by } => Some(played_by + self.tuning.mark_grace),
                _ => None,
            })
            .min()
    }

    /// Ends every wait whose deadline has passed. True when the call should hang up now.
    pub(super) async fn on_waits_due(&mut self) -> bool {
        let now = Instant::now();
        if self.tts_end_due().is_some_and(|t| t <= now) {
            let silent = self.agent.as_ref().is_some_and(|t| t.timeline.bytes() == 0);
            let what = if silent {
                "no audio for a complete turn"
            } else {
                "no end of turn from the TTS"
            };
            self.stalled(self.tts.provider(), what);
            self.speech_done();
        }
        if self.marks_due().is_some_and(|t| t <= now) {
            let grace = self.tuning.mark_grace;
            let mut missed = 0;
            if let Some(turn) = self.agent.as_mut() {
                for p in &mut turn.phrases {
                    if let Echo::Sent { played_by } = p.echo
                        && played_by + grace <= now
                    {
                        p.echo = Echo::Assumed;
                        missed += 1;
                    }
                }
            }
            for _ in 0..missed {
                self.stalled(self.out.provider(), "a mark was never echoed");
            }
        }
        if self
            .listening
            .settle_due(&self.tuning)
            .is_some_and(|t| t <= now)
        {
            self.on_stt_settle_due().await;
        }
        if self.hangup_due.is_some_and(|t| t <= now) {
            self.stalled(self.out.provider(), "the hang-up mark was never echoed");
            return true;
        }
        false
    }
}
