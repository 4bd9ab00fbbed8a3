//! Reports' aggregates read from tallies the database keeps as rows change (the
//! `*_dashboard_tallies.sql` migrations): leads per status, outcome and attempts; calls per
//! status and intent with what they consumed; turns per latency value. A report therefore costs
//! O(campaigns × distinct values), whatever the number of leads, calls or turns.
//!
//! Both backends read `tallies + deltas` with the same SQL: on SQLite, triggers update the
//! tallies in place (one writer at a time) and the deltas stay empty; on PostgreSQL, triggers
//! append deltas and [`OpsStore::fold_tallies`](super::OpsStore::fold_tallies) moves them into
//! the tallies now and then ([`fold_loop`]). Rows are summed here, in Rust, into the
//! shapes the reports had when they were counted from the tables.

use std::collections::BTreeMap;

use super::{CallStats, CallTotals, LatencyKind, LeadStats, LeadStatus, Percentiles, StoreError};

/// `(campaign_id, status, outcome, attempts, n)`; outcome `''` for none.
pub type LeadTallyRow = (i64, String, String, i32, i64);

/// `(status, intent, total, answered, dialled, dialled_answered, talk_secs, talked_calls,
/// carrier_minutes, stt_secs, llm_prompt_tokens, llm_completion_tokens, tts_characters)`.
pub type CallTallyRow = (
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// `(kind, ms, n)`, ordered by kind then ms.
pub type LatencyTallyRow = (String, i32, i64);

/// Leads of the rows given (one campaign's, or all).
pub fn lead_stats<'a>(
    rows: impl IntoIterator<Item = &'a LeadTallyRow>,
) -> Result<LeadStats, StoreError> {
    let mut by_status: BTreeMap<&str, i64> = BTreeMap::new();
    let mut outcomes: BTreeMap<&str, i64> = BTreeMap::new();
    let mut attempts: BTreeMap<i32, i64> = BTreeMap::new();
    for (_, status, outcome, tries, n) in rows {
        *by_status.entry(status).or_default() += n;
        if !outcome.is_empty() {
            *outcomes.entry(outcome).or_default() += n;
        }
        *attempts.entry(*tries).or_default() += n;
    }
    let by_status = by_status
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(s, n)| {
            s.parse::<LeadStatus>()
                .map(|s| (s, n))
                .map_err(StoreError::Corrupt)
        })
        .collect::<Result<_, _>>()?;
    Ok(LeadStats {
        by_status,
        outcomes: outcomes
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|(o, n)| (o.to_string(), n))
            .collect(),
        attempts: attempts.into_iter().filter(|(_, n)| *n != 0).collect(),
    })
}

/// Calls of the rows given.
pub fn call_stats(rows: &[CallTallyRow]) -> CallStats {
    let mut totals = CallTotals::default();
    let mut by_status: BTreeMap<&str, i64> = BTreeMap::new();
    let mut intents: BTreeMap<&str, i64> = BTreeMap::new();
    for r in rows {
        totals.total += r.2;
        totals.answered += r.3;
        totals.dialled += r.4;
        totals.dialled_answered += r.5;
        totals.talk_secs += r.6;
        totals.talked_calls += r.7;
        totals.carrier_minutes += r.8;
        totals.stt_secs += r.9;
        totals.llm_prompt_tokens += r.10;
        totals.llm_completion_tokens += r.11;
        totals.tts_characters += r.12;
        *by_status.entry(&r.0).or_default() += r.2;
        if !r.1.is_empty() {
            *intents.entry(&r.1).or_default() += r.2;
        }
    }
    let keep = |m: BTreeMap<&str, i64>| -> Vec<(String, i64)> {
        m.into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|(k, n)| (k.to_string(), n))
            .collect()
    };
    CallStats {
        totals,
        by_status: keep(by_status),
        intents: keep(intents),
    }
}

