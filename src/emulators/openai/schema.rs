//! Structured output: a JSON Schema (`response_format` `json_schema`) filled with plausible
//! values from what the conversation established, or a default object for `json_object`.

use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

use super::partner::{Facts, Intent, Lang, first_number};

pub(super) fn fill(schema: &Value, facts: &Facts) -> Value {
    fill_at(schema, "", facts, schema, 0)
}

/// For `response_format: json_object` (no schema).
pub(super) fn default_object(facts: &Facts) -> Value {
    json!({
        "intent": intent(facts),
        "summary": summary(facts),
        "callback_at": facts.callback_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        "language": language(facts),
    })
}

fn intent(facts: &Facts) -> &'static str {
    facts.intent.map_or("unknown", Intent::as_str)
}

fn language(facts: &Facts) -> &'static str {
    match facts.lang {
        Lang::En => "en-IN",
        Lang::Hi => "hi-IN",
    }
}

fn sentiment(facts: &Facts) -> &'static str {
    match facts.intent {
        Some(Intent::Interested) => "positive",
        Some(Intent::NotInterested | Intent::DoNotCall) => "negative",
        _ => "neutral",
    }
}

fn summary(facts: &Facts) -> String {
    let mut s = match facts.intent {
        Some(Intent::Interested) => match &facts.answer {
            Some(a) => format!(
                "The caller is interested in the offer and described their requirement: \"{a}\"."
            ),
            None => "The caller is interested in the offer.".to_string(),
        },
        Some(Intent::NotInterested) => {
            "The caller said they were not interested; the call ended politely.".to_string()
        }
        Some(Intent::Callback) => format!(
            "The caller asked to be called back at {}.",
            facts
                .callback_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_else(|| "a later time".into())
        ),
        Some(Intent::WrongNumber) => {
            "The number did not belong to the intended lead (wrong number).".to_string()
        }
        Some(Intent::DoNotCall) => "The caller asked not to be called again.".to_string(),
        None => "The call ended without a clear outcome.".to_string(),
    };
    if let Some(q) = facts.questions.first() {
        s.push_str(&format!(" The caller asked: \"{q}\"."));
    }
    s
}

fn next_step(facts: &Facts) -> &'static str {
    match facts.intent {
        Some(Intent::Interested) => "Sales team to follow up with details.",
        Some(Intent::Callback) => "Call back at the agreed time.",
        Some(Intent::DoNotCall) => "Add the number to the do-not-call list.",
        Some(Intent::WrongNumber) => "Correct the lead's phone number.",
        _ => "No follow-up needed.",
    }
}

/// Words of field names whose value the conversation always gives (see `string_for`).
    #[rustfmt::skip]
    const KNOWN_FIELDS: &[&str] = &[
        "summary", "intent", "outcome", "disposition", "sentiment", "lang", "note", "reason",
        "comment", "next", "action", "follow", "question", "objection", "score", "confidence",
        "probability", "likelihood",
    ];

/// Whether a nullable field of type `ty` should be `null` because the call did not
/// establish it: a callback time without a callback, a qualification field without an answer.
fn unknown(name: &str, ty: &str, facts: &Facts) -> bool {
    let n = name.to_lowercase();
    let is_time = n.contains("callback") || n.ends_with("_at") || n.contains("time");
    let is_answer = matches!(ty, "string" | "number" | "integer")
        && !is_time
        && !KNOWN_FIELDS.iter().any(|w| n.contains(w));
    (is_time && facts.callback_at.is_none()) || (is_answer && facts.answer.is_none())
}

