//! The real binary killed with SIGKILL in the middle of a live call, then started again:
//! the turns already spoken are in the database, no lead is lost or dialled twice, no
//! concurrency slot leaks. Emulators run in this test process; the service is a child process.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{Timelike, Utc};
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};

/// A fixed-offset zone where it is now between 10:00 and 17:59, so the calling window is open
/// whenever this test runs.
fn midday_zone() -> String {
    for offset in -12i32..=12 {
        let hour = (Utc::now().hour() as i32 + offset).rem_euclid(24);
        if (11..16).contains(&hour) {
            // Etc/GMT zones have inverted signs: Etc/GMT-5 is UTC+5.
            return if offset >= 0 {
                format!("Etc/GMT-{offset}")
            } else {
                format!("Etc/GMT+{}", -offset)
            };
        }
    }
    unreachable!("some offset puts the hour in 11..16")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_service(envs: &[(String, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_voice-agent"))
        .arg("serve")
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("service starts")
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..100 {
        if http
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("service did not become healthy");
}

/// Sends `request` and parses the body as JSON.
async fn send_json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

async fn count(db: &str, sql: &'static str) -> i64 {
    let mut conn = SqliteConnection::connect(db).await.unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_service_mid_call_keeps_the_turns_and_loses_no_lead() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("kill.db").display());
    let csv_path = dir.path().join("leads.csv");
    std::fs::write(&csv_path, "name,phone,persona\nAsha,9876543210,interested\nRavi,9845012345,not_interested\nMeena,9823012345,wrong_number\n").unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let secret = "kill-test-secret-0123456789";
    let media = format!("ws://127.0.0.1:{port}/media?secret={secret}");
    let emulators =
        voice_agent::demo::start_emulators([127, 0, 0, 1], [0; 4], Some(media), csv_path.to_str())
            .await
            .unwrap();
    let mut envs: Vec<(String, String)> = voice_agent::demo::env_lines(&emulators)
        .into_iter()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    for (k, v) in [
        ("DATABASE_URL", db.as_str()),
        ("BIND_ADDR", &format!("127.0.0.1:{port}")),
        ("OUR_BASE_URL", base.as_str()),
        ("WEBHOOK_SECRET", secret),
        ("DIAL_TICK_MS", "200"),
        ("DIAL_RATE_PER_SEC", "5"),
        ("MAX_CONCURRENT_CALLS", "1"),
    ] {
        envs.push((k.to_string(), v.to_string()));
    }
    let http = reqwest::Client::new();
    let mut child = start_service(&envs);
    wait_healthy(&http, &base).await;

    let campaign = send_json(
        http.post(format!("{base}/campaigns"))
            .json(&json!({"name": "Kill", "timezone": midday_zone(),
            "calling_window": {"start": "09:00", "end": "21:00", "weekdays": ["mon","tue","wed","thu","fri","sat","sun"]}})),
    )
    .await;
    let id = campaign["id"].as_i64().unwrap();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(&csv_path).unwrap()).file_name("leads.csv"),
    );
    let report = send_json(
        http.post(format!("{base}/campaigns/{id}/upload-csv"))
            .multipart(form),
    )
    .await;
    assert_eq!(report["imported"], 3);
    http.post(format!("{base}/campaigns/{id}/start"))
        .send()
        .await
        .unwrap();

    // Kill the service once the first conversation has a caller turn and an answer.
    let mut turns = 0;
    for _ in 0..600 {
        turns = count(&db, "SELECT COUNT(*) FROM transcript_turns").await;
        if turns >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(turns >= 3, "a conversation got under way");
    child.kill().unwrap(); // SIGKILL: no shutdown path runs
    child.wait().unwrap();
    assert!(
        count(&db, "SELECT COUNT(*) FROM transcript_turns").await >= 3,
        "turns spoken before the kill are kept"
    );
    let caller_turns = count(
        &db,
        "SELECT COUNT(*) FROM transcript_turns WHERE speaker = 'caller'",
    )
    .await;
    assert!(caller_turns >= 1, "the caller's words are kept");

    // Start again: the interrupted call is settled, the rest of the campaign is dialled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut child = start_service(&envs);
    wait_healthy(&http, &base).await;
    let mut status = Value::Null;
    for _ in 0..900 {
        let c = send_json(http.get(format!("{base}/campaigns/{id}"))).await;
        status = c["status"].clone();
        if status == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, "completed", "every lead reached a final state");
    let dialled = emulators.exotel_handle.dialled();
    let unique: HashSet<&String> = dialled.iter().collect();
    assert_eq!(
        (dialled.len(), unique.len()),
        (3, 3),
        "each lead dialled exactly once: {dialled:?}"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM calls WHERE status IN ('queued', 'dialing', 'ringing', 'in-progress')").await,
        0,
        "no slot leaked"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM leads WHERE status NOT IN ('completed', 'failed', 'do_not_call')"
        )
        .await,
        0
    );
}
