//! The dialer against the Exotel emulator: windows, caps, retries, pacing, errors, reconciliation.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use voice_agent::config::{Secret, Settings};
use voice_agent::dialer::Dialer;
use voice_agent::emulators::Running;
use voice_agent::emulators::callee::CalleeOutcome;
use voice_agent::emulators::exotel::{ExotelConfig, ExotelHandle};

use crate::helpers::{Backend, TestApp, eventually, spawn_app_with};

pub struct Rig {
    pub app: TestApp,
    pub exotel: ExotelHandle,
    pub dialer: Dialer,
    _emulator: Running,
}

/// 2026-11-25 (a Wednesday) at `hh:mm` India time.
impl Rig {
    /// One dialer tick at the service's clock.
    pub async fn tick(&self) -> voice_agent::dialer::Outcome {
        self.dialer
            .run_once(self.app.state.clock.now())
            .await
            .unwrap()
    }
}

pub fn ist(day: u32, hh: u32, mm: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Kolkata
        .with_ymd_and_hms(2026, 11, day, hh, mm, 0)
        .unwrap()
        .with_timezone(&Utc)
}

pub fn exotel_settings(s: &mut Settings, emulator: &Running, config: &ExotelConfig) {
    s.exotel.account_sid = Some(config.account_sid.clone());
    s.exotel.api_key = Some(Secret::new(config.api_key.clone()));
    s.exotel.api_token = Some(Secret::new(config.api_token.clone()));
    s.exotel.virtual_number = Some("+918044556677".into());
    s.exotel.exophlo_id = Some("424242".into());
    s.exotel.base_url = emulator.http_url();
    s.dialer.rate_per_sec = 1000.0;
}

