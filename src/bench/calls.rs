//! `voice-agent bench --calls N` / `--max`: live calls against the service in its own process.
//!
//! The bench process holds the emulators (Deepgram, OpenAI, ElevenLabs with fixed, jitter-free
//! delays) and the load generator; the service runs as a child (`voice-agent serve`, SQLite,
//! in-memory sessions) so its CPU and memory can be read apart from ours. Callers connect to
//! `/media` directly, as Exotel does once a call is answered; the service treats each stream as an
//! inbound call (a lead and a call row, transcript turns, the post-call summary: the whole path).
//!
//! "Added latency" per turn is what is left of the caller's wait once the providers' configured
//! delays are taken out: (first agent audio − the frame completing the endpointing silence) −
//! (STT result latency + LLM time to first token + TTS time to first byte). The LLM emulator
//! sends a reply's tokens at once after its first-token delay, so no token pacing hides in it.

use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::load::{self, Active, LoadReport, LoadSpec};
use super::procstat::{self, Sample};
use super::report::{Figures, Pct};
use crate::emulators::callee::Persona;
use crate::emulators::{Running, deepgram, elevenlabs, openai, openai_speech};

/// The emulators' fixed delays during a bench.
#[derive(Debug, Clone, Copy)]
pub struct Delays {
    pub stt_result: Duration,
    pub llm_first_token: Duration,
    pub tts_first_byte: Duration,
}

impl Delays {
    pub fn total(&self) -> Duration {
        self.stt_result + self.llm_first_token + self.tts_first_byte
    }
}

/// The three provider emulators, running in this process.
pub struct BenchEmulators {
    deepgram: Running,
    openai: Running,
    elevenlabs: Running,
    /// With `--tts openai`: the OpenAI-compatible speech endpoint the service speaks through.
    speech: Option<Running>,
}

impl BenchEmulators {
    pub async fn start(d: Delays, openai_speech: bool) -> std::io::Result<Self> {
        let any = ([127, 0, 0, 1], 0).into();
        let dg = deepgram::Config {
            result_latency: d.stt_result,
            idle_timeout: Duration::from_secs(60),
            ..deepgram::Config::default()
        };
        let oa = openai::Config {
            time_to_first_token: d.llm_first_token,
            tokens_per_second: 0.0,
            ..openai::Config::default()
        };
        let el = elevenlabs::Config {
            ttfb: d.tts_first_byte,
            ..elevenlabs::Config::default()
        };
        let speech = match openai_speech {
            true => {
                let config = openai_speech::Config {
                    ttfb: d.tts_first_byte,
                    ..openai_speech::Config::default()
                };
                Some(openai_speech::spawn_on(config, any).await?.0)
            }
            false => None,
        };
        Ok(Self {
            deepgram: deepgram::spawn_on(dg, any).await?.0,
            openai: openai::spawn_on(oa, any).await?.0,
            elevenlabs: elevenlabs::spawn_on(el, any).await?.0,
            speech,
        })
    }

