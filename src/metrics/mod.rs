//! Prometheus metrics: one explicit [`Registry`] per service instance, held in
//! `AppState::metrics`, exposed as `GET /metrics` in the Prometheus text format.
//!
//! Why not a process-global recorder: tests run many service instances in one process, and each
//! must see only its own figures; an explicit registry also keeps what is exported in one place.
//!
//! Every metric is created in this module (call metrics in `calls`, provider ones in
//! `providers`), with its help text; the rest of the code holds cheap clones of the handles (an
//! `Arc` around atomics) and records with them. Labels are closed sets (`&'static str` from
//! enums, route templates), never raw paths, numbers or free text. Hot paths resolve their
//! handles once per call ([`CallMeters`]) and then only bump atomics.
//!
//! This module must not know how calls, the dialer or providers work; it only names and counts.

mod calls;
pub mod http;
mod providers;

use std::future::Future;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

pub use calls::{CallMeters, CallMetrics, FrameMeters, GaugeGuard, observe_ms};
pub use http::{routes, serve, track_requests};
pub use providers::{ErrorKind, Provider, ProviderMetrics, ReconnectKind};

/// Seconds buckets for database round trips and the dialer's own timing.
const FAST_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of one service instance.
pub struct Metrics {
    registry: Registry,
    pub calls: CallMetrics,
    pub providers: ProviderMetrics,
    pub dialer: DialerMetrics,
    pub db: DbMetrics,
    pub webhooks: WebhookMetrics,
    pub(crate) http: Family<http::RequestLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The dialer loop's own health.
#[derive(Clone, Debug)]
pub struct DialerMetrics {
    /// How late each tick ran against its schedule.
    pub tick_lag: Histogram,
    /// `claim_leads`: one transaction, behind the advisory lock on PostgreSQL.
    pub claim_duration: Histogram,
    /// Calls the carrier accepted (connect answered 200).
    pub calls_placed: Counter,
    /// Running campaigns, and those of them with a lead due now (read from the database each
    /// tick, so every instance reports the same figure: take the `max` across instances).
    pub campaigns_running: Gauge,
    pub campaigns_due: Gauge,
}

/// Outbound webhook attempts by result.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    attempts: Family<ResultLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// How a webhook attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookResult {
    Delivered,
    /// Failed; another attempt is scheduled.
    Retrying,
    /// Failed for the last time (`WEBHOOK_MAX_ATTEMPTS`).
    Failed,
}

impl WebhookMetrics {
    const RESULTS: [(WebhookResult, &'static str); 3] = [
        (WebhookResult::Delivered, "delivered"),
        (WebhookResult::Retrying, "retrying"),
        (WebhookResult::Failed, "failed"),
    ];

    pub fn attempt(&self, result: WebhookResult) {
        let label = Self::RESULTS
            .iter()
            .find(|(r, _)| *r == result)
            .map_or("failed", |(_, l)| l);
        self.attempts
            .get_or_create(&ResultLabels { result: label })
            .inc();
    }
}

/// Database round trips of the dialer and of the calls' writer, by operation.
#[derive(Clone, Debug)]
pub struct DbMetrics {
    queries: HistogramFamily<OpLabels>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

// A function pointer (not a closure) so the family's type can be named in the struct.
fn fast_histogram() -> Histogram {
    Histogram::new(FAST_BUCKETS)
}

impl Metrics {
    /// A fresh registry with every metric registered (values at zero).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("voice_agent");
        let dialer = DialerMetrics {
            tick_lag: fast_histogram(),
            claim_duration: fast_histogram(),
            calls_placed: Counter::default(),
            campaigns_running: Gauge::default(),
            campaigns_due: Gauge::default(),
        };
        let webhooks = WebhookMetrics {
            attempts: Family::default(),
        };
        for (_, result) in WebhookMetrics::RESULTS {
            let _ = webhooks.attempts.get_or_create(&ResultLabels { result });
        }
        let db = DbMetrics {
            queries: Family::new_with_constructor(fast_histogram),
        };
        let providers = ProviderMetrics::default();
        let http = Family::<http::RequestLabels, Counter>::default();
        providers.create_known_series();

