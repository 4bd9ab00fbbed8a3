//! Latency of the dialer's claim (`Store::claim_leads`) with a large running campaign.
//!
//! The request is the one the scheduler builds for a tick with every slot free: the default
//! caps (10 calls per campaign, 10 in all) and a pacing budget of 10, with the scheduler's own
//! calling-window check, at a time inside the window (a weekday noon in India). After each timed
//! claim the claimed calls end (untimed, through the store like a settle), so every claim finds
//! its slots free again. Two cases:
//! - `all due`: every lead pending and due, as right after an import;
//! - `1 in 20 due`: the rest are retries due next month, so the due-leads index must skip them.

use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeZone, Utc, Weekday};

use super::BenchResult;
use super::seed::Seeder;
use crate::config::Settings;
use crate::dialer::window::{Check, Window};
use crate::store::{
    Backend, CallStatus, CampaignStatus, CarrierUpdate, ClaimRequest, Lead, LeadStatus, LeadUpdate,
    Store,
};

/// Untimed claims before each case, so caches and prepared statements are warm.
const WARM_UP: u32 = 20;
/// In the second case, one lead in this many stays due.
const DUE_ONE_IN: i64 = 20;

/// One lead in this many has a finished call already (a campaign in its second day).
const HISTORY_ONE_IN: i64 = 10;

/// Leads each claim takes.
const LIMIT: i64 = 10;

/// The fewest leads for `iterations` claims per case: the second case must still find due leads
/// in its last claim, and only one lead in [`DUE_ONE_IN`] is due there.
pub fn leads_needed(iterations: u32) -> u64 {
    u64::from(WARM_UP + iterations) * LIMIT as u64 * DUE_ONE_IN as u64 * 11 / 10
}

#[derive(Debug)]
pub struct ClaimFigure {
    pub case: &'static str,
    pub samples: Vec<Duration>,
    pub claimed: u64,
}

