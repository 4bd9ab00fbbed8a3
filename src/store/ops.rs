//! The store's operations side: the aggregates behind analytics and the dashboard, the export's
//! pages, what each call consumed, and the outbox of webhooks sent to the operator.
//!
//! A supertrait of [`Store`](super::Store), so `Arc<dyn Store>` offers it, while its shared SQL
//! lives apart from the dialer's (in `ops_sql.rs`). Aggregates are computed by the database
//! (one query per need, the same SQL on both backends); nothing here knows about HTTP.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Call, LeadStatus, StoreResult};

/// Lead counts of one campaign (or of all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadStats {
    pub by_status: Vec<(LeadStatus, i64)>,
    /// Leads per recorded outcome (leads without one are not counted).
    pub outcomes: Vec<(String, i64)>,
    /// Leads per number of attempts made.
    pub attempts: Vec<(i32, i64)>,
}

/// Call counts and what the calls consumed, for one campaign (or all).
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct CallTotals {
    pub total: i64,
    /// Calls answered (carrier said so, or our media stream started).
    pub answered: i64,
    /// Outbound calls the carrier accepted (`dialed_at` set).
    pub dialled: i64,
    /// Of those, the answered ones (the connect rate's numerator).
    pub dialled_answered: i64,
    /// Conversation seconds (the carrier's `ConversationDuration`) over all calls.
    pub talk_secs: i64,
    /// Calls with a conversation duration above zero.
    pub talked_calls: i64,
    /// Per call, conversation seconds rounded up to whole minutes, summed (carrier billing).
    pub carrier_minutes: i64,
    /// Conversation seconds of calls that had a media stream (audio sent to speech-to-text).
    pub stt_secs: i64,
    pub llm_prompt_tokens: i64,
    pub llm_completion_tokens: i64,
    pub tts_characters: i64,
}

/// Calls per status and per conversation intent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    pub totals: CallTotals,
    pub by_status: Vec<(String, i64)>,
    pub intents: Vec<(String, i64)>,
}

/// Which latency of a turn (a `transcript_turns` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyKind {
    Stt,
    LlmFirstToken,
    TtsFirstByte,
    VoiceToVoice,
    Added,
}

impl LatencyKind {
    pub const ALL: [LatencyKind; 5] = [
        LatencyKind::Stt,
        LatencyKind::LlmFirstToken,
        LatencyKind::TtsFirstByte,
        LatencyKind::VoiceToVoice,
        LatencyKind::Added,
    ];

    /// The key reports use (`stt`, `llm_first_token`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            LatencyKind::Stt => "stt",
            LatencyKind::LlmFirstToken => "llm_first_token",
            LatencyKind::TtsFirstByte => "tts_first_byte",
            LatencyKind::VoiceToVoice => "voice_to_voice",
            LatencyKind::Added => "added",
        }
    }
}

/// Nearest-rank percentiles of one latency; `None` when no turn measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Percentiles {
    pub count: i64,
    pub p50: Option<i32>,
    pub p95: Option<i32>,
}

/// The 1-based nearest rank of percentile `p` among `n` sorted values (`n > 0`).
pub fn nearest_rank(p: u32, n: i64) -> i64 {
    ((p as i64 * n + 99) / 100).clamp(1, n)
}

/// One lead of an export, with what its calls left.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ExportRow {
    pub id: i64,
    pub name: Option<String>,
    pub phone: String,
    #[sqlx(try_from = "String")]
    pub status: LeadStatus,
    pub outcome: Option<String>,
    pub attempts: i32,
    /// From the last call that had a conversation outcome.
    #[sqlx(json)]
    pub qualification: serde_json::Map<String, serde_json::Value>,
    /// The lead's own summary, else the last conversation's.
    pub summary: Option<String>,
    /// The intent of the lead's last call.
    pub last_intent: Option<String>,
    pub last_call_at: Option<DateTime<Utc>>,
    pub recording_url: Option<String>,
}

