//! The operator dashboard at `/ui`: HTML, CSS and JavaScript compiled into the binary with
//! `include_str!`, so there is no front-end build step and the page always ships with the API
//! it was written against.
//!
//! The page routes are public because they hold no data; everything they show comes from the
//! JSON API, which keeps its API key (the page asks for it on a 401 and sends it as a bearer
//! token). This module must not compute anything for the page: the page reads the same
//! endpoints as any other client (`/dashboard`, `/campaigns/…`, `/calls/…`).

/// Temporary: deleted when the analytics branch's `/dashboard` and transcript are merged.
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiPath;
use crate::startup::AppState;

/// Scripts and styles from this origin only, data only from this origin's API, no framing: a
/// transcript line that looks like markup can never run, and the page cannot be clickjacked.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("assets/index.html");

/// Every asset the page loads, by file name: (name, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    ("app.js", JS, include_str!("assets/app.js")),
    ("api.js", JS, include_str!("assets/api.js")),
    ("dom.js", JS, include_str!("assets/dom.js")),
    ("chart.js", JS, include_str!("assets/chart.js")),
    ("components.js", JS, include_str!("assets/components.js")),
    ("dashboard.js", JS, include_str!("assets/dashboard.js")),
    ("campaign.js", JS, include_str!("assets/campaign.js")),
    ("call.js", JS, include_str!("assets/call.js")),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("assets/favicon.svg"),
    ),
];
const JS: &str = "text/javascript; charset=utf-8";

/// The page (one HTML document for every view; the script picks the view from the path) and
/// its assets. Public: no API key.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/campaigns/{id}", get(index))
        .route("/ui/calls/{id}", get(index))
        .route("/ui/assets/{name}", get(asset))
}

async fn index() -> Response {
    let mut res = page("text/html; charset=utf-8", INDEX);
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

async fn asset(ApiPath(name): ApiPath<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => page(content_type, body),
        None => crate::error::error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such dashboard asset",
        ),
    }
}

/// A static body. `no-cache`: the browser asks again on every load (the files are small), so a
/// new binary's page is never mixed with an old cached script.
fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