    /// The service's environment pointing at these emulators.
    fn env(&self) -> Vec<(String, String)> {
        [
            (
                "DEEPGRAM_URL",
                format!("{}/v1/listen", self.deepgram.ws_url()),
            ),
            ("DEEPGRAM_API_KEY", "emulated-deepgram-key".into()),
            ("OPENAI_BASE_URL", format!("{}/v1", self.openai.http_url())),
            ("OPENAI_API_KEY", openai::Config::default().api_key),
            ("ELEVENLABS_BASE_URL", self.elevenlabs.http_url()),
            ("ELEVENLABS_API_KEY", elevenlabs::Config::default().api_key),
            ("ELEVENLABS_VOICE_ID", "emulated-voice".into()),
        ]
        .into_iter()
        .chain(self.speech.iter().flat_map(|s| {
            [
                ("TTS_PROVIDER", "openai".to_string()),
                ("OPENAI_TTS_BASE_URL", format!("{}/v1", s.http_url())),
            ]
        }))
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

const SECRET: &str = "bench-media-secret-0123456789";

/// The service under test, in its own process.
pub struct Service {
    child: Child,
    pub pid: u32,
    pub media_url: String,
    db_path: std::path::PathBuf,
}

impl Service {
    /// Starts `voice-agent serve` (this executable) on a fresh SQLite file and waits for
    /// `/health`.
    pub async fn spawn(emulators: &BenchEmulators) -> Result<Self, Box<dyn std::error::Error>> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let db_path = std::env::temp_dir().join(format!(
            "voice-agent-bench-{}-{port}.db",
            std::process::id()
        ));
        // `BENCH_SERVICE_WRAPPER="valgrind --tool=callgrind"` profiles the service under load.
        let wrapper = std::env::var("BENCH_SERVICE_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(std::env::current_exe()?);
                c
            }
            None => Command::new(std::env::current_exe()?),
        };
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("OUR_BASE_URL", format!("http://127.0.0.1:{port}"))
            .env("DATABASE_URL", format!("sqlite://{}", db_path.display()))
            .env("WEBHOOK_SECRET", SECRET)
            .env("RUST_LOG", "error")
            .envs(emulators.env())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let child = cmd.spawn()?;
        let pid = child.id().ok_or("service exited at once")?;
        let service = Self {
            child,
            pid,
            media_url: format!("ws://127.0.0.1:{port}/media?secret={SECRET}"),
            db_path,
        };
        let health = format!("http://127.0.0.1:{port}/health");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = http.get(&health).send().await
                && r.status().is_success()
            {
                return Ok(service);
            }
            if Instant::now() > deadline {
                return Err("the service did not become healthy within 120 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the service itself measured per agent turn (`transcript_turns.added_ms`: its own
    /// time between the final transcript and the model request, and between the first TTS audio
    /// and the first frame out), read from its database after the run.
    async fn own_added_ms(&self) -> Vec<f64> {
        let url = format!("sqlite://{}?mode=ro", self.db_path.display());
        let Ok(pool) = sqlx::SqlitePool::connect(&url).await else {
            return Vec::new();
        };
        let rows: Vec<i64> =
            sqlx::query_scalar("SELECT added_ms FROM transcript_turns WHERE added_ms IS NOT NULL")
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
        pool.close().await;
        rows.into_iter().map(|v| v as f64).collect()
    }

    /// SIGTERM, then a bounded wait (SIGKILL if it does not stop); returns
    /// [`Self::own_added_ms`] and deletes the database.
    pub async fn stop(mut self) -> Vec<f64> {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let own = self.own_added_ms().await;
        if std::env::var_os("BENCH_KEEP_DB").is_some() {
            println!("  (database kept: {})", self.db_path.display());
            return own;
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.db_path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
        own
    }
}

/// One bench step's settings.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub calls: usize,
    pub hold: Duration,
    pub ramp_per_sec: f64,
    /// Also measure memory per idle call (a separate service process).
    pub idle: bool,
}

/// Runs one step against a fresh service: optionally the idle-memory phase, then the
/// conversation load.
pub async fn run_step(
    step: &StepSpec,
    delays: Delays,
    emulators: &BenchEmulators,
) -> Result<Figures, Box<dyn std::error::Error>> {
    let idle_per_call = if step.idle {
        Some(idle_memory(step, emulators).await?)
    } else {
        None
    };
    let service = Service::spawn(emulators).await?;
    let endpointing = Some(Duration::from_millis(
        crate::media::ws::ENDPOINTING_MS as u64,
    ));
    let spec = LoadSpec {
        media_url: service.media_url.clone(),
        slots: step.calls,
        ramp_per_sec: step.ramp_per_sec,
        hold: step.hold,
        mix: load::default_mix(),
        endpointing,
        first_number: 919_100_000_000,
        max_call: Duration::from_secs(120),
    };
    let ramp = spec.ramp();
    let (load, samples) = run_sampled(service.pid, spec, ramp, step.hold).await;
    let own = service.stop().await;
    let mut f = figures(step, delays, &load, &samples, idle_per_call);
    f.service_added = Pct::of(own);
    Ok(f)
}

/// Runs the load while sampling the service twice a second; returns the samples of the steady
/// window (after the ramp, before the window closes) with the baseline first.
async fn run_sampled(
    pid: u32,
    spec: LoadSpec,
    ramp: Duration,
    hold: Duration,
) -> (LoadReport, Vec<(Sample, usize)>) {
    let baseline = procstat::sample(pid);
    let own_start = procstat::sample(std::process::id());
    let active = Active::default();
    let t0 = Instant::now();
    let load = tokio::spawn(load::run(spec, active.clone()));
    let mut samples = Vec::new();
    if let Some(b) = baseline {
        samples.push((b, 0));
    }
    let steady_from = t0 + ramp + Duration::from_secs(2).min(hold / 4);
    let steady_until = t0 + ramp + hold;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while !load.is_finished() {
        tick.tick().await;
        let now = Instant::now();
        if now >= steady_from
            && now <= steady_until
            && let Some(s) = procstat::sample(pid)
        {
            samples.push((s, active.get()));
        }
    }
    let mut report = load.await.unwrap_or_default();
    // Our own CPU (callers + emulators) over the same span: when it nears the machine's
    // capacity, the figures measure the load generator as much as the service.
    if let (Some(a), Some(b)) = (own_start, procstat::sample(std::process::id())) {
        report.generator_cpu_percent = Some(procstat::cpu_percent(&a, &b));
    }
    (report, samples)
}

/// Memory per idle live call: `calls` silent callers connected at once (greeting played, nobody
/// talking), RSS over the service's own baseline.
async fn idle_memory(
    step: &StepSpec,
    emulators: &BenchEmulators,
) -> Result<u64, Box<dyn std::error::Error>> {
    let service = Service::spawn(emulators).await?;
    let spec = LoadSpec {
        media_url: service.media_url.clone(),
        slots: step.calls,
        ramp_per_sec: step.ramp_per_sec.max(200.0),
        hold: Duration::from_secs(6),
        mix: vec![Persona::Silent],
        endpointing: None,
        first_number: 919_500_000_000,
        max_call: Duration::from_secs(120),
    };
    let ramp = spec.ramp();
    let (_, samples) = run_sampled(service.pid, spec, ramp, Duration::from_secs(6)).await;
    let _ = service.stop().await;
    let base = samples.first().map_or(0, |(s, _)| s.rss);
    // The last steady sample: every greeting has played, every call is waiting.
    let (last, live) = samples
        .iter()
        .rev()
        .find(|(_, n)| *n > 0)
        .map(|(s, n)| (s.rss, *n))
        .unwrap_or((base, 0));
    Ok(last.saturating_sub(base) / live.max(1) as u64)
}

fn figures(
    step: &StepSpec,
    delays: Delays,
    load: &LoadReport,
    samples: &[(Sample, usize)],
    idle_per_call: Option<u64>,
) -> Figures {
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let provider_ms = ms(&delays.total());
    let added: Vec<f64> = load
        .after_endpoint
        .iter()
        .map(|d| ms(d) - provider_ms)
        .collect();
    let v2v: Vec<f64> = load.voice_to_voice.iter().map(ms).collect();
    let base = samples.first().map(|(s, _)| *s);
    let steady: Vec<&(Sample, usize)> = samples.iter().skip(1).collect();
    let cpu = match (steady.first(), steady.last()) {
        (Some(a), Some(b)) if steady.len() > 1 => Some(procstat::cpu_percent(&a.0, &b.0)),
        _ => None,
    };
    let peak_rss = steady.iter().map(|(s, _)| s.rss).max();
    let live_at_peak = steady
        .iter()
        .max_by_key(|(s, _)| s.rss)
        .map_or(0, |(_, n)| *n);
    Figures {
        calls: step.calls,
        peak_active: load.peak_active,
        completed: load.calls_completed,
        errors: load.errors,
        error_samples: load.error_samples.clone(),
        turns: load.after_endpoint.len(),
        frames: load.frames_received,
        late_frames: load.late_frames,
        late_share: load.late_share(),
        added: Pct::of(added),
        voice_to_voice: Pct::of(v2v),
        service_added: Pct::default(),
        barge_ins: load.barge_ins,
        violations: load.violations.total(),
        cpu_percent: cpu,
        rss: peak_rss,
        rss_per_call: match (peak_rss, base) {
            (Some(p), Some(b)) if live_at_peak > 0 => {
                Some(p.saturating_sub(b.rss) / live_at_peak as u64)
            }
            _ => None,
        },
        idle_rss_per_call: idle_per_call,
        generator_cpu_percent: load.generator_cpu_percent,
        provider_ms,
    }
}
