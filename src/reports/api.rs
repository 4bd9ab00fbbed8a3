//! Thin handlers over the reports: analytics, dashboard, CSV export, transcripts.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::dashboard::{self, Dashboard, DashboardError};
use super::{Report, export, report, transcript};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::startup::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/campaigns/{id}/analytics", get(analytics))
        .route("/campaigns/{id}/export.csv", get(export_csv))
        .route("/dashboard", get(show_dashboard))
        .route("/calls/{id}/transcript", get(call_transcript))
}

async fn analytics(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<Report>> {
    let campaign = state.store.get_campaign(id).await?;
    let report = report(state.store.as_ref(), &state.settings.costs, Some(&campaign)).await?;
    Ok(ApiJson(report))
}

async fn show_dashboard(State(state): State<AppState>) -> ApiResult<ApiJson<Dashboard>> {
    match dashboard::build(&state).await {
        Ok(d) => Ok(ApiJson(d)),
        Err(DashboardError::Store(e)) => Err(e.into()),
        Err(e @ DashboardError::Sessions(_)) => Err(ApiError::Unavailable(e.to_string())),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// Full numbers instead of masked ones (`+91******3210`).
    #[serde(default)]
    full_numbers: bool,
}

async fn export_csv(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let campaign = state.store.get_campaign(id).await?;
    if q.full_numbers {
        tracing::info!(campaign_id = id, "export with full phone numbers");
    }
    let body = export::body(state.store.clone(), &campaign, q.full_numbers);
    let disposition = format!("attachment; filename=\"campaign-{id}.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Json,
    Txt,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TranscriptQuery {
    #[serde(default)]
    format: Format,
}

async fn call_transcript(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<TranscriptQuery>,
) -> ApiResult<Response> {
    state.store.get_call(id).await?;
    let turns = state.store.turns_of_call(id).await?;
    Ok(match q.format {
        Format::Txt => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            transcript::to_text(&turns),
        )
            .into_response(),
        Format::Json => {
            let turns: Vec<Value> = turns
                .iter()
                .map(|t| {
                    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
                    if let Some(map) = v.as_object_mut() {
                        map.remove("call_id");
                    }
                    v
                })
                .collect();
            ApiJson(json!({ "call_id": id, "turns": turns })).into_response()
        }
    })
}
