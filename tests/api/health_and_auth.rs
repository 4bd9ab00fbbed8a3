//! `/health`, API-key auth and the behaviour around every endpoint.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use voice_agent::config::{Secret, Settings};
use voice_agent::sessions::{SessionResult, SessionStore};
use voice_agent::startup::AppState;

use crate::helpers::{
    Backend, TestApp, error_code, redis_url, serve_state, skip_or_fail, spawn_app_with,
};

crate::on_both_backends!(
    health_reports_the_database,
    readyz_checks_the_database_and_every_migration
);

async fn health_reports_the_database(app: TestApp) {
    let res = app.get("/health").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"]["status"], "ok");
    let backend = app.state.store.backend().as_str();
    assert_eq!(body["database"]["backend"], backend);
    assert_eq!(body["redis"]["status"], "not_configured");
    assert_eq!(body["sessions"]["kind"], "memory");
}

#[tokio::test]
async fn health_reports_redis_when_configured() {
    let url = redis_url();
    let probe = voice_agent::sessions::RedisSessions::connect(&url, "va-probe").await;
    if let Err(e) = probe {
        return skip_or_fail("redis", &e.to_string());
    }
    let app = spawn_app_with(Backend::Sqlite, |s| s.redis_url = Some(url))
        .await
        .unwrap();
    let body: Value = app.get_json("/health").await;
    assert_eq!(body["redis"]["status"], "ok");
    assert_eq!(body["sessions"]["kind"], "redis");
}

/// A session store whose backend has gone away.
struct DownSessions;

#[async_trait]
impl SessionStore for DownSessions {
    fn kind(&self) -> &'static str {
        "redis"
    }
    async fn ping(&self) -> SessionResult<()> {
        Err(voice_agent::sessions::SessionError::Timeout(
            Duration::from_secs(2),
        ))
    }
    async fn put(&self, _: &str, _: &Value, _: Duration) -> SessionResult<()> {
        self.ping().await
    }
    async fn get(&self, _: &str) -> SessionResult<Option<Value>> {
        self.ping().await.map(|_| None)
    }
    async fn remove(&self, _: &str) -> SessionResult<()> {
        self.ping().await
    }
    async fn list(&self) -> SessionResult<Vec<(String, Value)>> {
        self.ping().await.map(|_| vec![])
    }
}

#[tokio::test]
async fn health_is_503_when_a_dependency_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    let mut state = AppState::build(Settings::for_database(&url)).await.unwrap();
    state.sessions = Arc::new(DownSessions);
    let app = serve_state(state, Some(dir)).await;
    let res = app.get("/health").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["database"]["status"], "ok");
    assert_eq!(body["redis"]["status"], "down");
}

#[tokio::test]
async fn api_key_guards_every_endpoint_but_health() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api_key = Some(Secret::new("s3cret-key"))
    })
    .await
    .unwrap();
    let res = app.get("/campaigns").await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_code(res).await, "unauthorized");
    let res = app
        .client
        .get(app.url("/campaigns"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app.client.get(app.url("/dnc")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .get(app.url("/campaigns"))
        .bearer_auth("s3cret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(voice_agent::startup::run(
        listener,
        Settings::for_database(&url),
        async {
            let _ = rx.await;
        },
    ));
    let health = format!("http://{addr}/health");
    let mut up = false;
    for _ in 0..50 {
        if reqwest::get(&health).await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "server came up");
    tx.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "server stopped cleanly: {result:?}"
    );
    assert!(reqwest::get(&health).await.is_err(), "no longer accepting");
}

async fn readyz_checks_the_database_and_every_migration(app: TestApp) {
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["migrations"]["status"], "ok", "{body}");
    assert_eq!(body["redis"]["status"], "not_configured");
    let live: Value = app.get_json("/livez").await;
    assert_eq!(live["status"], "ok");
}

#[tokio::test]
async fn readyz_is_503_when_a_migration_is_missing_or_redis_is_down_and_livez_stays_200() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let mut state = AppState::build(Settings::for_database(&url)).await.unwrap();
    // The schema this binary expects is not all there (an instance started before migrating).
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    state.sessions = Arc::new(DownSessions);
    let app = serve_state(state, Some(dir)).await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["migrations"]["status"], "missing", "{body}");
    assert_eq!(body["migrations"]["missing"].as_array().unwrap().len(), 1);
    assert_eq!(body["redis"]["status"], "down", "{body}");
    assert_eq!(app.get("/livez").await.status(), 200);
}

#[tokio::test]
async fn with_the_database_gone_only_livez_answers_200() {
    let Some(url) = crate::helpers::fresh_postgres_url().await else {
        return;
    };
    let app = crate::helpers::spawn_app_at(&url, None, |_| {}).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let name = url.rsplit('/').next().unwrap().to_string();
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&crate::helpers::postgres_admin_url())
            .await
            .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/health").await.status(), 503);
    assert_eq!(
        app.get("/livez").await.status(),
        200,
        "liveness never asks the database"
    );
}

#[tokio::test]
async fn readyz_is_503_once_shutdown_begins() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await.unwrap();
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.state.shutdown.cancel();
    // The listener may already refuse new connections; if it answers, it says draining.
    if let Ok(res) = app.client.get(app.url("/readyz")).send().await {
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "draining");
    }
}