pub async fn rig(
    backend: Backend,
    config: ExotelConfig,
    tweak: impl FnOnce(&mut Settings),
) -> Option<Rig> {
    let (emulator, exotel) =
        voice_agent::emulators::exotel::spawn(config.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let app = spawn_app_with(backend, |s| {
        exotel_settings(s, &emulator, &config);
        // Webhook receivers in these tests listen on loopback.
        s.allow_private_urls = true;
        tweak(s);
    })
    .await?;
    app.state.clock.set(ist(25, 12, 0));
    let dialer = Dialer::new(&app.state);
    Some(Rig {
        app,
        exotel,
        dialer,
        _emulator: emulator,
    })
}

pub fn fast() -> ExotelConfig {
    ExotelConfig {
        ring_delay: Duration::from_millis(20),
        talk_time: Duration::from_millis(30),
        ..ExotelConfig::default()
    }
}

/// Creates a running campaign with `body` settings and the given CSV; returns its id.
pub async fn running_campaign(app: &TestApp, body: Value, csv: &str) -> i64 {
    let res = app.post_json("/campaigns", body).await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let report = app.upload_report(id, csv).await;
    assert!(report["imported"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        app.post(&format!("/campaigns/{id}/start")).await.status(),
        200
    );
    id
}

/// An Exotel that places calls but never calls back, so the test sends the status webhooks.
pub fn silent() -> ExotelConfig {
    ExotelConfig {
        ring_delay: Duration::from_secs(600),
        send_callbacks: false,
        ..ExotelConfig::default()
    }
}

/// A running campaign with `body` settings and one lead from `csv`, dialled by one tick:
/// (campaign, call id, carrier sid, status webhook URL).
pub async fn dialled(rig: &Rig, body: Value, csv: &str) -> (i64, i64, String, String) {
    let id = running_campaign(&rig.app, body, csv).await;
    rig.tick().await;
    let lead = &leads(&rig.app, id).await[0];
    let detail: Value = rig.app.get_json(&format!("/leads/{}", lead["id"])).await;
    let call = &detail["calls"][0];
    (
        id,
        call["id"].as_i64().unwrap(),
        call["carrier_sid"].as_str().unwrap().to_string(),
        rig.app.status_webhook_url(),
    )
}

pub async fn leads(app: &TestApp, campaign: i64) -> Vec<Value> {
    let page: Value = app
        .get_json(&format!("/campaigns/{campaign}/leads?limit=1000"))
        .await;
    page["leads"].as_array().unwrap().clone()
}

async fn lead_status(app: &TestApp, campaign: i64, phone: &str) -> Value {
    leads(app, campaign)
        .await
        .into_iter()
        .find(|l| l["phone"] == phone)
        .unwrap_or_else(|| panic!("no lead {phone}"))
}

crate::on_each_backend!(
    call_is_placed_with_exotels_exact_form_and_auth,
    direct_stream_mode_sends_stream_url,
    answered_call_completes_lead_and_campaign,
    no_answer_is_retried_after_its_delay_until_max_attempts,
    busy_and_failed_use_their_own_delays,
    sunday_and_after_hours_leads_wait_without_failing,
    lead_time_zone_decides_the_window,
    do_not_call_numbers_are_never_dialled,
    caps_limit_concurrent_calls_per_campaign_and_globally,
    pacing_limits_calls_per_tick,
    auth_error_pauses_campaign_without_consuming_attempts,
    rate_limit_backs_off_without_consuming_attempts,
    server_error_retries_later_and_bad_number_fails_the_lead,
    missing_exotel_configuration_pauses_with_the_variable_named,
    lost_webhooks_are_settled_by_the_reconciler,
    restart_after_crash_loses_no_lead_and_dials_none_twice,
);

async fn call_is_placed_with_exotels_exact_form_and_auth(backend: Backend) {
    // An Exotel that never calls back, so the call is still `dialing` when it is read.
    let Some(rig) = rig(backend, silent(), |_| {}).await else {
        return;
    };
    let id = running_campaign(&rig.app, json!({"name": "Form"}), "phone\n98765 43210\n").await;
    let out = rig.tick().await;
    assert_eq!((out.claimed, out.dialed), (1, 1));

    let reqs = rig.exotel.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    let basic = base64::engine::general_purpose::STANDARD.encode("emulated-key:emulated-token");
    assert_eq!(
        r.authorization.as_deref(),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(r.get("From"), Some("+919876543210"));
    assert_eq!(r.get("CallerId"), Some("+918044556677"));
    assert_eq!(r.get("CallType"), Some("trans"));
    assert_eq!(
        r.get("Url"),
        Some("http://my.exotel.com/emulated-account/exoml/start_voice/424242")
    );
    assert_eq!(r.get("StreamUrl"), None);
    assert_eq!(r.get("TimeOut"), Some("30"));
    assert_eq!(r.get("TimeLimit"), Some("1800"));
    assert_eq!(r.get("Record"), Some("false"));
    assert_eq!(r.get("StatusCallbackContentType"), Some("application/json"));
    assert_eq!(r.all("StatusCallbackEvents[]"), ["terminal", "answered"]);
    let callback = r.get("StatusCallback").unwrap();
    let secret = rig.app.state.settings.webhook_secret.expose();
    assert_eq!(
        callback,
        format!("{}/webhooks/exotel/status?secret={secret}", rig.app.base)
    );

    let lead = &leads(&rig.app, id).await[0];
    assert_eq!(lead["status"], "in_progress");
    assert_eq!(lead["attempts"], 1);
    let detail: Value = rig.app.get_json(&format!("/leads/{}", lead["id"])).await;
    let call = &detail["calls"][0];
    assert_eq!(call["status"], "dialing");
    assert!(call["carrier_sid"].as_str().unwrap().starts_with("emu"));
    assert_eq!(r.get("CustomField"), Some(call["id"].to_string().as_str()));
}

async fn direct_stream_mode_sends_stream_url(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |s| s.dialer.direct_stream = true).await else {
        return;
    };
    running_campaign(&rig.app, json!({"name": "Direct"}), "phone\n9876543210\n").await;
    rig.tick().await;
    let r = &rig.exotel.requests()[0];
    assert_eq!(r.get("Url"), None);
    assert_eq!(r.get("StreamType"), Some("bidirectional"));
    let stream = r.get("StreamUrl").unwrap();
    assert!(
        stream.starts_with(&rig.app.base.replacen("http", "ws", 1)),
        "{stream}"
    );
    assert!(stream.contains("/media?call_id="), "{stream}");
    assert!(stream.contains("secret="), "{stream}");
}

async fn answered_call_completes_lead_and_campaign(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |_| {}).await else {
        return;
    };
    let id = running_campaign(&rig.app, json!({"name": "Answered"}), "phone\n9876543210\n").await;
    rig.tick().await;
    let lead = eventually(10, "lead completed", || async {
        let l = lead_status(&rig.app, id, "+919876543210").await;
        (l["status"] == "completed").then_some(l)
    })
    .await;
    assert_eq!(lead["last_result"], "answered");
    let detail: Value = rig.app.get_json(&format!("/leads/{}", lead["id"])).await;
    let call = &detail["calls"][0];
    assert_eq!(call["status"], "completed");
    assert_eq!(call["answered_by"], "Human");
    // Exotel writes its times in IST without a zone: read back, they are the real instants.
    for field in ["answered_at", "ended_at"] {
        let at: chrono::DateTime<chrono::Utc> = call[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing: {call}"))
            .parse()
            .unwrap();
        let off = (chrono::Utc::now() - at).num_seconds().abs();
        assert!(off < 120, "{field} is {off} s away from now: {call}");
    }
    let out = rig.tick().await;
    assert_eq!(out.completed_campaigns, [id]);
    let c: Value = rig.app.get_json(&format!("/campaigns/{id}")).await;
    assert_eq!(c["status"], "completed");
}

async fn no_answer_is_retried_after_its_delay_until_max_attempts(backend: Backend) {
    let mut cfg = fast();
    cfg.default_outcome = CalleeOutcome::NoAnswer;
    let Some(rig) = rig(backend, cfg, |_| {}).await else {
        return;
    };
    let id = running_campaign(
        &rig.app,
        json!({"name": "Retry", "max_attempts": 2, "retry_delays": {"no_answer": [30]}}),
        "phone\n9876543210\n",
    )
    .await;
    let clock = &rig.app.state.clock;
    rig.dialer.run_once(clock.now()).await.unwrap();
    let lead = eventually(10, "retry scheduled", || async {
        let l = lead_status(&rig.app, id, "+919876543210").await;
        (l["status"] == "retry").then_some(l)
    })
    .await;
    assert_eq!(lead["last_result"], "no-answer");
    let next: DateTime<Utc> = lead["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = (next - clock.now()).num_minutes();
    assert!((29..=30).contains(&wait), "retry in {wait} min");

    // Not due yet: nothing dialled.
    clock.advance(chrono::Duration::minutes(20));
    assert_eq!(rig.dialer.run_once(clock.now()).await.unwrap().claimed, 0);
    clock.advance(chrono::Duration::minutes(11));
    assert_eq!(rig.dialer.run_once(clock.now()).await.unwrap().claimed, 1);
    let lead = eventually(10, "lead failed", || async {
        let l = lead_status(&rig.app, id, "+919876543210").await;
        (l["status"] == "failed").then_some(l)
    })
    .await;
    assert_eq!(lead["attempts"], 2);
    assert!(lead["next_attempt_at"].is_null());
    assert_eq!(rig.exotel.dialled().len(), 2);
}

async fn busy_and_failed_use_their_own_delays(backend: Backend) {
    let mut cfg = fast();
    cfg.outcomes = HashMap::from([
        ("+919876543210".to_string(), CalleeOutcome::Busy),
        ("+919876543211".to_string(), CalleeOutcome::Failed),
    ]);
    let Some(rig) = rig(backend, cfg, |_| {}).await else {
        return;
    };
    let id = running_campaign(
        &rig.app,
        json!({"name": "Delays", "retry_delays": {"busy": [15, 45], "failed": 60}}),
        "phone\n9876543210\n9876543211\n",
    )
    .await;
    let now = rig.app.state.clock.now();
    rig.dialer.run_once(now).await.unwrap();
    for (phone, result, minutes) in [
        ("+919876543210", "busy", 15),
        ("+919876543211", "failed", 60),
    ] {
        let lead = eventually(10, "retry", || async {
            let l = lead_status(&rig.app, id, phone).await;
            (l["status"] == "retry").then_some(l)
        })
        .await;
        assert_eq!(lead["last_result"], result);
        let next: DateTime<Utc> = lead["next_attempt_at"].as_str().unwrap().parse().unwrap();
        let wait = (next - now).num_minutes();
        assert!((minutes..=minutes + 1).contains(&wait), "{result}: {wait}");
    }
}

async fn sunday_and_after_hours_leads_wait_without_failing(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |_| {}).await else {
        return;
    };
    let id = running_campaign(&rig.app, json!({"name": "Sunday"}), "phone\n9876543210\n").await;
    let clock = &rig.app.state.clock;
    clock.set(ist(29, 12, 0)); // Sunday
    let out = rig.dialer.run_once(clock.now()).await.unwrap();
    assert_eq!((out.claimed, out.deferred), (0, 1));
    let lead = lead_status(&rig.app, id, "+919876543210").await;
    assert_eq!(lead["status"], "pending");
    let next: DateTime<Utc> = lead["next_attempt_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(next, ist(30, 10, 0));

    clock.set(ist(30, 9, 59));
    assert_eq!(rig.dialer.run_once(clock.now()).await.unwrap().claimed, 0);
    clock.set(ist(30, 10, 0));
    assert_eq!(rig.dialer.run_once(clock.now()).await.unwrap().claimed, 1);
    assert_eq!(rig.exotel.requests().len(), 1);
}

async fn lead_time_zone_decides_the_window(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |_| {}).await else {
        return;
    };
    let id = running_campaign(
        &rig.app,
        json!({"name": "Zones"}),
        "phone,timezone\n9876543210,\n9876543211,Asia/Dubai\n",
    )
    .await;
    // 19:30 in India, 18:00 in Dubai.
    rig.app.state.clock.set(ist(25, 19, 30));
    let out = rig.tick().await;
    assert_eq!((out.claimed, out.deferred), (1, 1));
    assert_eq!(rig.exotel.dialled(), ["+919876543211"]);
    let india = lead_status(&rig.app, id, "+919876543210").await;
    let next: DateTime<Utc> = india["next_attempt_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(next, ist(26, 10, 0));
}

async fn do_not_call_numbers_are_never_dialled(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |_| {}).await else {
        return;
    };
    let id = running_campaign(
        &rig.app,
        json!({"name": "DNC"}),
        "phone\n9876543210\n9876543211\n",
    )
    .await;
    rig.app
        .post_json("/dnc", json!({"phone": "9876543211"}))
        .await;
    let out = rig.tick().await;
    assert_eq!(out.claimed, 1);
    assert_eq!(rig.exotel.dialled(), ["+919876543210"]);
    assert_eq!(
        lead_status(&rig.app, id, "+919876543211").await["status"],
        "do_not_call"
    );
}

async fn caps_limit_concurrent_calls_per_campaign_and_globally(backend: Backend) {
    let mut cfg = fast();
    cfg.talk_time = Duration::from_secs(30);
    let Some(rig) = rig(backend, cfg, |s| s.max_concurrent_calls = 3).await else {
        return;
    };
    let csv: String = (0..6).fold("phone\n".into(), |acc, i| {
        acc + &format!("98765432{i:02}\n")
    });
    let a = running_campaign(
        &rig.app,
        json!({"name": "A", "max_concurrent_calls": 2}),
        &csv,
    )
    .await;
    let b = running_campaign(&rig.app, json!({"name": "B"}), &csv).await;
    let now = rig.app.state.clock.now();
    let out = rig.dialer.run_once(now).await.unwrap();
    assert_eq!(out.claimed, 3, "2 for A (its cap), 1 for B (global cap 3)");
    assert_eq!(rig.dialer.run_once(now).await.unwrap().claimed, 0);
    assert_eq!(
        rig.app
            .state
            .store
            .count_active_calls(Some(a))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        rig.app
            .state
            .store
            .count_active_calls(Some(b))
            .await
            .unwrap(),
        1
    );
    assert_eq!(rig.exotel.active(), 3);
}

async fn pacing_limits_calls_per_tick(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |s| s.dialer.rate_per_sec = 2.0).await else {
        return;
    };
    let csv: String = (0..6).fold("phone\n".into(), |acc, i| {
        acc + &format!("98765432{i:02}\n")
    });
    running_campaign(&rig.app, json!({"name": "Paced"}), &csv).await;
    let now = rig.app.state.clock.now();
    assert_eq!(rig.dialer.run_once(now).await.unwrap().claimed, 2);
    assert_eq!(
        rig.dialer
            .run_once(now + chrono::Duration::milliseconds(100))
            .await
            .unwrap()
            .claimed,
        0
    );
    assert_eq!(
        rig.dialer
            .run_once(now + chrono::Duration::milliseconds(2100))
            .await
            .unwrap()
            .claimed,
        2
    );
}

async fn auth_error_pauses_campaign_without_consuming_attempts(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |_| {}).await else {
        return;
    };
    let id = running_campaign(&rig.app, json!({"name": "Auth"}), "phone\n9876543210\n").await;
    rig.exotel.inject_faults(&[401]);
    let out = rig.tick().await;
    assert_eq!((out.released, out.paused_campaigns.clone()), (1, vec![id]));
    let c: Value = rig.app.get_json(&format!("/campaigns/{id}")).await;
    assert_eq!(c["status"], "paused");
    assert!(c["status_reason"].as_str().unwrap().contains("401"), "{c}");
    let lead = lead_status(&rig.app, id, "+919876543210").await;
    assert_eq!(
        (lead["status"].as_str(), lead["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
    // After the operator fixes it and resumes, the lead is dialled.
    rig.app.post(&format!("/campaigns/{id}/resume")).await;
    let c: Value = rig.app.get_json(&format!("/campaigns/{id}")).await;
    assert!(c["status_reason"].is_null());
    assert_eq!(rig.tick().await.dialed, 1);
}

async fn rate_limit_backs_off_without_consuming_attempts(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |_| {}).await else {
        return;
    };
    let id = running_campaign(&rig.app, json!({"name": "429"}), "phone\n9876543210\n").await;
    rig.exotel.inject_faults(&[429]);
    let now = rig.app.state.clock.now();
    assert_eq!(rig.dialer.run_once(now).await.unwrap().released, 1);
    let lead = lead_status(&rig.app, id, "+919876543210").await;
    assert_eq!(lead["attempts"], 0);
    assert_eq!(lead["status"], "pending");
    // Backing off: nothing is tried for the next 30 s.
    let soon = now + chrono::Duration::seconds(10);
    assert_eq!(rig.dialer.run_once(soon).await.unwrap().claimed, 0);
    let later = now + chrono::Duration::seconds(31);
    assert_eq!(rig.dialer.run_once(later).await.unwrap().dialed, 1);
}

async fn server_error_retries_later_and_bad_number_fails_the_lead(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |_| {}).await else {
        return;
    };
    let id = running_campaign(&rig.app, json!({"name": "5xx"}), "phone\n9876543210\n").await;
    rig.exotel.inject_faults(&[503]);
    let now = rig.app.state.clock.now();
    assert_eq!(rig.dialer.run_once(now).await.unwrap().released, 1);
    let lead = lead_status(&rig.app, id, "+919876543210").await;
    assert_eq!(lead["attempts"], 0);
    assert_eq!(
        rig.dialer
            .run_once(now + chrono::Duration::seconds(5))
            .await
            .unwrap()
            .claimed,
        0
    );

    rig.exotel.inject_faults(&[400]);
    let out = rig
        .dialer
        .run_once(now + chrono::Duration::seconds(61))
        .await
        .unwrap();
    assert_eq!(out.failed, 1);
    let lead = lead_status(&rig.app, id, "+919876543210").await;
    assert_eq!(lead["status"], "failed");
    assert!(
        lead["last_result"].as_str().unwrap().contains("rejected"),
        "{lead}"
    );
}

async fn missing_exotel_configuration_pauses_with_the_variable_named(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |s| s.exotel.account_sid = None).await else {
        return;
    };
    let id = running_campaign(
        &rig.app,
        json!({"name": "Unconfigured"}),
        "phone\n9876543210\n",
    )
    .await;
    let out = rig.tick().await;
    assert_eq!(out.paused_campaigns, [id]);
    let c: Value = rig.app.get_json(&format!("/campaigns/{id}")).await;
    assert!(
        c["status_reason"]
            .as_str()
            .unwrap()
            .contains("EXOTEL_ACCOUNT_SID"),
        "{c}"
    );
    assert_eq!(
        lead_status(&rig.app, id, "+919876543210").await["attempts"],
        0
    );
}

