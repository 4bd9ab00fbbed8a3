//! TEMPORARY stand-ins for two endpoints built on another branch, so the dashboard can be
//! tested end to end before they are merged: `GET /dashboard` (campaigns with lead counts and
//! the live calls; `outcomes` and `totals` left empty) and `GET /calls/{id}/transcript`.
//! The shapes are a subset of the real ones. When merging those, delete this file, its
//! `pub mod interim;` in `ui/mod.rs` and its `.merge(crate::ui::interim::routes())` line in
//! `startup::router`.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::startup::AppState;
use crate::store::{LeadStatus, StoreError};

/// Behind the API key, like the rest of the JSON API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(dashboard))
        .route("/calls/{id}/transcript", get(transcript))
}

async fn dashboard(State(state): State<AppState>) -> ApiResult<ApiJson<Value>> {
    let mut campaigns = Vec::new();
    for c in state.store.list_campaigns().await? {
        let counts = state.store.lead_counts(c.id).await?;
        let total: i64 = counts.iter().map(|(_, n)| n).sum();
        let done: i64 = counts
            .iter()
            .filter(|(s, _)| s.is_final())
            .map(|(_, n)| n)
            .sum();
        let by_status: Map<String, Value> = LeadStatus::ALL
            .iter()
            .map(|s| {
                let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
                (s.as_str().to_string(), json!(n))
            })
            .collect();
        let progress = if total > 0 {
            done as f64 / total as f64
        } else {
            0.0
        };
        campaigns.push(json!({
            "id": c.id, "name": c.spec.name, "status": c.status,
            "leads": {"total": total, "by_status": by_status},
            "outcomes": {}, "progress": progress,
        }));
    }
    let sessions = state
        .sessions
        .list()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let mut live_calls = Vec::new();
    for (_, snapshot) in sessions {
        let Some(call_id) = snapshot["call_id"].as_i64() else {
            continue;
        };
        let call = match state.store.get_call(call_id).await {
            Ok(call) => call,
            // Published by a call whose row is gone (its campaign was deleted): not live.
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let started_at = snapshot_start(&snapshot)
            .or(call.answered_at)
            .or(call.dialed_at)
            .unwrap_or(call.created_at);
        live_calls.push(json!({
            "call_id": call.id, "campaign_id": call.campaign_id, "lead_id": call.lead_id,
            "phone": crate::phone::mask(&call.phone), "started_at": started_at,
            "state": snapshot["state"],
        }));
    }
    live_calls.sort_by(|a, b| a["started_at"].as_str().cmp(&b["started_at"].as_str()));
    Ok(ApiJson(json!({
        "campaigns": campaigns, "totals": {}, "live_calls": live_calls,
    })))
}

/// When the stream started, in wall-clock time: the snapshot written at the start has it; the
/// call task's later snapshots have `updated_at` and `duration_ms` instead.
fn snapshot_start(snapshot: &Value) -> Option<DateTime<Utc>> {
    let parse = |v: &Value| v.as_str()?.parse::<DateTime<Utc>>().ok();
    parse(&snapshot["started_at"]).or_else(|| {
        let updated = parse(&snapshot["updated_at"])?;
        let ms = snapshot["duration_ms"].as_i64()?;
        Some(updated - chrono::Duration::milliseconds(ms))
    })
}

async fn transcript(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<Value>> {
    state.store.get_call(id).await?;
    let turns = state.store.turns_of_call(id).await?;
    Ok(ApiJson(json!({ "call_id": id, "turns": turns })))
}
