//! Agent audio on its way to the carrier: cut into frames that are always a multiple of the
//! carrier's alignment (320 bytes for Exotel), the last frame of each phrase zero-padded, a mark
//! after each phrase, and paced at real time with a small lead, so that little is queued at the
//! carrier and a `clear` has little to flush.
//!
//! Pure bookkeeping over `Instant`s: the call task asks when the next frame is due and sleeps
//! until then, so pacing does not depend on how busy the rest of the process is (no shared
//! ticker), and tests drive it with any clock.
//!
//! It also keeps the stream's position in the agent's own audio (bytes pushed, bytes sent or
//! dropped, padding excluded) so the call can tell how much of a turn the caller has heard when
//! a barge-in clears the rest, and gives each sent mark the instant by which the audio before it
//! must have played, so a mark the carrier never echoes can be waited for with a bound.
//!
//! It also counts how pacing went (per frame, atomics only): frames sent, frames sent more than
//! [`LATE_AFTER`] behind their schedule (the call task woke late: a busy process), and underruns
//! (the carrier ran dry mid-phrase because audio came too slowly: a gap the caller hears).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::metrics::FrameMeters;
use crate::telephony::carrier::CarrierCommand;

/// A frame sent later than this after it was due (and available) counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(20);

#[derive(Debug)]
enum Item {
    /// A frame, when it was queued (it cannot be due before it exists), and how many of its
    /// bytes are the agent's audio (the rest is the phrase's zero padding).
    Audio(Bytes, Instant, u32),
    Mark(String),
}

/// A command popped for sending, and when the carrier will have played it (a frame: its last
/// sample; a mark: the audio queued before it).
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub command: CarrierCommand,
    pub played_by: Instant,
}

#[derive(Debug)]
pub struct Playout {
    frame_bytes: usize,
    align: usize,
    bytes_per_sec: usize,
    /// How far ahead of real time audio is sent.
    lead: Duration,
    queue: VecDeque<Item>,
    /// The current phrase's audio not yet making a whole frame, and when it last grew.
    pending: BytesMut,
    pending_at: Option<Instant>,
    /// When the carrier will have played everything sent so far.
    play_until: Option<Instant>,
    /// Frames sent more than [`LATE_AFTER`] after they were due and queued.
    pub late_frames: u64,
    /// Frames sent after the carrier had already run dry in the middle of a phrase.
    pub underruns: u64,
    pub frames_sent: u64,
    mid_phrase: bool,
    /// Bytes of agent audio ever pushed.
    pushed: u64,
    /// Bytes of agent audio sent to the carrier or dropped by a `clear`: the stream's position
    /// once what was sent has played.
    position: u64,
    /// The same figures for the service's metrics.
    meters: FrameMeters,
}

impl Playout {
    /// `sample_rate` of 16-bit mono PCM; `frame_ms` per frame (Exotel's samples use 100 ms).
    pub fn new(sample_rate: u32, frame_ms: u32, align: usize, lead: Duration) -> Self {
        let bytes_per_sec = sample_rate as usize * 2;
        let raw = bytes_per_sec * frame_ms as usize / 1000;
        let frame_bytes = (raw / align).max(1) * align;
        Self {
            frame_bytes,
            align,
            bytes_per_sec,
            lead,
            queue: VecDeque::new(),
            pending: BytesMut::new(),
            pending_at: None,
            play_until: None,
            late_frames: 0,
            underruns: 0,
            frames_sent: 0,
            mid_phrase: false,
            pushed: 0,
            position: 0,
            meters: FrameMeters::default(),
        }
    }

    /// Also counts frames into these (shared) counters.
    pub fn with_meters(mut self, meters: FrameMeters) -> Self {
        self.meters = meters;
        self
    }

    fn duration_of(&self, bytes: usize) -> Duration {
        Duration::from_micros((bytes as u64 * 1_000_000) / self.bytes_per_sec as u64)
    }

