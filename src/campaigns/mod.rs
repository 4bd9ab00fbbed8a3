//! Campaigns: what an operator configures (and how input is validated), the status machine, and
//! lead import. HTTP handlers live in `api.rs`, CSV parsing in `import.rs`.
//!
//! This module decides *what* is allowed; the store makes each decision atomic.

pub mod api;
pub mod import;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::clock::{WEEKDAYS, parse_hhmm};
use crate::config::Settings;
use crate::config::limits::fields;
use crate::error::ApiError;
use crate::store::{CallingWindow, CampaignSpec, CampaignStatus, QualificationField, RetryDelays};
use crate::text::BoundedText;
use crate::urls::UrlPolicy;

/// The text fields' limits as const generics (`config::limits::fields`).
type Name = BoundedText<{ fields::CAMPAIGN_NAME }>;
type Short = BoundedText<{ fields::SHORT }>;

/// Body of `POST /campaigns` and `PATCH /campaigns/{id}`: every field optional (POST requires
/// `name`); an unknown field is an error, so a typo is never silently ignored.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    /// Required on create; 1–200 characters.
    #[schema(value_type = Option<String>, max_length = 200)]
    pub name: Option<Name>,
    /// The agent's system prompt (at most 20,000 characters).
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub instructions: Option<BoundedText<{ fields::INSTRUCTIONS }>>,
    /// First sentence, a template over lead fields: `Namaste {name}, …` (at most 1,000
    /// characters; every `{` closes, and names a field: letters, digits, `_`).
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub greeting: Option<BoundedText<{ fields::GREETING }>>,
    /// A language tag: `en-IN`, `hi-IN`, or `multi` (code-switching).
    #[schema(value_type = Option<String>, max_length = 100)]
    pub language: Option<Short>,
    /// ElevenLabs voice; empty for the service's default.
    #[schema(value_type = Option<String>, max_length = 100)]
    pub voice_id: Option<Short>,
    /// Fields left out keep their value.
    pub calling_window: Option<CallingWindowInput>,
    /// IANA zone for leads that have none of their own (`Asia/Kolkata`).
    #[schema(value_type = Option<String>, max_length = 100)]
    pub timezone: Option<Short>,
    /// Dial attempts per lead, 1–20.
    pub max_attempts: Option<i32>,
    /// Minutes before a retry, per carrier outcome.
    pub retry_delays: Option<RetryDelaysInput>,
    /// Calls of this campaign in progress at once, 1–10000.
    pub max_concurrent_calls: Option<i32>,
    /// What the agent records about each lead (names: letters, digits, `_`; descriptions at
    /// most 500 characters).
    pub qualification_fields: Option<Vec<QualificationField>>,
    /// `http(s)://` endpoint for `call.completed` events; empty to stop them. Must not point
    /// at a loopback, private or link-local address (unless `ALLOW_PRIVATE_URLS`).
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub webhook_url: Option<BoundedText<{ fields::URL }>>,
    /// Accepted only to explain that status changes have their own endpoints (not in the
    /// OpenAPI document: sending it is always an error).
    #[schema(ignore)]
    pub status: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallingWindowInput {
    /// `HH:MM`, lead's local time, inclusive.
    #[schema(value_type = Option<String>)]
    pub start: Option<Short>,
    /// `HH:MM`, exclusive; later than `start`.
    #[schema(value_type = Option<String>)]
    pub end: Option<Short>,
    /// Day names (`mon` … `sun`, or in full); at least one.
    #[schema(value_type = Option<Vec<String>>)]
    pub weekdays: Option<Vec<Short>>,
    /// Local dates on which nobody is called.
    pub holidays: Option<Vec<NaiveDate>>,
}

/// Minutes per outcome: one number, or a list for successive retries.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDelaysInput {
    /// 1–43200 minutes each.
    pub no_answer: Option<Minutes>,
    pub busy: Option<Minutes>,
    pub failed: Option<Minutes>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Minutes {
    One(u32),
    Many(Vec<u32>),
}

