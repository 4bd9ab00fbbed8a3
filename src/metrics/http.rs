//! The HTTP side of metrics: `GET /metrics`, the request counter middleware, and the optional
//! metrics-only listener (`METRICS_ADDR`).
//!
//! On the main router `/metrics` sits behind `API_KEY` like the rest of the REST API (Prometheus
//! sends it with `authorization: {credentials: …}` or `bearer_token`). The `METRICS_ADDR`
//! listener serves `/metrics` only, without auth: bind it to a private interface.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::error::ApiError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    method: &'static str,
    /// The matched route template (`/campaigns/{id}`), never the raw path.
    route: String,
    status: &'static str,
}

/// `GET /metrics` for any router whose state holds the metrics.
pub fn routes<S>() -> Router<S>
where
    Arc<Metrics>: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route("/metrics", get(scrape))
}

/// The OpenAPI description of [`routes`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(scrape))]
pub struct ApiDoc;

/// This instance's metrics, for Prometheus.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format (`text/plain; version=0.0.4`): live calls, calls by status and outcome, per-component latency histograms, provider errors and reconnects, dialer lag and claim time, database time, audio frames, HTTP requests. Also served without auth on `METRICS_ADDR` when set.", content_type = "text/plain", body = String),
        (status = 500, description = "`internal`: the registry could not be encoded", body = crate::error::ErrorBody),
    )
)]
async fn scrape(State(metrics): State<Arc<Metrics>>) -> Result<Response, ApiError> {
    let body = metrics
        .encode()
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        body,
    )
        .into_response())
}

/// Counts every request by method, route template and status class. Unmatched paths count as
/// `(unmatched)`, so scanners cannot grow the series.
pub async fn track_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: status_class(response.status()),
    };
    metrics.http.get_or_create(&labels).inc();
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Serves `/metrics` alone on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = routes().fallback(crate::api::not_found).with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_reduced_to_their_class() {
        assert_eq!(status_class(StatusCode::SWITCHING_PROTOCOLS), "1xx");
        assert_eq!(status_class(StatusCode::CREATED), "2xx");
        assert_eq!(status_class(StatusCode::UNAUTHORIZED), "4xx");
        assert_eq!(status_class(StatusCode::SERVICE_UNAVAILABLE), "5xx");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
    }
}
