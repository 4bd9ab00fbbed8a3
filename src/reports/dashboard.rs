//! `GET /dashboard`: every campaign's progress, the totals across campaigns, and the calls live
//! right now.
//!
//! Live calls come from the session store (what the call tasks publish, from every instance
//! when sessions are in Redis), enriched from the database with the lead and number; a
//! session whose call row is gone is still listed, with what the session says. When the
//! session store is down, the rest is served with `live_calls_error`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{LeadCounts, Report, report};
use crate::startup::AppState;
use crate::store::{CampaignStatus, StoreError};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    pub campaigns: Vec<CampaignProgress>,
    pub totals: Report,
    pub live_calls: Vec<LiveCall>,
    /// Set when the session store (Redis) did not answer: the rest is still worth showing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_calls_error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignProgress {
    pub id: i64,
    pub name: String,
    pub status: CampaignStatus,
    pub leads: LeadCounts,
    pub outcomes: BTreeMap<String, i64>,
    /// Leads in a final state / all leads (0 with no leads).
    pub progress: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveCall {
    pub call_id: i64,
    pub campaign_id: Option<i64>,
    pub lead_id: Option<i64>,
    /// Masked (`+91******3210`).
    pub phone: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// As the call task published it (`live`, `ending`).
    pub state: Option<String>,
}

/// Only the database fails the dashboard; without sessions it is served without live calls.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("live sessions unavailable: {0}")]
    Sessions(#[from] crate::sessions::SessionError),
}

pub async fn build(state: &AppState) -> Result<Dashboard, DashboardError> {
    let store = state.store.as_ref();
    let mut campaigns = Vec::new();
    // One query for every campaign's counts, from the tallies: O(campaigns), not O(leads).
    let mut stats_by_campaign = store.lead_stats_by_campaign().await?;
    for c in store.list_campaigns().await? {
        let stats = stats_by_campaign.remove(&c.id).unwrap_or_default();
        let leads = LeadCounts::from_stats(&stats);
        campaigns.push(CampaignProgress {
            id: c.id,
            name: c.spec.name,
            status: c.status,
            progress: leads.progress(),
            leads,
            outcomes: stats.outcomes.into_iter().collect(),
        });
    }
    let totals = report(store, &state.settings.costs, None).await?;
    let (live_calls, live_calls_error) = match live_calls(state).await {
        Ok(calls) => (calls, None),
        Err(DashboardError::Sessions(e)) => {
            tracing::warn!(error = %e, "dashboard without live calls");
            (Vec::new(), Some("live sessions unavailable".to_string()))
        }
        Err(e) => return Err(e),
    };
    Ok(Dashboard {
        campaigns,
        totals,
        live_calls,
        live_calls_error,
    })
}

async fn live_calls(state: &AppState) -> Result<Vec<LiveCall>, DashboardError> {
    let sessions = state.sessions.list().await?;
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    // One query for every active call; a session whose call already left the active states
    // (its post-call summary is being written) is looked up alone.
    let active: HashMap<i64, crate::store::Call> = state
        .store
        .active_calls()
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut out = Vec::with_capacity(sessions.len());
    for (id, snapshot) in sessions {
        let Some(call_id) = snapshot["call_id"]
            .as_i64()
            .or_else(|| id.parse::<i64>().ok())
        else {
            continue;
        };
        let call = match active.get(&call_id) {
            Some(c) => Some(c.clone()),
            None => match state.store.get_call(call_id).await {
                Ok(c) => Some(c),
                Err(StoreError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            },
        };
        let published_start = snapshot["started_at"]
            .as_str()
            .and_then(|s| s.parse::<DateTime<Utc>>().ok());
        out.push(LiveCall {
            call_id,
            campaign_id: call
                .as_ref()
                .and_then(|c| c.campaign_id)
                .or(snapshot["campaign_id"].as_i64()),
            lead_id: call.as_ref().and_then(|c| c.lead_id),
            phone: call.as_ref().map(|c| crate::phone::mask(&c.phone)),
            started_at: call
                .as_ref()
                .and_then(|c| c.answered_at)
                .or(published_start),
            state: snapshot["state"].as_str().map(str::to_string),
        });
    }
    out.sort_by_key(|c| c.call_id);
    Ok(out)
}
