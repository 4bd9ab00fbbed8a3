//! The Grafana board (`deploy/grafana/`) and the alert rules (`deploy/prometheus/alerts.yml`)
//! name only metrics the service exports: every `voice_agent_…` name in their queries is a
//! sample of a real `GET /metrics` (so a renamed metric breaks this test, not a dashboard in
//! production). The rules' syntax is checked by `promtool check rules` in scripts/test.

use std::collections::BTreeSet;
use std::path::Path;

use crate::helpers::{Backend, spawn_app_with};

/// Every `voice_agent_…` identifier in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("voice_agent_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn queries_of_dashboard(path: &Path) -> Vec<String> {
    let board: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    board["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("a PromQL expr").to_string())
        .collect()
}

fn queries_of_rules(path: &Path) -> Vec<String> {
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .map(|r| r["expr"].as_str().expect("expr").to_string())
        .collect()
}

#[tokio::test]
async fn every_metric_the_board_and_the_rules_name_is_exported() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let board = queries_of_dashboard(&deploy.join("grafana/voice-agent.json"));
    let rules = queries_of_rules(&deploy.join("prometheus/alerts.yml"));
    assert!(board.len() >= 10 && rules.len() >= 5);

    let app = spawn_app_with(Backend::Sqlite, |_| {}).await.unwrap();
    // One request first, so the request counter has a series.
    app.get("/health").await;
    let exposition = app.get_text("/metrics").await;
    let exported: BTreeSet<String> = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    for (what, queries) in [("dashboard", &board), ("alert rules", &rules)] {
        let used: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
        assert!(!used.is_empty(), "{what} names no metric");
        let missing: Vec<&String> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{what} uses metrics /metrics does not export: {missing:?}"
        );
    }
    // What the board must show (the list).
    let board_names: BTreeSet<String> = board.iter().flat_map(|q| metric_names(q)).collect();
    for needed in [
        "voice_agent_active_calls",
        "voice_agent_call_outcomes_total",
        "voice_agent_turn_latency_seconds_bucket",
        "voice_agent_audio_frames_late_total",
        "voice_agent_provider_errors_total",
        "voice_agent_dialer_tick_lag_seconds_bucket",
    ] {
        assert!(board_names.contains(needed), "the board lacks {needed}");
    }
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        "sum(rate(voice_agent_a_total[5m])) / clamp_min(sum(voice_agent_b{x=\"voice_agent_c\"}), 1)",
    );
    let expected: BTreeSet<String> = ["voice_agent_a_total", "voice_agent_b", "voice_agent_c"]
        .map(String::from)
        .into();
    assert_eq!(names, expected);
}
