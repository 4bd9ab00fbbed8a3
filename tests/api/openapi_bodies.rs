//! The OpenAPI document describes the bodies the service really sends: with a campaign, leads,
//! calls, a transcript, a do-not-call entry, a webhook delivery and a live session in place,
//! each JSON endpoint is called and its body checked against the schema the document gives for
//! that status, strictly (a field the schema does not list is an error, so a field added to a
//! response without its schema fails here). Request bodies sent are checked against their
//! schemas the same way.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use voice_agent::store::{CallStatus, TranscriptTurn};

use crate::helpers::{TestApp, final_status};

crate::on_both_backends!(every_json_body_matches_its_documented_schema);

/// `schema` resolved through `$ref`s.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(doc, doc.pointer(&r[1..]).expect("a resolvable $ref")),
        None => schema,
    }
}

/// Property names an object schema lists, through `allOf`; `None` when it allows any field.
fn listed_fields(doc: &Value, schema: &Value) -> Option<Vec<String>> {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema["allOf"].as_array() {
        let mut all = Vec::new();
        for part in parts {
            all.extend(listed_fields(doc, part)?);
        }
        return Some(all);
    }
    if schema["additionalProperties"].is_object() || schema["additionalProperties"] == true {
        return None;
    }
    schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

/// Checks `v` against `schema` (the subset of JSON Schema the document uses), pushing what does
/// not match. `strict`: an object may only have the fields its schema lists.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str, strict: bool, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema["allOf"].as_array() {
        for part in parts {
            check(doc, part, v, at, false, errors);
        }
    }
    if let Some(alts) = schema["oneOf"].as_array() {
        let matching = alts
            .iter()
            .filter(|alt| {
                let mut e = Vec::new();
                check(doc, alt, v, at, strict, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!(
                "{at}: {v} matches {matching} of the oneOf alternatives"
            ));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, v)) {
        errors.push(format!("{at}: {v} is not {types:?}"));
        return;
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(v)
    {
        errors.push(format!("{at}: {v} is not one of {values:?}"));
    }
    if let Value::Object(map) = v {
        let properties = schema["properties"].as_object();
        for name in schema["required"].as_array().into_iter().flatten() {
            if !map.contains_key(name.as_str().unwrap()) {
                errors.push(format!("{at}: required field {name} missing"));
            }
        }
        for (key, value) in map {
            let at = format!("{at}.{key}");
            if let Some(prop) = properties.and_then(|p| p.get(key)) {
                check(doc, prop, value, &at, true, errors);
            } else if schema["additionalProperties"].is_object() {
                check(
                    doc,
                    &schema["additionalProperties"],
                    value,
                    &at,
                    true,
                    errors,
                );
            }
        }
        if strict
            && let Some(listed) = listed_fields(doc, schema)
            && (schema["allOf"].is_array() || schema["properties"].is_object())
        {
            for key in map.keys().filter(|k| !listed.contains(k)) {
                errors.push(format!("{at}: field `{key}` is not in the schema"));
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (v, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(doc, item_schema, item, &format!("{at}[{i}]"), true, errors);
        }
    }
}

struct Checker<'a> {
    app: &'a TestApp,
    doc: Value,
    checked: usize,
}

impl Checker<'_> {
    /// Sends the request and checks its body; the answer must have status `expect` and a body
    /// that matches the schema the document gives `template` for it. Returns the answer.
    async fn call(
        &mut self,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let op = &self.doc["paths"][template][method.as_str().to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not documented");
        let mut req = self.app.client.request(method.clone(), self.app.url(path));
        if let Some(body) = &body {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(
                schema.is_object(),
                "{method} {template}: no JSON body documented"
            );
            let mut errors = Vec::new();
            check(&self.doc, schema, body, "request", true, &mut errors);
            assert!(
                errors.is_empty(),
                "{method} {template} request: {errors:#?}"
            );
            req = req.json(body);
        }
        let res = req.send().await.unwrap();
        self.verify(method, template, res, expect).await
    }

    /// Checks that an answer has status `expect` (a documented 4xx in place of a success would
    /// otherwise pass) and a body that matches the schema the document gives `template` for it.
    async fn verify(
        &mut self,
        method: Method,
        template: &str,
        res: reqwest::Response,
        expect: u16,
    ) -> Value {
        let status = res.status();
        let url = res.url().path().to_string();
        let value: Value = res.json().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(status.as_u16(), expect, "{method} {url}: {value}");
        let op = &self.doc["paths"][template][method.as_str().to_lowercase()];
        let schema = &op["responses"][status.as_str()]["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {url}: status {status} has no JSON schema: {value}"
        );
        let mut errors = Vec::new();
        check(&self.doc, schema, &value, "body", true, &mut errors);
        assert!(
            errors.is_empty(),
            "{method} {url} ({status}) does not match its schema: {errors:#?}\n{value:#}"
        );
        self.checked += 1;
        value
    }
}

async fn every_json_body_matches_its_documented_schema(app: TestApp) {
    let doc: Value = app.get_json("/openapi.json").await;
    let mut c = Checker {
        app: &app,
        doc,
        checked: 0,
    };
    use Method as M;

    // Campaigns and leads.
    let campaign = c
        .call(M::POST, "/campaigns", "/campaigns", Some(json!({
            "name": "Schema", "webhook_url": "https://hooks.example.com/hook",
            "calling_window": {"start": "00:00", "end": "23:59",
                "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
            "retry_delays": {"no_answer": [5, 10], "busy": 15},
            "qualification_fields": [{"name": "budget", "description": "Budget", "type": "string"}],
        })), 201)
        .await;
    let id = campaign["id"].as_i64().unwrap();
    let one = "/campaigns/{id}";
    c.call(
        M::PATCH,
        one,
        &format!("/campaigns/{id}"),
        Some(json!({"max_attempts": 4})),
        200,
    )
    .await;
    // A body the schema refuses (an unknown field) gets the documented 422.
    let typo = app.post_json("/campaigns", json!({"nme": "typo"})).await;
    c.verify(M::POST, "/campaigns", typo, 422).await;
    let upload = "/campaigns/{id}/upload-csv";
    let csv = "phone,name,city\n9876543210,Asha,Pune\n12345,Bad,X\n";
    let report = c
        .verify(M::POST, upload, app.upload(id, csv).await, 200)
        .await;
    assert_eq!(
        (
            report["imported"].as_u64(),
            report["invalid_count"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let all_bad = c
        .verify(M::POST, upload, app.upload(id, "phone\n123\n").await, 422)
        .await;
    assert_eq!(all_bad["error"]["code"], "no_valid_rows");
    c.call(
        M::POST,
        "/dnc",
        "/dnc",
        Some(json!({"phone": "+91 98000 00001", "reason": "asked"})),
        201,
    )
    .await;
    c.call(
        M::POST,
        "/campaigns/{id}/start",
        &format!("/campaigns/{id}/start"),
        None,
        200,
    )
    .await;

    // A call: claimed, answered with a transcript and an outcome, finished by the carrier.
    let claimed = app.claim(id, app.state.clock.now(), 10, 1).await;
    let store = app.state.store.as_ref();
    let call_id = claimed[0].call_id;
    let lead_id = claimed[0].lead.id;
    let now = app.state.clock.now();
    store.mark_dialing(call_id, "CA-schema", now).await.unwrap();
    for (seq, speaker, text) in [(1, "agent", "Namaste Asha"), (2, "caller", "Haan, boliye")] {
        let turn = TranscriptTurn {
            started_ms: Some(seq as i64 * 1000),
            ended_ms: Some(seq as i64 * 1000 + 800),
            stt_ms: Some(150),
            llm_first_token_ms: Some(300),
            tts_first_byte_ms: Some(120),
            voice_to_voice_ms: Some(700),
            added_ms: Some(30),
            ..TranscriptTurn::new(call_id, seq, speaker, text)
        };
        store.add_turn(&turn, now).await.unwrap();
    }
    let mut qualification = serde_json::Map::new();
    qualification.insert("budget".into(), json!("2 lakh"));
    store
        .record_call_outcome(
            call_id,
            "interested",
            &qualification,
            Some("Wants a visit"),
            now,
        )
        .await
        .unwrap();
    app.carrier_ends(call_id, &final_status(CallStatus::Completed, 42, now), now)
        .await;
    app.state
        .sessions
        .put(
            "77",
            &json!({"call_id": 77, "state": "live"}),
            Duration::from_secs(60),
        )
        .await
        .unwrap();

    // Every JSON read.
    let reads = [
        ("/health", "/health".to_string(), 200),
        ("/campaigns", "/campaigns".to_string(), 200),
        (one, format!("/campaigns/{id}"), 200),
        (
            "/campaigns/{id}/leads",
            format!("/campaigns/{id}/leads?limit=10"),
            200,
        ),
        (
            "/campaigns/{id}/analytics",
            format!("/campaigns/{id}/analytics"),
            200,
        ),
        (
            "/campaigns/{id}/webhook-deliveries",
            format!("/campaigns/{id}/webhook-deliveries"),
            200,
        ),
        ("/dashboard", "/dashboard".to_string(), 200),
        ("/leads/{id}", format!("/leads/{lead_id}"), 200),
        ("/calls/{id}", format!("/calls/{call_id}"), 200),
        (
            "/calls/{id}/transcript",
            format!("/calls/{call_id}/transcript"),
            200,
        ),
        ("/dnc", "/dnc".to_string(), 200),
        ("/dnc/{phone}", "/dnc/%2B919800000001".to_string(), 200),
        ("/debug/sessions", "/debug/sessions".to_string(), 200),
        (
            "/debug/sessions/{id}",
            "/debug/sessions/77".to_string(),
            200,
        ),
        (
            "/debug/sessions/{id}",
            "/debug/sessions/78".to_string(),
            404,
        ),
        (
            "/campaigns/{id}/leads",
            format!("/campaigns/{id}/leads?status=nope"),
            422,
        ),
        (one, "/campaigns/999".to_string(), 404),
        ("/livez", "/livez".to_string(), 200),
        ("/readyz", "/readyz".to_string(), 200),
    ];
    let mut bodies = Vec::new();
    for (template, path, expect) in &reads {
        bodies.push(c.call(M::GET, template, path, None, *expect).await);
    }
    // The reads above saw the data (not empty lists that match any item schema).
    assert_eq!(bodies[3]["total"], 1);
    assert_eq!(bodies[5]["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(bodies[7]["calls"].as_array().unwrap().len(), 1);
    assert_eq!(bodies[9]["turns"].as_array().unwrap().len(), 2);
    assert_eq!(bodies[12]["sessions"].as_array().unwrap().len(), 1);

    // The carrier's callback: applied once, then a duplicate; the status actions.
    let secret = app.state.settings.webhook_secret.expose().to_string();
    let hook = format!("/webhooks/exotel/status?secret={secret}");
    let event = json!({"CallSid": "CA-schema", "Status": "completed", "EventType": "terminal"});
    let applied = c
        .call(
            M::POST,
            "/webhooks/exotel/status",
            &hook,
            Some(event.clone()),
            200,
        )
        .await;
    assert_eq!(applied["call_id"], call_id, "{applied}");
    let again = c
        .call(M::POST, "/webhooks/exotel/status", &hook, Some(event), 200)
        .await;
    assert_eq!(again, json!({"duplicate": true}));
    c.call(
        M::POST,
        "/campaigns/{id}/pause",
        &format!("/campaigns/{id}/pause"),
        None,
        200,
    )
    .await;
    c.call(
        M::POST,
        "/campaigns/{id}/pause",
        "/campaigns/999/pause",
        None,
        404,
    )
    .await;
    c.call(
        M::POST,
        "/campaigns/{id}/resume",
        &format!("/campaigns/{id}/resume"),
        None,
        200,
    )
    .await;
    assert_eq!(c.checked, 31);
}
