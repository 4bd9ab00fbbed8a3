//! The command line: `voice-agent [serve]`. Each subcommand is a thin call into the library.

use clap::{Parser, Subcommand};

use crate::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "voice-agent",
    version,
    about = "Outbound AI phone-call campaigns"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: REST API, carrier webhooks and the dialer (the default).
    Serve,
}

/// Runs the parsed command; the returned error is printed by `main`.
pub async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(settings.log_format);
    let listener = tokio::net::TcpListener::bind(settings.bind_addr)
        .await
        .map_err(|e| format!("cannot listen on BIND_ADDR {}: {e}", settings.bind_addr))?;
    crate::startup::run(listener, settings, crate::startup::shutdown_signal()).await?;
    Ok(())
}
