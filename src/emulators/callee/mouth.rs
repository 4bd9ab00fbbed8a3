//! The mouth: the person's audio, one frame per tick. [`Mouth`] holds the line being said; the
//! call's tick sends the next frame of it (or silence), notes when the line starts and ends, and
//! then asks the person what to do next.

use std::fmt::Write as _;
use std::ops::Range;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::time::Instant;

use super::audio::beep;
use super::call::Call;
use super::person::Act;
use super::report::{EndedBy, LineKind, SaidLine};
use crate::emulators::speech;

/// The line being said.
#[derive(Debug)]
pub(super) struct Speaking {
    said: usize,
    /// Bytes of `Mouth::pcm` that are speech (the rest is lead-in or a beep).
    voice: Range<usize>,
    started_at: Option<Instant>,
}

#[derive(Debug, Default)]
pub(super) struct Mouth {
    pcm: Vec<u8>,
    pos: usize,
}

impl Mouth {
    fn busy(&self) -> bool {
        self.pos < self.pcm.len()
    }

    /// Copies the next frame into `out` (zero-padded); returns the byte range of `pcm` used.
    fn fill(&mut self, out: &mut [u8]) -> Range<usize> {
        let start = self.pos;
        let n = (self.pcm.len() - start).min(out.len());
        out[..n].copy_from_slice(&self.pcm[start..start + n]);
        out[n..].fill(0);
        self.pos += n;
        start..self.pos
    }

    fn load(&mut self, lead_in: usize, speech: &[i16], tail: &[i16]) -> Range<usize> {
        self.pcm.clear();
        self.pcm.resize(lead_in, 0);
        self.pcm.extend(speech.iter().flat_map(|s| s.to_le_bytes()));
        let voice = lead_in..self.pcm.len();
        self.pcm.extend(tail.iter().flat_map(|s| s.to_le_bytes()));
        self.pos = 0;
        voice
    }
}

impl Call {
    /// One frame of the person's audio, then the person's next move.
    pub(super) async fn on_tick(&mut self, scheduled: Instant) -> Result<(), EndedBy> {
        let now = Instant::now();
        self.ear.advance(now);
        // This frame carries the audio of the frame interval that just ended.
        let frame_start = scheduled.checked_sub(self.frame).unwrap_or(scheduled);
        let speaking = self.mouth.busy();
        if speaking {
            let used = self.mouth.fill(&mut self.frame_buf);
            self.track_line(frame_start, used);
            self.payload_buf.clear();
            B64.encode_string(&self.frame_buf, &mut self.payload_buf);
        }
        self.chunk += 1;
        let seq = self.next_seq();
        let payload = if speaking {
            &self.payload_buf
        } else {
            &self.silent_payload
        };
        let frame_ms = self.frame.as_millis() as u64;
        let mut text = String::with_capacity(payload.len() + 160);
        let _ = write!(
            text,
            r#"{{"event":"media","sequence_number":"{seq}","stream_sid":"{}","media":{{"chunk":"{}","timestamp":"{}","payload":"{payload}"}}}}"#,
            self.stream_sid,
            self.chunk,
            self.chunk * frame_ms,
        );
        self.send(text).await.map_err(|e| self.lost(e))?;
        self.stats.frames_sent += 1;
        // This frame's audio ends at `scheduled`: it completes the endpointing silence when
        // that silence ends within it.
        if self.endpoint_due.is_some_and(|due| due <= scheduled) {
            self.endpoint_due = None;
            self.endpoint_sent = Some(Instant::now());
        }

        match self.person.decide(now, &mut self.ear, self.mouth.busy()) {
            Act::Nothing => Ok(()),
            Act::HangUp => Err(EndedBy::Callee),
            Act::GiveUp => Err(EndedBy::Impatient),
            Act::Say(line, kind) => {
                self.say(now, line, kind);
                Ok(())
            }
        }
    }

    fn say(&mut self, now: Instant, line: &'static str, kind: LineKind) {
        let lead_in = self.clock.bytes(self.person.lead_in()) & !1;
        let speech = speech::synthesize(line, self.sample_rate);
        let tail = if kind == LineKind::Voicemail {
            beep(self.sample_rate)
        } else {
            Vec::new()
        };
        let voice = self.mouth.load(lead_in, &speech, &tail);
        self.said.push(SaidLine {
            text: line.to_string(),
            kind,
            at: Duration::ZERO,
            duration: Duration::ZERO,
            over_agent_audio: self.ear.agent_playing(now),
        });
        self.speaking = Some(Speaking {
            said: self.said.len() - 1,
            voice,
            started_at: None,
        });
        if kind == LineKind::Turn {
            self.ear.end_phrase();
            self.awaiting_reply = None;
            self.endpoint_due = None;
            self.endpoint_sent = None;
        }
    }

    /// Notes when the line in `used` (bytes of the mouth's audio sent in the frame that covers
    /// audio from `frame_start`) started and ended.
    fn track_line(&mut self, frame_start: Instant, used: Range<usize>) {
        let Some(sp) = &mut self.speaking else {
            return;
        };
        let at = |byte: usize| frame_start + self.clock.duration(byte - used.start);
        if sp.started_at.is_none() && sp.voice.start < used.end {
            let t = at(sp.voice.start.max(used.start));
            sp.started_at = Some(t);
            self.said[sp.said].at = t.saturating_duration_since(self.t0);
        }
        if sp.voice.end <= used.end {
            let end = at(sp.voice.end.max(used.start));
            let line = &mut self.said[sp.said];
            line.duration = end.saturating_duration_since(sp.started_at.unwrap_or(end));
            match line.kind {
                LineKind::Turn => {
                    self.awaiting_reply = Some(end);
                    self.endpoint_due = self.endpointing.map(|e| end + e);
                }
                // What the agent said while being talked over is not something to answer.
                LineKind::Interruption => drop(self.ear.take_fresh()),
                LineKind::Backchannel | LineKind::Voicemail => {}
            }
            self.speaking = None;
        }
    }

    /// A line cut short by the end of the call keeps only what was sent.
    pub(super) fn cut_line(&mut self) {
        let Some(sp) = self.speaking.take() else {
            return;
        };
        let symbol_bytes = speech::symbol_samples(self.sample_rate) * 2;
        let sent = self.mouth.pos.saturating_sub(sp.voice.start);
        // A character is heard once its header is out.
        let header_bytes = speech::header_samples(self.sample_rate) * 2;
        let chars = sent / symbol_bytes + usize::from(sent % symbol_bytes >= header_bytes);
        let line = &mut self.said[sp.said];
        line.text = line.text.chars().take(chars).collect();
        if sp.started_at.is_some() {
            line.duration = self.clock.duration(sent.min(sp.voice.len()));
        }
        self.mouth.pos = self.mouth.pcm.len();
    }
}
