//! REST handlers for campaigns, their leads and lead import. Paths follow the original system.

use std::collections::BTreeMap;
use std::io;

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::import::{self, ChannelReader, ImportError, ImportReport};
use super::{Action, CampaignInput, default_spec};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::startup::AppState;
use crate::store::{Campaign, CampaignStatus, LeadPage, LeadQuery, LeadStatus};

/// The OpenAPI description of [`routes`]: every route there is listed here.
#[derive(OpenApi)]
#[openapi(paths(
    create, list, show, update, remove, upload_csv, leads, start, pause, resume
))]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/campaigns", post(create).get(list))
        .route("/campaigns/{id}", get(show).patch(update).delete(remove))
        .route(
            "/campaigns/{id}/upload-csv",
            // The import enforces its own, larger limit while streaming.
            post(upload_csv).layer(DefaultBodyLimit::disable()),
        )
        .route("/campaigns/{id}/leads", get(leads))
        .route("/campaigns/{id}/start", post(start))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
}

/// Create a campaign
///
/// Only `name` is required; every other field starts from the service's defaults. The new
/// campaign is a `draft`: upload leads, then start it.
#[utoipa::path(
    post, path = "/campaigns", tag = "campaigns", operation_id = "create_campaign",
    request_body = CampaignInput,
    responses(
        (status = 201, description = "Created", body = Campaign),
        (status = 422, description = "`validation_failed`: `name` missing, an unknown field or an invalid value", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<CampaignInput>,
) -> ApiResult<(StatusCode, ApiJson<Campaign>)> {
    if input.name.is_none() {
        return Err(ApiError::validation("`name` is required"));
    }
    let spec = input.apply(default_spec(&state.settings), url_policy(&state))?;
    let campaign = state.store.create_campaign(&spec, Utc::now()).await?;
    tracing::info!(campaign_id = campaign.id, "campaign created");
    Ok((StatusCode::CREATED, ApiJson(campaign)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<Campaign>,
}

/// List campaigns
#[utoipa::path(
    get, path = "/campaigns", tag = "campaigns", operation_id = "list_campaigns",
    responses((status = 200, description = "Every campaign", body = CampaignList))
)]
async fn list(State(state): State<AppState>) -> ApiResult<ApiJson<CampaignList>> {
    let campaigns = state.store.list_campaigns().await?;
    Ok(ApiJson(CampaignList { campaigns }))
}

/// A campaign with how many of its leads are in each status.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignDetail {
    #[serde(flatten)]
    pub campaign: Campaign,
    /// Every lead status, zeros included.
    #[schema(value_type = BTreeMap<String, i64>, example = json!({"pending": 12, "in_progress": 1, "retry": 3, "callback": 0, "completed": 20, "failed": 2, "do_not_call": 1}))]
    pub lead_counts: BTreeMap<&'static str, i64>,
}

/// Get a campaign
///
/// The campaign with its lead counts per status.
#[utoipa::path(
    get, path = "/campaigns/{id}", tag = "campaigns", operation_id = "get_campaign",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign", body = CampaignDetail),
        (status = 404, description = "`not_found`: no such campaign", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<CampaignDetail>> {
    let campaign = state.store.get_campaign(id).await?;
    let counts = state.store.lead_counts(id).await?;
    let lead_counts = LeadStatus::ALL
        .iter()
        .map(|s| {
            let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
            (s.as_str(), n)
        })
        .collect();
    Ok(ApiJson(CampaignDetail {
        campaign,
        lead_counts,
    }))
}

/// Change a campaign
///
/// Any field but `status` (which has its own actions); fields left out keep their value. The
/// result is validated as a whole.
#[utoipa::path(
    patch, path = "/campaigns/{id}", tag = "campaigns", operation_id = "update_campaign",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body = CampaignInput,
    responses(
        (status = 200, description = "The changed campaign", body = Campaign),
        (status = 404, description = "`not_found`: no such campaign", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the campaign is completed", body = ErrorBody),
        (status = 422, description = "`validation_failed`: an unknown field, `status`, or an invalid value", body = ErrorBody),
    )
)]
async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<CampaignInput>,
) -> ApiResult<ApiJson<Campaign>> {
    let current = state.store.get_campaign(id).await?;
    if current.status == CampaignStatus::Completed {
        return Err(ApiError::Conflict(
            "invalid_state",
            format!("campaign {id} is completed and can no longer be changed"),
        ));
    }
    let spec = input.apply(current.spec, url_policy(&state))?;
    Ok(ApiJson(
        state.store.update_campaign(id, &spec, Utc::now()).await?,
    ))
}

