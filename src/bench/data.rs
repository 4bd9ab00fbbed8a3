//! `voice-agent bench data`: CSV import rows/s (100,000 and 1,000,000 rows) into SQLite and
//! PostgreSQL, and the latency of the dialer's claim of the next due leads with 1,000,000 leads.
//!
//! Each measurement runs against a database of its own (a temporary SQLite file, or a fresh
//! PostgreSQL database `va_bench_<ts>_<n>` dropped afterwards), so figures never depend on what
//! an earlier run left behind. The import goes through the real HTTP route; the claim through
//! the real `Store::claim_leads` with the request the dialer builds.

mod claim;
mod dashboard;
mod db;
mod import;
mod leads_csv;
mod seed;

use clap::{Args, ValueEnum};

use crate::store::Backend;

#[derive(Debug, Args)]
pub struct DataArgs {
    /// CSV sizes to import, in rows.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pub rows: Vec<u64>,
    /// Leads in the database while the claim is timed.
    #[arg(long, default_value_t = 1_000_000)]
    pub claim_leads: u64,
    /// Timed claims per case.
    #[arg(long, default_value_t = 1000)]
    pub claim_iterations: u32,
    /// Leads in the database while `GET /dashboard` is timed.
    #[arg(long, default_value_t = 1_000_000)]
    pub dashboard_leads: u64,
    /// Timed dashboard requests.
    #[arg(long, default_value_t = 200)]
    pub dashboard_requests: u32,
    #[arg(long, value_enum, default_value = "both")]
    pub database: DatabaseChoice,
    /// Run only the import, the claim or the dashboard benchmark.
    #[arg(long, value_enum)]
    pub only: Option<Part>,
    /// A CI smoke run: 10,000-row imports, 50,000 leads, 200 claims (seconds, not minutes).
    #[arg(long)]
    pub quick: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    Import,
    Claim,
    Dashboard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatabaseChoice {
    Sqlite,
    Postgres,
    Both,
}

impl DatabaseChoice {
    fn backends(self) -> Vec<Backend> {
        match self {
            DatabaseChoice::Sqlite => vec![Backend::Sqlite],
            DatabaseChoice::Postgres => vec![Backend::Postgres],
            DatabaseChoice::Both => vec![Backend::Sqlite, Backend::Postgres],
        }
    }
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

pub async fn run(mut args: DataArgs) -> BenchResult<()> {
    if args.quick {
        args.rows = vec![10_000];
        args.claim_leads = 50_000;
        args.claim_iterations = 200;
        args.dashboard_leads = 50_000;
        args.dashboard_requests = 50;
    }
    let needed = claim::leads_needed(args.claim_iterations);
    if args.claim_leads < needed {
        return Err(format!(
            "--claim-leads {} is too few for {} claims per case: use at least {needed}",
            args.claim_leads, args.claim_iterations
        )
        .into());
    }
    let backends = args.database.backends();
    let pg_admin = db::postgres_admin_url();
    if backends.contains(&Backend::Postgres) {
        db::check_postgres(&pg_admin).await?;
    }
    println!(
        "voice-agent bench data ({} build, {} CPUs)",
        if cfg!(debug_assertions) {
            "DEBUG"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let runs = |part: Part| args.only.is_none_or(|only| only == part);
    if runs(Part::Import) {
        import::print_header();
        for &backend in &backends {
            for &rows in &args.rows {
                let figure = db::with_database(backend, &pg_admin, async |url| {
                    import::measure(url, rows).await
                })
                .await?;
                import::print_row(backend, &figure);
            }
        }
    }
    if runs(Part::Claim) {
        claim::print_header(args.claim_leads);
        for &backend in &backends {
            let (leads, iterations) = (args.claim_leads, args.claim_iterations);
            db::with_database(backend, &pg_admin, async |url| {
                claim::measure(url, backend, leads, iterations).await
            })
            .await?;
        }
    }
    if runs(Part::Dashboard) {
        dashboard::print_header();
        for &backend in &backends {
            let (leads, requests) = (args.dashboard_leads, args.dashboard_requests);
            db::with_database(backend, &pg_admin, async |url| {
                dashboard::measure(url, backend, leads, requests).await
            })
            .await?;
        }
    }
    Ok(())
}
