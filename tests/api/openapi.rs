//! The OpenAPI document (`/openapi.json`) against the service itself: it is a valid OpenAPI 3.1
//! document whose references all resolve and whose errors are all `ErrorBody`; every operation
//! it lists is routed, with the methods and the security it claims and no status it does not
//! list; every route in the source is in it; and `/docs` renders it, offline.
//!
//! SQLite is enough: routing and the document do not depend on the backend.

use std::collections::BTreeSet;

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use voice_agent::config::Secret;

use crate::browser::Browser;
use crate::helpers::{Backend, TestApp, spawn_app_with};
use crate::route_scan::source_routes;

const API_KEY: &str = "openapi-test-key";
const ERROR_BODY: &str = "#/components/schemas/ErrorBody";
/// Error statuses whose body is not `ErrorBody`, on purpose.
const NOT_ERROR_BODY: &[(&str, &str, &str)] =
    &[("GET", "/health", "503"), ("GET", "/readyz", "503")];

async fn app() -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| s.api_key = Some(Secret::new(API_KEY)))
        .await
        .expect("SQLite is always available")
}

/// The served document (without credentials: it is public), as text and as JSON.
async fn document(app: &TestApp) -> (String, Value) {
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).expect("the document is JSON");
    (text, json)
}

struct Op<'a> {
    method: Method,
    path: String,
    op: &'a Value,
}

impl Op<'_> {
    fn schemes(&self) -> BTreeSet<String> {
        self.op["security"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|req| req.as_object().unwrap().keys().cloned())
            .collect()
    }

    fn statuses(&self) -> BTreeSet<String> {
        self.op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

fn operations(doc: &Value) -> Vec<Op<'_>> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            ops.push(Op {
                method,
                path: path.clone(),
                op,
            });
        }
    }
    ops
}

/// Every `"$ref"` in the document, with where it is.
fn refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                match (k.as_str(), child) {
                    ("$ref", Value::String(r)) => out.push((at.clone(), r)),
                    _ => refs(child, format!("{at}/{k}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn document_is_valid_openapi_3_1() {
    let app = app().await;
    let (text, doc) = document(&app).await;

    // A maintained parser accepts it as OpenAPI 3.1 and resolves every part of every operation.
    let spec = oas3::from_json(&text).expect("parses as an OpenAPI 3.1 document");
    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));
    let parsed: Vec<_> = spec.operations().collect();
    assert_eq!(parsed.len(), operations(&doc).len());
    for (path, method, op) in parsed {
        let params = op.parameters(&spec).unwrap();
        assert_eq!(
            params.len(),
            op.parameters.len(),
            "{method} {path}: a parameter"
        );
        op.request_body(&spec)
            .unwrap_or_else(|e| panic!("{method} {path}: request body: {e}"));
        let responses = op.responses(&spec);
        assert!(!responses.is_empty(), "{method} {path} has no response");
        assert_eq!(
            responses.len(),
            op.responses.as_ref().map_or(0, |r| r.len()),
            "{method} {path}: a response does not resolve"
        );
    }

    // Every reference points at something.
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(found.len() > 50, "only {} references", found.len());
    for (at, r) in &found {
        let target = r.strip_prefix('#').and_then(|pointer| doc.pointer(pointer));
        assert!(target.is_some(), "{at}: `{r}` resolves to nothing");
    }

    // The error body is what `crate::error` sends.
    let detail = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(
        doc["components"]["schemas"]["ErrorBody"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    assert_eq!(detail["required"], serde_json::json!(["code", "message"]));

    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut ids = BTreeSet::new();
    for op in operations(&doc) {
        let name = op.name();
        let id = op.op["operationId"].as_str().expect("operationId");
        assert!(
            ids.insert(id.to_string()),
            "{name}: operationId {id} reused"
        );
        assert!(op.op["summary"].is_string(), "{name}: no summary");
        let tag = op.op["tags"][0].as_str().expect("a tag");
        assert!(tags.contains(tag), "{name}: tag {tag} is not declared");

        // Path parameters are exactly the template's variables.
        let in_template: BTreeSet<String> = op
            .path
            .split('{')
            .skip(1)
            .map(|s| s.split('}').next().unwrap().to_string())
            .collect();
        let declared: BTreeSet<String> = op.op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .inspect(|p| assert_eq!(p["required"], true, "{name}: optional path parameter"))
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(in_template, declared, "{name}: path parameters");

        for scheme in op.schemes() {
            assert!(
                schemes.contains_key(&scheme),
                "{name}: unknown scheme {scheme}"
            );
        }
        if op.schemes().contains("api_key") {
            assert!(op.statuses().contains("401"), "{name}: no 401");
        }

        for (status, response) in op.op["responses"].as_object().unwrap() {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok(),
                "{name}: status {status}"
            );
            assert!(response["description"].is_string(), "{name} {status}");
            if status.as_str() < "400"
                || NOT_ERROR_BODY.contains(&(op.method.as_str(), op.path.as_str(), status))
            {
                continue;
            }
            let content = response["content"].as_object().expect("error content");
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                ["application/json"],
                "{name} {status}"
            );
            assert_eq!(
                content["application/json"]["schema"]["$ref"], ERROR_BODY,
                "{name} {status}: not an ErrorBody"
            );
        }
    }
    assert!(ids.len() >= 30, "only {} operations", ids.len());
}

