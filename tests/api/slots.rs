//! No concurrency slot is held long after its call is over, even when the carrier's final
//! status callback is lost: a call whose media stream ended is settled through the call-details
//! API after `RECONCILE_AFTER_MEDIA_SECS` (60 s in production, 1 s here), not after the 900 s
//! sweep. Real conversations over real sockets against the four emulators. And the carrier's
//! times are on the service's clock when they share one (the demo).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use voice_agent::emulators::callee::Persona;
use voice_agent::emulators::exotel::ExotelConfig;

use crate::dialer::ist;
use crate::helpers::{Backend, spawn_app_with};

const AFTER_MEDIA: Duration = Duration::from_secs(1);

async fn lost_terminal_callbacks_free_every_slot_soon_after_the_call(backend: Backend) {
    let leads = [
        ("9876500001", Persona::HangsUp),
        ("9876500002", Persona::WrongNumber),
        ("9876500003", Persona::NotInterested),
        ("9876500004", Persona::HangsUp),
    ];
    let personas: HashMap<String, Persona> =
        leads.iter().map(|(n, p)| (format!("+91{n}"), *p)).collect();
    let config = ExotelConfig {
        ring_delay: Duration::from_millis(200),
        drop_terminal_callbacks: true,
        personas,
        ..ExotelConfig::default()
    };
    let emulators = voice_agent::demo::start_emulators_with([127, 0, 0, 1], [0; 4], config)
        .await
        .unwrap();
    let Some(app) = spawn_app_with(backend, |s| {
        voice_agent::demo::use_emulators(s, &emulators);
        // The carrier streams to the `StreamUrl` of each request: our /media.
        s.dialer.direct_stream = true;
        s.dialer.tick = Duration::from_millis(200);
        s.dialer.reconcile_after_media = AFTER_MEDIA;
    })
    .await
    else {
        return;
    };
    app.state.clock.set(ist(25, 12, 0));
    let exotel = &emulators.exotel_handle;
    let csv: String = leads
        .iter()
        .fold("phone\n".to_string(), |acc, (n, _)| acc + n + "\n");
    let campaign = app.create_campaign("Lost callbacks").await;
    app.patch_json(
        &format!("/campaigns/{campaign}"),
        json!({"max_concurrent_calls": 2}),
    )
    .await;
    app.upload(campaign, csv).await;
    app.post(&format!("/campaigns/{campaign}/start")).await;
    let dialer = std::sync::Arc::new(voice_agent::dialer::Dialer::new(&app.state));
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(dialer.run(stop.clone()));

    // Watch the slots: when each call stops being active in the database.
    let mut freed: HashMap<i64, Instant> = HashMap::new();
    let mut seen_active: HashMap<i64, String> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let active = app.state.store.active_calls().await.unwrap();
        let now = Instant::now();
        for call in &active {
            if let Some(sid) = &call.carrier_sid {
                seen_active.insert(call.id, sid.clone());
            }
        }
        for id in seen_active.keys() {
            if !active.iter().any(|c| c.id == *id) {
                freed.entry(*id).or_insert(now);
            }
        }
        let c: Value = app.get_json(&format!("/campaigns/{campaign}")).await;
        if c["status"] == "completed" {
            break;
        }
        assert!(now < deadline, "campaign not completed: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();

    assert_eq!(
        exotel.conversations(),
        leads.len() as u64,
        "every call talked"
    );
    let ended: HashMap<String, Instant> = exotel.ended_calls().into_iter().collect();
    assert_eq!(freed.len(), leads.len(), "{freed:?}");
    for (id, sid) in &seen_active {
        let held = freed[id] - ended[sid];
        // Its summary (fast here), the threshold, a quarter of it until the next pass, a tick.
        assert!(
            held >= AFTER_MEDIA,
            "call {id}: freed {held:?} after its end, before the after-media check could run: \
             a terminal callback arrived"
        );
        assert!(
            held <= Duration::from_secs(5),
            "call {id}: slot held {held:?} after the call"
        );
        let call = app.state.store.get_call(*id).await.unwrap();
        assert_eq!(call.status.as_str(), "completed", "{call:?}");
    }
    let leads_now: Value = app
        .get_json(&format!("/campaigns/{campaign}/leads?limit=10"))
        .await;
    for lead in leads_now["leads"].as_array().unwrap() {
        assert_ne!(lead["status"], "in_progress", "{lead}");
    }
}

/// The emulated carrier writes its times (answered, ended) on the clock it is given: with the
/// service's, a call dialled at a moved clock (the demo's 11:00 IST) is answered and ends after
/// it was dialled, on one timeline.
async fn carrier_times_follow_the_clock_they_share_with_the_service(backend: Backend) {
    let clock = voice_agent::clock::Clock::default();
    clock.set(ist(25, 12, 0));
    let config = ExotelConfig {
        ring_delay: Duration::from_millis(50),
        talk_time: Duration::from_millis(1_200),
        clock: clock.clone(),
        ..ExotelConfig::default()
    };
    let (emulator, _exotel) =
        voice_agent::emulators::exotel::spawn(config.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let Some(app) = spawn_app_with(backend, |s| {
        crate::dialer::exotel_settings(s, &emulator, &config)
    })
    .await
    else {
        return;
    };
    // The demo hands both the same `Clock`; here the service's is set to the same instant.
    app.state.clock.set(ist(25, 12, 0));
    let campaign = app
        .started_campaign("One clock", "phone\n9876500021\n")
        .await;
    let dialer = voice_agent::dialer::Dialer::new(&app.state);
    dialer.run_once(app.state.clock.now()).await.unwrap();
    let lead = crate::helpers::eventually(20, "the call completed", || async {
        let page: Value = app
            .get_json(&format!("/campaigns/{campaign}/leads?limit=1"))
            .await;
        let lead = page["leads"][0].clone();
        (lead["status"] == "completed").then_some(lead)
    })
    .await;
    let calls = app
        .state
        .store
        .calls_of_lead(lead["id"].as_i64().unwrap())
        .await
        .unwrap();
    let call = &calls[0];
    let (dialed, answered, ended) = (
        call.dialed_at.expect("dialled"),
        call.answered_at.expect("answered"),
        call.ended_at.expect("ended"),
    );
    // Exotel's times have whole seconds; the dial is on the moved clock.
    let second = chrono::Duration::seconds(1);
    assert!(
        (dialed - ist(25, 12, 0)).num_seconds().abs() < 60,
        "{dialed}"
    );
    assert!(
        answered >= dialed - second,
        "answered {answered} before dialled {dialed}"
    );
    assert!(
        ended >= answered,
        "ended {ended} before answered {answered}"
    );
    assert!(
        ended - dialed < chrono::Duration::minutes(1),
        "{dialed} .. {ended}"
    );
}

crate::on_each_backend!(
    lost_terminal_callbacks_free_every_slot_soon_after_the_call,
    carrier_times_follow_the_clock_they_share_with_the_service
);
