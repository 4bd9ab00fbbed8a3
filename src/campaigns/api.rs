//! REST handlers for campaigns, their leads and lead import. Paths follow the original system.

use std::io;

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::import::{self, ChannelReader, ImportError, ImportReport};
use super::{Action, CampaignInput, default_spec};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::startup::AppState;
use crate::store::{Campaign, CampaignStatus, LeadPage, LeadQuery, LeadStatus};

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

async fn create(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<CampaignInput>,
) -> ApiResult<(StatusCode, ApiJson<Campaign>)> {
    if input.name.is_none() {
        return Err(ApiError::validation("`name` is required"));
    }
    let spec = input.apply(default_spec(&state.settings))?;
    let campaign = state.store.create_campaign(&spec, Utc::now()).await?;
    tracing::info!(campaign_id = campaign.id, "campaign created");
    Ok((StatusCode::CREATED, ApiJson(campaign)))
}

async fn list(State(state): State<AppState>) -> ApiResult<ApiJson<serde_json::Value>> {
    let campaigns = state.store.list_campaigns().await?;
    Ok(ApiJson(json!({ "campaigns": campaigns })))
}

/// A campaign with its lead counts per status.
async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    let campaign = state.store.get_campaign(id).await?;
    let counts = state.store.lead_counts(id).await?;
    let mut value =
        serde_json::to_value(&campaign).map_err(|e| ApiError::Internal(e.to_string()))?;
    let leads: serde_json::Map<String, serde_json::Value> = LeadStatus::ALL
        .iter()
        .map(|s| {
            let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
            (s.as_str().to_string(), json!(n))
        })
        .collect();
    value["lead_counts"] = serde_json::Value::Object(leads);
    Ok(ApiJson(value))
}

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
    let spec = input.apply(current.spec)?;
    Ok(ApiJson(
        state.store.update_campaign(id, &spec, Utc::now()).await?,
    ))
}

async fn remove(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<StatusCode> {
    state
        .store
        .delete_campaign(id)
        .await
        .map_err(state_conflict)?;
    tracing::info!(campaign_id = id, "campaign deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn start(state: State<AppState>, id: ApiPath<i64>) -> ApiResult<ApiJson<Campaign>> {
    change_status(state, id, Action::Start).await
}

async fn pause(state: State<AppState>, id: ApiPath<i64>) -> ApiResult<ApiJson<Campaign>> {
    change_status(state, id, Action::Pause).await
}

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

fn state_conflict(e: crate::store::StoreError) -> ApiError {
    match e {
        crate::store::StoreError::Conflict(msg) => ApiError::Conflict("invalid_state", msg),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadsParams {
    status: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

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

/// `POST /campaigns/{id}/upload-csv` with the CSV in multipart field `file`.
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
