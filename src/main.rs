use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = voice_agent::cli::Cli::parse();
    match voice_agent::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voice-agent: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
