//! Prometheus metrics: one explicit [`Registry`] per service instance, held in
//! `AppState::metrics`, exposed as `GET /metrics` in the Prometheus text format.
//!
//! Why not a process-global recorder: tests run many service instances in one process, and each
//! must see only its own figures; an explicit registry also keeps what is exported in one place.
//!
//! Every metric is created here, with its help text; the rest of the code holds cheap clones of
//! the handles (an `Arc` around atomics) and records with them. Labels are closed sets
//! (`&'static str` from enums, route templates), never raw paths, numbers or free text. Hot
//! paths resolve their handles once per call ([`CallMeters`]) and then only bump atomics.
//!
//! This module must not know how calls, the dialer or providers work; it only names and counts.

mod http;
mod providers;

use std::future::Future;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

pub use http::{routes, serve, track_requests};
pub use providers::{ErrorKind, Provider, ProviderMetrics, ReconnectKind};

use crate::store::CallStatus;

/// The parts of an agent turn's latency (`component` label of `voice_agent_turn_latency_seconds`).
const TURN_COMPONENTS: [&str; 5] = [
    "stt",
    "llm_first_token",
    "tts_first_byte",
    "voice_to_voice",
    "added",
];
/// Seconds buckets for conversational latencies (a reply should start within about a second).
const TURN_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
];
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

/// Live calls, how they ended, and what was heard and said in them.
#[derive(Clone, Debug)]
pub struct CallMetrics {
    /// Call pipelines running in this instance (from the stream's `start` to the lead settled).
    pub active: Gauge,
    /// Open carrier `/media` WebSockets in this instance.
    pub media_sessions: Gauge,
    ended: Family<StatusLabels, Counter>,
    outcomes: Family<IntentLabels, Counter>,
    turn_latency: HistogramFamily<ComponentLabels>,
    frames_sent: Counter,
    frames_late: Counter,
    underruns: Counter,
}

/// The dialer loop's own health.
#[derive(Clone, Debug)]
pub struct DialerMetrics {
    /// How late each tick ran against its schedule.
    pub tick_lag: Histogram,
    /// `claim_leads`: one transaction, behind the advisory lock on PostgreSQL.
    pub claim_duration: Histogram,
}

/// Database round trips of the dialer and of the calls' writer, by operation.
#[derive(Clone, Debug)]
pub struct DbMetrics {
    queries: HistogramFamily<OpLabels>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    carrier_status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntentLabels {
    intent: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

// Function pointers (not closures) so the family types can be named in the structs above.
fn turn_histogram() -> Histogram {
    Histogram::new(TURN_BUCKETS)
}

fn fast_histogram() -> Histogram {
    Histogram::new(FAST_BUCKETS)
}

impl Metrics {
    /// A fresh registry with every metric registered (values at zero).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("voice_agent");
        let calls = CallMetrics {
            active: Gauge::default(),
            media_sessions: Gauge::default(),
            ended: Family::default(),
            outcomes: Family::default(),
            turn_latency: Family::new_with_constructor(turn_histogram),
            frames_sent: Counter::default(),
            frames_late: Counter::default(),
            underruns: Counter::default(),
        };
        let dialer = DialerMetrics {
            tick_lag: fast_histogram(),
            claim_duration: fast_histogram(),
        };
        let db = DbMetrics {
            queries: Family::new_with_constructor(fast_histogram),
        };
        let providers = ProviderMetrics::default();
        let http = Family::<http::RequestLabels, Counter>::default();
        calls.create_known_series();
        providers.create_known_series();

        let r = &mut registry;
        r.register(
            "active_calls",
            "Live call pipelines running in this instance",
            calls.active.clone(),
        );
        r.register(
            "media_sessions",
            "Open carrier /media WebSocket sessions in this instance",
            calls.media_sessions.clone(),
        );
        r.register(
            "calls_ended",
            "Calls that reached a final carrier status, applied by this instance",
            calls.ended.clone(),
        );
        r.register(
            "call_outcomes",
            "Calls settled after a conversation, by the caller's intent (none: no outcome)",
            calls.outcomes.clone(),
        );
        r.register_with_unit(
            "turn_latency",
            "Per agent turn: stt (last voiced audio to turn end), llm_first_token, \
             tts_first_byte, voice_to_voice (caller done to first agent frame sent) and added \
             (voice_to_voice minus the providers' shares: our own overhead)",
            Unit::Seconds,
            calls.turn_latency.clone(),
        );
        r.register(
            "audio_frames_sent",
            "Agent audio frames sent to the carrier",
            calls.frames_sent.clone(),
        );
        r.register(
            "audio_frames_late",
            "Agent audio frames sent more than 20 ms behind their pacing schedule",
            calls.frames_late.clone(),
        );
        r.register(
            "audio_underruns",
            "Agent audio frames that arrived after the carrier had run dry mid-phrase (a gap heard)",
            calls.underruns.clone(),
        );
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
        let latency = |component| {
            self.calls
                .turn_latency
                .get_or_create_owned(&ComponentLabels { component })
        };
        CallMeters {
            stt: latency("stt"),
            llm_first_token: latency("llm_first_token"),
            tts_first_byte: latency("tts_first_byte"),
            voice_to_voice: latency("voice_to_voice"),
            added: latency("added"),
            frames: FrameMeters {
                sent: self.calls.frames_sent.clone(),
                late: self.calls.frames_late.clone(),
                underruns: self.calls.underruns.clone(),
            },
            providers: self.providers.clone(),
        }
    }
}

impl CallMetrics {
    /// Every label value known in advance starts at zero, so a series exists (and `rate()`
    /// works) before the first event.
    fn create_known_series(&self) {
        for status in CallStatus::ALL.iter().filter(|s| !s.is_active()) {
            let _ = self.ended.get_or_create(&StatusLabels {
                carrier_status: status.as_str(),
            });
        }
        let intents = crate::agent::tools::INTENTS.iter().copied();
        for intent in intents.chain(["other", "none"]) {
            let _ = self.outcomes.get_or_create(&IntentLabels { intent });
        }
        for component in TURN_COMPONENTS {
            let _ = self
                .turn_latency
                .get_or_create(&ComponentLabels { component });
        }
    }