impl Minutes {
    fn into_vec(self) -> Vec<u32> {
        match self {
            Minutes::One(m) => vec![m],
            Minutes::Many(v) => v,
        }
    }
}

/// The spec a new campaign starts from, using the service-wide defaults from settings.
pub fn default_spec(settings: &Settings) -> CampaignSpec {
    CampaignSpec {
        name: String::new(),
        instructions: "You are a polite sales agent calling on behalf of our company. Keep each \
                       reply to one or two short sentences."
            .into(),
        greeting: "Namaste {name}, this is an automated call from our team. Do you have a minute?"
            .into(),
        language: "en-IN".into(),
        voice_id: settings.elevenlabs.voice_id.clone(),
        calling_window: CallingWindow {
            start: settings.calling_hours_start.format("%H:%M").to_string(),
            end: settings.calling_hours_end.format("%H:%M").to_string(),
            weekdays: WEEKDAYS[..6].iter().map(|d| d.to_string()).collect(),
            holidays: vec![],
        },
        timezone: "Asia/Kolkata".into(),
        max_attempts: settings.max_attempts as i32,
        retry_delays: RetryDelays::default(),
        max_concurrent_calls: settings.max_concurrent_calls as i32,
        qualification_fields: vec![],
        webhook_url: None,
    }
}

impl CampaignInput {
    /// Applies the given fields onto `spec` and validates the result as a whole; `urls` decides
    /// which `webhook_url`s are acceptable.
    pub fn apply(self, mut spec: CampaignSpec, urls: UrlPolicy) -> Result<CampaignSpec, ApiError> {
        if self.status.is_some() {
            return Err(ApiError::validation(
                "`status` cannot be set directly: use POST /campaigns/{id}/start, /pause or /resume",
            ));
        }
        if let Some(v) = self.name {
            spec.name = v.as_str().trim().to_string();
        }
        if let Some(v) = self.instructions {
            spec.instructions = v.into_inner();
        }
        if let Some(v) = self.greeting {
            spec.greeting = v.into_inner();
        }
        if let Some(v) = self.language {
            spec.language = v.as_str().trim().to_string();
        }
        if let Some(v) = self.voice_id {
            let v = v.as_str().trim().to_string();
            spec.voice_id = (!v.is_empty()).then_some(v);
        }
        if let Some(w) = self.calling_window {
            if let Some(v) = w.start {
                spec.calling_window.start = v.into_inner();
            }
            if let Some(v) = w.end {
                spec.calling_window.end = v.into_inner();
            }
            if let Some(v) = w.weekdays {
                spec.calling_window.weekdays = v.into_iter().map(BoundedText::into_inner).collect();
            }
            if let Some(v) = w.holidays {
                spec.calling_window.holidays = v;
            }
        }
        if let Some(v) = self.timezone {
            spec.timezone = v.as_str().trim().to_string();
        }
        if let Some(v) = self.max_attempts {
            spec.max_attempts = v;
        }
        if let Some(r) = self.retry_delays {
            if let Some(v) = r.no_answer {
                spec.retry_delays.no_answer = v.into_vec();
            }
            if let Some(v) = r.busy {
                spec.retry_delays.busy = v.into_vec();
            }
            if let Some(v) = r.failed {
                spec.retry_delays.failed = v.into_vec();
            }
        }
        if let Some(v) = self.max_concurrent_calls {
            spec.max_concurrent_calls = v;
        }
        if let Some(v) = self.qualification_fields {
            spec.qualification_fields = v;
        }
        if let Some(v) = self.webhook_url {
            let v = v.as_str().trim().to_string();
            spec.webhook_url = (!v.is_empty()).then_some(v);
        }
        validate(&mut spec)?;
        if let Some(url) = &spec.webhook_url {
            urls.check_target(url)
                .map_err(|e| ApiError::validation(format!("`webhook_url` {e}")))?;
        }
        Ok(spec)
    }
}

