//! Several instances of the service on one PostgreSQL database: every lead is dialled exactly
//! once and the global cap holds across instances.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use voice_agent::config::Secret;
use voice_agent::dialer::Dialer;
use voice_agent::emulators::exotel::ExotelConfig;

use crate::dialer::{exotel_settings, ist};
use crate::helpers::{eventually, fresh_postgres_url, spawn_app_at};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_dial_each_of_1000_leads_once_within_a_shared_cap_of_20() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let config = ExotelConfig {
        ring_delay: Duration::from_millis(10),
        talk_time: Duration::from_millis(40),
        ..ExotelConfig::default()
    };
    let (emulator, exotel) =
        voice_agent::emulators::exotel::spawn(config.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let configure = |s: &mut voice_agent::config::Settings| {
        exotel_settings(s, &emulator, &config);
        s.max_concurrent_calls = 20;
        s.dialer.tick = Duration::from_millis(20);
        // Both instances must accept each other's webhooks.
        s.webhook_secret = Secret::new("shared-secret-for-both-instances");
    };
    let a = spawn_app_at(&url, None, configure).await;
    let b = spawn_app_at(&url, None, configure).await;
    for app in [&a, &b] {
        app.state.clock.set(ist(25, 12, 0));
    }

    let campaign = a.create_campaign("Big push").await;
    let res = a
        .patch_json(
            &format!("/campaigns/{campaign}"),
            json!({"max_concurrent_calls": 100}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let csv: String = (0..1000).fold("phone\n".into(), |acc, i| acc + &format!("98{i:08}\n"));
    let report: Value = a.upload(campaign, csv).await.json().await.unwrap();
    assert_eq!(report["imported"], 1000);
    assert_eq!(
        a.post(&format!("/campaigns/{campaign}/start"))
            .await
            .status(),
        200
    );

    let stop = CancellationToken::new();
    for app in [&a, &b] {
        let dialer = Arc::new(Dialer::new(&app.state));
        tokio::spawn(dialer.run(stop.clone()));
    }
    eventually(180, "campaign completed", || async {
        let c: Value = a.get_json(&format!("/campaigns/{campaign}")).await;
        (c["status"] == "completed").then_some(())
    })
    .await;
    stop.cancel();

    let dialled = exotel.dialled();
    let unique: HashSet<&String> = dialled.iter().collect();
    assert_eq!(dialled.len(), 1000, "every lead dialled");
    assert_eq!(unique.len(), 1000, "none twice");
    assert!(
        exotel.max_active() <= 20,
        "cap exceeded: {} at once",
        exotel.max_active()
    );
    assert!(
        exotel.max_active() >= 10,
        "the cap was barely used: {}",
        exotel.max_active()
    );
    assert_eq!(
        a.state.store.count_active_calls(None).await.unwrap(),
        0,
        "no slot leaked"
    );
    // Both instances took part.
    let by_instance = |app: &crate::helpers::TestApp| {
        let base = app.base.clone();
        exotel
            .requests()
            .iter()
            .filter(|r| {
                r.get("StatusCallback")
                    .is_some_and(|u| u.starts_with(&base))
            })
            .count()
    };
    let (na, nb) = (by_instance(&a), by_instance(&b));
    assert_eq!(na + nb, 1000);
    assert!(na > 0 && nb > 0, "a: {na}, b: {nb}");
}
