//! Starting the real service for a test: on port 0, against a fresh SQLite file or a fresh
//! PostgreSQL database, stopped when the test's `TestApp` is dropped.
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! and Redis from `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). Without a server the
//! suite is skipped with a notice on stderr, except under `CI=true`, where it fails.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use voice_agent::config::Settings;
use voice_agent::startup::AppState;
use voice_agent::store::{CallStatus, CarrierUpdate, ClaimRequest, Claimed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    stop: CancellationToken,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// GET and parse the body as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.expect("JSON body")
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client.post(self.url(path)).send().await.expect("POST")
    }

    pub async fn patch_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("PATCH")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }

    /// Creates a campaign and returns its id.
    pub async fn create_campaign(&self, name: &str) -> i64 {
        let res = self
            .post_json("/campaigns", serde_json::json!({"name": name}))
            .await;
        assert_eq!(res.status(), 201);
        res.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap()
    }

    /// Uploads `csv` as multipart field `file`.
    pub async fn upload(&self, campaign: i64, csv: impl Into<Vec<u8>>) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(csv.into())
            .file_name("leads.csv")
            .mime_str("text/csv")
            .unwrap();
        let form = reqwest::multipart::Form::new().part("file", part);
        self.client
            .post(self.url(&format!("/campaigns/{campaign}/upload-csv")))
            .multipart(form)
            .send()
            .await
            .expect("upload")
    }

    /// Uploads `csv`, which must import, and returns the import report.
    pub async fn upload_report(&self, campaign: i64, csv: impl Into<Vec<u8>>) -> serde_json::Value {
        let res = self.upload(campaign, csv).await;
        let status = res.status();
        let report: serde_json::Value = res.json().await.unwrap();
        assert_eq!(status, 200, "upload refused: {report}");
        report
    }

    /// Creates a campaign, uploads `csv` and starts it; returns its id. Each step must succeed.
    pub async fn started_campaign(&self, name: &str, csv: impl Into<Vec<u8>>) -> i64 {
        let campaign = self.create_campaign(name).await;
        let report = self.upload_report(campaign, csv).await;
        assert!(
            report["imported"].as_u64() > Some(0),
            "nothing imported: {report}"
        );
        let res = self.post(&format!("/campaigns/{campaign}/start")).await;
        assert_eq!(
            res.status(),
            200,
            "start refused: {}",
            res.text().await.unwrap()
        );
        campaign
    }

    /// GET and return the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    /// The path of Exotel's status webhook, with the secret.
    pub fn status_webhook_url(&self) -> String {
        format!(
            "/webhooks/exotel/status?secret={}",
            self.state.settings.webhook_secret.expose()
        )
    }

    /// Claims up to `limit` due leads of a running campaign at `now`, as the dialer does.
    pub async fn claim(
        &self,
        campaign: i64,
        now: DateTime<Utc>,
        cap: i64,
        limit: i64,
    ) -> Vec<Claimed> {
        let req = ClaimRequest {
            campaign_id: campaign,
            now,
            campaign_cap: cap,
            global_cap: cap,
            limit,
        };
        self.state
            .store
            .claim_leads(&req, &|_| Ok(()))
            .await
            .unwrap()
            .claimed
    }

    /// Claims `n` due leads of a running campaign now; returns their call ids.
    pub async fn claim_calls(&self, campaign: i64, n: i64) -> Vec<i64> {
        let now = self.state.clock.now();
        let claimed = self.claim(campaign, now, 100, n).await;
        claimed.iter().map(|c| c.call_id).collect()
    }

    /// The carrier's end of a call, then settlement, as the status webhook does it.
    pub async fn carrier_ends(&self, call_id: i64, update: &CarrierUpdate, now: DateTime<Utc>) {
        let store = self.state.store.as_ref();
        store
            .update_call_carrier(call_id, update, now)
            .await
            .unwrap();
        voice_agent::dialer::settle::settle_call(store, call_id, now)
            .await
            .unwrap();
    }
}

/// A final carrier status at `now` after `secs` of conversation (answered when `secs > 0`).
pub fn final_status(status: CallStatus, secs: i32, now: DateTime<Utc>) -> CarrierUpdate {
    CarrierUpdate {
        status: Some(status),
        conversation_duration: Some(secs),
        answered_at: (secs > 0).then_some(now),
        ended_at: Some(now),
        ..Default::default()
    }
}

/// Sends `request` and parses the body as JSON.
pub async fn send_json(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Reads a JSON error body and returns its `code`, checking the shape on the way.
pub async fn error_code(res: reqwest::Response) -> String {
    let body: serde_json::Value = res.json().await.expect("error body is JSON");
    assert!(body["error"]["message"].is_string(), "no message in {body}");
    body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_string()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing service: fails under CI, otherwise prints a notice and skips.
pub fn skip_or_fail(suite: &str, reason: &str) {
    if in_ci() {
        panic!("{suite} is required in CI but unavailable: {reason}");
    }
    eprintln!("SKIPPED ({suite}): {reason}");
}

pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(p, _)| p);
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

static STALE_DROPPED: OnceCell<()> = OnceCell::const_new();

/// A new, empty PostgreSQL database for one test, or `None` when PostgreSQL is unavailable.
/// Databases of earlier runs older than an hour are dropped first (once per test binary).
pub async fn fresh_postgres_url() -> Option<String> {
    let admin = postgres_admin_url();
    let connect = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin));
    let mut conn = match connect.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            skip_or_fail("postgres", &format!("cannot connect to {admin}: {e}"));
            return None;
        }
        Err(_) => {
            skip_or_fail("postgres", &format!("connecting to {admin} timed out"));
            return None;
        }
    };
    let now = chrono::Utc::now().timestamp();
    STALE_DROPPED
        .get_or_init(|| async {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'va\\_test\\_%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            for name in names {
                let created: i64 = name
                    .split('_')
                    .nth(2)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                if now - created > 3600 {
                    let _ = conn
                        .execute(AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .await;
                }
            }
        })
        .await;
    let name = format!("va_test_{now}_{}", uuid::Uuid::new_v4().simple());
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .expect("create test database");
    Some(with_database(&admin, &name))
}

/// Starts the service on port 0 with default settings.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the service on port 0; `configure` may change the settings first.
pub async fn spawn_app_with(
    backend: Backend,
    configure: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    let (database_url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            (url, Some(dir))
        }
        Backend::Postgres => (fresh_postgres_url().await?, None),
    };
    Some(spawn_app_at(&database_url, dir, configure).await)
}

/// Starts the service on port 0 with these environment variables (as `Settings::from_env`
/// would read them) on top of the defaults.
pub async fn spawn_app_env(backend: Backend, vars: &[(&str, &str)]) -> Option<TestApp> {
    spawn_app_with(backend, |s| with_vars(s, vars)).await
}

/// Re-reads `s` from these variables, keeping its database and base URL.
pub fn with_vars(s: &mut Settings, vars: &[(&str, &str)]) {
    let mut map: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("DATABASE_URL".into(), s.database_url.clone());
    let base = s.our_base_url.clone();
    *s = Settings::from_map(&map).expect("valid test settings");
    s.our_base_url = base;
}

/// Starts the service on port 0 against an existing database (a second instance).
pub async fn spawn_app_at(
    database_url: &str,
    dir: Option<tempfile::TempDir>,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut settings = Settings::for_database(database_url);
    settings.our_base_url = format!("http://{}", listener.local_addr().unwrap());
    configure(&mut settings);
    let state = AppState::build(settings).await.expect("app state");
    serve_listener(listener, state, dir).await
}

/// Serves a prepared state on port 0.
pub async fn serve_state(state: AppState, dir: Option<tempfile::TempDir>) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    serve_listener(listener, state, dir).await
}

async fn serve_listener(
    listener: TcpListener,
    state: AppState,
    dir: Option<tempfile::TempDir>,
) -> TestApp {
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(voice_agent::startup::serve(
        listener,
        state.clone(),
        async move { trigger.cancelled().await },
    ));
    TestApp {
        base,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        state,
        stop,
        _dir: dir,
    }
}

/// Runs each listed `async fn(TestApp)` once against SQLite and once against PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite)
                        .await
                        .expect("sqlite always available");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

/// Runs each listed `async fn(Backend)` once per backend (tests that build their own app).
#[macro_export]
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Polls `check` until it returns `Some`, failing after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
