//! The dashboard's static routes, without a browser: the page is public while the API behind it
//! keeps its key, the page is served with a strict content security policy, and every file the
//! page loads (its scripts import one another) is served with the right type.

use std::collections::BTreeSet;

use voice_agent::config::Secret;

use crate::helpers::{Backend, TestApp, error_code, spawn_app_with};

async fn app_with_key() -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| s.api_key = Some(Secret::new("k3y")))
        .await
        .expect("SQLite is always available")
}

#[tokio::test]
async fn page_is_public_and_the_api_behind_it_keeps_its_key() {
    let app = app_with_key().await;
    let mut pages = Vec::new();
    for path in ["/ui", "/ui/", "/ui/campaigns/7", "/ui/calls/42"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header("content-type"), "text/html; charset=utf-8");
        let csp = header("content-security-policy");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(header("x-frame-options"), "DENY");
        pages.push(res.text().await.unwrap());
    }
    // One document for every view: the script picks the view from the path.
    assert!(pages.windows(2).all(|w| w[0] == w[1]));
    assert!(pages[0].contains(r#"<script type="module" src="/ui/assets/app.js">"#));

    for path in ["/dashboard", "/campaigns", "/calls/1/transcript"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 401, "{path}");
        assert_eq!(error_code(res).await, "unauthorized");
    }
    let res = app.get("/ui/nothing-here").await;
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "not_found");
}

/// `/ui/assets/x` references in `text`: the HTML's links and the scripts' `from './x.js'`.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for marker in ["/ui/assets/", "from './"] {
        for (at, _) in text.match_indices(marker) {
            let rest = &text[at + marker.len()..];
            let end = rest.find(['"', '\'']).unwrap_or(rest.len());
            names.insert(rest[..end].to_string());
        }
    }
    names
}

#[tokio::test]
async fn every_file_the_page_loads_is_served_with_its_type() {
    let app = app_with_key().await;
    let index = app.get("/ui").await.text().await.unwrap();
    let mut pending: Vec<String> = referenced(&index).into_iter().collect();
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let res = app.get(&format!("/ui/assets/{name}")).await;
        assert_eq!(res.status(), 200, "{name}");
        let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
        let expected = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset type {other:?}"),
        };
        assert_eq!(content_type, expected, "{name}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        let body = res.text().await.unwrap();
        assert!(!body.is_empty(), "{name}");
        pending.extend(referenced(&body));
    }
    // The entry point and every view's module were reached through the imports.
    for name in [
        "app.js",
        "app.css",
        "dashboard.js",
        "campaign.js",
        "call.js",
        "chart.js",
    ] {
        assert!(seen.contains(name), "{name} not reached: {seen:?}");
    }

    for path in ["/ui/assets/nope.js", "/ui/assets/..%2F..%2FCargo.toml"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(error_code(res).await, "not_found");
    }
}