    /// Adds audio of the current phrase (any length; whole samples), arrived at `now`.
    pub fn push_audio(&mut self, pcm: &[u8], now: Instant) {
        self.pushed += pcm.len() as u64;
        self.pending.extend_from_slice(pcm);
        self.pending_at = Some(now);
        while self.pending.len() >= self.frame_bytes {
            let frame = self.pending.split_to(self.frame_bytes).freeze();
            self.queue
                .push_back(Item::Audio(frame, now, self.frame_bytes as u32));
        }
    }

    /// Ends the current phrase: pads its last frame with silence to the alignment and queues a
    /// mark that the carrier echoes once everything before it has played.
    pub fn end_phrase(&mut self, mark: impl Into<String>) {
        if !self.pending.is_empty() {
            let audio = self.pending.len() as u32;
            let padded = self.pending.len().div_ceil(self.align) * self.align;
            self.pending.resize(padded, 0);
            // Taken whole, not `split()`: a split would leave `pending` holding the unused
            // tail of this allocation, keeping it alive (and the call's memory up) after the
            // phrase has played.
            let frame = std::mem::take(&mut self.pending).freeze();
            // Complete since its last bytes came (the phrase end follows them at once).
            let queued = self.pending_at.take().unwrap_or_else(Instant::now);
            self.queue.push_back(Item::Audio(frame, queued, audio));
        }
        self.queue.push_back(Item::Mark(mark.into()));
    }

