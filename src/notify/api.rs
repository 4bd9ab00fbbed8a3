//! `GET /campaigns/{id}/webhook-deliveries`: what was sent to the campaign's webhook, newest
//! first, with each delivery's attempts and last error.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::startup::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/campaigns/{id}/webhook-deliveries", get(list))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<ApiJson<serde_json::Value>> {
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
    Ok(ApiJson(
        json!({ "deliveries": deliveries, "limit": limit, "offset": offset }),
    ))
}
