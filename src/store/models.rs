//! Rows as the rest of the service sees them. Each type decodes from both backends
//! (`sqlx::FromRow`), and the API serialises the same types, so a column added here is visible
//! end to end. All times are UTC.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Declares a string-backed enum stored as TEXT, with `as_str`, `FromStr` and serde in snake_case.
///
/// The texts are `tt`, not `literal`: a `literal` fragment reaches derive macros wrapped in an
/// invisible group, and `utoipa` then misses `#[serde(rename = …)]` (the OpenAPI enum would list
/// the Rust variant names).
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} `{}` (expected one of: {})",
                        stringify!($name),
                        other,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> { s.parse() }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

text_enum!(
    /// Lifecycle of a campaign; transitions are guarded in `campaigns::transition`.
    CampaignStatus {
        Draft => "draft",
        Running => "running",
        Paused => "paused",
        Completed => "completed",
    }
);

text_enum!(
    /// Where a lead stands. `pending`, `retry` and `callback` are waiting to be dialled
    /// (at `next_attempt_at`); `in_progress` has a live attempt; the rest are final.
    LeadStatus {
        Pending => "pending",
        InProgress => "in_progress",
        Retry => "retry",
        Callback => "callback",
        Completed => "completed",
        Failed => "failed",
        DoNotCall => "do_not_call",
    }
);

impl LeadStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            LeadStatus::Completed | LeadStatus::Failed | LeadStatus::DoNotCall
        )
    }
}

/// When a campaign may call, in the lead's local time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CallingWindow {
    /// `HH:MM`, inclusive.
    #[sqlx(rename = "window_start")]
    pub start: String,
    /// `HH:MM`, exclusive: a call may start at 18:59 but not at 19:00.
    #[sqlx(rename = "window_end")]
    pub end: String,
    /// Lower-case three-letter day names (`mon` … `sun`).
    #[sqlx(json)]
    pub weekdays: Vec<String>,
    /// Local dates on which nobody is called.
    #[sqlx(json)]
    pub holidays: Vec<NaiveDate>,
}

/// Minutes to wait before the next attempt, per carrier outcome; the n-th retry uses the n-th
/// entry, and the last entry repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetryDelays {
    pub no_answer: Vec<u32>,
    pub busy: Vec<u32>,
    pub failed: Vec<u32>,
}

impl Default for RetryDelays {
    fn default() -> Self {
        Self {
            no_answer: vec![30],
            busy: vec![15],
            failed: vec![60],
        }
    }
}

/// A field the agent fills in when it records the outcome (e.g. budget, roof type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QualificationField {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `string`, `number` or `boolean`.
    #[serde(rename = "type", default = "default_field_type")]
    pub kind: String,
}

fn default_field_type() -> String {
    "string".into()
}

