//! `voice-agent bench`: the figures behind docs/BENCHMARKS.md.
//!
//! - `bench --calls N` / `bench --max`: live calls — the service in its own process, the
//!   emulators, and N simulated callers speaking Exotel's Voicebot protocol to `/media`
//!   (`calls.rs`, `load.rs`); `--media-url` aims the same load at any other system.
//! - `bench data`: the data path — CSV import rows/s and the dialer's claim latency (`data.rs`).
//!
//! Benchmarks print figures; nothing here asserts a timing.

pub mod calls;
pub mod data;
pub mod load;
pub mod procstat;
pub mod report;

use std::time::Duration;

use clap::{Args, Subcommand};

use self::calls::{BenchEmulators, Delays, StepSpec};
use self::report::SUMMARY_HEADER;

/// `voice-agent bench [--calls N | --max] | bench data …`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    #[command(flatten)]
    pub calls: CallsArgs,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// CSV import rows/s and the dialer's claim latency, on SQLite and PostgreSQL.
    Data(data::DataArgs),
}

/// The live-call bench.
#[derive(Debug, Args)]
pub struct CallsArgs {
    /// Calls held at once.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Raise the number of calls step by step until late frames exceed 0.1% or the added
    /// latency's p99 exceeds 20 ms; report the knee.
    #[arg(long)]
    pub max: bool,
    /// Highest step of `--max`.
    #[arg(long, default_value_t = 10_000)]
    pub max_calls: usize,
    /// Seconds every call slot stays busy after the ramp.
    #[arg(long, default_value_t = 30)]
    pub hold: u64,
    /// Calls started per second during the ramp (default: spread over 20 s, about one call's
    /// length, so turns do not all fall in lockstep as they never do on a real line).
    #[arg(long)]
    pub ramp: Option<f64>,
    /// Emulated STT: result latency after the endpointing silence (ms).
    #[arg(long, default_value_t = 50)]
    pub stt_delay_ms: u64,
    /// Emulated LLM: time to first token (ms); the reply's tokens follow at once.
    #[arg(long, default_value_t = 300)]
    pub llm_delay_ms: u64,
    /// Emulated TTS: time to first byte (ms).
    #[arg(long, default_value_t = 150)]
    pub tts_delay_ms: u64,
    /// Which TTS vendor the service speaks through (`elevenlabs`, or `openai`: an
    /// OpenAI-compatible speech endpoint at 24 kHz, resampled).
    #[arg(long, default_value = "elevenlabs", value_parser = ["elevenlabs", "openai"])]
    pub tts: String,
    /// Skip the idle-call memory phase.
    #[arg(long)]
    pub no_idle: bool,
    /// Aim the load at another system's `/media` URL (with its credentials) instead of a
    /// service started here; only what the callers see is reported.
    #[arg(long)]
    pub media_url: Option<String>,
}

/// Runs the chosen benchmark and prints its table.
pub async fn run(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    match args.command {
        Some(BenchCommand::Data(data)) => data::run(data).await,
        None if args.calls.media_url.is_some() => external(&args.calls).await,
        None => live_calls(&args.calls).await,
    }
}

async fn live_calls(args: &CallsArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.calls == 0 || args.ramp.is_some_and(|r| r <= 0.0) {
        return Err("--calls and --ramp must be positive".into());
    }
    let delays = Delays {
        stt_result: Duration::from_millis(args.stt_delay_ms),
        llm_first_token: Duration::from_millis(args.llm_delay_ms),
        tts_first_byte: Duration::from_millis(args.tts_delay_ms),
    };
    let emulators = BenchEmulators::start(delays, args.tts == "openai").await?;
    println!(
        "voice-agent bench: service in its own process (SQLite, in-memory sessions, TTS {}); \
         emulated STT result {} ms after endpointing, LLM first token {} ms, TTS first byte {} ms",
        args.tts,
        delays.stt_result.as_millis(),
        delays.llm_first_token.as_millis(),
        delays.tts_first_byte.as_millis()
    );
    let step = |calls: usize, idle: bool| StepSpec {
        calls,
        hold: Duration::from_secs(args.hold),
        ramp_per_sec: args.ramp.unwrap_or((calls as f64 / 20.0).max(10.0)),
        idle,
    };
    if !args.max {
        println!(
            "\n{} calls, {} s held after a ramp of {:.0} calls/s:",
            args.calls,
            args.hold,
            step(args.calls, false).ramp_per_sec
        );
        let figures = calls::run_step(&step(args.calls, !args.no_idle), delays, &emulators).await?;
        figures.print();
        return Ok(());
    }
    println!("\nramp: each step is a fresh service; the knee is the last healthy step");
    println!("{SUMMARY_HEADER}");
    let mut knee = None;
    let mut n = args.calls.max(1);
    while n <= args.max_calls {
        let figures = calls::run_step(&step(n, false), delays, &emulators).await?;
        println!("{}", figures.summary_row());
        if !figures.healthy() {
            break;
        }
        knee = Some(figures);
        n = next_step(n);
    }
    match knee {
        Some(f) => {
            println!(
                "\nknee: {} concurrent calls stay healthy; that step in full:",
                f.calls
            );
            f.print();
        }
        None => println!("\nknee: below {} calls", args.calls),
    }
    Ok(())
}

/// 100, 250, 500, 1000, 1500, 2000, 3000, 4000, … : finer where it matters.
fn next_step(n: usize) -> usize {
    match n {
        0..100 => 100,
        100..250 => 250,
        250..500 => 500,
        500..1000 => 1000,
        1000..2000 => n + 500,
        _ => n + 1000,
    }
}

async fn external(args: &CallsArgs) -> Result<(), Box<dyn std::error::Error>> {
    let url = args.media_url.clone().unwrap_or_default();
    let spec = load::LoadSpec {
        media_url: url.clone(),
        slots: args.calls,
        ramp_per_sec: args.ramp.unwrap_or((args.calls as f64 / 20.0).max(10.0)),
        hold: Duration::from_secs(args.hold),
        mix: load::default_mix(),
        endpointing: None,
        first_number: 919_100_000_000,
        max_call: Duration::from_secs(120),
    };
    println!(
        "voice-agent bench: {} callers against {}",
        args.calls,
        mask_secret(&url)
    );
    let r = load::run(spec, load::Active::default()).await;
    let figures = report::Figures {
        calls: args.calls,
        peak_active: r.peak_active,
        completed: r.calls_completed,
        errors: r.errors,
        error_samples: r.error_samples.clone(),
        turns: r.voice_to_voice.len(),
        frames: r.frames_received,
        late_frames: r.late_frames,
        late_share: r.late_share(),
        voice_to_voice: report::Pct::of(
            r.voice_to_voice
                .iter()
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect(),
        ),
        barge_ins: r.barge_ins,
        violations: r.violations.total(),
        ..report::Figures::default()
    };
    figures.print();
    Ok(())
}

/// The URL without its query string and user info (they carry credentials).
fn mask_secret(url: &str) -> String {
    let no_query = url.split('?').next().unwrap_or(url);
    match no_query.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => no_query.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_grow_finer_first() {
        let mut n = 100;
        let mut seen = vec![n];
        while n < 5000 {
            n = next_step(n);
            seen.push(n);
        }
        assert_eq!(seen, [100, 250, 500, 1000, 1500, 2000, 3000, 4000, 5000]);
    }

    #[test]
    fn credentials_are_not_printed() {
        assert_eq!(
            mask_secret("wss://user:pw@bot.example.com/media?secret=abc"),
            "wss://bot.example.com/media"
        );
    }
}
