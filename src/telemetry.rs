//! Logging: tracing with human-readable text or JSON lines (`LOG_FORMAT=json`).
//!
//! Phone numbers never reach a log line in clear: code logs `E164::masked()`, and HTTP spans
//! record the matched route template (`/dnc/{phone}`), never the raw path or query (which may
//! carry a number or a secret).

use axum::extract::MatchedPath;
use axum::http::Request;
use tracing::Span;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; `RUST_LOG` overrides the default level (`info`).
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// Like [`init`], with another default level (the demo keeps its report readable with `warn`).
pub fn init_with_default(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    // A second init (tests, embedded use) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub fn http_span<B>(request: &Request<B>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".to_string());
    tracing::info_span!("http", method = %request.method(), route = %route)
}
