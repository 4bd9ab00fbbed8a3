//! The service's notion of "now": real UTC time plus an offset that tests can set, so calling
//! windows, retries and callbacks can be exercised at any instant while time still flows.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ns: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::nanoseconds(self.offset_ns.load(Ordering::Relaxed))
    }

    /// Makes `now()` return `at` from this moment on.
    pub fn set(&self, at: DateTime<Utc>) {
        // Nanoseconds, so that `now()` is never before `at` (a truncated offset could be).
        let offset = (at - Utc::now()).num_nanoseconds().unwrap_or(i64::MAX);
        self.offset_ns.store(offset, Ordering::Relaxed);
    }

    pub fn advance(&self, by: Duration) {
        self.offset_ns
            .fetch_add(by.num_nanoseconds().unwrap_or(0), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_advance_shift_now() {
        let clock = Clock::default();
        let target = Utc::now() + Duration::days(3);
        clock.set(target);
        assert!((clock.now() - target).num_milliseconds().abs() < 1000);
        clock.advance(Duration::hours(2));
        assert!(
            (clock.now() - target - Duration::hours(2))
                .num_milliseconds()
                .abs()
                < 1000
        );
    }
}