/// Delete a campaign
///
/// With its leads and calls. A running campaign must be paused first.
#[utoipa::path(
    delete, path = "/campaigns/{id}", tag = "campaigns", operation_id = "delete_campaign",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such campaign", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the campaign is running", body = ErrorBody),
    )
)]
async fn remove(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<StatusCode> {
    state
        .store
        .delete_campaign(id)
        .await
        .map_err(state_conflict)?;
    tracing::info!(campaign_id = id, "campaign deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Start a campaign
///
/// `draft` → `running`: the dialer starts calling its waiting leads within their calling
/// window. Starting a running campaign changes nothing.
#[utoipa::path(
    post, path = "/campaigns/{id}/start", tag = "campaigns", operation_id = "start_campaign",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign, now `running`", body = Campaign),
        (status = 404, description = "`not_found`: no such campaign", body = ErrorBody),
        (status = 409, description = "`no_leads`: nothing left to call; `invalid_state`: not a draft", body = ErrorBody),
    )
)]
async fn start(state: State<AppState>, id: ApiPath<i64>) -> ApiResult<ApiJson<Campaign>> {
    change_status(state, id, Action::Start).await
}

/// Pause a campaign
///
/// `running` → `paused`: no new calls are placed; calls in progress finish.
#[utoipa::path(
    post, path = "/campaigns/{id}/pause", tag = "campaigns", operation_id = "pause_campaign",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign, now `paused`", body = Campaign),
        (status = 404, description = "`not_found`: no such campaign", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the campaign is not running", body = ErrorBody),
    )
)]
async fn pause(state: State<AppState>, id: ApiPath<i64>) -> ApiResult<ApiJson<Campaign>> {
    change_status(state, id, Action::Pause).await
}

/// Resume a campaign
///
/// `paused` → `running`.
#[utoipa::path(
    post, path = "/campaigns/{id}/resume", tag = "campaigns", operation_id = "resume_campaign",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign, now `running`", body = Campaign),
        (status = 404, description = "`not_found`: no such campaign", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the campaign is not paused", body = ErrorBody),
    )
)]
async fn resume(state: State<AppState>, id: ApiPath<i64>) -> ApiResult<ApiJson<Campaign>> {
    change_status(state, id, Action::Resume).await
}

async fn change_status(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    action: Action,
) -> ApiResult<ApiJson<Campaign>> {
    let current = state.store.get_campaign(id).await?;
    if current.status == action.target() {
        return Ok(ApiJson(current));
    }
    if matches!(action, Action::Start) {
        let counts = state.store.lead_counts(id).await?;
        let waiting: i64 = counts
            .iter()
            .filter(|(s, _)| !s.is_final())
            .map(|(_, n)| n)
            .sum();
        if waiting == 0 {
            return Err(ApiError::Conflict(
                "no_leads",
                format!("campaign {id} has no leads to call: upload a CSV first"),
            ));
        }
    }
    let campaign = state
        .store
        .transition_campaign(
            id,
            action.from_statuses(),
            action.target(),
            None,
            Utc::now(),
        )
        .await
        .map_err(state_conflict)?;
    tracing::info!(campaign_id = id, status = %campaign.status, "campaign status changed");
    Ok(ApiJson(campaign))
}

fn url_policy(state: &AppState) -> crate::urls::UrlPolicy {
    crate::urls::UrlPolicy::new(state.settings.allow_private_urls)
}

fn state_conflict(e: crate::store::StoreError) -> ApiError {
    match e {
        crate::store::StoreError::Conflict(msg) => ApiError::Conflict("invalid_state", msg),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LeadsParams {
    /// Only leads in this status.
    #[param(value_type = Option<LeadStatus>)]
    status: Option<String>,
    /// Page size, 1–1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Leads to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// List a campaign's leads
///
/// Paginated, oldest first, with the total that matched.
#[utoipa::path(
    get, path = "/campaigns/{id}/leads", tag = "campaigns", operation_id = "list_leads",
    params(("id" = i64, Path, description = "Campaign id"), LeadsParams),
    responses(
        (status = 200, description = "A page of leads", body = LeadPage),
        (status = 404, description = "`not_found`: no such campaign", body = ErrorBody),
        (status = 422, description = "`validation_failed`: an unknown status, `limit` or `offset` out of range, or an unknown parameter", body = ErrorBody),
    )
)]
async fn leads(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<LeadsParams>,
) -> ApiResult<ApiJson<LeadPage>> {
    state.store.get_campaign(id).await?;
    let status = match params.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse::<LeadStatus>().map_err(ApiError::validation)?),
    };
    let limit = params.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("`limit` must be between 1 and 1000"));
    }
    let offset = params.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::validation("`offset` must not be negative"));
    }
    let query = LeadQuery {
        status,
        limit,
        offset,
    };
    Ok(ApiJson(state.store.list_leads(id, &query).await?))
}

/// The multipart form of an upload.
#[derive(ToSchema)]
#[allow(dead_code)] // Only describes the form; the handler streams it.
struct CsvUpload {
    /// The CSV: a header row, then one lead per row. The phone column may be called `phone`,
    /// `mobile`, `number`, `phone_number`, …; `name` and `timezone` are recognised; any other
    /// column becomes a lead attribute. Comma, semicolon or tab separated.
    #[schema(value_type = String, content_media_type = "text/csv")]
    file: Vec<u8>,
}