/// Checks a whole spec and normalises what has one right form (times as `HH:MM`, day names).
pub fn validate(spec: &mut CampaignSpec) -> Result<(), ApiError> {
    let bad = |msg: String| Err(ApiError::validation(msg));
    if spec.name.is_empty() {
        return bad("`name` must not be empty".into());
    }
    if spec.name.chars().count() > fields::CAMPAIGN_NAME {
        return bad(format!(
            "`name` must be at most {} characters",
            fields::CAMPAIGN_NAME
        ));
    }
    // Stored campaigns predate these limits: a PATCH re-checks the whole spec.
    for (field, value, max) in [
        (
            "instructions",
            spec.instructions.as_str(),
            fields::INSTRUCTIONS,
        ),
        ("greeting", spec.greeting.as_str(), fields::GREETING),
    ] {
        crate::text::check(field, value, max).map_err(|e| ApiError::validation(e.to_string()))?;
    }
    crate::agent::prompt::check_template(&spec.greeting)
        .map_err(|e| ApiError::validation(format!("`greeting`: {e}")))?;
    if !is_language_tag(&spec.language) {
        return bad(format!(
            "`language` `{}` is not a language tag like `en-IN` or `hi-IN`",
            spec.language
        ));
    }
    if spec.timezone.parse::<chrono_tz::Tz>().is_err() {
        return bad(format!(
            "`timezone` `{}` is not an IANA time zone like `Asia/Kolkata`",
            spec.timezone
        ));
    }
    let window = &mut spec.calling_window;
    let start = parse_hhmm(&window.start);
    let end = parse_hhmm(&window.end);
    let (Some(start), Some(end)) = (start, end) else {
        return bad("`calling_window.start` and `.end` must be times like `10:00`".into());
    };
    if start >= end {
        return bad("`calling_window.start` must be earlier than `calling_window.end`".into());
    }
    window.start = start.format("%H:%M").to_string();
    window.end = end.format("%H:%M").to_string();
    let mut days = Vec::new();
    for d in &window.weekdays {
        let lower = d.trim().to_ascii_lowercase();
        let Some(day) = WEEKDAYS
            .iter()
            .find(|w| lower.get(..3) == Some(**w) && full_day_ok(&lower))
        else {
            return bad(format!(
                "`calling_window.weekdays`: `{d}` is not a day (use mon, tue, …, sun)"
            ));
        };
        if !days.contains(&day.to_string()) {
            days.push(day.to_string());
        }
    }
    if days.is_empty() {
        return bad("`calling_window.weekdays` must name at least one day".into());
    }
    days.sort_by_key(|d| WEEKDAYS.iter().position(|w| w == d));
    window.weekdays = days;
    window.holidays.sort();
    window.holidays.dedup();
    if !(1..=20).contains(&spec.max_attempts) {
        return bad("`max_attempts` must be between 1 and 20".into());
    }
    if !(1..=10_000).contains(&spec.max_concurrent_calls) {
        return bad("`max_concurrent_calls` must be between 1 and 10000".into());
    }
    for (name, list) in [
        ("no_answer", &spec.retry_delays.no_answer),
        ("busy", &spec.retry_delays.busy),
        ("failed", &spec.retry_delays.failed),
    ] {
        if list.is_empty() || list.iter().any(|m| *m == 0 || *m > 60 * 24 * 30) {
            return bad(format!(
                "`retry_delays.{name}` must be minutes between 1 and 43200 (one number or a list)"
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for f in &spec.qualification_fields {
        let valid_name = !f.name.is_empty()
            && f.name.len() <= 64
            && f.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return bad(format!(
                "`qualification_fields`: `{}` must be 1–64 letters, digits or _",
                f.name
            ));
        }
        crate::text::check(
            "qualification_fields.description",
            &f.description,
            fields::FIELD_DESCRIPTION,
        )
        .map_err(|e| ApiError::validation(e.to_string()))?;
        if !matches!(f.kind.as_str(), "string" | "number" | "boolean") {
            return bad(format!(
                "`qualification_fields`: type `{}` must be string, number or boolean",
                f.kind
            ));
        }
        if !seen.insert(f.name.clone()) {
            return bad(format!(
                "`qualification_fields`: `{}` is listed twice",
                f.name
            ));
        }
    }
    if let Some(url) = &spec.webhook_url {
        // The scheme and form; which hosts are allowed is `apply`'s policy.
        UrlPolicy::new(true)
            .check_link(url)
            .map_err(|e| ApiError::validation(format!("`webhook_url` {e}")))?;
    }
    Ok(())
}

fn full_day_ok(lower: &str) -> bool {
    lower.len() == 3
        || [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ]
        .contains(&lower)
}

/// `en`, `hi-IN`, `en-IN`, `multi` (Deepgram's code-switching mode).
fn is_language_tag(s: &str) -> bool {
    if s == "multi" {
        return true;
    }
    let mut parts = s.split('-');
    let lang = parts.next().unwrap_or("");
    let lang_ok = (2..=3).contains(&lang.len()) && lang.chars().all(|c| c.is_ascii_lowercase());
    let rest_ok =
        parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    lang_ok && rest_ok
}

/// What an operator action may do: the statuses it starts from, and where it leads.
/// Repeating an action that already holds (start a running campaign) is a no-op, not an error.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Start,
    Pause,
    Resume,
}

impl Action {
    pub fn from_statuses(self) -> &'static [CampaignStatus] {
        use CampaignStatus::*;
        match self {
            Action::Start => &[Draft, Paused],
            Action::Pause => &[Running],
            Action::Resume => &[Paused],
        }
    }

    pub fn target(self) -> CampaignStatus {
        match self {
            Action::Start | Action::Resume => CampaignStatus::Running,
            Action::Pause => CampaignStatus::Paused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CampaignSpec {
        let mut s = default_spec(&Settings::for_database("sqlite::memory:"));
        s.name = "Solar".into();
        s
    }

    #[test]
    fn defaults_are_valid_and_follow_the_original_rule() {
        let mut s = spec();
        validate(&mut s).unwrap();
        assert_eq!(s.calling_window.start, "10:00");
        assert_eq!(s.calling_window.end, "19:00");
        assert_eq!(s.calling_window.weekdays.len(), 6);
        assert!(!s.calling_window.weekdays.contains(&"sun".to_string()));
    }

    #[test]
    fn weekday_names_are_normalised() {
        let input: CampaignInput = serde_json::from_value(serde_json::json!({
            "calling_window": {"weekdays": ["Monday", "wed", "WED", "fri"], "start": "9:00"}
        }))
        .unwrap();
        let s = input.apply(spec(), UrlPolicy::default()).unwrap();
        assert_eq!(s.calling_window.weekdays, ["mon", "wed", "fri"]);
        assert_eq!(s.calling_window.start, "09:00");
    }

    #[test]
    fn invalid_fields_are_rejected_with_their_name() {
        for (body, needle) in [
            (serde_json::json!({"name": "  "}), "name"),
            (serde_json::json!({"timezone": "Mars/Base"}), "timezone"),
            (serde_json::json!({"language": "english"}), "language"),
            (serde_json::json!({"max_attempts": 0}), "max_attempts"),
            (
                serde_json::json!({"calling_window": {"start": "19:00", "end": "10:00"}}),
                "calling_window",
            ),
            (
                serde_json::json!({"calling_window": {"weekdays": ["funday"]}}),
                "weekdays",
            ),
            (
                serde_json::json!({"retry_delays": {"busy": 0}}),
                "retry_delays.busy",
            ),
            (serde_json::json!({"webhook_url": "ftp://x"}), "webhook_url"),
            (serde_json::json!({"status": "running"}), "status"),
        ] {
            let input: CampaignInput = serde_json::from_value(body.clone()).unwrap();
            let err = input
                .apply(spec(), UrlPolicy::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn retry_delays_accept_a_number_or_a_list() {
        let input: CampaignInput = serde_json::from_value(serde_json::json!({
            "retry_delays": {"no_answer": [10, 60, 240], "busy": 5}
        }))
        .unwrap();
        let s = input.apply(spec(), UrlPolicy::default()).unwrap();
        assert_eq!(s.retry_delays.no_answer, [10, 60, 240]);
        assert_eq!(s.retry_delays.busy, [5]);
        assert_eq!(s.retry_delays.failed, [60]);
    }
}
