//! Cross-cutting HTTP pieces: `/health`, the probes `/livez` and `/readyz`, API-key auth, the JSON 404/405 fallbacks and the panic
//! guard. Domain routes live with their domain (`campaigns::api`, `dialer::api`).

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::FutureExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Credentials, auth_credentials, constant_time_eq};
use crate::error::error_response;
use crate::startup::AppState;

/// The OpenAPI description of [`public_routes`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, livez, readyz))]
pub struct ApiDoc;

/// Routes that need no API key.
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when a dependency is down.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// The service's version.
    pub version: &'static str,
    pub database: Dependency,
    /// Where live-call sessions are kept (`memory` or `redis`).
    pub sessions: Dependency,
    /// The sessions' state again when they are in Redis, else `not_configured`.
    pub redis: Dependency,
}

/// One dependency's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Dependency {
    /// `ok`, `down` or `not_configured`.
    pub status: &'static str,
    /// The database's backend: `sqlite` or `postgres`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<&'static str>,
    /// The session store: `memory` or `redis`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Dependency {
    /// A dependency this instance does not use (Redis without `REDIS_URL`).
    const NOT_CONFIGURED: Self = Self {
        status: "not_configured",
        backend: None,
        kind: None,
        error: None,
    };

    /// The outcome of a ping that was given `timeout`.
    fn from_ping<E: std::fmt::Display>(
        result: Result<Result<(), E>, tokio::time::error::Elapsed>,
    ) -> Self {
        let (status, error) = match result {
            Ok(Ok(())) => ("ok", None),
            Ok(Err(e)) => ("down", Some(e.to_string())),
            Err(_) => ("down", Some("timed out".to_string())),
        };
        Self {
            status,
            backend: None,
            kind: None,
            error,
        }
    }
}

/// Health
///
/// The state of the database and the session store (Redis when configured). Load balancers and
/// container health checks use it; it needs no API key.
#[utoipa::path(
    get, path = "/health", tag = "operations", operation_id = "health",
    responses(
        (status = 200, description = "Everything is up", body = Health),
        (status = 503, description = "A dependency is down: the same body, with `status: degraded` and the failing dependency's `error`", body = Health),
    )
)]
async fn health(State(state): State<AppState>) -> Response {
    let timeout = std::time::Duration::from_secs(3);
    let database = Dependency {
        backend: Some(state.store.backend().as_str()),
        ..Dependency::from_ping(tokio::time::timeout(timeout, state.store.ping()).await)
    };
    let sessions = Dependency {
        kind: Some(state.sessions.kind()),
        ..Dependency::from_ping(tokio::time::timeout(timeout, state.sessions.ping()).await)
    };
    let up = database.status == "ok" && sessions.status == "ok";
    let redis = if state.sessions.kind() == "redis" {
        sessions.clone()
    } else {
        Dependency::NOT_CONFIGURED
    };
    let body = Health {
        status: if up { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        database,
        sessions,
        redis,
    };
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    #[schema(example = "ok")]
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness
///
/// 200 while the process serves requests. It touches no database or Redis, so an outage of
/// either never gets healthy pods restarted (Kubernetes' `livenessProbe`).
#[utoipa::path(
    get, path = "/livez", tag = "operations", operation_id = "livez",
    responses((status = 200, description = "The process is serving", body = Live))
)]
async fn livez() -> axum::Json<Live> {
    axum::Json(Live {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`, `not_ready`, or `draining` once shutdown has begun.
    #[schema(example = "ready")]
    pub status: &'static str,
    pub database: Dependency,
    /// Redis when configured (sessions, the shared dial rate), else `not_configured`.
    pub redis: Dependency,
    pub migrations: Migrations,
}

/// Whether the database's schema is the one this binary expects.
#[derive(Debug, Serialize, ToSchema)]
pub struct Migrations {
    /// `ok`, `missing` (some embedded migration is not applied) or `unknown` (not readable).
    pub status: &'static str,
    /// Versions of the embedded migrations not applied.
    pub missing: Vec<i64>,
}

/// Readiness
///
/// 200 when this instance can take traffic: the database answers, Redis answers (when
/// configured) and every migration this binary embeds is applied; 503 otherwise, and from the
/// moment shutdown begins (Kubernetes' `readinessProbe`: traffic moves to other pods, none is
/// restarted).
#[utoipa::path(
    get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready for traffic", body = Ready),
        (status = 503, description = "Not ready: the same body, naming what is missing", body = Ready),
    )
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let timeout = std::time::Duration::from_secs(3);
    let (db, redis, migrations) = tokio::join!(
        tokio::time::timeout(timeout, state.store.ping()),
        async {
            if state.sessions.kind() == "redis" {
                Some(tokio::time::timeout(timeout, state.sessions.ping()).await)
            } else {
                None
            }
        },
        tokio::time::timeout(timeout, state.store.missing_migrations()),
    );
    let database = Dependency {
        backend: Some(state.store.backend().as_str()),
        ..Dependency::from_ping(db)
    };
    let redis = match redis {
        Some(ping) => Dependency::from_ping(ping),
        None => Dependency::NOT_CONFIGURED,
    };
    let migrations = match migrations {
        Ok(Ok(missing)) if missing.is_empty() => Migrations {
            status: "ok",
            missing,
        },
        Ok(Ok(missing)) => Migrations {
            status: "missing",
            missing,
        },
        _ => Migrations {
            status: "unknown",
            missing: Vec::new(),
        },
    };
    let draining = state.shutdown.is_cancelled();
    let ready =
        !draining && database.status == "ok" && redis.status != "down" && migrations.status == "ok";
    let body = Ready {
        status: match (draining, ready) {
            (true, _) => "draining",
            (false, true) => "ready",
            (false, false) => "not_ready",
        },
        database,
        redis,
        migrations,
    };
    let status = if ready {
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
    let refused = |message: &str| error_response(StatusCode::UNAUTHORIZED, "unauthorized", message);
    match auth_credentials(request.headers(), "Bearer") {
        Credentials::Given(token)
            if constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) =>
        {
            next.run(request).await
        }
        Credentials::Given(_) => refused("invalid API key"),
        Credentials::OtherScheme => refused(
            "the `Authorization` header must use the Bearer scheme: `Authorization: Bearer <API_KEY>`",
        ),
        Credentials::Missing => refused("missing `Authorization: Bearer <API_KEY>` header"),
    }
}

/// Bounds how long a request may take to produce its response: `HTTP_REQUEST_TIMEOUT_MS`
/// (`CSV_UPLOAD_TIMEOUT_SECS` for uploads), then 503 `unavailable`. This is what makes a
/// request fail instead of hang when the database stalls, and what ends a request whose body
/// stops arriving. The carrier's `/media` stream is a call, bounded by the call itself.
pub async fn deadline(
    State(settings): State<std::sync::Arc<crate::config::Settings>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str());
    let limit = match route {
        Some("/media") => return next.run(request).await,
        Some("/campaigns/{id}/upload-csv") => settings.http.upload_timeout,
        _ => settings.http.request_timeout,
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &format!(
                    "the request took longer than {} ms (the database or a dependency is slow, \
                     or the request body stopped arriving)",
                    limit.as_millis()
                ),
            )
        }
    }
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
