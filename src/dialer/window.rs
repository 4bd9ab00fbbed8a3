//! When a lead may be called: the campaign's calling window in the lead's own time zone, with
//! weekdays and holidays, clamped to the legal floor of 09:00–21:00 local time whatever the
//! configuration (Indian telemarketing rules).
//!
//! Pure functions of `now`, so tests drive them with any instant.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::clock::{WEEKDAYS, parse_hhmm};
use crate::store::CallingWindow;

/// The legal bounds no configuration can widen.
pub fn legal_start() -> NaiveTime {
    NaiveTime::from_hms_opt(9, 0, 0).expect("valid time")
}

pub fn legal_end() -> NaiveTime {
    NaiveTime::from_hms_opt(21, 0, 0).expect("valid time")
}

/// A campaign window resolved for one lead.
#[derive(Debug, Clone)]
pub struct Window {
    pub tz: Tz,
    /// Inclusive start, already clamped to the legal floor.
    pub start: NaiveTime,
    /// Exclusive end, already clamped.
    pub end: NaiveTime,
    /// Allowed days, Monday = 0.
    pub days: [bool; 7],
    pub holidays: Vec<NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The lead may be called now.
    Open,
    /// Closed now; opens at this instant.
    OpensAt(DateTime<Utc>),
    /// No allowed day in the next weeks (e.g. every day a holiday).
    Never,
}

impl Window {
    /// The window for a lead: its own zone if it has a valid one, else the campaign's.
    pub fn for_lead(window: &CallingWindow, campaign_tz: &str, lead_tz: Option<&str>) -> Self {
        let tz = lead_tz
            .and_then(|z| z.parse::<Tz>().ok())
            .or_else(|| campaign_tz.parse::<Tz>().ok())
            .unwrap_or(chrono_tz::Asia::Kolkata);
        let start = parse_hhmm(&window.start)
            .unwrap_or_else(legal_start)
            .max(legal_start());
        let end = parse_hhmm(&window.end)
            .unwrap_or_else(legal_end)
            .min(legal_end());
        let mut days = [false; 7];
        for d in &window.weekdays {
            if let Some(i) = WEEKDAYS.iter().position(|w| w == d) {
                days[i] = true;
            }
        }
        Window {
            tz,
            start,
            end,
            days,
            holidays: window.holidays.clone(),
        }
    }

