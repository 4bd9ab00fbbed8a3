//! The OpenAPI 3.1 document of the service (`GET /openapi.json`) and a page that renders it
//! (`GET /docs`), both public like `/health`.
//!
//! Each route module describes its own routes: `#[utoipa::path]` on the handlers, listed in an
//! `ApiDoc` next to the module's `routes()`, with request and response types deriving
//! `ToSchema` (the types the handlers really serialise, so the schemas cannot drift). This
//! module only assembles those parts the way `startup::router` assembles the routers: the
//! groups behind `require_api_key` get the bearer scheme and its 401, and every operation the
//! 500 that any handler (or the panic guard) can answer. It must describe no route but its own
//! two; `tests/api/openapi.rs` fails when a route of the router is missing from the document.
//!
//! The page is self-contained (no CDN: the service may run where there is no internet): one
//! HTML document with its style and script inlined, allowed by their hashes in the CSP.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::startup::AppState;

/// Bearer `API_KEY`, required by the REST API when `API_KEY` is set.
pub const API_KEY_SCHEME: &str = "api_key";
/// Our `WEBHOOK_SECRET` as `?secret=`, in the URLs we give the carrier.
pub const CARRIER_SECRET_SCHEME: &str = "carrier_secret";
/// The same secret as the Basic-auth password (Exotel puts credentials in the stream URL).
pub const CARRIER_BASIC_SCHEME: &str = "carrier_basic";

const INTRO: &str = "\
Outbound AI phone-call campaigns: create a campaign, upload its leads as CSV, start it; the \
dialer calls each lead through Exotel within its calling window and an AI agent holds the \
conversation over the carrier's media WebSocket, recording transcript, outcome and \
qualification.

Every error is `{\"error\": {\"code\": \"…\", \"message\": \"…\"}}` (the `ErrorBody` schema) \
with the matching status. A path the service does not have answers 404 `not_found`; a method \
a path does not support answers 405 `method_not_allowed`. Any operation may answer 500 \
`internal`: the details are logged, never returned; and 503 `unavailable` when the database \
does not answer in time or the request runs past its timeout. A JSON body over 2 MB is answered 413 \
`payload_too_large`.

When `API_KEY` is set, the REST API needs `Authorization: Bearer <API_KEY>`; `/health`, \
these docs and the dashboard pages are public. The carrier's webhook and media stream carry \
`WEBHOOK_SECRET` instead.";

#[derive(OpenApi)]
#[openapi(
    info(title = "voice-agent"),
    tags(
        (name = "campaigns", description = "Campaigns, their status actions and their leads"),
        (name = "leads and calls", description = "One lead, one call, a call's transcript"),
        (name = "do-not-call", description = "Numbers that are never dialled"),
        (name = "reports", description = "Analytics, the dashboard's data and CSV exports"),
        (name = "outbound webhooks", description = "`call.completed` events sent to a campaign's `webhook_url`"),
        (name = "carrier", description = "Called by Exotel: status callbacks and the live media stream"),
        (name = "operations", description = "Health, live sessions and this documentation"),
        (name = "dashboard", description = "The operator's web page (`/ui`)"),
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&Intro),
)]
struct Base;

struct Intro;

impl Modify for Intro {
    fn modify(&self, doc: &mut Document) {
        doc.info.description = Some(INTRO.to_string());
        // Cargo.toml names no licence; an empty one would only be noise.
        doc.info.license = None;
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`API_KEY`, when it is set"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            CARRIER_SECRET_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "secret",
                "`WEBHOOK_SECRET`",
            ))),
        );
        components.add_security_scheme(
            CARRIER_BASIC_SCHEME,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("Any user, `WEBHOOK_SECRET` as the password"))
                    .build(),
            ),
        );
    }
}