/// Import leads from a CSV
///
/// The CSV in multipart field `file`, streamed into one transaction: all rows are imported or
/// none. Numbers are normalised to E.164 (India by default); duplicates and numbers on the
/// do-not-call list are skipped, invalid rows reported (the first 100) and counted.
#[utoipa::path(
    post, path = "/campaigns/{id}/upload-csv", tag = "campaigns", operation_id = "upload_leads_csv",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body(content = inline(CsvUpload), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "What the import did", body = ImportReport),
        (status = 400, description = "`bad_multipart`: not a multipart/form-data upload; `bad_upload`: the upload broke off", body = ErrorBody),
        (status = 404, description = "`not_found`: no such campaign", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the campaign is completed", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the file is larger than `CSV_MAX_BYTES`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: no field `file`; `invalid_csv`: empty, no lead rows, not text, or no phone column; `no_valid_rows`: every row is invalid (`details.invalid` lists them)", body = ErrorBody),
    )
)]
async fn upload_csv(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<ApiJson<ImportReport>> {
    let campaign = state.store.get_campaign(id).await?;
    if campaign.status == CampaignStatus::Completed {
        return Err(ApiError::Conflict(
            "invalid_state",
            format!("campaign {id} is completed: create a new campaign for new leads"),
        ));
    }
    let limit = state.settings.csv_max_bytes;
    // Refuse an announced oversize body before reading it (multipart framing adds a little).
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit + 64 * 1024) {
        return Err(import_error(ImportError::TooLarge(limit)));
    }
    let mut multipart = multipart.map_err(|e| {
        ApiError::BadRequest(
            "bad_multipart",
            format!(
                "expected a multipart/form-data upload with field `file`: {}",
                e.body_text()
            ),
        )
    })?;
    loop {
        let field = multipart.next_field().await.map_err(|e| {
            ApiError::BadRequest("bad_multipart", format!("could not read the upload: {e}"))
        })?;
        let Some(field) = field else {
            return Err(ApiError::validation("multipart field `file` is missing"));
        };
        if field.name() == Some("file") {
            let report = import_field(&state, id, field, limit).await?;
            tracing::info!(
                campaign_id = id,
                total = report.total,
                imported = report.imported,
                duplicates = report.duplicates,
                do_not_call = report.do_not_call,
                invalid = report.invalid_count,
                "leads imported"
            );
            return Ok(ApiJson(report));
        }
    }
}

/// Streams one multipart field through the parser thread into one transaction.
async fn import_field(
    state: &AppState,
    campaign_id: i64,
    mut field: axum::extract::multipart::Field<'_>,
    limit: u64,
) -> ApiResult<ImportReport> {
    let (chunk_tx, chunk_rx) = mpsc::channel::<io::Result<bytes::Bytes>>(8);
    let (batch_tx, mut batch_rx) = mpsc::channel(2);
    let parser = tokio::task::spawn_blocking(move || {
        import::parse_csv(ChannelReader::new(chunk_rx), batch_tx, import::BATCH_SIZE)
    });

    // Pump the body into the parser, counting bytes against the limit.
    let pump = async move {
        let mut seen: u64 = 0;
        loop {
            let next = match field.chunk().await {
                Ok(Some(chunk)) => {
                    seen += chunk.len() as u64;
                    if seen > limit {
                        Err(import::too_large(limit))
                    } else {
                        Ok(chunk)
                    }
                }
                Ok(None) => break,
                Err(e) => Err(io::Error::other(e.to_string())),
            };
            let stop = next.is_err();
            if chunk_tx.send(next).await.is_err() || stop {
                break;
            }
        }
    };

    // Insert batches as they come; the importer rolls back if dropped before commit.
    let insert = async {
        let mut importer = state.store.begin_import(campaign_id).await?;
        let mut report = ImportReport::default();
        while let Some(batch) = batch_rx.recv().await {
            let outcome = importer.insert_batch(&batch, state.clock.now()).await?;
            report.imported += outcome.imported;
            report.duplicates += outcome.duplicates;
            report.do_not_call += outcome.do_not_call;
        }
        Ok::<_, ApiError>((importer, report))
    };

    let ((), inserted) = tokio::join!(pump, insert);
    let summary = parser
        .await
        .map_err(|e| ApiError::Internal(format!("CSV parser task failed: {e}")))?
        .map_err(import_error)?;
    let (importer, mut report) = inserted?;
    report.total = summary.total;
    report.invalid = summary.invalid;
    report.invalid_count = summary.invalid_count;
    if report.imported == 0 && report.invalid_count == report.total {
        // Every row was bad: say so plainly rather than report a successful empty import.
        return Err(ApiError::ValidationDetails(
            "no_valid_rows",
            format!(
                "none of the {} rows is a valid lead; first problem: row {}: {}",
                report.total, report.invalid[0].row, report.invalid[0].reason
            ),
            json!({ "invalid": report.invalid, "invalid_count": report.invalid_count }),
        ));
    }
    importer.commit().await?;
    Ok(report)
}

fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::TooLarge(_) => ApiError::PayloadTooLarge(e.to_string()),
        ImportError::Read(_) => ApiError::BadRequest("bad_upload", e.to_string()),
        other => ApiError::Validation("invalid_csv", other.to_string()),
    }
}
