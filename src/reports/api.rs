//! Thin handlers over the reports: analytics, dashboard, CSV export, transcripts.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::dashboard::{self, Dashboard, DashboardError};
use super::{Report, export, report, transcript};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::startup::AppState;
use crate::store::TranscriptTurn;

/// The OpenAPI description of [`routes`]: every route there is listed here.
#[derive(OpenApi)]
#[openapi(paths(analytics, export_csv, show_dashboard, call_transcript))]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/campaigns/{id}/analytics", get(analytics))
        .route("/campaigns/{id}/export.csv", get(export_csv))
        .route("/dashboard", get(show_dashboard))
        .route("/calls/{id}/transcript", get(call_transcript))
}

/// Campaign analytics
///
/// Leads and calls per status, outcomes, intents, talk time, attempts, latency p50/p95 per
/// pipeline component, and cost per provider.
#[utoipa::path(
    get, path = "/campaigns/{id}/analytics", tag = "reports", operation_id = "campaign_analytics",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign's report", body = Report),
        (status = 404, description = "`not_found`: no such campaign", body = ErrorBody),
    )
)]
async fn analytics(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<Report>> {
    let campaign = state.store.get_campaign(id).await?;
    let report = report(state.store.as_ref(), &state.settings.costs, Some(&campaign)).await?;
    Ok(ApiJson(report))
}

/// Dashboard
///
/// Every campaign's progress, the totals across campaigns, and the calls live right now. When
/// the session store is down the rest is still served, with `live_calls_error`.
#[utoipa::path(
    get, path = "/dashboard", tag = "reports", operation_id = "dashboard",
    responses(
        (status = 200, description = "The dashboard", body = Dashboard),
        (status = 503, description = "`unavailable`: the live sessions could not be read", body = ErrorBody),
    )
)]
async fn show_dashboard(State(state): State<AppState>) -> ApiResult<ApiJson<Dashboard>> {
    match dashboard::build(&state).await {
        Ok(d) => Ok(ApiJson(d)),
        Err(DashboardError::Store(e)) => Err(e.into()),
        Err(e @ DashboardError::Sessions(_)) => Err(ApiError::Unavailable(e.to_string())),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// Full numbers instead of masked ones (`+91******3210`).
    #[serde(default)]
    full_numbers: bool,
}

/// Export a campaign's leads as CSV
///
/// One row per lead: `lead_id`, `name`, `phone`, `status`, `outcome`, `intent`, one column per
/// qualification field, `attempts`, `last_call_at`, `summary`, `recording_url`. Streamed, so
/// memory stays constant whatever the campaign's size.
#[utoipa::path(
    get, path = "/campaigns/{id}/export.csv", tag = "reports", operation_id = "export_campaign_csv",
    params(("id" = i64, Path, description = "Campaign id"), ExportQuery),
    responses(
        (status = 200, description = "The CSV (`Content-Disposition: attachment`)",
            content_type = "text/csv", body = String),
        (status = 404, description = "`not_found`: no such campaign", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `full_numbers` is not a boolean, or an unknown parameter", body = ErrorBody),
    )
)]
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

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Json,
    Txt,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TranscriptQuery {
    /// `json` (default): the turns with their latencies; `txt`: one line per turn.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// A call's turns in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct Transcript {
    pub call_id: i64,
    pub turns: Vec<TranscriptTurn>,
}

/// A call's transcript
///
/// Every turn as it was spoken (an interrupted agent turn holds only what the caller heard),
/// with per-turn latencies; or, with `format=txt`, lines like `[00:03.2] caller: Who is this?`.
#[utoipa::path(
    get, path = "/calls/{id}/transcript", tag = "leads and calls", operation_id = "call_transcript",
    params(("id" = i64, Path, description = "Call id"), TranscriptQuery),
    responses(
        (status = 200, description = "The transcript", content(
            (Transcript = "application/json"),
            (String = "text/plain", example = "[00:00.0] agent: Namaste Asha, this is [interrupted]\n[00:03.2] caller: Who is this?\n"),
        )),
        (status = 404, description = "`not_found`: no such call", body = ErrorBody),
        (status = 422, description = "`validation_failed`: an unknown `format` or parameter", body = ErrorBody),
    )
)]
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
        Format::Json => ApiJson(Transcript { call_id: id, turns }).into_response(),
    })
}