/// Nearest-rank p50 and p95 of each latency kind, from its values' counts.
pub fn latency_stats(rows: &[LatencyTallyRow]) -> Vec<(LatencyKind, Percentiles)> {
    LatencyKind::ALL
        .iter()
        .map(|&kind| {
            let values: Vec<(i32, i64)> = rows
                .iter()
                .filter(|(k, _, n)| k == kind.as_str() && *n > 0)
                .map(|(_, ms, n)| (*ms, *n))
                .collect();
            let count: i64 = values.iter().map(|(_, n)| n).sum();
            let at = |p: u32| -> Option<i32> {
                if count == 0 {
                    return None;
                }
                let rank = super::nearest_rank(p, count);
                let mut seen = 0;
                values.iter().find_map(|(ms, n)| {
                    seen += n;
                    (seen >= rank).then_some(*ms)
                })
            };
            (
                kind,
                Percentiles {
                    count,
                    p50: at(50),
                    p95: at(95),
                },
            )
        })
        .collect()
}

/// `lead_tally_rows`, an inherent helper of each backend (the trait methods above share it).
macro_rules! lead_tally_rows {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn lead_tally_rows(
                &self,
                campaign_id: Option<i64>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::tallies::LeadTallyRow>> {
                Ok(sqlx::query_as::<$db, $crate::store::tallies::LeadTallyRow>(
                    "SELECT campaign_id, status, outcome, attempts, CAST(SUM(n) AS BIGINT) \
                     FROM (SELECT campaign_id, status, outcome, attempts, n FROM lead_tallies \
                           WHERE ($1 IS NULL OR campaign_id = $1) \
                           UNION ALL \
                           SELECT campaign_id, status, outcome, attempts, n FROM lead_tally_deltas \
                           WHERE ($1 IS NULL OR campaign_id = $1)) t \
                     GROUP BY campaign_id, status, outcome, attempts HAVING SUM(n) <> 0",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

/// Folds the deltas every `every` until `shutdown` (spawned by `startup::run`). A failed fold
/// is logged and retried at the next tick: reads stay right meanwhile.
pub async fn fold_loop(
    store: std::sync::Arc<dyn super::Store>,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let fold = tokio::time::timeout(
            every.max(std::time::Duration::from_secs(10)),
            store.fold_tallies(),
        );
        match fold.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "folding the report tallies failed"),
            Err(_) => tracing::warn!("folding the report tallies timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_walk_the_counts_like_nearest_rank_over_sorted_values() {
        // Values 100 ×3, 200 ×1, 900 ×1: sorted 100 100 100 200 900.
        let rows = vec![
            ("stt".to_string(), 100, 3),
            ("stt".to_string(), 200, 1),
            ("stt".to_string(), 900, 1),
            ("added".to_string(), 5, 0),
        ];
        let stats = latency_stats(&rows);
        let stt = stats
            .iter()
            .find(|(k, _)| *k == LatencyKind::Stt)
            .unwrap()
            .1;
        assert_eq!((stt.count, stt.p50, stt.p95), (5, Some(100), Some(900)));
        let added = stats
            .iter()
            .find(|(k, _)| *k == LatencyKind::Added)
            .unwrap()
            .1;
        assert_eq!((added.count, added.p50), (0, None));
    }

    #[test]
    fn lead_rows_sum_per_dimension_and_drop_zeros() {
        let rows: Vec<LeadTallyRow> = vec![
            (1, "pending".into(), "".into(), 0, 5),
            (1, "completed".into(), "interested".into(), 1, 2),
            (2, "completed".into(), "interested".into(), 2, 1),
            (2, "retry".into(), "".into(), 1, 0),
        ];
        let s = lead_stats(&rows).unwrap();
        assert_eq!(
            s.by_status,
            [(LeadStatus::Completed, 3), (LeadStatus::Pending, 5)]
        );
        assert_eq!(s.outcomes, [("interested".to_string(), 3)]);
        assert_eq!(s.attempts, [(0, 5), (1, 2), (2, 1)]);
    }
}
