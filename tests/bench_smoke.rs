//! The benchmark must not silently break: run `voice-agent bench` small (20 calls, the real
//! binary: service child process, emulators, callers over real sockets) and check that the table
//! is printed with every call completed. No timing is asserted: figures are the bench's job.

use std::process::Command;

fn value_of<'a>(output: &'a str, row: &str) -> &'a str {
    output
        .lines()
        .find(|l| l.trim_start().starts_with(row))
        .unwrap_or_else(|| panic!("row {row:?} missing from:\n{output}"))
        .trim_start()[row.len()..]
        .trim()
}

#[test]
fn bench_with_twenty_calls_prints_its_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_voice-agent"))
        .args(["bench", "--calls", "20", "--hold", "8", "--ramp", "50"])
        .env("RUST_LOG", "error")
        .output()
        .expect("run voice-agent bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(value_of(&stdout, "calls held concurrently (peak)"), "20");
    let completed = value_of(&stdout, "calls completed / errors");
    let (done, errors) = completed.split_once(" / ").expect("n / m");
    assert!(done.parse::<u32>().unwrap() >= 20, "{completed}");
    assert_eq!(errors, "0", "{stdout}");
    let turns: u32 = value_of(&stdout, "caller turns answered").parse().unwrap();
    assert!(turns >= 10, "callers were answered: {turns}");
    assert!(
        value_of(&stdout, "added latency per turn p50 / p95 / p99")
            .ends_with(&format!("n={turns})"))
    );
    assert!(value_of(&stdout, "service CPU").ends_with('%'), "{stdout}");
    let idle = value_of(&stdout, "service RSS per idle live call");
    assert!(idle.ends_with("KiB") || idle.ends_with("MiB"), "{stdout}");
    assert_eq!(
        value_of(&stdout, "protocol violations seen by callers"),
        "0"
    );
}

/// `bench data --quick`: the import goes through the upload route, the claim through the
/// store and the dashboard through the listener, on SQLite and (when reachable, always in CI) PostgreSQL. Rows and claims are counted;
/// no speed is asserted.
#[test]
fn bench_data_quick_prints_import_claim_and_dashboard_rows() {
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let postgres_up = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().unwrap(),
        std::time::Duration::from_secs(2),
    )
    .is_ok();
    let database = if postgres_up || in_ci {
        "both"
    } else {
        eprintln!("SKIPPED (postgres): bench data runs on SQLite only");
        "sqlite"
    };
    let out = Command::new(env!("CARGO_BIN_EXE_voice-agent"))
        .args(["bench", "data", "--quick", "--database", database])
        .env("RUST_LOG", "error")
        .env("DATABASE_URL", &admin)
        .output()
        .expect("run voice-agent bench data");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench data failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backends: &[&str] = if database == "both" {
        &["sqlite", "postgres"]
    } else {
        &["sqlite"]
    };
    for backend in backends {
        let import: Vec<&str> = stdout
            .lines()
            .find(|l| l.starts_with(backend) && l.split_whitespace().nth(1) == Some("10000"))
            .unwrap_or_else(|| panic!("no {backend} import row in:\n{stdout}"))
            .split_whitespace()
            .collect();
        let rows_per_s: f64 = import[4].parse().expect("rows/s is a number");
        assert!(rows_per_s > 0.0, "{import:?}");
        let claims: Vec<Vec<&str>> = stdout
            .lines()
            .filter(|l| l.starts_with(backend) && l.contains(" due "))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(claims.len(), 2, "two claim cases for {backend}:\n{stdout}");
        for c in claims {
            // backend, case (two words), claims, p50, p99, max, leads/s
            assert_eq!(c[c.len() - 5], "200", "{c:?}");
            let p50: f64 = c[c.len() - 4].parse().unwrap();
            let p99: f64 = c[c.len() - 3].parse().unwrap();
            assert!(p50 > 0.0 && p50 <= p99, "{c:?}");
        }
        // backend, leads, requests, p50, p95, max: every request answered, counting every lead.
        let dashboard: Vec<&str> = stdout
            .lines()
            .find(|l| l.starts_with(backend) && l.split_whitespace().nth(1) == Some("50000"))
            .unwrap_or_else(|| panic!("no {backend} dashboard row in:\n{stdout}"))
            .split_whitespace()
            .collect();
        assert_eq!(dashboard[2], "50", "{dashboard:?}");
        let (p50, p95): (f64, f64) = (dashboard[3].parse().unwrap(), dashboard[4].parse().unwrap());
        assert!(p50 > 0.0 && p50 <= p95, "{dashboard:?}");
    }
}
