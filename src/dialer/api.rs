//! `POST/GET/DELETE /dnc`: the do-not-call list. A number on it is never dialled and is
//! skipped by lead import.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::phone::E164;
use crate::startup::AppState;
use crate::store::DncEntry;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dnc", get(list).post(add))
        .route("/dnc/{phone}", delete(remove).get(show))
        .route("/leads/{id}", get(lead))
        .route("/calls/{id}", get(call))
}

/// A lead with every call attempt made to it.
async fn lead(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    let lead = state.store.get_lead(id).await?;
    let calls = state.store.calls_of_lead(id).await?;
    let mut value = serde_json::to_value(&lead).map_err(|e| ApiError::Internal(e.to_string()))?;
    value["calls"] = serde_json::to_value(&calls).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(ApiJson(value))
}

/// One call, with where to read its transcript.
async fn call(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    let call = state.store.get_call(id).await?;
    let mut value = serde_json::to_value(&call).map_err(|e| ApiError::Internal(e.to_string()))?;
    value["transcript_url"] = json!(format!(
        "{}/calls/{id}/transcript",
        state.settings.our_base_url
    ));
    Ok(ApiJson(value))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddDnc {
    phone: String,
    reason: Option<String>,
}

async fn add(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AddDnc>,
) -> ApiResult<(StatusCode, ApiJson<DncEntry>)> {
    let phone =
        E164::parse(&body.phone).map_err(|e| ApiError::validation(format!("`phone`: {e}")))?;
    let entry = state
        .store
        .add_dnc(phone.as_str(), body.reason.as_deref(), "api", Utc::now())
        .await?;
    tracing::info!(phone = %phone.masked(), "number added to the do-not-call list");
    Ok((StatusCode::CREATED, ApiJson(entry)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    let limit = page.limit.unwrap_or(100);
    let offset = page.offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(ApiError::validation(
            "`limit` must be 1–1000 and `offset` not negative",
        ));
    }
    let entries = state.store.list_dnc(limit, offset).await?;
    Ok(ApiJson(
        json!({ "numbers": entries, "limit": limit, "offset": offset }),
    ))
}

async fn show(
    State(state): State<AppState>,
    ApiPath(phone): ApiPath<String>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    let phone = E164::parse(&phone).map_err(|e| ApiError::validation(format!("phone: {e}")))?;
    let listed = state.store.is_dnc(phone.as_str()).await?;
    Ok(ApiJson(json!({ "phone": phone, "do_not_call": listed })))
}

async fn remove(
    State(state): State<AppState>,
    ApiPath(phone): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let phone = E164::parse(&phone).map_err(|e| ApiError::validation(format!("phone: {e}")))?;
    state.store.remove_dnc(phone.as_str()).await?;
    tracing::info!(phone = %phone.masked(), "number removed from the do-not-call list");
    Ok(StatusCode::NO_CONTENT)
}