        let calls = CallMetrics::new(&mut registry);
        let r = &mut registry;
        providers.register(r);
        r.register_with_unit(
            "dialer_tick_lag",
            "How late the dialer's tick ran against its schedule",
            Unit::Seconds,
            dialer.tick_lag.clone(),
        );
        r.register_with_unit(
            "dialer_claim_duration",
            "Time to claim due leads (one transaction per running campaign and tick)",
            Unit::Seconds,
            dialer.claim_duration.clone(),
        );
        r.register(
            "dialer_calls_placed",
            "Calls the carrier accepted from this instance's dialer",
            dialer.calls_placed.clone(),
        );
        r.register(
            "campaigns_running",
            "Campaigns in the running state (the database's count: the same on every instance)",
            dialer.campaigns_running.clone(),
        );
        r.register(
            "campaigns_due",
            "Running campaigns with at least one lead due now (the database's count)",
            dialer.campaigns_due.clone(),
        );
        r.register(
            "webhook_attempts",
            "Outbound webhook attempts by result: delivered, retrying (failed, will retry), \
             failed (given up after WEBHOOK_MAX_ATTEMPTS)",
            webhooks.attempts.clone(),
        );
        r.register_with_unit(
            "db_query_duration",
            "Database round trips of the dialer and the call writer, by operation",
            Unit::Seconds,
            db.queries.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests by method, route template and status class",
            http.clone(),
        );
        Self {
            registry,
            calls,
            providers,
            dialer,
            db,
            webhooks,
            http,
        }
    }

    /// The exposition text (Prometheus text format 0.0.4).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The handles one live call records with, resolved once so the audio loop never looks up
    /// a label.
    pub fn call_meters(&self) -> CallMeters {
        self.calls.meters(&self.providers)
    }
}

impl DbMetrics {
    /// Runs one database operation and records how long it took.
    pub async fn time<T>(&self, op: &'static str, query: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = query.await;
        self.observe(op, started.elapsed());
        out
    }

    pub fn observe(&self, op: &'static str, took: Duration) {
        self.queries
            .get_or_create(&OpLabels { op })
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CallStatus;

    #[test]
    fn every_metric_is_exported_with_the_prefix_and_its_unit() {
        let m = Metrics::new();
        m.calls.ended(CallStatus::InProgress, CallStatus::Completed);
        m.calls.outcome(Some("interested"));
        m.db.observe("add_turn", Duration::from_millis(3));
        let text = m.encode().unwrap();
        for name in [
            "# TYPE voice_agent_active_calls gauge",
            "# TYPE voice_agent_media_sessions gauge",
            "# TYPE voice_agent_calls_ended_total counter",
            "voice_agent_calls_ended_total{carrier_status=\"completed\"} 1",
            "voice_agent_call_outcomes_total{intent=\"interested\"} 1",
            "# TYPE voice_agent_turn_latency_seconds histogram",
            "# TYPE voice_agent_audio_frames_sent_total counter",
            "# TYPE voice_agent_audio_frames_late_total counter",
            "# TYPE voice_agent_provider_errors_total counter",
            "# TYPE voice_agent_provider_reconnects_total counter",
            "# TYPE voice_agent_dialer_tick_lag_seconds histogram",
            "# TYPE voice_agent_dialer_claim_duration_seconds histogram",
            "voice_agent_db_query_duration_seconds_count{op=\"add_turn\"} 1",
            "# TYPE voice_agent_dialer_calls_placed_total counter",
            "# TYPE voice_agent_campaigns_running gauge",
            "# TYPE voice_agent_campaigns_due gauge",
            "voice_agent_webhook_attempts_total{result=\"failed\"} 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn instances_do_not_share_figures() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let _live = GaugeGuard::new(&a.calls.active);
        assert_eq!(a.calls.active.get(), 1);
        assert_eq!(b.calls.active.get(), 0);
    }
}