async fn lost_webhooks_are_settled_by_the_reconciler(backend: Backend) {
    let mut cfg = fast();
    cfg.send_callbacks = false;
    cfg.outcomes = HashMap::from([("+919876543211".to_string(), CalleeOutcome::Busy)]);
    let Some(rig) = rig(backend, cfg, |_| {}).await else {
        return;
    };
    let id = running_campaign(
        &rig.app,
        json!({"name": "Lost"}),
        "phone\n9876543210\n9876543211\n",
    )
    .await;
    let now = rig.app.state.clock.now();
    rig.dialer.run_once(now).await.unwrap();
    eventually(10, "calls ended at the carrier", || async {
        (rig.exotel.active() == 0).then_some(())
    })
    .await;
    assert_eq!(
        rig.app.state.store.count_active_calls(None).await.unwrap(),
        2,
        "no webhook came"
    );
    let r = rig
        .dialer
        .reconcile(
            now + chrono::Duration::minutes(20),
            chrono::Duration::minutes(15),
        )
        .await
        .unwrap();
    assert_eq!((r.checked, r.settled), (2, 2));
    assert_eq!(
        rig.app.state.store.count_active_calls(None).await.unwrap(),
        0
    );
    assert_eq!(
        lead_status(&rig.app, id, "+919876543210").await["status"],
        "completed"
    );
    assert_eq!(
        lead_status(&rig.app, id, "+919876543211").await["status"],
        "retry"
    );
}

