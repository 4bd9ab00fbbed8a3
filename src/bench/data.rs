//! `voice-agent bench data`: CSV import rows/s (100,000 and 1,000,000 rows) into SQLite and
//! PostgreSQL, and the latency of the dialer's claim of the next due leads with 1,000,000 leads.

use clap::Args;

#[derive(Debug, Args)]
pub struct DataArgs {}

pub async fn run(_args: DataArgs) -> Result<(), Box<dyn std::error::Error>> {
    Err("the data-path benchmark is not built yet".into())
}
