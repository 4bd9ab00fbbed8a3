//! Time: the prompt's current time (IST unless it says otherwise) and the callback time a caller
//! asks for ("tomorrow at 5", "kal shaam 6 baje", "in 2 hours"), and how the agent says it.

use chrono::{
    DateTime, Datelike, Days, FixedOffset, NaiveDateTime, NaiveTime, TimeZone, Timelike, Weekday,
};

use super::Lang;
use super::caller::{has, normalize};

pub(super) fn ist() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("valid offset")
}

/// The "current time" of the prompt: an RFC 3339 time, or `YYYY-MM-DD HH:MM[:SS]` (IST).
pub(super) fn find_now(system: &str) -> Option<DateTime<FixedOffset>> {
    let trim = |w: &str| {
        w.trim_matches(|c: char| matches!(c, ',' | ';' | '(' | ')' | '[' | ']' | '"' | '\''))
            .trim_end_matches('.')
            .to_string()
    };
    let words: Vec<String> = system.split_whitespace().map(trim).collect();
    for (i, w) in words.iter().enumerate() {
        if let Ok(t) = DateTime::parse_from_rfc3339(w) {
            return Some(t);
        }
        if let Some(next) = words.get(i + 1) {
            let joined = format!("{w} {next}");
            for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
                if let Ok(naive) = NaiveDateTime::parse_from_str(&joined, f) {
                    return ist().from_local_datetime(&naive).single();
                }
            }
        }
    }
    None
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PartOfDay {
    Morning,
    Afternoon,
    Evening,
    Night,
}

fn number_word(w: &str) -> Option<u32> {
    const WORDS: &[(&[&str], u32)] = &[
        (&["one", "ek", "एक"], 1),
        (&["two", "do", "दो"], 2),
        (&["three", "teen", "तीन"], 3),
        (&["four", "char", "chaar", "चार"], 4),
        (&["five", "paanch", "panch", "पांच", "पाँच"], 5),
        (&["six", "chhe", "che", "छह", "छः"], 6),
        (&["seven", "saat", "सात"], 7),
        (&["eight", "aath", "आठ"], 8),
        (&["nine", "nau", "नौ"], 9),
        (&["ten", "das", "दस"], 10),
        (&["eleven", "gyarah", "ग्यारह"], 11),
        (&["twelve", "barah", "बारह"], 12),
    ];
    WORDS
        .iter()
        .find(|(ws, _)| ws.contains(&w))
        .map(|(_, n)| *n)
}

#[rustfmt::skip]
    const HOUR_UNITS: &[&str] = &[
        "hour", "hours", "hr", "hrs", "ghante", "ghanta", "घंटे", "घंटा",
    ];
const MINUTE_UNITS: &[&str] = &["min", "mins", "minute", "minutes", "minat", "मिनट"];
const CLOCK_MARKERS: &[&str] = &["am", "pm", "baje", "बजे", "oclock", "o"];

/// "in 2 hours", "30 minute baad", "half an hour", "ek ghante".
fn relative(words: &[&str], n: &str) -> Option<chrono::Duration> {
    if has(
        n,
        &[
            "half an hour",
            "aadhe ghante",
            "aadha ghanta",
            "आधे घंटे",
            "आधा घंटा",
        ],
    ) {
        return Some(chrono::Duration::minutes(30));
    }
    for (i, w) in words.iter().enumerate() {
        let Some(unit) = words.get(i + 1) else { break };
        let count = w
            .parse::<i64>()
            .ok()
            .or_else(|| number_word(w).map(i64::from))
            .or_else(|| (*w == "an" || *w == "a").then_some(1));
        let Some(count) = count else { continue };
        if HOUR_UNITS.contains(unit) {
            return Some(chrono::Duration::hours(count));
        }
        if MINUTE_UNITS.contains(unit) {
            return Some(chrono::Duration::minutes(count));
        }
    }
    None
}