/// Everything an operator configures on a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CampaignSpec {
    pub name: String,
    /// The agent's system prompt.
    pub instructions: String,
    /// First sentence, a template over lead fields: `Namaste {name}, …`.
    pub greeting: String,
    /// BCP-47 (`en-IN`, `hi-IN`).
    pub language: String,
    pub voice_id: Option<String>,
    #[sqlx(flatten)]
    pub calling_window: CallingWindow,
    /// IANA zone used for leads that have none of their own.
    pub timezone: String,
    pub max_attempts: i32,
    #[sqlx(json)]
    pub retry_delays: RetryDelays,
    pub max_concurrent_calls: i32,
    #[sqlx(json)]
    pub qualification_fields: Vec<QualificationField>,
    /// The operator's endpoint notified when a call ends.
    pub webhook_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Campaign {
    pub id: i64,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub spec: CampaignSpec,
    #[sqlx(try_from = "String")]
    pub status: CampaignStatus,
    /// Why the campaign is paused when the service paused it (e.g. carrier credentials refused).
    pub status_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A lead as the CSV import produces it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLead {
    pub phone: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Lead {
    pub id: i64,
    pub campaign_id: i64,
    /// E.164. Full number in the API (operators need it); masked in logs.
    pub phone: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    /// Every CSV column that is not a known field, for the agent's prompt and greeting.
    #[sqlx(json)]
    pub attributes: BTreeMap<String, String>,
    #[sqlx(try_from = "String")]
    pub status: LeadStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Last carrier or conversation result, e.g. `no-answer`, `busy`, `interested`.
    pub last_result: Option<String>,
    /// Conversation outcome (intent) once known.
    pub outcome: Option<String>,
    /// The qualification fields the agent recorded, by name.
    #[sqlx(json)]
    #[schema(value_type = Object)]
    pub qualification: serde_json::Map<String, serde_json::Value>,
    pub summary: Option<String>,
    pub callback_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of leads with the total that matched the filter.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LeadPage {
    pub leads: Vec<Lead>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DncEntry {
    pub phone: String,
    pub reason: Option<String>,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

/// What one batch of an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub imported: u64,
    pub duplicates: u64,
    pub do_not_call: u64,
}

text_enum!(
    /// A call attempt's state, in Exotel's words. `queued` is ours: claimed by the dialer, not
    /// yet accepted by the carrier.
    CallStatus {
        Queued => "queued",
        Dialing => "dialing",
        Ringing => "ringing",
        InProgress => "in-progress",
        Completed => "completed",
        Failed => "failed",
        Busy => "busy",
        NoAnswer => "no-answer",
        Canceled => "canceled",
    }
);

impl CallStatus {
    /// Counts against the concurrency caps.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            CallStatus::Queued | CallStatus::Dialing | CallStatus::Ringing | CallStatus::InProgress
        )
    }
}

/// One dial attempt (or one inbound call).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Call {
    pub id: i64,
    pub campaign_id: Option<i64>,
    pub lead_id: Option<i64>,
    pub attempt: i32,
    pub direction: String,
    pub phone: String,
    #[sqlx(try_from = "String")]
    pub status: CallStatus,
    /// Exotel's `Call.Sid`.
    pub carrier_sid: Option<String>,
    pub stream_sid: Option<String>,
    pub answered_by: Option<String>,
    pub recording_url: Option<String>,
    pub conversation_duration: Option<i32>,
    /// The conversation's outcome, recorded by the live call; the carrier never overwrites it.
    pub intent: Option<String>,
    /// The qualification fields the agent recorded, by name.
    #[sqlx(json)]
    #[schema(value_type = Object)]
    pub qualification: serde_json::Map<String, serde_json::Value>,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub dialed_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A lead the dialer has claimed, with the call row created for the attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub lead: Lead,
    pub call_id: i64,
}

/// What one claim did for one campaign.
#[derive(Debug, Clone, Default)]
pub struct ClaimOutcome {
    pub claimed: Vec<Claimed>,
    /// Leads outside their window, moved to their next opening.
    pub deferred: u64,
    /// Leads found on the do-not-call list and closed.
    pub do_not_call: u64,
}

/// Carrier facts about a call (from a status webhook or the call-details API).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CarrierUpdate {
    pub status: Option<CallStatus>,
    pub answered_by: Option<String>,
    pub recording_url: Option<String>,
    pub conversation_duration: Option<i32>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// The new state of a lead after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadUpdate {
    pub status: LeadStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_result: Option<String>,
    pub outcome: Option<String>,
    pub callback_at: Option<DateTime<Utc>>,
    /// Give the attempt back (a callback the lead asked for is not a failed attempt).
    pub refund_attempt: bool,
}

/// A lead the claim looks at, with whether its number is on the do-not-call list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    #[sqlx(flatten)]
    pub lead: Lead,
    pub on_dnc: bool,
}

/// What the dialer asks of one claim.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub campaign_id: i64,
    pub now: DateTime<Utc>,
    pub campaign_cap: i64,
    pub global_cap: i64,
    /// At most this many leads (pacing).
    pub limit: i64,
}

/// The calling-window verdict for a lead: `Ok` to call now, `Err(t)` to wait until `t`.
pub type WindowFn = dyn Fn(&Lead) -> Result<(), DateTime<Utc>> + Send + Sync;

/// One utterance of a call, written as it happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TranscriptTurn {
    /// Not serialised: the API shows turns inside their call's transcript.
    #[serde(skip_serializing)]
    #[schema(ignore)]
    pub call_id: i64,
    pub seq: i32,
    /// `agent`, `caller` or `system`.
    pub speaker: String,
    /// For an interrupted agent turn: only what the caller heard.
    pub text: String,
    /// Milliseconds from the start of the stream.
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub interrupted: bool,
    /// Caller's speech end → final transcript.
    pub stt_ms: Option<i32>,
    pub llm_first_token_ms: Option<i32>,
    pub tts_first_byte_ms: Option<i32>,
    /// Caller's turn end → first agent audio frame sent.
    pub voice_to_voice_ms: Option<i32>,
    /// What our own code added to voice-to-voice (the rest is the providers').
    pub added_ms: Option<i32>,
}

impl TranscriptTurn {
    /// A turn with no timings yet, not interrupted: callers fill in what they measured with
    /// struct-update syntax.
    pub fn new(call_id: i64, seq: i32, speaker: &str, text: impl Into<String>) -> Self {
        Self {
            call_id,
            seq,
            speaker: speaker.into(),
            text: text.into(),
            started_ms: None,
            ended_ms: None,
            interrupted: false,
            stt_ms: None,
            llm_first_token_ms: None,
            tts_first_byte_ms: None,
            voice_to_voice_ms: None,
            added_ms: None,
        }
    }
}