    /// When the next command should be sent; `None` when nothing is queued.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        match self.queue.front()? {
            Item::Mark(_) => Some(now),
            Item::Audio(..) => Some(match self.play_until {
                Some(until) if until > now + self.lead => until - self.lead,
                _ => now,
            }),
        }
    }

    /// Appends the commands due at `now` to `out`, in order (a buffer the caller reuses: this
    /// runs for every frame).
    pub fn pop_due(&mut self, now: Instant, out: &mut Vec<Sent>) {
        while let Some(due) = self.next_due(now) {
            if due > now {
                break;
            }
            match self.queue.pop_front() {
                Some(Item::Audio(frame, queued, audio)) => {
                    // Due `lead` before the carrier runs out, but never before it was queued.
                    let scheduled = self
                        .play_until
                        .and_then(|until| until.checked_sub(self.lead))
                        .map_or(queued, |due| due.max(queued));
                    if now.saturating_duration_since(scheduled) > LATE_AFTER {
                        self.late_frames += 1;
                        self.meters.late.inc();
                    }
                    let starts = match self.play_until {
                        Some(until) if until > now => until,
                        Some(_) if self.mid_phrase => {
                            self.underruns += 1;
                            self.meters.underruns.inc();
                            now
                        }
                        _ => now,
                    };
                    let played_by = starts + self.duration_of(frame.len());
                    self.play_until = Some(played_by);
                    self.frames_sent += 1;
                    self.meters.sent.inc();
                    self.mid_phrase = true;
                    self.position += u64::from(audio);
                    out.push(Sent {
                        command: CarrierCommand::Media(frame),
                        played_by,
                    });
                }
                Some(Item::Mark(name)) => {
                    self.mid_phrase = false;
                    out.push(Sent {
                        command: CarrierCommand::Mark(name),
                        played_by: self.play_until.map_or(now, |u| u.max(now)),
                    });
                }
                None => break,
            }
        }
    }

    /// Bytes of agent audio ever pushed: a turn's audio starts at the value read when it begins.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// How far into the agent's audio (bytes, as counted by [`Playout::pushed`]) the caller has
    /// heard by `now`: what was sent, less what the carrier has not played yet. The unplayed
    /// part is counted with its padding, so the figure errs short, never long. Read it before a
    /// [`Playout::clear`], which counts the dropped audio as passed.
    pub fn heard_position(&self, now: Instant) -> u64 {
        let unplayed = match self.play_until {
            Some(until) if until > now => {
                let d = until - now;
                (d.as_micros() as u64 * self.bytes_per_sec as u64) / 1_000_000
            }
            _ => 0,
        };
        self.position.saturating_sub(unplayed)
    }

    /// Drops everything not yet sent. Returns whether audio was still queued here or playing at
    /// the carrier — only then is a `clear` worth sending.
    pub fn clear(&mut self, now: Instant) -> bool {
        let queued =
            self.queue.iter().any(|i| matches!(i, Item::Audio(..))) || !self.pending.is_empty();
        // Everything pushed is now behind the stream's position.
        self.position = self.pushed;
        let playing = self.play_until.is_some_and(|u| u > now);
        self.queue.clear();
        self.pending.clear();
        self.pending_at = None;
        self.play_until = None;
        self.mid_phrase = false;
        queued || playing
    }

    /// Nothing left to send and the carrier has played everything.
    pub fn is_idle(&self, now: Instant) -> bool {
        self.queue.is_empty() && self.pending.is_empty() && self.play_until.is_none_or(|u| u <= now)
    }

    /// Audio queued here, not yet sent.
    pub fn has_queued_audio(&self) -> bool {
        !self.pending.is_empty() || self.queue.iter().any(|i| matches!(i, Item::Audio(..)))
    }

    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playout() -> Playout {
        Playout::new(8000, 100, 320, Duration::from_millis(200))
    }

    fn pop(p: &mut Playout, now: Instant) -> Vec<CarrierCommand> {
        let mut out = Vec::new();
        p.pop_due(now, &mut out);
        out.into_iter().map(|s| s.command).collect()
    }

    fn sizes(cmds: &[CarrierCommand]) -> Vec<String> {
        cmds.iter()
            .map(|c| match c {
                CarrierCommand::Media(b) => b.len().to_string(),
                CarrierCommand::Mark(m) => format!("mark:{m}"),
                CarrierCommand::Clear => "clear".into(),
            })
            .collect()
    }

    #[test]
    fn frames_are_320_aligned_and_the_last_is_padded_before_the_mark() {
        let mut p = playout();
        // 100 ms of 8 kHz 16-bit audio.
        assert_eq!(p.frame_bytes(), 1600);
        let t0 = Instant::now();
        p.push_audio(&vec![1u8; 3202], t0); // sizes as they arrive from TTS
        p.push_audio(&vec![1u8; 1500], t0);
        p.end_phrase("t1-p1");
        let all: Vec<CarrierCommand> = (0..20)
            .flat_map(|i| pop(&mut p, t0 + Duration::from_millis(100 * i)))
            .collect();
        // 4702 bytes: two whole frames, then 1502 padded up to 1600 (a 320 multiple).
        assert_eq!(sizes(&all), ["1600", "1600", "1600", "mark:t1-p1"]);
        for c in &all {
            if let CarrierCommand::Media(b) = c {
                assert_eq!(b.len() % 320, 0);
            }
        }
    }

    #[test]
    fn sending_is_paced_at_real_time_with_a_small_lead() {
        let mut p = playout();
        let t0 = Instant::now();
        p.push_audio(&vec![0u8; 1600 * 10], t0); // one second
        p.end_phrase("m");
        // At once: the lead (200 ms) plus the first frame.
        assert_eq!(pop(&mut p, t0).len(), 3);
        assert_eq!(p.next_due(t0), Some(t0 + Duration::from_millis(100)));
        assert_eq!(pop(&mut p, t0 + Duration::from_millis(50)).len(), 0);
        assert_eq!(pop(&mut p, t0 + Duration::from_millis(100)).len(), 1);
        // Never more than lead + one frame ahead of the carrier's playback.
        let mut sent = 4;
        for ms in (150..=1000).step_by(50) {
            let due = pop(&mut p, t0 + Duration::from_millis(ms));
            sent += due
                .iter()
                .filter(|c| matches!(c, CarrierCommand::Media(_)))
                .count();
            let ahead = sent as i64 * 100 - ms as i64;
            assert!(ahead <= 300, "{ahead} ms ahead at {ms}");
        }
        assert_eq!((p.late_frames, p.underruns), (0, 0));
    }

    #[test]
    fn clear_reports_only_when_something_is_playing_or_queued() {
        let mut p = playout();
        let t0 = Instant::now();
        assert!(!p.clear(t0), "nothing to clear");
        p.push_audio(&vec![0u8; 1600 * 5], t0);
        p.end_phrase("m");
        pop(&mut p, t0);
        assert!(p.clear(t0 + Duration::from_millis(10)));
        assert!(
            pop(&mut p, t0 + Duration::from_secs(1)).is_empty(),
            "nothing left after clear"
        );
        p.push_audio(&vec![0u8; 1600], t0 + Duration::from_secs(2));
        p.end_phrase("m2");
        pop(&mut p, t0 + Duration::from_secs(2));
        // Played out long ago: the carrier has nothing to flush.
        assert!(!p.clear(t0 + Duration::from_secs(5)));
        assert!(p.is_idle(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn a_starved_carrier_counts_an_underrun_not_a_late_frame() {
        let mut p = playout();
        let t0 = Instant::now();
        p.push_audio(&vec![0u8; 1600], t0);
        pop(&mut p, t0);
        // TTS was slow: the next frame of the same phrase comes 300 ms later, and goes at once.
        let t1 = t0 + Duration::from_millis(300);
        p.push_audio(&vec![0u8; 1600], t1);
        pop(&mut p, t1);
        assert_eq!((p.underruns, p.late_frames), (1, 0));
    }

    #[test]
    fn frames_sent_behind_their_schedule_count_as_late() {
        let meters = FrameMeters::default();
        let mut p = playout().with_meters(meters.clone());
        let t0 = Instant::now();
        p.push_audio(&vec![0u8; 1600 * 10], t0);
        assert_eq!(pop(&mut p, t0).len(), 3);
        // Due at 100 ms; a wake 10 ms late is within tolerance.
        assert_eq!(pop(&mut p, t0 + Duration::from_millis(110)).len(), 1);
        assert_eq!(p.late_frames, 0);
        // Due at 200 ms (the carrier plays until 400 ms), sent at 230 ms: late.
        assert_eq!(pop(&mut p, t0 + Duration::from_millis(230)).len(), 1);
        assert_eq!((p.late_frames, p.underruns), (1, 0));
        assert_eq!(meters.late.get(), 1);
        assert_eq!(meters.sent.get(), 5);
    }

    #[test]
    fn a_mark_is_played_by_the_end_of_the_audio_before_it() {
        let mut p = playout();
        let t0 = Instant::now();
        p.push_audio(&vec![0u8; 1600 * 3], t0); // 300 ms
        p.end_phrase("m");
        let mut out = Vec::new();
        p.pop_due(t0, &mut out);
        // The lead lets three frames and the mark go at once.
        let mark = out.last().unwrap();
        assert_eq!(mark.command, CarrierCommand::Mark("m".into()));
        assert_eq!(mark.played_by, t0 + Duration::from_millis(300));
        assert_eq!(out[0].played_by, t0 + Duration::from_millis(100));
    }

    #[test]
    fn the_heard_position_follows_playback_and_ignores_padding() {
        let mut p = playout();
        let t0 = Instant::now();
        // 250 ms of audio: two frames and a padded third (800 bytes of audio, 800 of padding).
        p.push_audio(&vec![1u8; 4000], t0);
        p.end_phrase("m");
        assert_eq!(p.pushed(), 4000);
        assert_eq!(p.heard_position(t0), 0, "nothing sent yet");
        pop(&mut p, t0);
        // Sent at once (the lead), playing from t0: 100 ms in, one frame has played; the 160
        // ms still to play include 5 ms of padding, so the figure is 160 bytes short.
        assert_eq!(p.heard_position(t0 + Duration::from_millis(100)), 1440);
        // After all of it: the audio only, not the padding.
        assert_eq!(p.heard_position(t0 + Duration::from_millis(400)), 4000);
        // A clear counts what it drops as passed, so the next turn starts after it.
        p.push_audio(&vec![1u8; 3200], t0 + Duration::from_secs(1));
        assert!(p.clear(t0 + Duration::from_secs(1)));
        assert_eq!(p.heard_position(t0 + Duration::from_secs(1)), 7200);
        assert_eq!(p.pushed(), 7200);
    }
}
