//! Latency of `GET /dashboard` with a large campaign: 1,000,000 leads (by default) in several
//! states, one in ten with a finished call, one in a hundred calls with four transcript turns
//! carrying latencies. The service's real router answers through the real listener; requests
//! are sent one after another, as one browser tab would.
//!
//! The rows are loaded with the data bench's seeder (SQL the database runs itself), so the
//! tallies the dashboard reads are kept by the same triggers as in production; on PostgreSQL
//! the deltas are folded once after loading, as the service's fold loop would within seconds.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::net::TcpListener;

use super::BenchResult;
use super::seed::Seeder;
use crate::config::Settings;
use crate::store::Backend;

/// Untimed requests first (caches, prepared statements).
const WARM_UP: u32 = 10;

/// Loads `leads` leads and times `requests` dashboards; prints one row.
pub async fn measure(url: String, backend: Backend, leads: u64, requests: u32) -> BenchResult<()> {
    let settings = Settings::for_database(&url);
    let state = crate::startup::AppState::build(settings).await?;
    let store = state.store.clone();
    let mut spec = crate::campaigns::default_spec(&state.settings);
    spec.name = "bench dashboard".into();
    let now = Utc::now();
    let campaign = store.create_campaign(&spec, now).await?;
    let seeder = Seeder::connect(&url).await?;
    let started = Instant::now();
    seeder.load(campaign.id, leads, now).await?;
    seeder
        .history(campaign.id, 10, now - chrono::Duration::days(1))
        .await?;
    seeder
        .defer_most(campaign.id, 3, now + chrono::Duration::days(30))
        .await?;
    seeder.turns(100).await?;
    store.fold_tallies().await?;
    eprintln!(
        "  loaded {leads} leads, their calls and turns in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/dashboard", listener.local_addr()?);
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(crate::startup::serve(listener, state, {
        let stop = stop.clone();
        async move { stop.cancelled().await }
    }));
    let http = reqwest::Client::new();
    let mut samples = Vec::with_capacity(requests as usize);
    let mut body_leads = 0;
    for i in 0..WARM_UP + requests {
        let started = Instant::now();
        let res = http.get(&base).send().await?;
        if res.status() != 200 {
            return Err(format!("GET /dashboard answered {}", res.status()).into());
        }
        let body: serde_json::Value = res.json().await?;
        let elapsed = started.elapsed();
        body_leads = body["totals"]["leads"]["total"].as_u64().unwrap_or(0);
        if i >= WARM_UP {
            samples.push(elapsed);
        }
    }
    stop.cancel();
    let _ = server.await;
    seeder.close().await;
    if body_leads != leads {
        return Err(
            format!("the dashboard counted {body_leads} leads, {leads} were loaded").into(),
        );
    }
    print_row(backend, leads, &mut samples);
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

pub fn print_header() {
    println!();
    println!("Dashboard: GET /dashboard through the listener, one request at a time (ms)");
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "backend", "leads", "requests", "p50", "p95", "max"
    );
}

fn print_row(backend: Backend, leads: u64, samples: &mut [Duration]) {
    samples.sort_unstable();
    let at = |p: f64| {
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1]
    };
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        backend.as_str(),
        leads,
        samples.len(),
        ms(at(50.0)),
        ms(at(95.0)),
        ms(at(100.0)),
    );
}
