//! A database of its own for each measurement: a temporary SQLite file, or a fresh PostgreSQL
//! database created on the server named by `DATABASE_URL` and dropped afterwards (also when the
//! measurement failed), so no run inherits another's rows, caches or bloat.

use std::time::Duration;

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor, PgConnection};

use super::BenchResult;
use crate::store::Backend;

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL server to create bench databases on: `DATABASE_URL` when it names one.
pub fn postgres_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
        .unwrap_or_else(|| DEFAULT_POSTGRES.to_string())
}

async fn admin_connection(admin: &str) -> BenchResult<PgConnection> {
    // Dropping a database that held a million rows takes seconds: no "slow statement" warning.
    let options = PgConnectOptions::from_str(admin)?.disable_statement_logging();
    match tokio::time::timeout(Duration::from_secs(5), options.connect()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("cannot connect to PostgreSQL at {}: {e}", redact(admin)).into()),
        Err(_) => Err(format!("connecting to PostgreSQL at {} timed out", redact(admin)).into()),
    }
}

/// Fails early, before minutes of SQLite work, when PostgreSQL was asked for but is not there.
pub async fn check_postgres(admin: &str) -> BenchResult<()> {
    admin_connection(admin).await?.close().await?;
    Ok(())
}

/// Runs `body` with the URL of a new, empty database of `backend`, then removes the database.
pub async fn with_database<T>(
    backend: Backend,
    pg_admin: &str,
    body: impl AsyncFnOnce(String) -> BenchResult<T>,
) -> BenchResult<T> {
    let stamp = format!(
        "{}_{}",
        chrono::Utc::now().timestamp(),
        uuid::Uuid::new_v4().simple()
    );
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("va_bench_{stamp}"));
            std::fs::create_dir_all(&dir)?;
            let url = format!("sqlite://{}", dir.join("bench.db").display());
            let result = body(url).await;
            let _ = std::fs::remove_dir_all(&dir);
            result
        }
        Backend::Postgres => {
            let name = format!("va_bench_{stamp}");
            let mut admin = admin_connection(pg_admin).await?;
            admin
                .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .await?;
            let result = body(with_database_name(pg_admin, &name)).await;
            // The store's pool may still hold connections for a moment: FORCE ends them.
            let dropped = admin
                .execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await;
            if let Err(e) = dropped {
                eprintln!("warning: could not drop bench database {name}: {e}");
            }
            result
        }
    }
}

/// Replaces the database name in a PostgreSQL URL, keeping its query string.
fn with_database_name(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(p, _)| p);
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_and_query_kept() {
        assert_eq!(
            with_database_name("postgres://u@h:5432/test?sslmode=disable", "va_bench_1"),
            "postgres://u@h:5432/va_bench_1?sslmode=disable"
        );
        assert_eq!(
            with_database_name("postgres://u@h/test", "x"),
            "postgres://u@h/x"
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://user:s3cret@db:5432/test"),
            "postgres://user@db:5432/test"
        );
        assert_eq!(redact("postgres://db/test"), "postgres://db/test");
    }
}
