//! `POST/GET/DELETE /dnc`: the do-not-call list. A number on it is never dialled and is
//! skipped by lead import.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::phone::E164;
use crate::startup::AppState;
use crate::store::{Call, DncEntry, Lead};

/// The OpenAPI description of [`routes`]: every route there is listed here.
#[derive(OpenApi)]
#[openapi(paths(list, add, show, remove, lead, call))]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dnc", get(list).post(add))
        .route("/dnc/{phone}", delete(remove).get(show))
        .route("/leads/{id}", get(lead))
        .route("/calls/{id}", get(call))
}

/// A lead with every call attempt made to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadDetail {
    #[serde(flatten)]
    pub lead: Lead,
    /// Oldest first.
    pub calls: Vec<Call>,
}

/// Get a lead
///
/// The lead with every call attempt made to it (status, carrier fields, outcome).
#[utoipa::path(
    get, path = "/leads/{id}", tag = "leads and calls", operation_id = "get_lead",
    params(("id" = i64, Path, description = "Lead id")),
    responses(
        (status = 200, description = "The lead and its calls", body = LeadDetail),
        (status = 404, description = "`not_found`: no such lead", body = ErrorBody),
    )
)]
async fn lead(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<LeadDetail>> {
    let lead = state.store.get_lead(id).await?;
    let calls = state.store.calls_of_lead(id).await?;
    Ok(ApiJson(LeadDetail { lead, calls }))
}

/// One call, with where to read its transcript.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: Call,
    /// `GET` this for the turns (`OUR_BASE_URL` + `/calls/{id}/transcript`).
    pub transcript_url: String,
}

/// Get a call
///
/// One call attempt (or inbound call) with its carrier status, outcome and where to read its
/// transcript.
#[utoipa::path(
    get, path = "/calls/{id}", tag = "leads and calls", operation_id = "get_call",
    params(("id" = i64, Path, description = "Call id")),
    responses(
        (status = 200, description = "The call", body = CallDetail),
        (status = 404, description = "`not_found`: no such call", body = ErrorBody),
    )
)]
async fn call(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<CallDetail>> {
    let call = state.store.get_call(id).await?;
    let transcript_url = format!("{}/calls/{id}/transcript", state.settings.our_base_url);
    Ok(ApiJson(CallDetail {
        call,
        transcript_url,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddDnc {
    /// Any common format; normalised to E.164 (India by default).
    #[schema(example = "+91 98765 43210")]
    phone: String,
    /// Why (at most 500 characters).
    #[schema(value_type = Option<String>, max_length = 500)]
    reason: Option<crate::text::BoundedText<{ crate::config::limits::fields::DNC_REASON }>>,
}

/// Add a number to the do-not-call list
///
/// It is never dialled again, and lead imports skip it. Adding a listed number keeps it listed
/// (with the new reason, if given).
#[utoipa::path(
    post, path = "/dnc", tag = "do-not-call", operation_id = "add_dnc",
    request_body = AddDnc,
    responses(
        (status = 201, description = "Listed", body = DncEntry),
        (status = 422, description = "`validation_failed`: not a phone number, or an unknown field", body = ErrorBody),
    )
)]
async fn add(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AddDnc>,
) -> ApiResult<(StatusCode, ApiJson<DncEntry>)> {
    let phone =
        E164::parse(&body.phone).map_err(|e| ApiError::validation(format!("`phone`: {e}")))?;
    let entry = state
        .store
        .add_dnc(
            phone.as_str(),
            body.reason.as_ref().map(|r| r.as_str()),
            "api",
            Utc::now(),
        )
        .await?;
    tracing::info!(phone = %phone.masked(), "number added to the do-not-call list");
    Ok((StatusCode::CREATED, ApiJson(entry)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Entries to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DncPage {
    pub numbers: Vec<DncEntry>,
    pub limit: i64,
    pub offset: i64,
}

/// List the do-not-call list
#[utoipa::path(
    get, path = "/dnc", tag = "do-not-call", operation_id = "list_dnc",
    params(Page),
    responses(
        (status = 200, description = "A page of listed numbers", body = DncPage),
        (status = 422, description = "`validation_failed`: `limit` or `offset` out of range, or an unknown parameter", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<ApiJson<DncPage>> {
    let limit = page.limit.unwrap_or(100);
    let offset = page.offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(ApiError::validation(
            "`limit` must be 1–1000 and `offset` not negative",
        ));
    }
    let numbers = state.store.list_dnc(limit, offset).await?;
    Ok(ApiJson(DncPage {
        numbers,
        limit,
        offset,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DncStatus {
    /// The number as given, in E.164.
    #[schema(value_type = String, example = "+919876543210")]
    pub phone: E164,
    pub do_not_call: bool,
}

/// Is a number on the do-not-call list?
#[utoipa::path(
    get, path = "/dnc/{phone}", tag = "do-not-call", operation_id = "get_dnc",
    params(("phone" = String, Path, description = "The number, any common format (URL-encode `+` as `%2B`)")),
    responses(
        (status = 200, description = "Whether the number is listed", body = DncStatus),
        (status = 422, description = "`validation_failed`: not a phone number", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    ApiPath(phone): ApiPath<String>,
) -> ApiResult<ApiJson<DncStatus>> {
    let phone = E164::parse(&phone).map_err(|e| ApiError::validation(format!("phone: {e}")))?;
    let do_not_call = state.store.is_dnc(phone.as_str()).await?;
    Ok(ApiJson(DncStatus { phone, do_not_call }))
}

/// Remove a number from the do-not-call list
#[utoipa::path(
    delete, path = "/dnc/{phone}", tag = "do-not-call", operation_id = "remove_dnc",
    params(("phone" = String, Path, description = "The number, any common format (URL-encode `+` as `%2B`)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`not_found`: the number is not listed", body = ErrorBody),
        (status = 422, description = "`validation_failed`: not a phone number", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    ApiPath(phone): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let phone = E164::parse(&phone).map_err(|e| ApiError::validation(format!("phone: {e}")))?;
    state.store.remove_dnc(phone.as_str()).await?;
    tracing::info!(phone = %phone.masked(), "number removed from the do-not-call list");
    Ok(StatusCode::NO_CONTENT)
}