    fn day_allowed(&self, date: NaiveDate) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize] && !self.holidays.contains(&date)
    }

    /// Local wall time to a UTC instant (the earliest one if a DST change makes it ambiguous,
    /// and the first valid minute after a DST gap).
    fn instant(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let mut local = date.and_time(time);
        for _ in 0..180 {
            if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
                return t.with_timezone(&Utc);
            }
            local += Duration::minutes(1);
        }
        Utc.from_utc_datetime(&local)
    }

    /// Is the window open at `now`, and if not, when does it next open?
    pub fn check(&self, now: DateTime<Utc>) -> Check {
        if self.start >= self.end {
            return Check::Never;
        }
        let local = now.with_timezone(&self.tz);
        let today = local.date_naive();
        let time = local.time();
        if self.day_allowed(today) && time >= self.start && time < self.end {
            return Check::Open;
        }
        let first = if self.day_allowed(today) && time < self.start {
            0
        } else {
            1
        };
        for offset in first..=400 {
            let date = today + Duration::days(offset);
            if self.day_allowed(date) {
                return Check::OpensAt(self.instant(date, self.start));
            }
        }
        Check::Never
    }

    /// The first instant at or after `t` when the window is open (used to move a requested
    /// callback time into the window).
    pub fn first_open_at_or_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.check(t) {
            Check::Open => Some(t),
            Check::OpensAt(at) => Some(at),
            Check::Never => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: &str, end: &str, days: &[&str]) -> CallingWindow {
        CallingWindow {
            start: start.into(),
            end: end.into(),
            weekdays: days.iter().map(|d| d.to_string()).collect(),
            holidays: vec![],
        }
    }

    fn mon_sat() -> CallingWindow {
        window(
            "10:00",
            "19:00",
            &["mon", "tue", "wed", "thu", "fri", "sat"],
        )
    }

    /// An instant given as Indian local time.
    fn ist(s: &str) -> DateTime<Utc> {
        let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        chrono_tz::Asia::Kolkata
            .from_local_datetime(&naive)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn sunday_waits_for_monday_morning() {
        // 2026-11-29 is a Sunday.
        let w = Window::for_lead(&mon_sat(), "Asia/Kolkata", None);
        assert_eq!(
            w.check(ist("2026-11-29 12:00")),
            Check::OpensAt(ist("2026-11-30 10:00"))
        );
    }

    #[test]
    fn end_of_window_is_exclusive() {
        let w = Window::for_lead(&mon_sat(), "Asia/Kolkata", None);
        assert_eq!(w.check(ist("2026-11-25 18:59")), Check::Open);
        assert_eq!(
            w.check(ist("2026-11-25 19:00")),
            Check::OpensAt(ist("2026-11-26 10:00"))
        );
        assert_eq!(w.check(ist("2026-11-25 10:00")), Check::Open);
        assert_eq!(
            w.check(ist("2026-11-25 09:59")),
            Check::OpensAt(ist("2026-11-25 10:00"))
        );
    }

    #[test]
    fn saturday_evening_waits_until_monday() {
        // 2026-11-28 is a Saturday.
        let w = Window::for_lead(&mon_sat(), "Asia/Kolkata", None);
        assert_eq!(
            w.check(ist("2026-11-28 19:30")),
            Check::OpensAt(ist("2026-11-30 10:00"))
        );
    }

    #[test]
    fn lead_time_zone_wins_over_the_campaign() {
        // 12:00 in Kolkata is 10:30 in Dubai: open; 20:00 in Kolkata is 18:30 in Dubai: open
        // for Dubai, closed for Kolkata.
        let dubai = Window::for_lead(&mon_sat(), "Asia/Kolkata", Some("Asia/Dubai"));
        let kolkata = Window::for_lead(&mon_sat(), "Asia/Kolkata", None);
        assert_eq!(dubai.check(ist("2026-11-25 20:00")), Check::Open);
        assert!(matches!(
            kolkata.check(ist("2026-11-25 20:00")),
            Check::OpensAt(_)
        ));
        // 11:00 in Kolkata is 09:30 in Dubai: not yet open there.
        let opens = ist("2026-11-25 11:30");
        assert_eq!(dubai.check(ist("2026-11-25 11:00")), Check::OpensAt(opens));
    }

    #[test]
    fn an_unknown_lead_zone_falls_back_to_the_campaign() {
        let w = Window::for_lead(&mon_sat(), "Asia/Kolkata", Some("Mars/Base"));
        assert_eq!(w.tz, chrono_tz::Asia::Kolkata);
    }

    #[test]
    fn legal_floor_overrides_a_wider_window() {
        let all_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let w = Window::for_lead(&window("06:00", "23:30", &all_days), "Asia/Kolkata", None);
        assert_eq!(
            w.check(ist("2026-11-25 08:30")),
            Check::OpensAt(ist("2026-11-25 09:00"))
        );
        assert_eq!(w.check(ist("2026-11-25 09:00")), Check::Open);
        assert_eq!(w.check(ist("2026-11-25 20:59")), Check::Open);
        assert_eq!(
            w.check(ist("2026-11-25 21:00")),
            Check::OpensAt(ist("2026-11-26 09:00"))
        );
    }

    #[test]
    fn holidays_are_skipped() {
        let mut cw = mon_sat();
        cw.holidays = vec![NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()];
        let w = Window::for_lead(&cw, "Asia/Kolkata", None);
        assert_eq!(
            w.check(ist("2026-11-25 19:30")),
            Check::OpensAt(ist("2026-11-27 10:00"))
        );
        assert!(matches!(
            w.check(ist("2026-11-26 12:00")),
            Check::OpensAt(_)
        ));
    }

    #[test]
    fn callback_time_is_moved_into_the_window() {
        let w = Window::for_lead(&mon_sat(), "Asia/Kolkata", None);
        assert_eq!(
            w.first_open_at_or_after(ist("2026-11-25 21:15")),
            Some(ist("2026-11-26 10:00"))
        );
        assert_eq!(
            w.first_open_at_or_after(ist("2026-11-25 17:00")),
            Some(ist("2026-11-25 17:00"))
        );
    }

    #[test]
    fn a_window_entirely_outside_legal_hours_never_opens() {
        let w = Window::for_lead(&window("21:30", "23:00", &["mon"]), "Asia/Kolkata", None);
        assert_eq!(w.check(ist("2026-11-25 12:00")), Check::Never);
    }
}