/// What one call consumed from the paid providers, added to the call's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallUsage {
    pub llm_prompt_tokens: u32,
    pub llm_completion_tokens: u32,
    pub tts_characters: u32,
}

impl CallUsage {
    pub fn is_empty(&self) -> bool {
        *self == CallUsage::default()
    }
}

/// An event to send to an operator's webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub campaign_id: i64,
    pub call_id: i64,
    pub event: String,
    pub url: String,
    /// The JSON body (without `transcript_url`, added when sending).
    pub payload: String,
}

/// One outbound webhook and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WebhookDelivery {
    pub id: i64,
    pub campaign_id: Option<i64>,
    pub call_id: Option<i64>,
    pub event: String,
    pub url: String,
    #[serde(skip)]
    pub payload: String,
    /// `pending`, `sending` (claimed by a delivery loop), `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    Delivered {
        status_code: i32,
    },
    /// Try again at `retry_at`, or give up (`failed`) when it is `None`.
    Failed {
        status_code: Option<i32>,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

#[async_trait]
pub trait OpsStore: Send + Sync {
    /// Read from tallies (`tallies.rs`): the cost does not grow with the number of leads.
    async fn lead_stats(&self, campaign_id: Option<i64>) -> StoreResult<LeadStats>;
    /// Every campaign's [`LeadStats`] in one query (the dashboard).
    async fn lead_stats_by_campaign(
        &self,
    ) -> StoreResult<std::collections::HashMap<i64, LeadStats>>;
    async fn call_stats(&self, campaign_id: Option<i64>) -> StoreResult<CallStats>;
    /// Every [`LatencyKind`], in that order.
    async fn latency_stats(
        &self,
        campaign_id: Option<i64>,
    ) -> StoreResult<Vec<(LatencyKind, Percentiles)>>;
    /// Up to `limit` leads of a campaign with an id above `after_id`, by id (keyset pages, so
    /// an export streams in constant memory and sees each lead once).
    async fn export_page(
        &self,
        campaign_id: i64,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<ExportRow>>;
    /// Calls holding a slot (queued … in progress), oldest first, at most 1,000.
    async fn active_calls(&self) -> StoreResult<Vec<Call>>;

    /// Moves the deltas triggers appended into the tallies (PostgreSQL; nothing to do on
    /// SQLite, whose triggers update the tallies in place). Reads are right either way; folding
    /// keeps them short. Safe to run from several instances at once.
    async fn fold_tallies(&self) -> StoreResult<()>;

    /// Adds to the call's token and character counters.
    async fn add_call_usage(&self, call_id: i64, usage: &CallUsage) -> StoreResult<()>;
    /// The media stream and its post-call work are over (kept at the first time).
    async fn end_media(&self, call_id: i64, now: DateTime<Utc>) -> StoreResult<()>;
    async fn media_ended_at(&self, call_id: i64) -> StoreResult<Option<DateTime<Utc>>>;

    /// Queues an event due at `due_at`. When the call already has this event, its row is
    /// replaced only if it is unsent and due later (a provisional row giving way to the
    /// complete one); `false` when nothing was written.
    async fn enqueue_webhook(
        &self,
        delivery: &NewDelivery,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Claims up to `limit` due deliveries (pending and due, or claimed by a loop whose lease
    /// ran out) until `lease_until`, counting the attempt. Instances never claim the same row.
    async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Records the attempt numbered `attempt` (ignored if the row was claimed again since).
    async fn finish_webhook_attempt(
        &self,
        id: i64,
        attempt: i32,
        result: &AttemptResult,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn list_webhook_deliveries(
        &self,
        campaign_id: i64,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<WebhookDelivery>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(50, 1), 1);
        assert_eq!(nearest_rank(95, 1), 1);
        assert_eq!(nearest_rank(50, 4), 2);
        assert_eq!(nearest_rank(95, 4), 4);
        assert_eq!(nearest_rank(50, 40), 20);
        assert_eq!(nearest_rank(95, 40), 38);
        assert_eq!(nearest_rank(95, 100), 95);
    }
}
