//! The report tallies stay equal to a recount of the rows through every way rows change:
//! import (with duplicates and do-not-call numbers), the dialer's claim and its release, a
//! settle, a do-not-call add, an inbound lead, an outcome, usage, a turn rewritten after a
//! barge-in, a campaign deleted; and, on PostgreSQL, before and after the deltas are folded.

use std::collections::BTreeMap;

use voice_agent::store::{CallStatus, CallUsage, LatencyKind, LeadQuery, Store, TranscriptTurn};

use crate::helpers::{TestApp, final_status};

crate::on_both_backends!(tallies_match_a_recount_through_every_kind_of_change);

/// Lead counts by status, outcome and attempts, recounted from the leads themselves.
async fn recount(
    store: &dyn Store,
    campaigns: &[i64],
) -> (
    BTreeMap<String, i64>,
    BTreeMap<String, i64>,
    BTreeMap<i32, i64>,
    BTreeMap<String, i64>,
    i64,
    i64,
) {
    let (mut status, mut outcome, mut attempts, mut calls) = (
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
    );
    let (mut talk, mut answered) = (0, 0);
    for &c in campaigns {
        let page = store
            .list_leads(
                c,
                &LeadQuery {
                    status: None,
                    limit: 1000,
                    offset: 0,
                },
            )
            .await
            .unwrap();
        for lead in page.leads {
            *status.entry(lead.status.as_str().to_string()).or_insert(0) += 1;
            if let Some(o) = &lead.outcome {
                *outcome.entry(o.clone()).or_insert(0) += 1;
            }
            *attempts.entry(lead.attempts).or_insert(0) += 1;
            for call in store.calls_of_lead(lead.id).await.unwrap() {
                *calls.entry(call.status.as_str().to_string()).or_insert(0) += 1;
                talk += i64::from(call.conversation_duration.unwrap_or(0));
                answered += i64::from(call.answered_at.is_some());
            }
        }
    }
    (status, outcome, attempts, calls, talk, answered)
}

async fn check(app: &TestApp, campaigns: &[i64], step: &str) {
    let store = app.state.store.as_ref();
    let (status, outcome, attempts, calls, talk, answered) = recount(store, campaigns).await;
    let stats = store.lead_stats(None).await.unwrap();
    let got_status: BTreeMap<String, i64> = stats
        .by_status
        .iter()
        .map(|(s, n)| (s.as_str().to_string(), *n))
        .collect();
    assert_eq!(got_status, status, "{step}: leads by status");
    assert_eq!(
        stats.outcomes.into_iter().collect::<BTreeMap<_, _>>(),
        outcome,
        "{step}: outcomes"
    );
    assert_eq!(
        stats.attempts.into_iter().collect::<BTreeMap<_, _>>(),
        attempts,
        "{step}: attempts"
    );
    let call_stats = store.call_stats(None).await.unwrap();
    assert_eq!(
        call_stats.by_status.into_iter().collect::<BTreeMap<_, _>>(),
        calls,
        "{step}: calls"
    );
    assert_eq!(call_stats.totals.talk_secs, talk, "{step}: talk time");
    assert_eq!(call_stats.totals.answered, answered, "{step}: answered");
    // Each campaign alone adds up to the whole.
    let mut total = 0;
    for &c in campaigns {
        total += store
            .lead_stats(Some(c))
            .await
            .unwrap()
            .by_status
            .iter()
            .map(|(_, n)| n)
            .sum::<i64>();
    }
    assert_eq!(total, status.values().sum::<i64>(), "{step}: per campaign");
}

async fn tallies_match_a_recount_through_every_kind_of_change(app: TestApp) {
    let store = app.state.store.as_ref();
    let now = app.state.clock.now();
    store
        .add_dnc("+919800000009", Some("asked"), "api", now)
        .await
        .unwrap();
    let a = app
        .started_campaign(
            "A",
            "phone\n9800000001\n9800000002\n9800000003\n9800000004\n9800000002\n9800000009\n",
        )
        .await;
    let b = app
        .started_campaign("B", "phone\n9800000011\n9800000012\n")
        .await;
    check(&app, &[a, b], "after the imports").await;

    let calls = app.claim_calls(a, 3).await;
    check(&app, &[a, b], "after a claim").await;
    store
        .release_claim(calls[2], "rate limited", now, now)
        .await
        .unwrap();
    store.mark_dialing(calls[0], "CA-t1", now).await.unwrap();
    store.mark_dialing(calls[1], "CA-t2", now).await.unwrap();
    store.stream_started(calls[0], "MZ-t1", now).await.unwrap();
    let q = serde_json::Map::new();
    store
        .record_call_outcome(calls[0], "interested", &q, Some("ok"), now)
        .await
        .unwrap();
    let usage = CallUsage {
        llm_prompt_tokens: 120,
        llm_completion_tokens: 30,
        tts_characters: 400,
    };
    store.add_call_usage(calls[0], &usage).await.unwrap();
    let mut turn = TranscriptTurn::new(calls[0], 1, "agent", "Namaste, this is Asha");
    turn.voice_to_voice_ms = Some(900);
    turn.stt_ms = Some(150);
    store.add_turn(&turn, now).await.unwrap();
    // Barge-in: the turn is rewritten with what was heard (its latencies are kept).
    turn.text = "Namaste".into();
    turn.interrupted = true;
    store.add_turn(&turn, now).await.unwrap();
    app.carrier_ends(
        calls[0],
        &final_status(CallStatus::Completed, 125, now),
        now,
    )
    .await;
    app.carrier_ends(calls[1], &final_status(CallStatus::Busy, 0, now), now)
        .await;
    check(&app, &[a, b], "after the calls").await;
    let latency = store.latency_stats(None).await.unwrap();
    let v2v = latency
        .iter()
        .find(|(k, _)| *k == LatencyKind::VoiceToVoice)
        .unwrap()
        .1;
    assert_eq!(
        (v2v.count, v2v.p50),
        (1, Some(900)),
        "the rewritten turn counts once"
    );
    let totals = store.call_stats(Some(a)).await.unwrap().totals;
    assert_eq!(
        (
            totals.llm_prompt_tokens,
            totals.tts_characters,
            totals.carrier_minutes,
            totals.stt_secs
        ),
        (120, 400, 3, 125)
    );

    store
        .add_dnc("+919800000004", None, "api", now)
        .await
        .unwrap();
    store
        .add_inbound_lead(b, "+919800000077", now)
        .await
        .unwrap();
    store
        .add_inbound_lead(b, "+919800000077", now)
        .await
        .unwrap();
    check(&app, &[a, b], "after a do-not-call add and an inbound lead").await;

    store.fold_tallies().await.unwrap();
    check(&app, &[a, b], "after a fold").await;

    app.post(&format!("/campaigns/{b}/pause")).await;
    assert_eq!(app.delete(&format!("/campaigns/{b}")).await.status(), 204);
    check(&app, &[a], "after a campaign's delete").await;
    store.fold_tallies().await.unwrap();
    check(&app, &[a], "after a fold of a deleted campaign's deltas").await;
    let latency = store.latency_stats(Some(a)).await.unwrap();
    assert_eq!(
        latency
            .iter()
            .find(|(k, _)| *k == LatencyKind::Stt)
            .unwrap()
            .1
            .count,
        1
    );
}
