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
