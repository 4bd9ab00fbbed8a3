//! Builds the application and runs it: `run(listener, settings, shutdown)`.
//!
//! Tests call [`run`] with a listener on port 0 and their own shutdown trigger; `voice-agent
//! serve` calls it with the configured address and SIGINT/SIGTERM.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::sessions::SessionStore;
use crate::store::Store;

/// Shared handles, cheap to clone, handed to every handler and background task.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub sessions: Arc<dyn SessionStore>,
    /// One HTTP client for every provider call: connection pools are reused across calls.
    pub http: reqwest::Client,
    /// The client for URLs from outside (campaigns' webhooks): checked against the URL policy
    /// at every connection (`crate::urls`).
    pub outside_http: reqwest::Client,
    /// Cancelled when the service shuts down; every background loop watches it.
    pub shutdown: CancellationToken,
    /// Every background task is spawned on this tracker, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// "Now" for the dialer and webhooks (tests move it).
    pub clock: crate::clock::Clock,
    /// STT, LLM and TTS clients for live calls. Behind an `Arc`: axum clones the state for
    /// every request (several times, through the layers), and the clients' settings are
    /// strings (heaptrack: a tenth of the bench's allocations were these clones).
    pub providers: Arc<crate::providers::Providers>,
    /// This instance's Prometheus registry (`GET /metrics`); never a process-global one.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The carrier account's request slots, shared by every instance (`dialer::rate`).
    pub dial_rate: Arc<crate::dialer::rate::DialRate>,
}

impl axum::extract::FromRef<AppState> for Arc<crate::metrics::Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("sessions: {0}")]
    Sessions(#[from] crate::sessions::SessionError),
    #[error("dial rate: {0}")]
    Bucket(#[from] crate::store::bucket::BucketError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Tls(String),
}

impl AppState {
    /// Connects to the database (running migrations) and the session store.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let store = crate::store::connect_with(&settings.database_url, settings.db_wait).await?;
        let sessions = crate::sessions::connect(settings.redis_url.as_deref()).await?;
        let http = crate::tls::http_client()
            .map_err(StartupError::Tls)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        let outside_http =
            crate::urls::outside_client(crate::urls::UrlPolicy::new(settings.allow_private_urls))?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let redis_bucket: Option<Arc<dyn crate::store::bucket::RateBucket>> =
            match settings.redis_url.as_deref() {
                Some(url) => Some(Arc::new(
                    crate::store::bucket::RedisBucket::connect(url, "va").await?,
                )),
                None => None,
            };
        let dial_rate = Arc::new(crate::dialer::rate::DialRate::new(
            store.clone(),
            redis_bucket,
            crate::dialer::rate::DialRate::account_key(
                &settings.exotel.base_url,
                settings.exotel.account_sid.as_deref(),
            ),
            settings.dialer.rate_per_sec,
        ));
        let providers =
            crate::providers::Providers::from_settings(&settings, http.clone(), &metrics);
        Ok(Self {
            settings: Arc::new(settings),
            store,
            sessions,
            http,
            outside_http,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            clock: crate::clock::Clock::default(),
            providers: Arc::new(providers),
            metrics,
            dial_rate,
        })
    }
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    // Behind the API key. `openapi::document` gives the same route modules the bearer scheme:
    // keep the two lists alike (tests/api/openapi.rs checks every route's security).
    let api = Router::new()
        .merge(crate::campaigns::api::routes())
        .merge(crate::dialer::api::routes())
        .merge(crate::media::ws::debug_routes())
        .merge(crate::reports::api::routes())
        .merge(crate::notify::api::routes())
        .merge(crate::metrics::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::api::require_api_key,
        ));
    Router::new()
        .merge(api)
        .merge(crate::api::public_routes())
        .merge(crate::openapi::routes())
        .merge(crate::ui::routes())
        .merge(crate::telephony::webhook::routes())
        .merge(crate::media::ws::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.settings.clone(),
            crate::api::deadline,
        ))
        .fallback(crate::api::not_found)
        .method_not_allowed_fallback(crate::api::method_not_allowed)
        .layer(axum::middleware::from_fn(crate::api::catch_panic))
        .layer(TraceLayer::new_for_http().make_span_with(crate::telemetry::http_span))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track_requests,
        ))
        .with_state(state)
}

/// How long background tasks (live calls saying goodbye, the dialer, deliveries) get to stop
/// after the listener closes. A deployment's grace period must be longer
/// (`deploy/kubernetes/deployment.yaml`, checked by `tests/api/deploy.rs`).
pub const DRAIN: Duration = Duration::from_secs(30);

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish and
/// stops background tasks (waiting at most `drain` for them).
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    crate::server::raise_open_file_limit();
    let state = AppState::build(settings).await?;
    if state.settings.api_key.is_none() {
        tracing::warn!("API_KEY is not set: the REST API is open to anyone who can reach it");
    }
    if state.settings.webhooks.signing_secret.is_none() {
        tracing::warn!(
            "WEBHOOK_SIGNING_SECRET is not set: webhooks to campaigns' webhook_url are sent unsigned"
        );
    }
    if let Some(addr) = state.settings.metrics_addr {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on METRICS_ADDR {addr}: {e}"),
            )
        })?;
        tracing::info!(%addr, "metrics listening (GET /metrics, no auth)");
        let (metrics, stop) = (state.metrics.clone(), state.shutdown.clone());
        state.tasks.spawn(async move {
            if let Err(e) = crate::metrics::serve(listener, metrics, stop).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    let dialer = std::sync::Arc::new(crate::dialer::Dialer::new(&state));
    state.tasks.spawn(dialer.run(state.shutdown.clone()));
    let deliverer = std::sync::Arc::new(crate::notify::Deliverer::new(&state));
    state.tasks.spawn(deliverer.run(state.shutdown.clone()));
    state.tasks.spawn(crate::store::tallies::fold_loop(
        state.store.clone(),
        Duration::from_secs(2),
        state.shutdown.clone(),
    ));
    tracing::info!(
        addr = %listener.local_addr()?,
        database = state.store.backend().as_str(),
        sessions = state.sessions.kind(),
        "voice-agent listening"
    );
    serve(listener, state, shutdown).await
}

/// Serves an already-built state (tests use this to reach the state's handles), with the
/// listener's limits from the settings (`crate::server`).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let token = state.shutdown.clone();
    let tasks = state.tasks.clone();
    let limits = state.settings.http.clone();
    let app = router(state);
    let stop = token.clone();
    crate::server::serve(listener, app, &limits, async move {
        tokio::select! {
            _ = shutdown => {},
            _ = stop.cancelled() => {},
        }
    })
    .await?;
    tracing::info!("stopped accepting requests; stopping background tasks");
    token.cancel();
    tasks.close();
    if tokio::time::timeout(DRAIN, tasks.wait()).await.is_err() {
        tracing::warn!(drain = ?DRAIN, "background tasks did not stop in time");
    }
    tracing::info!("voice-agent stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
