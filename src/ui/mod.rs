//! The operator dashboard at `/ui`: HTML, CSS and JavaScript compiled into the binary with
//! `include_str!`, so there is no front-end build step and the page always ships with the API
//! it was written against.
//!
//! The page routes are public because they hold no data; everything they show comes from the
//! JSON API, which keeps its API key (the page asks for it on a 401 and sends it as a bearer
//! token). This module must not compute anything for the page: the page reads the same
//! endpoints as any other client (`/dashboard`, `/campaigns/…`, `/calls/…`).

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::{ApiPath, ErrorBody};
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
    ("poll.js", JS, include_str!("assets/poll.js")),
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

/// The OpenAPI description of [`routes`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(dashboard_page, dashboard_page_slash, campaign_page, call_page, asset))]
pub struct ApiDoc;

/// The page (one HTML document for every view; the script picks the view from the path) and
/// its assets. Public: no API key.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(dashboard_page))
        .route("/ui/", get(dashboard_page_slash))
        .route("/ui/campaigns/{id}", get(campaign_page))
        .route("/ui/calls/{id}", get(call_page))
        .route("/ui/assets/{name}", get(asset))
}

// One handler per route (all serve the same document) so each route has its own entry in the
// OpenAPI document.

/// Dashboard page
///
/// Campaigns with their progress, live calls with their transcripts, latency per component.
/// An HTML page that reads the JSON API (asking for the API key when it gets a 401).
#[utoipa::path(get, path = "/ui", tag = "dashboard", operation_id = "dashboard_page",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
async fn dashboard_page() -> Response {
    index()
}

/// Dashboard page (trailing slash)
#[utoipa::path(get, path = "/ui/", tag = "dashboard", operation_id = "dashboard_page_slash",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
async fn dashboard_page_slash() -> Response {
    index()
}

/// Campaign page
///
/// A campaign's analytics, cost and leads.
#[utoipa::path(get, path = "/ui/campaigns/{id}", tag = "dashboard", operation_id = "campaign_page",
    params(("id" = String, Path, description = "Campaign id (the page reports an unknown one)")),
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
async fn campaign_page() -> Response {
    index()
}

/// Call page
///
/// A call's transcript, the latency of each turn, its summary and recording.
#[utoipa::path(get, path = "/ui/calls/{id}", tag = "dashboard", operation_id = "call_page",
    params(("id" = String, Path, description = "Call id (the page reports an unknown one)")),
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
async fn call_page() -> Response {
    index()
}

fn index() -> Response {
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

/// Dashboard asset
///
/// A script, stylesheet or icon of the page, by file name (`app.js`, `app.css`, …).
#[utoipa::path(get, path = "/ui/assets/{name}", tag = "dashboard", operation_id = "dashboard_asset",
    params(("name" = String, Path, description = "File name", example = "app.js")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"),
        )),
        (status = 404, description = "`not_found`: no such asset", body = ErrorBody),
    ))]
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