async fn restart_after_crash_loses_no_lead_and_dials_none_twice(backend: Backend) {
    let Some(rig) = rig(backend, fast(), |_| {}).await else {
        return;
    };
    let csv: String = (0..8).fold("phone\n".into(), |acc, i| {
        acc + &format!("98765432{i:02}\n")
    });
    let id = running_campaign(&rig.app, json!({"name": "Crash"}), &csv).await;
    let store = rig.app.state.store.clone();
    let now = rig.app.state.clock.now();
    // The process "dies" right after claiming 3 leads, before dialling them.
    let req = voice_agent::store::ClaimRequest {
        campaign_id: id,
        now,
        campaign_cap: 10,
        global_cap: 10,
        limit: 3,
    };
    let claimed = store.claim_leads(&req, &|_| Ok(())).await.unwrap();
    assert_eq!(claimed.claimed.len(), 3);
    assert_eq!(store.count_active_calls(None).await.unwrap(), 3);

    // A new instance starts: orphans are released without consuming their attempt.
    let restarted = Dialer::new(&rig.app.state);
    let later = now + chrono::Duration::minutes(1);
    let r = restarted
        .reconcile(later, chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!(r.released, 3);
    assert_eq!(
        store.count_active_calls(None).await.unwrap(),
        0,
        "no slot leaked"
    );
    for lead in leads(&rig.app, id).await {
        assert_eq!(lead["attempts"], 0, "{lead}");
    }
    // It then dials everything, each number once.
    for _ in 0..5 {
        restarted.run_once(later).await.unwrap();
    }
    eventually(10, "all leads final", || async {
        leads(&rig.app, id)
            .await
            .iter()
            .all(|l| l["status"] == "completed")
            .then_some(())
    })
    .await;
    let dialled = rig.exotel.dialled();
    let unique: HashSet<&String> = dialled.iter().collect();
    assert_eq!((dialled.len(), unique.len()), (8, 8));
}
