//! Audio the provider has not finalised yet, kept so a dropped connection loses no words.
//!
//! Every frame sent is appended; each final result trims everything before its end. On a
//! reconnect the rest is sent again and the new connection's time 0 is [`ReplayBuffer::start_secs`].
//! Offsets are bytes on the call's audio timeline (all audio ever handed to the session).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

/// Capacity (bytes) above which a mostly empty buffer is shrunk (1 s of 8 kHz audio).
const SHRINK_ABOVE: usize = 16 * 1024;

#[derive(Debug)]
pub(super) struct ReplayBuffer {
    bytes_per_second: u64,
    /// Bytes of one sample frame (all channels); trims never split a sample.
    frame: u64,
    /// Timeline offset of `data[0]`.
    start: u64,
    data: VecDeque<u8>,
    /// Upper bound, so a call whose audio is never finalised (noise, a long silence) cannot
    /// grow without limit; the oldest audio goes first.
    limit: usize,
}

impl ReplayBuffer {
    pub fn new(bytes_per_second: u64, frame: u64, limit: Duration) -> Self {
        let limit = (bytes_per_second as f64 * limit.as_secs_f64()) as u64 / frame * frame;
        Self {
            bytes_per_second,
            frame,
            start: 0,
            data: VecDeque::new(),
            limit: limit.max(frame) as usize,
        }
    }

    pub fn push(&mut self, audio: &[u8]) {
        self.data.extend(audio);
        if self.data.len() > self.limit {
            let excess = (self.data.len() - self.limit) as u64;
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
        Duration::from_secs_f64(self.data.len() as f64 / self.bytes_per_second as f64)
    }

    /// The kept audio in messages of at most `max` bytes (sample-aligned), oldest first.
    pub fn chunks(&mut self, max: usize) -> Vec<Bytes> {
        let max = (max as u64 / self.frame * self.frame).max(self.frame) as usize;
        self.data
            .make_contiguous()
            .chunks(max)
            .map(Bytes::copy_from_slice)
            .collect()
    }

    fn drop_front(&mut self, n: u64) {
        let n = (n as usize).min(self.data.len());
        self.data.drain(..n);
        self.start += n as u64;
        // A long utterance grows the buffer; give the memory back once it is finalised, so
        // thousands of quiet calls do not each hold their longest utterance's capacity.
        if self.data.capacity() > SHRINK_ABOVE && self.data.len() < self.data.capacity() / 4 {
            self.data.shrink_to(self.data.len() * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer() -> ReplayBuffer {
        // 8 kHz mono 16-bit: 16 bytes per millisecond.
        ReplayBuffer::new(16_000, 2, Duration::from_secs(10))
    }

    #[test]
    fn a_final_trims_audio_before_its_end_and_moves_the_origin() {
        let mut b = buffer();
        b.push(&vec![1; 16_000]);
        b.trim_until(0.25);
        assert!((b.start_secs() - 0.25).abs() < 1e-9);
        assert_eq!(b.duration(), Duration::from_millis(750));
        let total: usize = b.chunks(4000).iter().map(Bytes::len).sum();
        assert_eq!(total, 12_000);
    }

    #[test]
    fn trimming_never_goes_backwards_or_past_the_end() {
        let mut b = buffer();
        b.push(&vec![0; 1600]);
        b.trim_until(0.05);
        b.trim_until(0.01);
        assert!((b.start_secs() - 0.05).abs() < 1e-9);
        b.trim_until(5.0);
        assert_eq!(b.duration(), Duration::ZERO);
        b.push(&[0; 32]);
        assert!((b.start_secs() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn the_oldest_audio_goes_when_the_limit_is_reached() {
        let mut b = ReplayBuffer::new(16_000, 2, Duration::from_millis(100));
        b.push(&vec![0; 3201]);
        assert!(b.duration() <= Duration::from_millis(100));
        assert!(b.start_secs() > 0.0);
    }
}
