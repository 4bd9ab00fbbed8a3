//! Audio the provider has not finalised yet, kept so a dropped connection loses no words.
//!
//! Every frame sent is appended; each final result trims everything before its end. On a
//! reconnect the rest is sent again and the new connection's time 0 is [`ReplayBuffer::start_secs`].
//! Offsets are bytes on the call's audio timeline (all audio ever handed to the session).
//!
//! Frames are kept as the `Bytes` that were sent (shared, not copied). A frame of 16-bit PCM whose
//! every sample is within [`QUIET_PEAK`] of zero is kept as its length only and replayed as
//! zeros: a call on hold or a caller listening sends seconds of near-silence between finals, and
//! thousands of such calls each holding up to a few seconds of it was the largest part of an idle
//! call's memory (docs/BENCHMARKS.md). Times stay exact, because the length is kept; the samples
//! lost are below −60 dBFS, where no recogniser finds words.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// Largest sample magnitude (of 32,767) that counts as silence: about −60 dBFS.
pub(super) const QUIET_PEAK: i16 = 32;

#[derive(Debug)]
enum Piece {
    Audio(Bytes),
    /// This many bytes of silence, replayed as zeros.
    Quiet(usize),
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Audio(b) => b.len(),
            Piece::Quiet(n) => *n,
        }
    }
}

#[derive(Debug)]
pub(super) struct ReplayBuffer {
    bytes_per_second: u64,
    /// Bytes of one sample frame (all channels); trims never split a sample.
    frame: u64,
    /// Timeline offset of the first piece.
    start: u64,
    pieces: VecDeque<Piece>,
    /// Bytes on the timeline the pieces cover.
    len: usize,
    /// Upper bound, so a call whose audio is never finalised (noise, a long silence) cannot
    /// grow without limit; the oldest audio goes first.
    limit: usize,
    /// Whether frames are 16-bit little-endian PCM, so silence can be recognised.
    pcm16: bool,
}

impl ReplayBuffer {
    pub fn new(bytes_per_second: u64, frame: u64, limit: Duration, pcm16: bool) -> Self {
        let limit = (bytes_per_second as f64 * limit.as_secs_f64()) as u64 / frame * frame;
        Self {
            bytes_per_second,
            frame,
            start: 0,
            pieces: VecDeque::new(),
            len: 0,
            limit: limit.max(frame) as usize,
            pcm16,
        }
    }

    pub fn push(&mut self, audio: &Bytes) {
        if audio.is_empty() {
            return;
        }
        if self.pcm16 && is_quiet(audio) {
            match self.pieces.back_mut() {
                Some(Piece::Quiet(n)) => *n += audio.len(),
                _ => self.pieces.push_back(Piece::Quiet(audio.len())),
            }
        } else {
            self.pieces.push_back(Piece::Audio(audio.clone()));
        }
        self.len += audio.len();
        if self.len > self.limit {
            let excess = (self.len - self.limit) as u64;
            let cut = excess.div_ceil(self.frame) * self.frame;
            self.drop_front(cut);
        }
    }

    /// Forgets audio before `secs` on the call timeline (rounded down to a sample).
    pub fn trim_until(&mut self, secs: f64) {
        if !secs.is_finite() || secs <= 0.0 {
            return;
        }
        let samples = (secs * self.bytes_per_second as f64 / self.frame as f64).floor() as u64;
        let offset = samples * self.frame;
        if offset > self.start {
            self.drop_front(offset - self.start);
        }
    }

    /// Call time of the oldest audio kept.
    pub fn start_secs(&self) -> f64 {
        self.start as f64 / self.bytes_per_second as f64
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.len as f64 / self.bytes_per_second as f64)
    }

    /// Bytes of audio actually held (silence costs none).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Audio(b) => b.len(),
                Piece::Quiet(_) => 0,
            })
            .sum()
    }

    /// The kept audio in messages of at most `max` bytes (sample-aligned), oldest first.
    pub fn chunks(&self, max: usize) -> Vec<Bytes> {
        let max = (max as u64 / self.frame * self.frame).max(self.frame) as usize;
        let mut out = Vec::with_capacity(self.len.div_ceil(max));
        let mut chunk = BytesMut::with_capacity(max.min(self.len));
        for piece in &self.pieces {
            let mut left = piece.len();
            while left > 0 {
                let take = left.min(max - chunk.len());
                match piece {
                    Piece::Audio(b) => {
                        let from = b.len() - left;
                        chunk.extend_from_slice(&b[from..from + take]);
                    }
                    Piece::Quiet(_) => chunk.resize(chunk.len() + take, 0),
                }
                left -= take;
                if chunk.len() == max {
                    out.push(chunk.split().freeze());
                }
            }
        }
        if !chunk.is_empty() {
            out.push(chunk.freeze());
        }
        out
    }

    fn drop_front(&mut self, n: u64) {
        let mut n = (n as usize).min(self.len);
        self.start += n as u64;
        self.len -= n;
        while n > 0 {
            let Some(front) = self.pieces.front_mut() else {
                break;
            };
            let len = front.len();
            if len <= n {
                self.pieces.pop_front();
                n -= len;
            } else {
                match front {
                    Piece::Audio(b) => {
                        let _ = b.split_to(n);
                    }
                    Piece::Quiet(q) => *q -= n,
                }
                n = 0;
            }
        }
        // A long utterance grows the piece list; give the memory back once it is finalised,
        // so thousands of quiet calls do not each hold their longest utterance's capacity.
        if self.pieces.capacity() > 64 && self.pieces.len() < self.pieces.capacity() / 4 {
            self.pieces.shrink_to(self.pieces.len() * 2);
        }
    }
}

