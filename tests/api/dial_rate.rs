//! One dial rate per carrier account across instances: the bucket contract on memory,
//! PostgreSQL and Redis, and two instances dialling one campaign at an emulated carrier that
//! answers 429 to a third request within any second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use voice_agent::config::Secret;
use voice_agent::dialer::Dialer;
use voice_agent::emulators::exotel::ExotelConfig;
use voice_agent::store::bucket::{MemoryBucket, RateBucket, RedisBucket, SlotRequest};

use crate::dialer::{exotel_settings, ist};
use crate::helpers::{
    TestApp, eventually, fresh_postgres_url, redis_url, skip_or_fail, spawn_app_at,
};

const MS: i64 = 1_000;

async fn exotel(
    config: &ExotelConfig,
) -> (
    voice_agent::emulators::Running,
    voice_agent::emulators::exotel::ExotelHandle,
) {
    voice_agent::emulators::exotel::spawn(config.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// One script of reservations, give-backs and holds; every backend must answer it alike.
async fn script(bucket: &dyn RateBucket) -> Vec<(i64, u32)> {
    let key = format!("exotel:test:{}", uuid::Uuid::new_v4().simple());
    let req = |now_ms: i64, want: u32| SlotRequest {
        now: 1_800_000_000_000 * MS + now_ms * MS,
        want,
        horizon: 1_000 * MS,
        interval: 550 * MS,
    };
    let base = req(0, 0).now;
    let mut answers = Vec::new();
    let mut take = |s: voice_agent::store::bucket::Slots| answers.push((s.first - base, s.count));
    let a = bucket.reserve(&key, &req(0, 5)).await.unwrap();
    take(a);
    take(bucket.reserve(&key, &req(10, 5)).await.unwrap());
    assert!(bucket.give_back(&key, &a, 1, 550 * MS).await.unwrap());
    let b = bucket.reserve(&key, &req(100, 1)).await.unwrap();
    take(b);
    // `a` is no longer the latest reservation, though `b` ends where it did.
    assert!(!bucket.give_back(&key, &a, 1, 550 * MS).await.unwrap());
    bucket.hold(&key, base + 30_000 * MS).await.unwrap();
    bucket.hold(&key, base + 5_000 * MS).await.unwrap(); // an earlier hold changes nothing
    assert_eq!(bucket.held_until(&key).await.unwrap(), base + 30_000 * MS);
    take(bucket.reserve(&key, &req(10_000, 2)).await.unwrap());
    take(bucket.reserve(&key, &req(30_000, 3)).await.unwrap());
    answers
}

const EXPECTED: [(i64, u32); 5] = [
    (0, 2),
    (1_100 * MS, 0),
    (550 * MS, 1),
    (30_000 * MS, 0),
    (30_000 * MS, 2),
];

#[tokio::test]
async fn memory_postgres_and_redis_buckets_give_the_same_slots() {
    assert_eq!(script(&MemoryBucket::default()).await, EXPECTED, "memory");
    if let Some(url) = fresh_postgres_url().await {
        let store = voice_agent::store::connect(&url).await.unwrap();
        let bucket = store.rate_bucket().expect("PostgreSQL holds the bucket");
        assert_eq!(script(bucket).await, EXPECTED, "postgres");
    }
    match RedisBucket::connect(&redis_url(), "va-test").await {
        Ok(redis) => assert_eq!(script(&redis).await, EXPECTED, "redis"),
        Err(e) => skip_or_fail("redis", &e.to_string()),
    }
}

/// Two instances on one database (and Redis when given) dial `leads` leads at a carrier that
/// refuses a third request within any second; both dial at 2 per second (the account's rate).
async fn two_instances_dial(url: &str, redis: Option<String>, leads: usize) {
    let config = ExotelConfig {
        ring_delay: Duration::from_millis(10),
        talk_time: Duration::from_millis(40),
        rate_limit_per_sec: Some(2),
        ..ExotelConfig::default()
    };
    let (emulator, exotel) = exotel(&config).await;
    let configure = |s: &mut voice_agent::config::Settings| {
        exotel_settings(s, &emulator, &config);
        s.dialer.rate_per_sec = 2.0;
        s.dialer.tick = Duration::from_millis(200);
        s.redis_url = redis.clone();
        s.webhook_secret = Secret::new("shared-secret-for-both-instances");
    };
    let a = spawn_app_at(url, None, configure).await;
    let b = spawn_app_at(url, None, configure).await;
    let kind = if redis.is_some() { "redis" } else { "postgres" };
    for app in [&a, &b] {
        app.state.clock.set(ist(25, 12, 0));
        assert_eq!(app.state.dial_rate.kind(), kind);
    }
    let csv: String = (0..leads).fold("phone\n".into(), |acc, i| acc + &format!("97{i:08}\n"));
    let campaign = a.started_campaign("Paced", csv).await;

    let stop = CancellationToken::new();
    for app in [&a, &b] {
        tokio::spawn(Arc::new(Dialer::new(&app.state)).run(stop.clone()));
    }
    eventually(120, "campaign completed", || async {
        let c: Value = a.get_json(&format!("/campaigns/{campaign}")).await;
        (c["status"] == "completed").then_some(())
    })
    .await;
    stop.cancel();

    let requests = exotel.requests();
    let refused = requests.iter().filter(|r| r.status == 429).count();
    assert_eq!(refused, 0, "the carrier answered 429");
    assert_eq!(exotel.dialled().len(), leads, "every lead dialled once");
    let mut times: Vec<Instant> = requests.iter().map(|r| r.received_at).collect();
    times.sort();
    for w in times.windows(3) {
        assert!(
            w[2] - w[0] >= Duration::from_secs(1),
            "3 requests within {:?}",
            w[2] - w[0]
        );
    }
    // And the rate was used, not starved: one request per 550 ms slot, give or take.
    let span = times[times.len() - 1] - times[0];
    let slots = Duration::from_millis(550 * (leads as u64 - 1));
    assert!(span < slots * 2, "{leads} requests took {span:?}");
    let by = |app: &TestApp| {
        requests
            .iter()
            .filter(|r| {
                r.get("StatusCallback")
                    .is_some_and(|u| u.starts_with(&app.base))
            })
            .count()
    };
    assert!(by(&a) > 0 && by(&b) > 0, "a: {}, b: {}", by(&a), by(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_dial_40_leads_at_2_per_second_with_no_429() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    two_instances_dial(&url, None, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_keep_the_rate_too() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    if let Err(e) = RedisBucket::connect(&redis_url(), "va").await {
        skip_or_fail("redis", &e.to_string());
        return;
    }
    two_instances_dial(&url, Some(redis_url()), 12).await;
}

#[tokio::test]
async fn a_429_holds_every_instance_until_retry_after() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let config = ExotelConfig::default();
    let (emulator, exotel) = exotel(&config).await;
    // One slot per tick, so the first tick sends exactly one request.
    let configure = |s: &mut voice_agent::config::Settings| {
        exotel_settings(s, &emulator, &config);
        s.dialer.rate_per_sec = 1.0;
    };
    let a = spawn_app_at(&url, None, configure).await;
    let b = spawn_app_at(&url, None, configure).await;
    for app in [&a, &b] {
        app.state.clock.set(ist(25, 12, 0));
    }
    a.started_campaign("Held", "phone\n9876543210\n9876543211\n")
        .await;
    let now = a.state.clock.now();
    exotel.inject_faults(&[429]);
    let (da, db) = (Dialer::new(&a.state), Dialer::new(&b.state));
    let first = da.run_once(now).await.unwrap();
    assert_eq!((first.dialed, first.released), (0, 1), "{first:?}");
    // The other instance saw no 429 itself, but waits out the 30 s as well.
    let soon = now + chrono::Duration::seconds(10);
    assert_eq!(db.run_once(soon).await.unwrap().claimed, 0);
    let later = now + chrono::Duration::seconds(31);
    assert_eq!(db.run_once(later).await.unwrap().dialed, 1);
}
