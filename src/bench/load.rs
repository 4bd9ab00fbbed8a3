//! The load generator: N simulated callers speaking Exotel's Voicebot protocol to any `/media`
//! URL (ours, or another system's for comparison).
//!
//! Each of the N *slots* places a call, holds the conversation to its end (the simulated person
//! of [`crate::emulators::callee`]: 8 kHz audio both ways in real time, a few turns, some
//! barge-ins and backchannels), then places the next one, until the run's window closes — so N
//! calls are live at once for the whole window. Slots start spread over the ramp.
//!
//! What it must not do: measure anything the callee does not see on the wire.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::emulators::callee::{self, CallReport, CalleeConfig, Persona, StartInfo, Violations};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The bot's `/media` URL (with its secret).
    pub media_url: String,
    /// Calls live at once.
    pub slots: usize,
    /// Slots started per second until all run.
    pub ramp_per_sec: f64,
    /// How long all slots keep placing calls once the ramp is done.
    pub hold: Duration,
    /// Who answers: the persona of call `k` is `mix[k % mix.len()]`.
    pub mix: Vec<Persona>,
    /// The STT endpointing the bot uses (for [`CallReport::after_endpoint`]).
    pub endpointing: Option<Duration>,
    /// First caller number (E.164 digits after `+`); each call takes the next.
    pub first_number: u64,
    /// Longest single call (a slot's last call is also cut when the window closes).
    pub max_call: Duration,
}

impl LoadSpec {
    /// Time until every slot has started.
    pub fn ramp(&self) -> Duration {
        Duration::from_secs_f64(self.slots as f64 / self.ramp_per_sec.max(0.001))
    }
}

/// A realistic mix: mostly interested people, one in ten barging into the greeting, one in ten
/// saying "haan" while the agent talks.
pub fn default_mix() -> Vec<Persona> {
    let mut mix = vec![Persona::Interested; 8];
    mix.push(Persona::Interrupts);
    mix.push(Persona::Backchannel);
    mix
}

/// Everything the callers saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub calls_started: u64,
    /// Calls that connected and ended cleanly.
    pub calls_completed: u64,
    pub errors: u64,
    /// The first few error messages, for the operator.
    pub error_samples: Vec<String>,
    /// Most calls live at once (sampled).
    pub peak_active: usize,
    pub frames_received: u64,
    pub late_frames: u64,
    /// Per answered turn: end of speech → first agent audio.
    pub voice_to_voice: Vec<Duration>,
    /// Per answered turn: frame completing the endpointing silence → first agent audio.
    pub after_endpoint: Vec<Duration>,
    pub barge_ins: u64,
    pub clears: u64,
    pub violations: Violations,
}

impl LoadReport {
    fn add(&mut self, r: CallReport) {
        self.frames_received += r.stats.frames_received;
        self.late_frames += r.stats.late_frames;
        self.clears += r.stats.clears_received;
        self.barge_ins += r.said(callee::LineKind::Interruption).len() as u64;
        self.voice_to_voice.extend(r.voice_to_voice);
        self.after_endpoint.extend(r.after_endpoint);
        self.violations += r.violations;
        match r.error {
            Some(e) => self.error(format!("call {} ended with: {e}", r.call_sid)),
            None => self.calls_completed += 1,
        }
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(message);
        }
    }

    /// Late frames as a share of all agent frames received.
    pub fn late_share(&self) -> f64 {
        if self.frames_received == 0 {
            0.0
        } else {
            self.late_frames as f64 / self.frames_received as f64
        }
    }
}

/// Live-call counter shared with the sampler.
#[derive(Debug, Default, Clone)]
pub struct Active(Arc<AtomicUsize>);

impl Active {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs the load; returns when every call has ended. `active` counts calls in flight.
pub async fn run(spec: LoadSpec, active: Active) -> LoadReport {
    let report = Arc::new(Mutex::new(LoadReport::default()));
    let t0 = Instant::now();
    let close = t0 + spec.ramp() + spec.hold;
    let spec = Arc::new(spec);
    let peak = Arc::new(AtomicUsize::new(0));
    let mut slots = tokio::task::JoinSet::new();
    for slot in 0..spec.slots {
        let start = t0 + Duration::from_secs_f64(slot as f64 / spec.ramp_per_sec.max(0.001));
        let (spec, report, active, peak) =
            (spec.clone(), report.clone(), active.clone(), peak.clone());
        slots.spawn(async move {
            tokio::time::sleep_until(start).await;
            let mut k = 0u64;
            while Instant::now() + Duration::from_secs(2) < close {
                let n = slot as u64 + k * spec.slots as u64;
                let persona = spec.mix[(n as usize) % spec.mix.len()];
                let number = format!("+{}", spec.first_number + n);
                let config = CalleeConfig {
                    persona,
                    seed: callee::seed_for(0xBE7C4, &number),
                    max_duration: close
                        .saturating_duration_since(Instant::now())
                        .min(spec.max_call),
                    endpointing: spec.endpointing,
                    ..CalleeConfig::default()
                };
                let sid = format!("bench-{slot}-{k}");
                let now_active = active.0.fetch_add(1, Ordering::Relaxed) + 1;
                peak.fetch_max(now_active, Ordering::Relaxed);
                let result = callee::run_call(
                    &spec.media_url,
                    StartInfo::new(&sid, &number, "+918044556677"),
                    config,
                )
                .await;
                active.0.fetch_sub(1, Ordering::Relaxed);
                let mut r = report.lock().await;
                r.calls_started += 1;
                match result {
                    Ok(call) => r.add(call),
                    Err(e) => {
                        r.error(format!("call {sid}: {e}"));
                        drop(r);
                        // Do not spin on a refused connection.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                k += 1;
            }
        });
    }
    while slots.join_next().await.is_some() {}
    let mut report = std::mem::take(&mut *report.lock().await);
    report.peak_active = peak.load(Ordering::Relaxed);
    report
}