/// The whole document, assembled like `startup::router`.
pub fn document() -> Document {
    // The routers `startup::router` puts behind `require_api_key`.
    let mut protected = crate::campaigns::api::ApiDoc::openapi();
    for part in [
        crate::dialer::api::ApiDoc::openapi(),
        crate::media::ws::DebugDoc::openapi(),
        crate::reports::api::ApiDoc::openapi(),
        crate::notify::api::ApiDoc::openapi(),
        crate::metrics::http::ApiDoc::openapi(),
    ] {
        protected.merge(part);
    }
    for operation in operations(&mut protected) {
        operation
            .security
            .get_or_insert_with(Vec::new)
            .push(SecurityRequirement::new(
                API_KEY_SCHEME,
                Vec::<String>::new(),
            ));
        add_error(
            operation,
            "401",
            "`unauthorized`: missing or wrong `Authorization: Bearer <API_KEY>`",
        );
    }

    let mut doc = Base::openapi();
    doc.merge(protected);
    for part in [
        crate::api::ApiDoc::openapi(),
        ApiDoc::openapi(),
        crate::telephony::webhook::ApiDoc::openapi(),
        crate::media::ws::MediaDoc::openapi(),
        crate::ui::ApiDoc::openapi(),
    ] {
        doc.merge(part);
    }
    for operation in operations(&mut doc) {
        add_error(
            operation,
            "500",
            "`internal`: an unexpected failure (logged, not returned)",
        );
        add_error(
            operation,
            "503",
            "`unavailable`: the database did not answer within `DB_ACQUIRE_TIMEOUT_MS`, or the \
             request took longer than `HTTP_REQUEST_TIMEOUT_MS`; try again shortly",
        );
        // What every JSON body can be refused for, said once here rather than on each operation.
        if takes_json(operation) {
            add_error(operation, "400", "`malformed_json`: the body is not JSON");
            add_error(
                operation,
                "413",
                "`payload_too_large`: the JSON body is over 2 MB",
            );
            add_error(
                operation,
                "415",
                "`unsupported_media_type`: not sent as `application/json`",
            );
        }
    }
    doc
}

/// Every operation of every path.
fn operations(doc: &mut Document) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .filter_map(Option::as_mut)
    })
}

/// Whether the operation's body is JSON only, read by `ApiJson` (which answers 400, 413 and 415
/// alike everywhere). Operations that take several body types read them their own way.
fn takes_json(operation: &Operation) -> bool {
    matches!(
        &operation.request_body,
        Some(utoipa::openapi::RefOr::T(body))
            if body.content.len() == 1 && body.content.contains_key("application/json")
    )
}

/// Adds an `ErrorBody` response for `status` unless the operation describes it already.
fn add_error(operation: &mut Operation, status: &str, description: &str) {
    let responses = &mut operation.responses.responses;
    if responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    responses.insert(status.to_string(), response.into());
}

/// The OpenAPI description of [`routes`].
#[derive(OpenApi)]
#[openapi(paths(openapi_json, docs_page))]
struct ApiDoc;

/// `/openapi.json` and `/docs`. Public: no API key.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs_page))
}

/// The OpenAPI document
///
/// This document: OpenAPI 3.1, generated from the handlers and types of this build.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations", operation_id = "openapi_document",
    responses((status = 200, description = "The document", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| {
        // The document is built from static descriptions: it always serialises.
        document()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body.as_str(),
    )
        .into_response()
}

const PAGE: &str = include_str!("docs.html");
const STYLE: &str = include_str!("docs.css");
const SCRIPT: &str = include_str!("docs.js");

/// The API documentation page
///
/// A readable rendering of `/openapi.json`, grouped by tag. Works offline.
#[utoipa::path(
    get, path = "/docs", tag = "operations", operation_id = "docs_page",
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
async fn docs_page() -> Response {
    static PAGE_AND_CSP: OnceLock<(String, HeaderValue)> = OnceLock::new();
    let (page, csp) = PAGE_AND_CSP.get_or_init(|| {
        let page = PAGE
            .replace("/*STYLE*/", STYLE)
            .replace("/*SCRIPT*/", SCRIPT);
        // Inline style and script are allowed by hash, nothing else: the page only fetches
        // the document from this origin.
        let csp = format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
             img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            csp_hash(SCRIPT),
            csp_hash(STYLE)
        );
        let csp = HeaderValue::from_str(&csp).expect("the CSP is ASCII");
        (page, csp)
    });
    let mut res = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page.as_str(),
    )
        .into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// A CSP source allowing exactly this inline text.
fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_an_id_a_tag_and_a_500() {
        let mut doc = document();
        let tags: Vec<String> = doc.tags.iter().flatten().map(|t| t.name.clone()).collect();
        let mut ids = std::collections::BTreeSet::new();
        for op in operations(&mut doc) {
            let id = op.operation_id.clone().expect("operation id");
            assert!(ids.insert(id.clone()), "duplicate operation id {id}");
            let op_tags = op.tags.clone().unwrap_or_default();
            assert_eq!(op_tags.len(), 1, "{id}: one tag");
            assert!(
                tags.contains(&op_tags[0]),
                "{id}: undeclared tag {op_tags:?}"
            );
            assert!(op.responses.responses.contains_key("500"), "{id}");
            if takes_json(op) {
                assert!(op.responses.responses.contains_key("413"), "{id}");
            }
        }
        assert!(ids.len() > 30, "only {} operations", ids.len());
    }

    #[test]
    fn csp_hash_is_base64_sha256() {
        // echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert_eq!(
            csp_hash("alert(1)"),
            "sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI="
        );
    }
}
