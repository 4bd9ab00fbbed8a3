//! `GET /campaigns/{id}/webhook-deliveries`: what was sent to the campaign's webhook, newest
//! first, with each delivery's attempts and last error.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::startup::AppState;
use crate::store::WebhookDelivery;

/// The OpenAPI description of [`routes`]: every route there is listed here.
#[derive(OpenApi)]
#[openapi(paths(list))]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/campaigns/{id}/webhook-deliveries", get(list))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Deliveries to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Newest first.
    pub deliveries: Vec<WebhookDelivery>,
    pub limit: i64,
    pub offset: i64,
}

/// A campaign's webhook deliveries
///
/// The `call.completed` events sent (or being sent) to the campaign's `webhook_url`, newest
/// first, with each one's attempts, last answer and last error.
#[utoipa::path(
    get, path = "/campaigns/{id}/webhook-deliveries", tag = "outbound webhooks",
    operation_id = "list_webhook_deliveries",
    params(("id" = i64, Path, description = "Campaign id"), Page),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 404, description = "`not_found`: no such campaign", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `limit` or `offset` out of range, or an unknown parameter", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<ApiJson<DeliveryPage>> {
    let limit = page.limit.unwrap_or(100);
    let offset = page.offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(ApiError::validation(
            "`limit` must be 1–1000 and `offset` not negative",
        ));
    }
    state.store.get_campaign(id).await?;
    let deliveries = state
        .store
        .list_webhook_deliveries(id, limit, offset)
        .await?;
    Ok(ApiJson(DeliveryPage {
        deliveries,
        limit,
        offset,
    }))
}