/// A clock time said in `words`: `(hour, minute, Some(pm))`.
fn clock(words: &[&str], part: Option<PartOfDay>) -> Option<(u32, u32, Option<bool>)> {
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or("");
        let prev = if i > 0 { words[i - 1] } else { "" };
        let (digits, suffix) = match w.find(|c: char| !(c.is_ascii_digit() || c == ':')) {
            Some(at) => w.split_at(at),
            None => (*w, ""),
        };
        let mut meridiem = match (suffix, next) {
            ("am", _) | ("", "am") => Some(false),
            ("pm", _) | ("", "pm") => Some(true),
            _ => None,
        };
        if suffix.is_empty() && next == "p" && words.get(i + 2) == Some(&"m") {
            meridiem = Some(true);
        } else if suffix.is_empty() && next == "a" && words.get(i + 2) == Some(&"m") {
            meridiem = Some(false);
        }
        if !suffix.is_empty() && meridiem.is_none() {
            continue;
        }
        let marked = meridiem.is_some() || CLOCK_MARKERS.contains(&next);
        let (h, m) = if digits.is_empty() {
            match number_word(w) {
                Some(h) if marked => (h, 0),
                _ => continue,
            }
        } else {
            let mut parts = digits.splitn(2, ':');
            let h: u32 = parts.next()?.parse().ok()?;
            let m: u32 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
            let cued = marked
                || digits.contains(':')
                || ["at", "around", "by", "after", "before", "about"].contains(&prev)
                || part.is_some();
            if !cued || HOUR_UNITS.contains(&next) || MINUTE_UNITS.contains(&next) {
                continue;
            }
            (h, m)
        };
        if h <= 23 && m <= 59 {
            return Some((h, m, meridiem));
        }
    }
    None
}

/// When the caller asked to be called back, relative to `now` (in `now`'s offset).
pub(super) fn callback_time(text: &str, now: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    let n = normalize(text);
    let words: Vec<&str> = n.split_whitespace().collect();
    let at_minute = |t: DateTime<FixedOffset>| {
        t.with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(t)
    };
    if let Some(d) = relative(&words, &n) {
        return at_minute(now + d);
    }
    let weekday = [
        (Weekday::Mon, ["monday", "somvar", "somwar", "सोमवार"]),
        (
            Weekday::Tue,
            ["tuesday", "mangalvar", "mangalwar", "मंगलवार"],
        ),
        (Weekday::Wed, ["wednesday", "budhvar", "budhwar", "बुधवार"]),
        (Weekday::Thu, ["thursday", "guruvar", "guruwar", "गुरुवार"]),
        (Weekday::Fri, ["friday", "shukravar", "shukrawar", "शुक्रवार"]),
        (Weekday::Sat, ["saturday", "shanivar", "shaniwar", "शनिवार"]),
        (Weekday::Sun, ["sunday", "ravivar", "raviwar", "रविवार"]),
    ]
    .into_iter()
    .find(|(_, names)| has(&n, names))
    .map(|(d, _)| d);
    let day: Option<u64> = if has(&n, &["day after tomorrow", "parso", "parson", "परसों"])
    {
        Some(2)
    } else if has(&n, &["tomorrow", "tmrw", "kal", "कल"]) {
        Some(1)
    } else if has(&n, &["today", "aaj", "आज", "tonight"]) {
        Some(0)
    } else if let Some(wd) = weekday {
        let ahead = (7 + wd.num_days_from_monday() - now.weekday().num_days_from_monday()) % 7;
        Some(if ahead == 0 { 7 } else { ahead.into() })
    } else if has(&n, &["next week", "agle hafte", "अगले हफ्ते", "अगले हफ़्ते"])
    {
        Some(7)
    } else {
        None
    };
    let part = if has(&n, &["morning", "subah", "सुबह"]) {
        Some(PartOfDay::Morning)
    } else if has(&n, &["afternoon", "dopahar", "dopehar", "दोपहर"]) {
        Some(PartOfDay::Afternoon)
    } else if has(&n, &["evening", "shaam", "sham", "शाम"]) {
        Some(PartOfDay::Evening)
    } else if has(&n, &["night", "tonight", "raat", "रात"]) {
        Some(PartOfDay::Night)
    } else {
        None
    };
    let time = match clock(&words, part) {
        Some((h, m, meridiem)) => {
            let h = match (meridiem, part) {
                (Some(true), _) if h < 12 => h + 12,
                (Some(false), _) if h == 12 => 0,
                (Some(_), _) => h,
                (None, _) if h >= 13 => h,
                (None, Some(PartOfDay::Morning)) => h % 12,
                (None, Some(_)) if h < 12 => h + 12,
                (None, Some(_)) => h,
                // Business hours: "at 5" means 5 PM, "at 10" means 10 AM.
                (None, None) if (1..=7).contains(&h) => h + 12,
                (None, None) => h,
            };
            NaiveTime::from_hms_opt(h, m, 0)
        }
        None => match part {
            Some(PartOfDay::Morning) => NaiveTime::from_hms_opt(10, 0, 0),
            Some(PartOfDay::Afternoon) => NaiveTime::from_hms_opt(14, 0, 0),
            Some(PartOfDay::Evening) => NaiveTime::from_hms_opt(18, 0, 0),
            Some(PartOfDay::Night) => NaiveTime::from_hms_opt(20, 0, 0),
            None => day.and_then(|_| NaiveTime::from_hms_opt(11, 0, 0)),
        },
    };
    let Some(time) = time else {
        // "Later", "busy": two hours from now, on a quarter hour.
        let t = at_minute(now + chrono::Duration::hours(2));
        let pad = (15 - t.minute() % 15) % 15;
        return t + chrono::Duration::minutes(pad.into());
    };
    let date = now.date_naive() + Days::new(day.unwrap_or(0));
    let at = now
        .offset()
        .from_local_datetime(&date.and_time(time))
        .single()
        .unwrap_or(now);
    if day.is_none() && at <= now {
        at + chrono::Duration::days(1)
    } else {
        at
    }
}

