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
    /// Run the four provider emulators (Exotel, Deepgram, OpenAI, ElevenLabs) until Ctrl-C.
    Emulate {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::Ipv4Addr,
        #[arg(long, default_value_t = 9001)]
        exotel_port: u16,
        #[arg(long, default_value_t = 9002)]
        deepgram_port: u16,
        #[arg(long, default_value_t = 9003)]
        openai_port: u16,
        #[arg(long, default_value_t = 9004)]
        elevenlabs_port: u16,
        /// The service's `/media` URL that answered calls connect to (with its secret).
        #[arg(long)]
        media_url: Option<String>,
        /// CSV whose `persona` column says how each number behaves (default: the example
        /// leads compiled into the binary).
        #[arg(long)]
        leads: Option<String>,
    },
    /// The whole system offline: service + emulators, dial every example lead, print a report.
    Demo {
        /// Leads CSV to dial (default: the example leads compiled into the binary; a
        /// `persona` column says how each emulated callee behaves).
        #[arg(long)]
        leads: Option<String>,
        /// Keep the service running after the report.
        #[arg(long)]
        keep_running: bool,
        /// Give up waiting for the campaign after this many seconds.
        #[arg(long, default_value_t = 240)]
        timeout_secs: u64,
    },
    /// Benchmarks: live calls (`--calls N`, `--max`) or the data path (`bench data`).
    Bench(crate::bench::BenchArgs),
}

/// Runs the parsed command; the returned error is printed by `main`.
pub async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Emulate {
            host,
            exotel_port,
            deepgram_port,
            openai_port,
            elevenlabs_port,
            media_url,
            leads,
        } => {
            let _traces = crate::telemetry::init(crate::config::LogFormat::Text, None);
            let ports = [exotel_port, deepgram_port, openai_port, elevenlabs_port];
            let text = crate::demo::leads_text(leads.as_deref())?;
            let config = crate::demo::demo_exotel(media_url, Some(&text))?;
            let e = crate::demo::start_emulators_with(host.octets(), ports, config).await?;
            println!("Emulators running. Point the service at them with:");
            for line in crate::demo::env_lines(&e) {
                println!("  {line}");
            }
            crate::startup::shutdown_signal().await;
            Ok(())
        }
        Command::Demo {
            leads,
            keep_running,
            timeout_secs,
        } => {
            // The demo reads no settings but this one: traces of its calls, when asked for.
            let otel = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .ok()
                .filter(|v| !v.trim().is_empty());
            let traces = crate::telemetry::init_with_default(
                crate::config::LogFormat::Text,
                "warn",
                otel.as_deref(),
            );
            let result = crate::demo::run_demo(
                leads.as_deref(),
                keep_running,
                std::time::Duration::from_secs(timeout_secs),
            )
            .await;
            flush(traces).await;
            result
        }
        Command::Bench(args) => {
            let _traces =
                crate::telemetry::init_with_default(crate::config::LogFormat::Text, "warn", None);
            crate::bench::run(args).await
        }
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let traces = crate::telemetry::init(settings.log_format, settings.otel_endpoint.as_deref());
    let listener = tokio::net::TcpListener::bind(settings.bind_addr)
        .await
        .map_err(|e| format!("cannot listen on BIND_ADDR {}: {e}", settings.bind_addr))?;
    let result = crate::startup::run(listener, settings, crate::startup::shutdown_signal()).await;
    flush(traces).await;
    Ok(result?)
}

/// Sends the traces still buffered (blocking, so off the runtime's workers).
async fn flush(traces: Option<crate::telemetry::Traces>) {
    if let Some(t) = traces {
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
}
