//! Agent audio on its way to the carrier: cut into frames that are always a multiple of the
//! carrier's alignment (320 bytes for Exotel), the last frame of each phrase zero-padded, a mark
//! after each phrase, and paced at real time with a small lead, so that little is queued at the
//! carrier and a `clear` has little to flush.
//!
//! Pure bookkeeping over `Instant`s: the call task asks when the next frame is due and sleeps
//! until then, so pacing does not depend on how busy the rest of the process is (no shared
//! ticker), and tests drive it with any clock.
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
    /// A frame and when it was queued (it cannot be due before it exists).
    Audio(Bytes, Instant),
    Mark(String),
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
        self.pending.extend_from_slice(pcm);
        self.pending_at = Some(now);
        while self.pending.len() >= self.frame_bytes {
            let frame = self.pending.split_to(self.frame_bytes).freeze();
            self.queue.push_back(Item::Audio(frame, now));
        }
    }

    /// Ends the current phrase: pads its last frame with silence to the alignment and queues a
    /// mark that the carrier echoes once everything before it has played.
    pub fn end_phrase(&mut self, mark: impl Into<String>) {
        if !self.pending.is_empty() {
            let padded = self.pending.len().div_ceil(self.align) * self.align;
            self.pending.resize(padded, 0);
            // Taken whole, not `split()`: a split would leave `pending` holding the unused
            // tail of this allocation, keeping it alive (and the call's memory up) after the
            // phrase has played.
            let frame = std::mem::take(&mut self.pending).freeze();
            // Complete since its last bytes came (the phrase end follows them at once).
            let queued = self.pending_at.take().unwrap_or_else(Instant::now);
            self.queue.push_back(Item::Audio(frame, queued));
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

    /// The commands due at `now`, in order.
    pub fn pop_due(&mut self, now: Instant) -> Vec<CarrierCommand> {
        let mut out = Vec::new();
        while let Some(due) = self.next_due(now) {
            if due > now {
                break;
            }
            match self.queue.pop_front() {
                Some(Item::Audio(frame, queued)) => {
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
                    self.play_until = Some(starts + self.duration_of(frame.len()));
                    self.frames_sent += 1;
                    self.meters.sent.inc();
                    self.mid_phrase = true;
                    out.push(CarrierCommand::Media(frame));
                }
                Some(Item::Mark(name)) => {
                    self.mid_phrase = false;
                    out.push(CarrierCommand::Mark(name));
                }
                None => break,
            }
        }
        out
    }

    /// Drops everything not yet sent. Returns whether audio was still queued here or playing at
    /// the carrier — only then is a `clear` worth sending.
    pub fn clear(&mut self, now: Instant) -> bool {
        let queued =
            self.queue.iter().any(|i| matches!(i, Item::Audio(..))) || !self.pending.is_empty();
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
            .flat_map(|i| p.pop_due(t0 + Duration::from_millis(100 * i)))
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
        assert_eq!(p.pop_due(t0).len(), 3);
        assert_eq!(p.next_due(t0), Some(t0 + Duration::from_millis(100)));
        assert_eq!(p.pop_due(t0 + Duration::from_millis(50)).len(), 0);
        assert_eq!(p.pop_due(t0 + Duration::from_millis(100)).len(), 1);
        // Never more than lead + one frame ahead of the carrier's playback.
        let mut sent = 4;
        for ms in (150..=1000).step_by(50) {
            let due = p.pop_due(t0 + Duration::from_millis(ms));
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
        p.pop_due(t0);
        assert!(p.clear(t0 + Duration::from_millis(10)));
        assert!(
            p.pop_due(t0 + Duration::from_secs(1)).is_empty(),
            "nothing left after clear"
        );
        p.push_audio(&vec![0u8; 1600], t0 + Duration::from_secs(2));
        p.end_phrase("m2");
        p.pop_due(t0 + Duration::from_secs(2));
        // Played out long ago: the carrier has nothing to flush.
        assert!(!p.clear(t0 + Duration::from_secs(5)));
        assert!(p.is_idle(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn a_starved_carrier_counts_an_underrun_not_a_late_frame() {
        let mut p = playout();
        let t0 = Instant::now();
        p.push_audio(&vec![0u8; 1600], t0);
        p.pop_due(t0);
        // TTS was slow: the next frame of the same phrase comes 300 ms later, and goes at once.
        let t1 = t0 + Duration::from_millis(300);
        p.push_audio(&vec![0u8; 1600], t1);
        p.pop_due(t1);
        assert_eq!((p.underruns, p.late_frames), (1, 0));
    }

    #[test]
    fn frames_sent_behind_their_schedule_count_as_late() {
        let meters = FrameMeters::default();
        let mut p = playout().with_meters(meters.clone());
        let t0 = Instant::now();
        p.push_audio(&vec![0u8; 1600 * 10], t0);
        assert_eq!(p.pop_due(t0).len(), 3);
        // Due at 100 ms; a wake 10 ms late is within tolerance.
        assert_eq!(p.pop_due(t0 + Duration::from_millis(110)).len(), 1);
        assert_eq!(p.late_frames, 0);
        // Due at 200 ms (the carrier plays until 400 ms), sent at 230 ms: late.
        assert_eq!(p.pop_due(t0 + Duration::from_millis(230)).len(), 1);
        assert_eq!((p.late_frames, p.underruns), (1, 0));
        assert_eq!(meters.late.get(), 1);
        assert_eq!(meters.sent.get(), 5);
    }
}
