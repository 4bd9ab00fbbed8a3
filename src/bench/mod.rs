//! `voice-agent bench`: the figures behind docs/BENCHMARKS.md.
//!
//! - `bench` (no subcommand): live calls — the service in its own process, the emulators, and N
//!   simulated callers speaking Exotel's Voicebot protocol to `/media` (`calls.rs`).
//! - `bench data`: the data path — CSV import rows/s and the dialer's claim latency (`data.rs`).
//!
//! Benchmarks print figures; nothing here asserts a timing.

pub mod data;

use clap::{Args, Subcommand};

/// `voice-agent bench [--calls N | --max] | bench data …`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// CSV import rows/s and the dialer's claim latency, on SQLite and PostgreSQL.
    Data(data::DataArgs),
}

/// Runs the chosen benchmark and prints its table.
pub async fn run(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    match args.command {
        Some(BenchCommand::Data(data)) => data::run(data).await,
        None => Err("the live-call benchmark is not built yet".into()),
    }
}
