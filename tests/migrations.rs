//! Migrations that rebuild or re-key a table must keep the data of a database that is already in
//! use. Each test migrates a database to the version before the change with the real migration
//! files, fills it as the service would, then opens it with the service's store (which applies
//! the rest, as a start after an upgrade does) and checks nothing was lost or detached.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, Row};
use voice_agent::store::{PostgresStore, SqliteStore, Store};

/// A directory holding the migrations of `backend` older than `before`.
fn migrations_before(backend: &str, before: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(&source).expect("migrations dir") {
        let path: PathBuf = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < before {
            std::fs::copy(&path, dir.path().join(&name)).expect("copy migration");
        }
    }
    dir
}

/// Rows as the service writes them: two campaigns, a number in both, calls on leads, a deleted
/// lead whose id must never come back.
const SEED: &[&str] = &[
    "INSERT INTO campaigns (id, name, created_at, updated_at) VALUES \
     (1, 'a', '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z'), \
     (2, 'b', '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z')",
    "INSERT INTO leads (id, campaign_id, phone, name, status, next_attempt_at, created_at, updated_at) VALUES \
     (1, 1, '+919812340001', 'Asha', 'pending', '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z'), \
     (2, 1, '+919812340002', 'Ravi', 'retry', '2026-11-25T01:00:00Z', '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z'), \
     (3, 2, '+919812340001', 'Asha', 'completed', NULL, '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z'), \
     (4, 2, '+919812340004', 'Gone', 'pending', NULL, '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z')",
    "INSERT INTO calls (id, campaign_id, lead_id, phone, status, created_at, updated_at) VALUES \
     (10, 1, 2, '+919812340002', 'no-answer', '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z'), \
     (11, 2, 3, '+919812340001', 'completed', '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z')",
    "DELETE FROM leads WHERE id = 4",
];

async fn check_after_upgrade(store: &dyn Store) {
    let lead = store
        .find_lead_by_phone("+919812340001")
        .await
        .expect("look-up by phone")
        .expect("the number is still there");
    assert_eq!(lead.name.as_deref(), Some("Asha"));
    assert_eq!(store.get_lead(2).await.unwrap().phone, "+919812340002");
    let calls = store.calls_of_lead(3).await.expect("calls of lead 3");
    assert_eq!(
        calls.len(),
        1,
        "the call on the rebuilt table's lead survived"
    );
    assert_eq!(calls[0].id, 11);
    assert_eq!(store.calls_of_lead(2).await.unwrap()[0].id, 10);
    let counts = store.lead_counts(1).await.unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 2);
}

/// On `conn`: the `backend`'s migrations older than `before`, then [`SEED`]; closes `conn`.
/// (A macro: `Migrator::run` and `Executor` are bound per connection type.)
macro_rules! old_schema_with_data {
    ($conn:ident, $backend:literal, $before:literal) => {{
        let old = migrations_before($backend, $before);
        Migrator::new(old.path())
            .await
            .unwrap()
            .run(&mut $conn)
            .await
            .expect("old migrations");
        for statement in SEED {
            $conn.execute(*statement).await.expect(statement);
        }
        $conn.close().await.unwrap();
    }};
}

#[tokio::test]
async fn sqlite_leads_rebuild_keeps_rows_calls_and_the_id_counter() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .foreign_keys(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        old_schema_with_data!(conn, "sqlite", "20261125000003");
    }

    let store = SqliteStore::connect(&url, std::time::Duration::from_secs(10))
        .await
        .expect("upgrade");
    check_after_upgrade(&store).await;

    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .foreign_keys(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let violations = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(violations.is_empty(), "foreign keys intact");
    let unique: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'leads'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(unique.contains("UNIQUE (phone, campaign_id)"), "{unique}");
    let by_phone: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'leads_by_phone'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(by_phone, 0);
    // The deleted lead 4's id is not handed out again.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO leads (campaign_id, phone, created_at, updated_at) \
         VALUES (1, '+919812340009', 'x', 'x') RETURNING id",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(id, 5);
    // The new key still refuses a number twice in one campaign, and allows it in another.
    let dup = conn
        .execute(
            "INSERT INTO leads (campaign_id, phone, created_at, updated_at) \
             VALUES (1, '+919812340002', 'x', 'x')",
        )
        .await;
    assert!(dup.is_err(), "duplicate in one campaign refused");
    conn.execute(
        "INSERT INTO leads (campaign_id, phone, created_at, updated_at) \
         VALUES (2, '+919812340002', 'x', 'x')",
    )
    .await
    .expect("same number, other campaign");
    // Deleting a campaign still cascades through the rebuilt table to its calls.
    conn.execute("DELETE FROM campaigns WHERE id = 2")
        .await
        .unwrap();
    let calls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls WHERE lead_id = 3")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn postgres_unique_key_swap_keeps_rows_and_look_ups() {
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let mut admin_conn = match PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("PostgreSQL is required in CI: {e}");
            }
            eprintln!("SKIPPED (postgres): {e}");
            return;
        }
    };
    let db = format!("va_test_migr_{}", uuid::Uuid::new_v4().simple());
    admin_conn
        .execute(AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .await
        .unwrap();
    let url = match admin.rsplit_once('/') {
        Some((prefix, rest)) => match rest.split_once('?') {
            Some((_, q)) => format!("{prefix}/{db}?{q}"),
            None => format!("{prefix}/{db}"),
        },
        None => panic!("bad TEST_DATABASE_URL"),
    };
    {
        let mut conn = PgConnection::connect(&url).await.unwrap();
        old_schema_with_data!(conn, "postgres", "20261125000004");
    }
    let store = PostgresStore::connect(&url, std::time::Duration::from_secs(10))
        .await
        .expect("upgrade");
    check_after_upgrade(&store).await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let indexes: Vec<String> =
        sqlx::query("SELECT indexname FROM pg_indexes WHERE tablename = 'leads'")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
    assert!(
        indexes.contains(&"leads_phone_campaign_id_key".to_string()),
        "{indexes:?}"
    );
    assert!(
        !indexes
            .iter()
            .any(|i| i == "leads_by_phone" || i == "leads_campaign_id_phone_key")
    );
    conn.close().await.unwrap();
    drop(store);
    let _ = admin_conn
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .await;
}
