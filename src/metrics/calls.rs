//! Call metrics: live calls and media sessions, how calls ended, what they achieved, each agent
//! turn's latency parts and the outbound audio's pacing. [`CallMeters`] is what one call holds:
//! its handles resolved once, so the audio loop only bumps atomics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::{HistogramFamily, ProviderMetrics};
use crate::agent::tools::INTENTS;
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

// A function pointer (not a closure) so the family's type can be named in the struct.
fn turn_histogram() -> Histogram {
    Histogram::new(TURN_BUCKETS)
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
    frames: FrameMeters,
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

impl CallMetrics {
    /// Registered in `registry`, every label value known in advance at zero (so a series exists
    /// and `rate()` works before the first event).
    pub(super) fn new(registry: &mut Registry) -> Self {
        let m = Self {
            active: Gauge::default(),
            media_sessions: Gauge::default(),
            ended: Family::default(),
            outcomes: Family::default(),
            turn_latency: Family::new_with_constructor(turn_histogram),
            frames: FrameMeters::default(),
        };
        for status in CallStatus::ALL.iter().filter(|s| !s.is_active()) {
            let _ = m.ended.get_or_create(&StatusLabels {
                carrier_status: status.as_str(),
            });
        }
        for intent in INTENTS.iter().copied().chain(["other", "none"]) {
            let _ = m.outcomes.get_or_create(&IntentLabels { intent });
        }
        for component in TURN_COMPONENTS {
            let _ = m.turn_latency.get_or_create(&ComponentLabels { component });
        }
        let r = registry;
        r.register(
            "active_calls",
            "Live call pipelines running in this instance",
            m.active.clone(),
        );
        r.register(
            "media_sessions",
            "Open carrier /media WebSocket sessions in this instance",
            m.media_sessions.clone(),
        );
        r.register(
            "calls_ended",
            "Calls that reached a final carrier status, applied by this instance",
            m.ended.clone(),
        );
        r.register(
            "call_outcomes",
            "Calls settled after a conversation, by the caller's intent (none: no outcome)",
            m.outcomes.clone(),
        );
        r.register_with_unit(
            "turn_latency",
            "Per agent turn: stt (last voiced audio to turn end), llm_first_token, \
             tts_first_byte, voice_to_voice (caller done to first agent frame sent) and added \
             (voice_to_voice minus the providers' shares: our own overhead)",
            Unit::Seconds,
            m.turn_latency.clone(),
        );
        r.register(
            "audio_frames_sent",
            "Agent audio frames sent to the carrier",
            m.frames.sent.clone(),
        );
        r.register(
            "audio_frames_late",
            "Agent audio frames sent more than 20 ms behind their pacing schedule",
            m.frames.late.clone(),
        );
        r.register(
            "audio_underruns",
            "Agent audio frames that arrived after the carrier had run dry mid-phrase (a gap heard)",
            m.frames.underruns.clone(),
        );
        m
    }

    /// The handles one live call records with.
    pub(super) fn meters(&self, providers: &ProviderMetrics) -> CallMeters {
        let latency = |component| {
            self.turn_latency
                .get_or_create_owned(&ComponentLabels { component })
        };
        CallMeters {
            stt: latency("stt"),
            llm_first_token: latency("llm_first_token"),
            tts_first_byte: latency("tts_first_byte"),
            voice_to_voice: latency("voice_to_voice"),
            added: latency("added"),
            frames: self.frames.clone(),
            providers: providers.clone(),
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
            Some(i) => INTENTS
                .iter()
                .find(|known| **known == i)
                .copied()
                .unwrap_or("other"),
        };
        self.outcomes.get_or_create(&IntentLabels { intent }).inc();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn only_the_move_to_a_final_status_is_counted() {
        let m = Metrics::new();
        m.calls.ended(CallStatus::Ringing, CallStatus::Busy);
        m.calls.ended(CallStatus::Busy, CallStatus::Busy); // a repeated webhook
        m.calls.ended(CallStatus::Queued, CallStatus::InProgress); // not final
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
        let text = m.encode().unwrap();
        assert!(text.contains("voice_agent_call_outcomes_total{intent=\"other\"} 2\n"));
        assert!(text.contains("voice_agent_call_outcomes_total{intent=\"none\"} 1\n"));
        let series = text
            .lines()
            .filter(|l| l.starts_with("voice_agent_call_outcomes_total{"))
            .count();
        assert_eq!(
            series,
            INTENTS.len() + 2,
            "the known intents, other and none: nothing else"
        );
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
