//! [`SessionTuning`]: the timeouts, limits and backoff of a live session, read by the handle
//! (`session`) and by the worker that owns the socket (`worker`).

use std::time::Duration;

/// Timeouts and limits of a session; `Default` suits production.
#[derive(Debug, Clone)]
pub struct SessionTuning {
    pub connect_timeout: Duration,
    /// Bound on each write; a write that takes longer counts as a dropped connection.
    pub write_timeout: Duration,
    /// `KeepAlive` after this long without audio (Deepgram closes after ~10 s).
    pub keepalive_every: Duration,
    /// Audio sent but nothing heard back for this long: the connection is treated as dead.
    pub stall_timeout: Duration,
    /// How long `close` waits for the last results and `Metadata`.
    pub close_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Connection attempts per outage (and for the first connect).
    pub max_reconnect_attempts: u32,
    /// Frames the call may queue ahead of the writer.
    pub audio_queue_frames: usize,
    /// Most audio kept for replay.
    pub replay_limit: Duration,
    /// Replay starts this much before the last final's end, in case the provider rounded its
    /// times up; a bit of re-sent silence or word tail is harmless, a clipped word is not.
    pub replay_margin: Duration,
}

impl Default for SessionTuning {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            keepalive_every: Duration::from_secs(4),
            stall_timeout: Duration::from_secs(15),
            close_timeout: Duration::from_secs(3),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            max_reconnect_attempts: 6,
            audio_queue_frames: 512,
            replay_limit: Duration::from_secs(20),
            replay_margin: Duration::from_millis(20),
        }
    }
}

impl SessionTuning {
    /// Delay before attempt `n` (1-based): doubling from `backoff_initial` up to `backoff_max`,
    /// with jitter so calls dropped together do not reconnect in lock-step.
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .backoff_initial
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.backoff_max);
        let half = base / 2;
        half + half.mul_f64(rand::random_range(0.0..=1.0))
    }
}