    /// Counts a call's move to a final carrier status; nothing when it was final already (a
    /// repeated or late update).
    pub fn ended(&self, before: CallStatus, after: CallStatus) {
        if before.is_active() && !after.is_active() {
            self.ended
                .get_or_create(&StatusLabels {
                    carrier_status: after.as_str(),
                })
                .inc();
        }
    }

    /// Counts one settled conversation by its intent; unknown intents count as `other`, so a
    /// model inventing labels cannot grow the series.
    pub fn outcome(&self, intent: Option<&str>) {
        let intent = match intent {
            None => "none",
            Some(i) => crate::agent::tools::INTENTS
                .iter()
                .find(|known| **known == i)
                .copied()
                .unwrap_or("other"),
        };
        self.outcomes.get_or_create(&IntentLabels { intent }).inc();
    }
}

/// Increments a gauge for as long as it lives (a session, a call), whichever way it ends.
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    pub fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
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

/// What one live call records with: histograms and counters resolved for it once.
#[derive(Clone, Debug)]
pub struct CallMeters {
    pub stt: Histogram,
    pub llm_first_token: Histogram,
    pub tts_first_byte: Histogram,
    pub voice_to_voice: Histogram,
    pub added: Histogram,
    pub frames: FrameMeters,
    pub providers: ProviderMetrics,
}

impl CallMeters {
    /// Meters attached to no registry (unit tests, embedded use).
    pub fn detached() -> Self {
        Metrics::new().call_meters()
    }
}

/// Outbound audio counters, bumped per frame by the playout (atomics only).
#[derive(Clone, Debug, Default)]
pub struct FrameMeters {
    pub sent: Counter,
    pub late: Counter,
    pub underruns: Counter,
}

/// Records a latency given in milliseconds (as stored with the turn), if there is one.
pub fn observe_ms(histogram: &Histogram, ms: Option<i32>) {
    if let Some(ms) = ms {
        histogram.observe(f64::from(ms.max(0)) / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many series of the exposition start with `prefix`.
    fn series(m: &Metrics, prefix: &str) -> usize {
        m.encode()
            .unwrap()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

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
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn only_the_move_to_a_final_status_is_counted() {
        let m = Metrics::new();
        m.calls.ended(CallStatus::Ringing, CallStatus::Busy);
        m.calls.ended(CallStatus::Busy, CallStatus::Busy); // a repeated webhook
        m.calls.ended(CallStatus::Queued, CallStatus::InProgress); // not final
        let busy = m.calls.ended.get_or_create_owned(&StatusLabels {
            carrier_status: "busy",
        });
        assert_eq!(busy.get(), 1);
        let text = m.encode().unwrap();
        assert!(text.contains("voice_agent_calls_ended_total{carrier_status=\"busy\"} 1\n"));
        assert!(text.contains("voice_agent_calls_ended_total{carrier_status=\"completed\"} 0\n"));
        assert!(
            !text.contains("carrier_status=\"in-progress\""),
            "not a final status"
        );
    }

    #[test]
    fn unknown_intents_share_one_series() {
        let m = Metrics::new();
        m.calls.outcome(Some("made-up-by-the-model"));
        m.calls.outcome(Some("another one"));
        m.calls.outcome(None);
        let other = m
            .calls
            .outcomes
            .get_or_create_owned(&IntentLabels { intent: "other" });
        assert_eq!(other.get(), 2);
        let none = m
            .calls
            .outcomes
            .get_or_create_owned(&IntentLabels { intent: "none" });
        assert_eq!(none.get(), 1);
        assert_eq!(
            series(&m, "voice_agent_call_outcomes_total{"),
            crate::agent::tools::INTENTS.len() + 2,
            "the known intents, other and none: nothing else"
        );
    }

    #[test]
    fn instances_do_not_share_figures() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let _live = GaugeGuard::new(&a.calls.active);
        assert_eq!(a.calls.active.get(), 1);
        assert_eq!(b.calls.active.get(), 0);
    }

    #[test]
    fn a_gauge_guard_gives_back_what_it_took() {
        let m = Metrics::new();
        {
            let _one = GaugeGuard::new(&m.calls.media_sessions);
            let _two = GaugeGuard::new(&m.calls.media_sessions);
            assert_eq!(m.calls.media_sessions.get(), 2);
        }
        assert_eq!(m.calls.media_sessions.get(), 0);
    }
}