impl ClaimFigure {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

/// Loads `leads` leads, then times `iterations` claims in each case, printing a row per case.
pub async fn measure(
    url: String,
    backend: Backend,
    leads: u64,
    iterations: u32,
) -> BenchResult<()> {
    let store = crate::store::connect(&url).await?;
    let settings = Settings::for_database(&url);
    let mut spec = crate::campaigns::default_spec(&settings);
    spec.name = "bench claim".into();
    let imported_at = Utc::now();
    let campaign = store.create_campaign(&spec, imported_at).await?;
    let seeder = Seeder::connect(&url).await?;
    let started = Instant::now();
    seeder.load(campaign.id, leads, imported_at).await?;
    seeder
        .history(
            campaign.id,
            HISTORY_ONE_IN,
            imported_at - chrono::Duration::days(1),
        )
        .await?;
    eprintln!(
        "  loaded {leads} leads in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    store
        .transition_campaign(
            campaign.id,
            &[CampaignStatus::Draft],
            CampaignStatus::Running,
            None,
            imported_at,
        )
        .await?;

    let now = weekday_noon_in_india_after(imported_at + chrono::Duration::days(1));
    let request = ClaimRequest {
        campaign_id: campaign.id,
        now,
        campaign_cap: campaign.spec.max_concurrent_calls as i64,
        global_cap: settings.max_concurrent_calls as i64,
        limit: LIMIT,
    };
    let window_spec = campaign.spec.clone();
    // The scheduler's window check, verbatim.
    let window = move |lead: &Lead| match Window::for_lead(
        &window_spec.calling_window,
        &window_spec.timezone,
        lead.timezone.as_deref(),
    )
    .check(now)
    {
        Check::Open => Ok(()),
        Check::OpensAt(t) => Err(t),
        Check::Never => Err(now + chrono::Duration::days(1)),
    };

    let figure = run_case("all due", store.as_ref(), &request, &window, iterations).await?;
    print_row(backend, &figure);
    seeder
        .defer_most(campaign.id, DUE_ONE_IN, now + chrono::Duration::days(30))
        .await?;
    let figure = run_case("1 in 20 due", store.as_ref(), &request, &window, iterations).await?;
    print_row(backend, &figure);
    seeder.close().await;
    Ok(())
}

async fn run_case(
    case: &'static str,
    store: &dyn Store,
    request: &ClaimRequest,
    window: &crate::store::WindowFn,
    iterations: u32,
) -> BenchResult<ClaimFigure> {
    let mut figure = ClaimFigure {
        case,
        samples: Vec::with_capacity(iterations as usize),
        claimed: 0,
    };
    for i in 0..WARM_UP + iterations {
        let started = Instant::now();
        let outcome = store.claim_leads(request, window).await?;
        let elapsed = started.elapsed();
        if outcome.claimed.len() as i64 != request.limit {
            return Err(format!(
                "{case}: claim {i} took {} leads, expected {} (deferred {}, do-not-call {})",
                outcome.claimed.len(),
                request.limit,
                outcome.deferred,
                outcome.do_not_call
            )
            .into());
        }
        if i >= WARM_UP {
            figure.samples.push(elapsed);
            figure.claimed += outcome.claimed.len() as u64;
        }
        for claimed in outcome.claimed {
            end_call(store, claimed.call_id, claimed.lead.id, request.now).await?;
        }
    }
    Ok(figure)
}

/// The call is over and the lead done: frees the slot the claim took.
async fn end_call(
    store: &dyn Store,
    call_id: i64,
    lead_id: i64,
    now: DateTime<Utc>,
) -> BenchResult<()> {
    let call = CarrierUpdate {
        status: Some(CallStatus::Completed),
        ended_at: Some(now),
        ..Default::default()
    };
    store.update_call_carrier(call_id, &call, now).await?;
    let lead = LeadUpdate {
        status: LeadStatus::Completed,
        next_attempt_at: None,
        last_result: Some("completed".into()),
        outcome: None,
        callback_at: None,
        refund_attempt: false,
    };
    store.update_lead(lead_id, &lead, now).await?;
    Ok(())
}

/// The first Wednesday at 12:00 India time at or after `t`: inside the default calling window.
fn weekday_noon_in_india_after(t: DateTime<Utc>) -> DateTime<Utc> {
    let mut day = t.with_timezone(&chrono_tz::Asia::Kolkata).date_naive();
    while day.weekday() != Weekday::Wed {
        day = day.succ_opt().expect("a date after t");
    }
    chrono_tz::Asia::Kolkata
        .from_local_datetime(&day.and_hms_opt(12, 0, 0).expect("noon"))
        .single()
        .expect("India has no DST")
        .with_timezone(&Utc)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

pub fn print_header(leads: u64) {
    println!();
    println!(
        "Claim: Store::claim_leads, {leads} leads in one running campaign, caps 10/10, limit {LIMIT} (ms)"
    );
    println!(
        "{:<10} {:<13} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "backend", "case", "claims", "p50", "p99", "max", "leads/s"
    );
}

fn print_row(backend: Backend, f: &ClaimFigure) {
    let total: Duration = f.samples.iter().sum();
    println!(
        "{:<10} {:<13} {:>7} {:>9} {:>9} {:>9} {:>9.0}",
        backend.as_str(),
        f.case,
        f.samples.len(),
        ms(f.percentile(50.0)),
        ms(f.percentile(99.0)),
        ms(f.percentile(100.0)),
        f.claimed as f64 / total.as_secs_f64(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_time_is_a_wednesday_noon_in_india() {
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 20, 0, 0).unwrap(); // Thu 01:30 IST Fri
        let noon = weekday_noon_in_india_after(t);
        assert_eq!(noon, Utc.with_ymd_and_hms(2026, 12, 2, 6, 30, 0).unwrap());
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let f = ClaimFigure {
            case: "t",
            samples: (1..=100).rev().map(Duration::from_millis).collect(),
            claimed: 0,
        };
        assert_eq!(f.percentile(50.0), Duration::from_millis(50));
        assert_eq!(f.percentile(99.0), Duration::from_millis(99));
        assert_eq!(f.percentile(100.0), Duration::from_millis(100));
    }
}