fn fill_at(schema: &Value, name: &str, facts: &Facts, root: &Value, depth: u32) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    if let Some(target) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| root.pointer(p))
    {
        return fill_at(target, name, facts, root, depth + 1);
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(options) = schema["anyOf"].as_array().or(schema["oneOf"].as_array()) {
        let nullable = options.iter().any(|o| o["type"] == "null");
        let chosen = options
            .iter()
            .find(|o| o["type"] != "null")
            .or(options.first());
        let ty = chosen.and_then(|o| o["type"].as_str()).unwrap_or("string");
        if nullable && unknown(name, ty, facts) {
            return Value::Null;
        }
        return chosen.map_or(Value::Null, |o| fill_at(o, name, facts, root, depth + 1));
    }
    if let Some(values) = schema["enum"].as_array() {
        return pick_enum(values, facts);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ if schema.get("properties").is_some() => vec!["object"],
        _ => vec!["string"],
    };
    let ty = types
        .iter()
        .find(|t| **t != "null")
        .copied()
        .unwrap_or("null");
    if types.contains(&"null") && unknown(name, ty, facts) {
        return Value::Null;
    }
    match ty {
        "object" => {
            let props = schema["properties"].as_object();
            let out: Map<String, Value> = props
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), fill_at(v, k, facts, root, depth + 1)))
                .collect();
            Value::Object(out)
        }
        "array" => {
            let n = name.to_lowercase();
            let mut items: Vec<Value> = if n.contains("question") || n.contains("objection") {
                facts.questions.iter().map(|q| json!(q)).collect()
            } else {
                Vec::new()
            };
            let min = schema["minItems"].as_u64().unwrap_or(0) as usize;
            while items.len() < min {
                items.push(fill_at(&schema["items"], name, facts, root, depth + 1));
            }
            Value::Array(items)
        }
        "string" => Value::String(string_for(name, schema, facts)),
        "integer" | "number" => number_for(name, schema, facts),
        "boolean" => Value::Bool(bool_for(name, facts)),
        _ => Value::Null,
    }
}

fn pick_enum(values: &[Value], facts: &Facts) -> Value {
    let wanted = [
        intent(facts),
        sentiment(facts),
        language(facts),
        &language(facts)[..2],
    ];
    values
        .iter()
        .find(|v| {
            v.as_str()
                .is_some_and(|s| wanted.iter().any(|w| w.eq_ignore_ascii_case(s)))
        })
        .or_else(|| values.iter().find(|v| *v == "unknown" || *v == "other"))
        .or(values.first())
        .cloned()
        .unwrap_or(Value::Null)
}

fn string_for(name: &str, schema: &Value, facts: &Facts) -> String {
    let n = name.to_lowercase();
    if schema["format"] == "date-time"
        || n.contains("callback")
        || n.ends_with("_at")
        || n.contains("time")
        || n.contains("date")
    {
        return facts
            .callback_at
            .unwrap_or(facts.now)
            .to_rfc3339_opts(SecondsFormat::Secs, true);
    }
    if n.contains("summary") {
        summary(facts)
    } else if n.contains("intent") || n.contains("outcome") || n.contains("disposition") {
        intent(facts).into()
    } else if n.contains("sentiment") {
        sentiment(facts).into()
    } else if n.contains("lang") {
        language(facts).into()
    } else if n.contains("note") || n.contains("reason") || n.contains("comment") {
        summary(facts)
    } else if n.contains("next") || n.contains("action") || n.contains("follow") {
        next_step(facts).into()
    } else if n.contains("question") || n.contains("objection") {
        facts.questions.join("; ")
    } else {
        // A qualification field ("monthly_bill"): what the caller answered.
        facts.answer.clone().unwrap_or_default()
    }
}

fn number_for(name: &str, schema: &Value, facts: &Facts) -> Value {
    let n = name.to_lowercase();
    let min = schema["minimum"].as_f64();
    let max = schema["maximum"].as_f64();
    let v = if ["score", "confidence", "probability", "likelihood"]
        .iter()
        .any(|w| n.contains(w))
    {
        let high = facts.intent == Some(Intent::Interested);
        let top = max.unwrap_or(if n.contains("score") { 10.0 } else { 1.0 });
        top * if high { 0.9 } else { 0.2 }
    } else {
        facts
            .answer
            .as_deref()
            .and_then(first_number)
            .unwrap_or(0.0)
    };
    let v = v.max(min.unwrap_or(f64::MIN)).min(max.unwrap_or(f64::MAX));
    if schema["type"] == "integer" {
        json!(v.round() as i64)
    } else {
        json!(v)
    }
}

fn bool_for(name: &str, facts: &Facts) -> bool {
    let n = name.to_lowercase();
    let is = |i: Intent| facts.intent == Some(i);
    if n.contains("not_interested") || n.contains("not interested") {
        is(Intent::NotInterested)
    } else if n.contains("interested") || n.contains("qualified") {
        is(Intent::Interested)
    } else if n.contains("callback") {
        is(Intent::Callback)
    } else if n.contains("do_not_call") || n.contains("dnc") {
        is(Intent::DoNotCall)
    } else if n.contains("wrong") {
        is(Intent::WrongNumber)
    } else {
        false
    }
}