/// A URL for a documented path, with a placeholder for each parameter.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{phone}", "%2B919876543210")
        .replace("{name}", "app.js")
}

/// One request, with the credentials of the given schemes (none when empty).
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    schemes: &BTreeSet<String>,
) -> (StatusCode, Value) {
    let mut url = app.url(&concrete(path));
    if schemes.contains("carrier_secret") {
        let secret = app.state.settings.webhook_secret.expose();
        url.push_str(&format!("?secret={secret}"));
    }
    let mut req = app.client.request(method.clone(), &url);
    if schemes.contains("api_key") {
        req = req.bearer_auth(API_KEY);
    }
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_documented_operation_is_routed_with_its_methods_and_security() {
    let app = app().await;
    let (_, doc) = document(&app).await;
    let none = BTreeSet::new();

    // What the router answers for a route it does not have (`api::not_found`) and for a method
    // a route does not have (`api::method_not_allowed`).
    let (status, no_route) = send(&app, Method::GET, "/no/such/route", &none).await;
    assert_eq!(
        (status, &no_route["error"]["code"]),
        (StatusCode::NOT_FOUND, &"not_found".into())
    );
    let (status, no_method) = send(&app, Method::DELETE, "/health", &none).await;
    assert_eq!(
        (status, &no_method["error"]["code"]),
        (StatusCode::METHOD_NOT_ALLOWED, &"method_not_allowed".into())
    );

    let ops = operations(&doc);
    for op in &ops {
        let name = op.name();
        let schemes = op.schemes();

        // With its credentials: routed, and answering only statuses it documents.
        let (status, body) = send(&app, op.method.clone(), &op.path, &schemes).await;
        assert!(
            !(status == 404 && body == no_route),
            "{name} is documented but not routed"
        );
        assert!(
            !(status == 405 && body == no_method),
            "{name} is documented but its path does not take {}",
            op.method
        );
        assert!(
            op.statuses().contains(status.as_str()),
            "{name} answered {status}, which it does not document: {body}"
        );
        if status.is_client_error() || status.is_server_error() {
            assert!(
                body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                "{name} {status}: not an error body: {body}"
            );
        }

        // Without credentials: refused exactly when it documents a security scheme.
        let (status, body) = send(&app, op.method.clone(), &op.path, &none).await;
        if schemes.is_empty() {
            assert_ne!(
                status, 401,
                "{name} is documented as public but refused: {body}"
            );
        } else {
            assert_eq!(status, 401, "{name} claims {schemes:?} but let us in");
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }

    // A documented path answers 405 to every method it does not document.
    let paths: BTreeSet<&str> = ops.iter().map(|o| o.path.as_str()).collect();
    for path in paths {
        let documented: BTreeSet<Method> = ops
            .iter()
            .filter(|o| o.path == path)
            .map(|o| o.method.clone())
            .collect();
        let all = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ];
        let schemes: BTreeSet<String> = ops
            .iter()
            .filter(|o| o.path == path)
            .flat_map(|o| o.schemes())
            .collect();
        for method in all.into_iter().filter(|m| !documented.contains(m)) {
            let (status, body) = send(&app, method.clone(), path, &schemes).await;
            assert_eq!(
                (status, &body),
                (StatusCode::METHOD_NOT_ALLOWED, &no_method),
                "{method} {path} is served but not documented"
            );
        }
    }
}

#[tokio::test]
async fn every_route_in_the_source_is_documented() {
    let app = app().await;
    let (_, doc) = document(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .iter()
        .map(|o| (o.method.to_string(), o.path.clone()))
        .collect();
    let routed = source_routes().unwrap_or_else(|e| panic!("{e}"));
    assert!(routed.len() >= 30, "the scan found only {routed:?}");

    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document (add `#[utoipa::path]` to the handler and list \
         it in its module's `ApiDoc`): {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
}

/// The CSP source for an inline text, as a browser computes it.
fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).unwrap_or_else(|| panic!("no {open}")) + open.len();
    let end = start
        + text[start..]
            .find(close)
            .unwrap_or_else(|| panic!("no {close}"));
    &text[start..end]
}

#[tokio::test]
async fn docs_page_is_served_public_and_self_contained() {
    let app = app().await;
    let res = app.get("/docs").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let page = res.text().await.unwrap();

    // It fetches the document from this origin and loads nothing else.
    let script = between(&page, "<script>", "</script>");
    let style = between(&page, "<style>", "</style>");
    assert!(script.contains("fetch('/openapi.json'"));
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    assert!(!page.contains("<link"), "the page loads no other file");

    // The inline script and style are allowed by their hashes, and nothing else is.
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        csp.contains(&format!("script-src {}", csp_hash(script))),
        "the script's hash is not in {csp}"
    );
    assert!(
        csp.contains(&format!("style-src {}", csp_hash(style))),
        "the style's hash is not in {csp}"
    );
}

