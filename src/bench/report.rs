//! The live-call bench's figures and how they are printed.

/// p50 / p95 / p99 / max of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pct {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Pct {
    /// Nearest-rank percentiles.
    pub fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Self {
            n: v.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: v[v.len() - 1],
        }
    }

    fn show(&self) -> String {
        if self.n == 0 {
            return "n/a".into();
        }
        format!(
            "{:.1} / {:.1} / {:.1} ms (max {:.1}, n={})",
            self.p50, self.p95, self.p99, self.max, self.n
        )
    }
}

/// One bench step's results.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub calls: usize,
    pub peak_active: usize,
    pub completed: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub turns: usize,
    pub frames: u64,
    pub late_frames: u64,
    pub late_share: f64,
    /// Per turn, ms: what our code added (voice-to-voice minus the providers' delays).
    pub added: Pct,
    pub voice_to_voice: Pct,
    /// Per turn, ms, as the service measures its own share (whole ms).
    pub service_added: Pct,
    pub barge_ins: u64,
    pub violations: u64,
    /// Service CPU over the steady window, % of the whole machine.
    pub cpu_percent: Option<f64>,
    /// Service peak RSS in the steady window, bytes.
    pub rss: Option<u64>,
    pub rss_per_call: Option<u64>,
    pub idle_rss_per_call: Option<u64>,
    /// The bench process's own CPU (callers + emulators), % of the machine.
    pub generator_cpu_percent: Option<f64>,
    /// The emulators' configured delays per turn, ms.
    pub provider_ms: f64,
}

/// The knee conditions of `--max`.
pub const MAX_LATE_SHARE: f64 = 0.001;
pub const MAX_ADDED_P99_MS: f64 = 20.0;

impl Figures {
    /// Whether this step stays under the knee conditions (and had no errors to speak of).
    pub fn healthy(&self) -> bool {
        self.late_share <= MAX_LATE_SHARE
            && (self.added.n == 0 || self.added.p99 <= MAX_ADDED_P99_MS)
            && self.errors as f64 <= 0.01 * (self.completed + self.errors) as f64
    }

    /// The full table for one step.
    pub fn print(&self) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let row = |k: &str, v: String| println!("  {k:<42} {v}");
        row(
            "calls held concurrently (peak)",
            self.peak_active.to_string(),
        );
        row(
            "calls completed / errors",
            format!("{} / {}", self.completed, self.errors),
        );
        for e in &self.error_samples {
            println!("      e.g. {e}");
        }
        row("caller turns answered", self.turns.to_string());
        row("barge-ins", self.barge_ins.to_string());
        row(
            "late agent frames (>20 ms behind schedule)",
            format!(
                "{} of {} ({:.3}%)",
                self.late_frames,
                self.frames,
                self.late_share * 100.0
            ),
        );
        row("added latency per turn p50 / p95 / p99", self.added.show());
        if self.service_added.n > 0 {
            row(
                "  of which inside the service (its own count)",
                self.service_added.show(),
            );
        }
        row(
            "voice-to-voice p50 / p95 / p99",
            format!(
                "{} (providers' delays: {:.0} ms)",
                self.voice_to_voice.show(),
                self.provider_ms
            ),
        );
        row(
            &format!(
                "service CPU (% of {cores} {})",
                if cores == 1 { "core" } else { "cores" }
            ),
            self.cpu_percent
                .map_or("n/a".into(), |c| format!("{c:.1}%")),
        );
        if let Some(c) = self.generator_cpu_percent {
            row(
                &format!("load generator + emulators CPU (% of {cores})"),
                format!("{c:.1}%"),
            );
        }
        row(
            "service RSS total / per live call",
            match (self.rss, self.rss_per_call) {
                (Some(r), Some(p)) => format!("{} / {}", bytes(r), bytes(p)),
                (Some(r), None) => format!("{} / n/a", bytes(r)),
                _ => "n/a".into(),
            },
        );
        if let Some(idle) = self.idle_rss_per_call {
            row("service RSS per idle live call", bytes(idle));
        }
        row(
            "protocol violations seen by callers",
            self.violations.to_string(),
        );
    }

    /// One line of the `--max` summary.
    pub fn summary_row(&self) -> String {
        format!(
            "{:>6} {:>6} {:>7} {:>9.3}% {:>8.1} {:>8.1} {:>7} {:>10}  {}",
            self.calls,
            self.peak_active,
            self.errors,
            self.late_share * 100.0,
            self.added.p50,
            self.added.p99,
            self.cpu_percent
                .map_or("n/a".into(), |c| format!("{c:.0}%")),
            self.rss_per_call.map_or("n/a".into(), bytes),
            if self.healthy() { "ok" } else { "KNEE" },
        )
    }
}

pub const SUMMARY_HEADER: &str =
    " calls   peak  errors      late   p50 ms   p99 ms     CPU   RSS/call  verdict";

fn bytes(b: u64) -> String {
    if b >= 10 * 1024 * 1024 {
        format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0))
    } else if b >= 1024 * 1024 {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KiB", b as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Pct::of((1..=100).map(f64::from).collect());
        assert_eq!(
            (p.p50, p.p95, p.p99, p.max, p.n),
            (50.0, 95.0, 99.0, 100.0, 100)
        );
        let one = Pct::of(vec![7.0]);
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert_eq!(Pct::of(vec![]).n, 0);
    }

    #[test]
    fn the_knee_is_late_frames_or_added_latency() {
        let ok = Figures {
            completed: 100,
            added: Pct::of(vec![1.0, 2.0]),
            ..Figures::default()
        };
        assert!(ok.healthy());
        let late = Figures {
            late_share: 0.002,
            ..ok.clone()
        };
        assert!(!late.healthy());
        let slow = Figures {
            added: Pct::of(vec![25.0]),
            ..ok.clone()
        };
        assert!(!slow.healthy());
        let failing = Figures { errors: 5, ..ok };
        assert!(!failing.healthy());
    }
}