/// "tomorrow at 5 PM" / "कल शाम 5 बजे".
pub(super) fn when_phrase(
    lang: Lang,
    at: DateTime<FixedOffset>,
    now: DateTime<FixedOffset>,
) -> String {
    let days = (at.date_naive() - now.date_naive()).num_days();
    let (h, m) = (at.hour(), at.minute());
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    let clock = if m == 0 {
        format!("{h12}")
    } else {
        format!("{h12}:{m:02}")
    };
    match lang {
        Lang::En => {
            let day = match days {
                0 => "today".to_string(),
                1 => "tomorrow".to_string(),
                _ => format!("on {}", at.format("%A")),
            };
            let meridiem = if h < 12 { "AM" } else { "PM" };
            format!("{day} at {clock} {meridiem}")
        }
        Lang::Hi => {
            let weekdays = [
                "सोमवार",
                "मंगलवार",
                "बुधवार",
                "गुरुवार",
                "शुक्रवार",
                "शनिवार",
                "रविवार",
            ];
            let day = match days {
                0 => "आज".to_string(),
                1 => "कल".to_string(),
                2 => "परसों".to_string(),
                _ => format!(
                    "{} को",
                    weekdays[at.weekday().num_days_from_monday() as usize]
                ),
            };
            let part = match h {
                0..=11 => "सुबह",
                12..=15 => "दोपहर",
                16..=19 => "शाम",
                _ => "रात",
            };
            format!("{day} {part} {clock} बजे")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> chrono::DateTime<chrono::FixedOffset> {
        chrono::DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn callback_phrases_become_concrete_times() {
        let now = at("2025-01-15T10:30:00+05:30"); // a Wednesday
        let cases = [
            ("call me tomorrow at 5", "2025-01-16T17:00:00+05:30"),
            ("tomorrow 10:30 am", "2025-01-16T10:30:00+05:30"),
            ("kal shaam 6 baje", "2025-01-16T18:00:00+05:30"),
            ("कल सुबह ११ बजे", "2025-01-16T11:00:00+05:30"),
            ("call me in 2 hours", "2025-01-15T12:30:00+05:30"),
            ("half an hour baad", "2025-01-15T11:00:00+05:30"),
            ("at 9", "2025-01-16T09:00:00+05:30"),
            ("call me at 4.30", "2025-01-15T16:30:00+05:30"),
            ("Monday morning", "2025-01-20T10:00:00+05:30"),
            ("parso", "2025-01-17T11:00:00+05:30"),
            ("baad mein", "2025-01-15T12:30:00+05:30"),
            ("in the evening", "2025-01-15T18:00:00+05:30"),
        ];
        for (line, expected) in cases {
            assert_eq!(callback_time(line, now), at(expected), "{line:?}");
        }
    }

    #[test]
    fn the_current_time_is_read_from_the_prompt() {
        assert_eq!(
            find_now("Current time: 2025-01-15T10:30:00+05:30."),
            Some(at("2025-01-15T10:30:00+05:30"))
        );
        assert_eq!(
            find_now("Now is 2025-01-15 10:30 IST"),
            Some(at("2025-01-15T10:30:00+05:30"))
        );
        assert_eq!(find_now("no time here"), None);
    }
}
