//! `voice-agent demo` as a user runs it: the real binary, from an empty directory (no
//! `examples/` beside it: the example leads are compiled in), exits 0 and reports an outcome for
//! every lead it imported.

use std::process::Command;

/// The report's rows: `(name, status, outcome)`, read from the fixed-width table.
fn report_rows(stdout: &str) -> Vec<(String, String, String)> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("lead "));
    assert!(lines.next().is_some(), "no report table in:\n{stdout}");
    lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<char> = l.chars().collect();
            let field = |from: usize, to: usize| {
                c[from.min(c.len())..to.min(c.len())]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string()
            };
            // {:<22} {:<15} {:<14} {:<14}: name, persona, status, outcome.
            (field(0, 22), field(39, 53), field(54, 68))
        })
        .collect()
}

#[test]
fn demo_runs_from_an_empty_directory_with_an_outcome_for_every_lead() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voice-agent"))
        .args(["demo", "--timeout-secs", "300"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "error")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let imported: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Imported "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no import line:\n{stdout}"));
    assert!(imported >= 15, "{imported} leads imported:\n{stdout}");
    let rows = report_rows(&stdout);
    assert_eq!(rows.len(), imported, "a row per lead:\n{stdout}");
    for (name, status, outcome) in &rows {
        assert!(
            !outcome.is_empty() && outcome != "-",
            "{name}: no outcome ({status}):\n{stdout}"
        );
        assert!(
            ["completed", "failed", "do_not_call", "callback"].contains(&status.as_str()),
            "{name} is still {status}:\n{stdout}"
        );
    }
    // Nothing was written into the directory it ran from.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn report_rows_are_read_by_column() {
    let text = "x\nlead                   persona         status         outcome        att turns  transcript\n\
                Aarav Sharma           Interested      completed      interested       1     5  A: hi\n\
                \nPer-turn";
    assert_eq!(
        report_rows(text),
        [(
            "Aarav Sharma".to_string(),
            "completed".to_string(),
            "interested".to_string()
        )]
    );
}
