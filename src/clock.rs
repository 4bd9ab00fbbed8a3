//! The service's notion of "now": real UTC time plus an offset that tests can set, so calling
//! windows, retries and callbacks can be exercised at any instant while time still flows; and
//! the wall-clock words configuration and campaigns share (`HH:MM`, weekday names). A leaf:
//! it imports nothing of the service.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, NaiveTime, Utc};

pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Parses `HH:MM` (24-hour).
pub fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

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
    fn hhmm_parses_only_valid_times() {
        assert_eq!(parse_hhmm("9:30"), NaiveTime::from_hms_opt(9, 30, 0));
        assert_eq!(parse_hhmm("19:00"), NaiveTime::from_hms_opt(19, 0, 0));
        for bad in ["24:00", "10:60", "10", "10:5", "ab:cd", ""] {
            assert_eq!(parse_hhmm(bad), None, "{bad}");
        }
    }

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