#[tokio::test]
async fn docs_page_renders_every_operation_and_schema_in_a_browser() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let app = app().await;
    let (_, doc) = document(&app).await;
    let c = &browser.client;
    c.goto(&app.url("/docs")).await.unwrap();
    browser
        .wait(20, "the document to render", || async {
            let ready = c
                .execute("return document.body.dataset.ready || null", vec![])
                .await
                .ok()?;
            ready.as_str().map(|_| ())
        })
        .await;

    let count = |css: &str| {
        let script = format!("return document.querySelectorAll({css:?}).length");
        async move { c.execute(&script, vec![]).await.unwrap().as_u64().unwrap() as usize }
    };
    let ops = operations(&doc);
    assert_eq!(count("details.op").await, ops.len());
    let schemas = doc["components"]["schemas"].as_object().unwrap().len();
    assert_eq!(count(".schema").await, schemas);
    let tags = doc["tags"].as_array().unwrap().len();
    assert_eq!(count("section.tag").await, tags);
    let text = c
        .execute("return document.body.innerText", vec![])
        .await
        .unwrap();
    let text = text.as_str().unwrap();
    assert!(!text.contains("[object"), "a value rendered as [object …]");
    assert!(!text.contains("undefined"), "an `undefined` rendered");

    // An operation opens from a link with its parameters, body and every response.
    c.goto(&app.url("/docs#op-upload_leads_csv")).await.unwrap();
    let upload = browser
        .wait_for_text("#op-upload_leads_csv .op-body", "multipart/form-data", 20)
        .await;
    for status in ["200", "400", "401", "404", "409", "413", "422", "500"] {
        assert!(upload.contains(status), "{status} missing from {upload}");
    }
    assert!(upload.contains("ImportReport"));

    // The filter keeps the matching operations only.
    let filter = c.find(fantoccini::Locator::Css("#filter")).await.unwrap();
    filter.send_keys("/dnc").await.unwrap();
    let dnc = ops.iter().filter(|o| o.path.contains("/dnc")).count();
    browser
        .wait(10, "the filter to apply", || async {
            (count("details.op:not([hidden])").await == dnc).then_some(())
        })
        .await;
    browser.screenshot("docs").await;
}
