//! Audio arithmetic shared by the ear and the mouth: the byte [`Clock`] of 16-bit PCM, the
//! voiced test, and an answering machine's beep.

use std::time::Duration;

/// The beep after a voicemail greeting.
const BEEP: Duration = Duration::from_millis(500);

/// Audio clock: bytes of 16-bit PCM at a sample rate.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    bytes_per_sec: u64,
}

impl Clock {
    pub(super) fn new(sample_rate: u32) -> Self {
        Self {
            bytes_per_sec: sample_rate as u64 * 2,
        }
    }

    pub(super) fn sample_rate(self) -> u32 {
        (self.bytes_per_sec / 2) as u32
    }

    /// How long `bytes` take to play (rounded up, so a deadline is never early).
    pub(super) fn duration(self, bytes: usize) -> Duration {
        Duration::from_nanos((bytes as u64 * 1_000_000_000).div_ceil(self.bytes_per_sec))
    }

    /// Bytes that play in `d` (rounded down).
    pub(super) fn bytes(self, d: Duration) -> usize {
        (d.as_nanos() * self.bytes_per_sec as u128 / 1_000_000_000) as usize
    }
}

/// Sound rather than silence: the service's own test (`media::call`), through the same
/// vectorised peak, since every agent frame of every simulated caller passes through it.
pub(super) fn voiced_bytes(pcm: &[u8]) -> bool {
    crate::pcm::peak(pcm) > 500
}

/// An answering machine's tone: 1 kHz, voiced, no characters.
pub(super) fn beep(sample_rate: u32) -> Vec<i16> {
    let n = (sample_rate as u64 * BEEP.as_millis() as u64 / 1000) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / sample_rate as f32;
            (8_000.0 * (2.0 * std::f32::consts::PI * 1_000.0 * t).sin()) as i16
        })
        .collect()
}