/// Whether every whole 16-bit little-endian sample is within [`QUIET_PEAK`] of zero.
fn is_quiet(audio: &[u8]) -> bool {
    audio.len().is_multiple_of(2) && crate::pcm::peak(audio) <= QUIET_PEAK as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer() -> ReplayBuffer {
        // 8 kHz mono 16-bit: 16 bytes per millisecond.
        ReplayBuffer::new(16_000, 2, Duration::from_secs(10), true)
    }

    /// `ms` of 16-bit samples all equal to `value`.
    fn tone(ms: usize, value: i16) -> Bytes {
        Bytes::from(value.to_le_bytes().repeat(ms * 8))
    }

    fn replayed(b: &ReplayBuffer, max: usize) -> Vec<u8> {
        b.chunks(max).iter().flat_map(|c| c.to_vec()).collect()
    }

    #[test]
    fn a_final_trims_audio_before_its_end_and_moves_the_origin() {
        let mut b = buffer();
        b.push(&tone(1000, 1000));
        b.trim_until(0.25);
        assert!((b.start_secs() - 0.25).abs() < 1e-9);
        assert_eq!(b.duration(), Duration::from_millis(750));
        let total: usize = b.chunks(4000).iter().map(Bytes::len).sum();
        assert_eq!(total, 12_000);
    }

    #[test]
    fn trimming_never_goes_backwards_or_past_the_end() {
        let mut b = buffer();
        b.push(&tone(100, 0));
        b.trim_until(0.05);
        b.trim_until(0.01);
        assert!((b.start_secs() - 0.05).abs() < 1e-9);
        b.trim_until(5.0);
        assert_eq!(b.duration(), Duration::ZERO);
        b.push(&tone(2, 0));
        assert!((b.start_secs() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn the_oldest_audio_goes_when_the_limit_is_reached() {
        let mut b = ReplayBuffer::new(16_000, 2, Duration::from_millis(100), true);
        b.push(&tone(150, 5000));
        assert!(b.duration() <= Duration::from_millis(100));
        assert!(b.start_secs() > 0.0);
        assert_eq!(replayed(&b, 4000).len(), 1600);
    }

    #[test]
    fn silence_holds_no_audio_but_keeps_its_time_and_replays_as_zeros() {
        let mut b = buffer();
        b.push(&tone(100, 3000)); // speech
        for _ in 0..20 {
            b.push(&tone(100, -QUIET_PEAK)); // two seconds of line noise
        }
        b.push(&tone(50, 3000));
        assert_eq!(b.duration(), Duration::from_millis(2150));
        assert_eq!(b.held(), 150 * 16, "only the loud frames are held");
        let bytes = replayed(&b, 4000);
        assert_eq!(bytes.len(), 2150 * 16);
        assert!(bytes[..1600].chunks(2).all(|s| s == 3000i16.to_le_bytes()));
        assert!(bytes[1600..1600 + 32_000].iter().all(|&x| x == 0));
        assert!(
            bytes[33_600..]
                .chunks(2)
                .all(|s| s == 3000i16.to_le_bytes())
        );
        // A trim inside the silence keeps the timeline exact.
        b.trim_until(1.0);
        assert!((b.start_secs() - 1.0).abs() < 1e-9);
        assert_eq!(replayed(&b, 4000).len(), 1150 * 16);
    }

    #[test]
    fn a_frame_with_one_sample_above_the_threshold_is_kept_whole() {
        let mut b = buffer();
        let mut frame = tone(20, 0).to_vec();
        frame[100..102].copy_from_slice(&(QUIET_PEAK + 1).to_le_bytes());
        b.push(&Bytes::from(frame.clone()));
        assert_eq!(b.held(), frame.len());
        assert_eq!(replayed(&b, 4000), frame);
    }

    #[test]
    fn other_encodings_are_never_treated_as_silence() {
        let mut b = ReplayBuffer::new(8_000, 1, Duration::from_secs(10), false);
        b.push(&Bytes::from(vec![0u8; 800]));
        assert_eq!(b.held(), 800);
    }

    #[test]
    fn chunks_split_across_pieces_at_the_size_asked() {
        let mut b = buffer();
        for i in 0..7 {
            b.push(&tone(30, if i % 2 == 0 { 0 } else { 2000 }));
        }
        let chunks = b.chunks(1000);
        assert!(chunks.iter().all(|c| c.len() <= 1000 && c.len() % 2 == 0));
        assert_eq!(chunks.iter().map(Bytes::len).sum::<usize>(), 7 * 30 * 16);
    }
}
