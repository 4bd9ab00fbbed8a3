//! CSV import rows/s, measured as an operator sees it: a multipart upload to
//! `POST /campaigns/{id}/upload-csv` on the real router, served in this process on port 0, from
//! the file on disk to the JSON report (parsing, phone validation, the do-not-call lookup,
//! insertion and the commit all inside the timed span). The HTTP client shares the two cores
//! with the server, as an uploader on the same host would.

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{BenchResult, leads_csv};
use crate::config::Settings;
use crate::startup::AppState;
use crate::store::Backend;

#[derive(Debug)]
pub struct ImportFigure {
    pub rows: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Highest resident set size of this process during the upload (server and client).
    pub peak_rss_kib: Option<u64>,
}

pub async fn measure(database_url: String, rows: u64) -> BenchResult<ImportFigure> {
    let csv_path = std::env::temp_dir().join(format!(
        "va_bench_leads_{}.csv",
        uuid::Uuid::new_v4().simple()
    ));
    let result = measure_file(&database_url, rows, &csv_path).await;
    let _ = std::fs::remove_file(&csv_path);
    result
}

async fn measure_file(
    database_url: &str,
    rows: u64,
    csv_path: &std::path::Path,
) -> BenchResult<ImportFigure> {
    let path = csv_path.to_path_buf();
    let bytes = tokio::task::spawn_blocking(move || leads_csv::write(&path, rows)).await??;

    let mut settings = Settings::for_database(database_url);
    settings.csv_max_bytes = u64::MAX / 2;
    let state = AppState::build(settings).await?;
    let mut spec = crate::campaigns::default_spec(&state.settings);
    spec.name = format!("bench import {rows}");
    let campaign = state
        .store
        .create_campaign(&spec, state.clock.now())
        .await?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "http://{}/campaigns/{}/upload-csv",
        listener.local_addr()?,
        campaign.id
    );
    let stop = CancellationToken::new();
    let server = tokio::spawn(crate::startup::serve(
        listener,
        state.clone(),
        stop.clone().cancelled_owned(),
    ));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;

    reset_peak_rss();
    let started = Instant::now();
    let file = tokio::fs::File::open(csv_path).await?;
    let body =
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024));
    let part = reqwest::multipart::Part::stream_with_length(body, bytes)
        .file_name("leads.csv")
        .mime_str("text/csv")?;
    let response = client
        .post(&url)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await?;
    let status = response.status();
    let report: serde_json::Value = response.json().await?;
    let elapsed = started.elapsed();
    let peak_rss_kib = peak_rss_kib();

    stop.cancel();
    server.await??;
    if !status.is_success() || report["imported"].as_u64() != Some(rows) {
        return Err(format!("import of {rows} rows answered {status}: {report}").into());
    }
    let stored: i64 = state
        .store
        .lead_counts(campaign.id)
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    if stored != rows as i64 {
        return Err(format!("{rows} rows reported imported but {stored} stored").into());
    }
    Ok(ImportFigure {
        rows,
        bytes,
        elapsed,
        peak_rss_kib,
    })
}

/// Resets the kernel's high-water mark of this process's RSS (Linux: `clear_refs` 5), so the
/// peak read after the upload is the upload's, not an earlier run's.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `VmHWM` of this process, in KiB (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn print_header() {
    println!();
    println!("CSV import: multipart POST /campaigns/{{id}}/upload-csv, in-process server");
    println!(
        "{:<10} {:>10} {:>9} {:>9} {:>11} {:>10}",
        "backend", "rows", "MiB", "seconds", "rows/s", "peak RSS"
    );
}

pub fn print_row(backend: Backend, f: &ImportFigure) {
    let secs = f.elapsed.as_secs_f64();
    println!(
        "{:<10} {:>10} {:>9.1} {:>9.2} {:>11.0} {:>10}",
        backend.as_str(),
        f.rows,
        f.bytes as f64 / (1024.0 * 1024.0),
        secs,
        f.rows as f64 / secs,
        f.peak_rss_kib
            .map_or("n/a".to_string(), |k| format!("{} MiB", k / 1024)),
    );
}
