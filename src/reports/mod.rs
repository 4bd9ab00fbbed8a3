//! What the operator reads about campaigns: analytics (`GET /campaigns/{id}/analytics`), the
//! dashboard (`GET /dashboard`), the CSV export and call transcripts.
//!
//! Read-only: the store computes the aggregates (one query per need, the same SQL on both
//! backends) and this module shapes them and prices them with the configured rates. It must not
//! change any row.

pub mod api;
pub mod dashboard;
pub mod export;
pub mod transcript;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::CostSettings;
use crate::store::{
    CallStats, CallStatus, Campaign, CampaignStatus, LeadStats, LeadStatus, Percentiles, Store,
    StoreResult,
};

/// Analytics of one campaign, or of all (the dashboard's totals, without `campaign`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignRef>,
    pub leads: LeadCounts,
    pub calls: CallCounts,
    /// Leads per recorded outcome.
    pub outcomes: BTreeMap<String, i64>,
    /// Calls per conversation intent.
    pub intents: BTreeMap<String, i64>,
    pub talk_time_secs: TalkTime,
    /// Leads per number of attempts made (`"0"` for leads not dialled yet).
    pub attempts: BTreeMap<String, i64>,
    pub latency_ms: BTreeMap<&'static str, Percentiles>,
    pub cost: Cost,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CampaignRef {
    pub id: i64,
    pub name: String,
    pub status: CampaignStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LeadCounts {
    pub total: i64,
    /// Every lead status, zeros included.
    pub by_status: BTreeMap<&'static str, i64>,
}

impl LeadCounts {
    pub fn from_stats(stats: &LeadStats) -> Self {
        let mut by_status: BTreeMap<&'static str, i64> =
            LeadStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for (status, n) in &stats.by_status {
            by_status.insert(status.as_str(), *n);
        }
        Self {
            total: by_status.values().sum(),
            by_status,
        }
    }

    /// Share of leads in a final state (0 when there are none).
    pub fn progress(&self) -> f64 {
        let done: i64 = LeadStatus::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| self.by_status[s.as_str()])
            .sum();
        ratio(done, self.total, 4)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CallCounts {
    pub total: i64,
    /// Every call status, zeros included.
    pub by_status: BTreeMap<String, i64>,
    /// Calls answered (the carrier said so, or our media stream started).
    pub answered: i64,
    /// Outbound calls the carrier accepted.
    pub dialled: i64,
    /// Answered outbound calls / dialled outbound calls (0 when none were dialled).
    pub connect_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TalkTime {
    pub total: i64,
    /// Over calls that had a conversation (duration above zero).
    pub average: f64,
}

/// Spend per provider in `currency`, from the configured rates, with the units priced.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Cost {
    pub currency: String,
    pub carrier: f64,
    pub stt: f64,
    pub llm: f64,
    pub tts: f64,
    pub total: f64,
    pub units: CostUnits,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CostUnits {
    /// Per call, started minutes of conversation, summed.
    pub carrier_minutes: i64,
    /// Audio minutes streamed to speech-to-text (conversation time of streamed calls).
    pub stt_minutes: f64,
    pub llm_input_tokens: i64,
    pub llm_output_tokens: i64,
    pub tts_characters: i64,
}

/// `a / b` rounded to `places`, 0 when `b` is 0.
fn ratio(a: i64, b: i64, places: i32) -> f64 {
    if b == 0 {
        return 0.0;
    }
    round(a as f64 / b as f64, places)
}

fn round(x: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (x * k).round() / k
}

/// Prices what the calls consumed. Amounts are rounded to 6 decimals; `total` is the sum of the
/// rounded parts, so the parts always add up to it.
pub fn cost(stats: &CallStats, rates: &CostSettings) -> Cost {
    let t = &stats.totals;
    let stt_minutes = t.stt_secs as f64 / 60.0;
    let carrier = round(t.carrier_minutes as f64 * rates.carrier_per_min, 6);
    let stt = round(stt_minutes * rates.stt_per_min, 6);
    let llm = round(
        t.llm_prompt_tokens as f64 / 1000.0 * rates.llm_per_1k_input_tokens
            + t.llm_completion_tokens as f64 / 1000.0 * rates.llm_per_1k_output_tokens,
        6,
    );
    let tts = round(t.tts_characters as f64 / 1000.0 * rates.tts_per_1k_chars, 6);
    Cost {
        currency: rates.currency.clone(),
        carrier,
        stt,
        llm,
        tts,
        total: round(carrier + stt + llm + tts, 6),
        units: CostUnits {
            carrier_minutes: t.carrier_minutes,
            stt_minutes: round(stt_minutes, 4),
            llm_input_tokens: t.llm_prompt_tokens,
            llm_output_tokens: t.llm_completion_tokens,
            tts_characters: t.tts_characters,
        },
    }
}

/// Analytics of `campaign`, or of every campaign when `None`.
pub async fn report(
    store: &dyn Store,
    rates: &CostSettings,
    campaign: Option<&Campaign>,
) -> StoreResult<Report> {
    let id = campaign.map(|c| c.id);
    let leads = store.lead_stats(id).await?;
    let calls = store.call_stats(id).await?;
    let latency = store.latency_stats(id).await?;
    let t = &calls.totals;
    let mut by_status: BTreeMap<String, i64> = CallStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    by_status.extend(calls.by_status.iter().cloned());
    Ok(Report {
        campaign: campaign.map(|c| CampaignRef {
            id: c.id,
            name: c.spec.name.clone(),
            status: c.status,
        }),
        leads: LeadCounts::from_stats(&leads),
        calls: CallCounts {
            total: t.total,
            by_status,
            answered: t.answered,
            dialled: t.dialled,
            connect_rate: ratio(t.dialled_answered, t.dialled, 4),
        },
        outcomes: leads.outcomes.iter().cloned().collect(),
        intents: calls.intents.iter().cloned().collect(),
        talk_time_secs: TalkTime {
            total: t.talk_secs,
            average: ratio(t.talk_secs, t.talked_calls, 1),
        },
        attempts: leads
            .attempts
            .iter()
            .map(|(a, n)| (a.to_string(), *n))
            .collect(),
        latency_ms: latency.iter().map(|(k, p)| (k.as_str(), *p)).collect(),
        cost: cost(&calls, rates),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CallTotals;

    fn rates() -> CostSettings {
        CostSettings {
            currency: "USD".into(),
            carrier_per_min: 0.01,
            stt_per_min: 0.006,
            llm_per_1k_input_tokens: 0.5,
            llm_per_1k_output_tokens: 1.5,
            tts_per_1k_chars: 0.3,
        }
    }

    #[test]
    fn cost_prices_each_unit_and_parts_add_up() {
        let stats = CallStats {
            totals: CallTotals {
                carrier_minutes: 3,
                stt_secs: 90,
                llm_prompt_tokens: 2000,
                llm_completion_tokens: 100,
                tts_characters: 500,
                ..CallTotals::default()
            },
            ..CallStats::default()
        };
        let c = cost(&stats, &rates());
        assert_eq!(c.carrier, 0.03);
        assert_eq!(c.stt, 0.009);
        assert_eq!(c.llm, 1.15);
        assert_eq!(c.tts, 0.15);
        assert_eq!(c.total, 1.339);
        assert_eq!(c.units.stt_minutes, 1.5);
    }

    #[test]
    fn empty_campaign_has_zero_rates_not_nan() {
        let c = cost(&CallStats::default(), &rates());
        assert_eq!(c.total, 0.0);
        assert_eq!(ratio(0, 0, 4), 0.0);
        let leads = LeadCounts::from_stats(&LeadStats::default());
        assert_eq!(leads.total, 0);
        assert_eq!(leads.by_status.len(), LeadStatus::ALL.len());
        assert_eq!(leads.progress(), 0.0);
    }
}
