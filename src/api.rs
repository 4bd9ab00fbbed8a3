//! Cross-cutting HTTP pieces: `/health`, API-key auth, the JSON 404/405 fallbacks and the panic
//! guard. Domain routes live with their domain (`campaigns::api`, `dialer::api`).

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::FutureExt;
use serde_json::json;

use crate::error::error_response;
use crate::startup::AppState;

/// Routes that need no API key.
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

/// 200 with each dependency's state, 503 when one is down.
async fn health(State(state): State<AppState>) -> Response {
    let timeout = std::time::Duration::from_secs(3);
    let db = match tokio::time::timeout(timeout, state.store.ping()).await {
        Ok(Ok(())) => json!({"status": "ok", "backend": state.store.backend().as_str()}),
        Ok(Err(e)) => {
            json!({"status": "down", "backend": state.store.backend().as_str(), "error": e.to_string()})
        }
        Err(_) => {
            json!({"status": "down", "backend": state.store.backend().as_str(), "error": "timed out"})
        }
    };
    let sessions = match tokio::time::timeout(timeout, state.sessions.ping()).await {
        Ok(Ok(())) => json!({"status": "ok", "kind": state.sessions.kind()}),
        Ok(Err(e)) => {
            json!({"status": "down", "kind": state.sessions.kind(), "error": e.to_string()})
        }
        Err(_) => json!({"status": "down", "kind": state.sessions.kind(), "error": "timed out"}),
    };
    let up = db["status"] == "ok" && sessions["status"] == "ok";
    let redis = if state.sessions.kind() == "redis" {
        sessions.clone()
    } else {
        json!({"status": "not_configured"})
    };
    let body = json!({
        "status": if up { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "database": db,
        "sessions": sessions,
        "redis": redis,
    });
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// When `API_KEY` is set, requires `Authorization: Bearer <API_KEY>`.
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.settings.api_key.as_ref() else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) => {
            next.run(request).await
        }
        Some(_) => error_response(StatusCode::UNAUTHORIZED, "unauthorized", "invalid API key"),
        None => error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing `Authorization: Bearer <API_KEY>` header",
        ),
    }
}

/// Compares secrets without an early exit, so response time does not reveal a matching prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

/// Turns a panic in a handler into a JSON 500 (and a log line) instead of a dropped connection.
pub async fn catch_panic(request: Request, next: Next) -> Response {
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(panic = %detail, "handler panicked");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal server error",
            )
        }
    }
}
