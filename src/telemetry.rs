//! Logging and traces: tracing with human-readable text or JSON lines (`LOG_FORMAT=json`), and,
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` names a collector, OpenTelemetry traces over OTLP/HTTP
//! (protobuf): a span per call (`call`, with `call_id` and `campaign_id`), a child per agent turn
//! (`turn`, with its latencies) and per provider request (`llm.stream_chat`, `llm.complete_json`,
//! the STT and TTS connections, the carrier's REST calls). Off by default: without the variable
//! no exporter, thread or client is built.
//!
//! Phone numbers never reach a log line or a span in clear: code logs `E164::masked()`, and HTTP
//! spans record the matched route template (`/dnc/{phone}`), never the raw path or query (which
//! may carry a number or a secret).

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::Request;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use tracing::Span;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LogFormat;

/// A layer of the process's subscriber.
pub type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The trace exporter, while it runs.
pub struct Traces {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl Traces {
    /// Sends the spans still buffered and stops the exporter. Blocks (up to the export
    /// timeout): call it off the async runtime, e.g. in `spawn_blocking`.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("voice-agent: traces not all sent: {e}");
        }
    }
}

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OpenTelemetry layer exporting to the OTLP/HTTP collector at `endpoint` (its base URL,
/// `/v1/traces` is appended as the OTLP specification says). Only this crate's spans are
/// exported, from `info` up.
pub fn otel_layer(endpoint: &str) -> Result<(BoxedLayer, Traces), String> {
    let tls = (*crate::tls::client_config()?).clone();
    // The batch processor exports from its own thread, outside any runtime: a blocking client,
    // built on a thread of its own (building one inside the runtime is not allowed).
    let http = std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(EXPORT_TIMEOUT)
            .build()
    })
    .join()
    .map_err(|_| "the trace exporter's HTTP client panicked".to_string())?
    .map_err(|e| format!("trace exporter HTTP client: {e}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("trace exporter: {e}"))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("voice-agent")
                .build(),
        )
        .build();
    let tracer = provider.tracer("voice-agent");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target("voice_agent", tracing::Level::INFO))
        .boxed();
    Ok((layer, Traces { provider }))
}

/// Installs the global subscriber; `RUST_LOG` overrides the default level (`info`). With
/// `otel` (a collector's URL), traces are exported too; keep the returned [`Traces`] and shut
/// it down before exiting.
pub fn init(format: LogFormat, otel: Option<&str>) -> Option<Traces> {
    init_with_default(format, "info", otel)
}

/// Like [`init`], with another default level (the demo keeps its report readable with `warn`).
pub fn init_with_default(format: LogFormat, default: &str, otel: Option<&str>) -> Option<Traces> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt::layer().with_target(true);
    let mut layers: Vec<BoxedLayer> = vec![match format {
        LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    }];
    let traces = match otel.map(otel_layer) {
        Some(Ok((layer, traces))) => {
            layers.push(layer);
            Some(traces)
        }
        Some(Err(e)) => {
            eprintln!("voice-agent: traces are off: {e}");
            None
        }
        None => None,
    };
    // A second init (tests, embedded use) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    traces
}

pub fn http_span<B>(request: &Request<B>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".to_string());
    tracing::info_span!("http", method = %request.method(), route = %route)
}
