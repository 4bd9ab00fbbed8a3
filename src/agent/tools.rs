//! The tools offered to the model, and what their calls mean for the call.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::store::QualificationField;
use crate::voice::llm::{ToolCall, ToolSpec};

pub const INTENTS: [&str; 5] = [
    "interested",
    "not_interested",
    "callback",
    "wrong_number",
    "do_not_call",
];

/// What a tool call asks of the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    EndCall {
        reason: String,
    },
    RecordOutcome {
        intent: String,
        notes: Option<String>,
        qualification: serde_json::Map<String, Value>,
    },
    ScheduleCallback {
        at: DateTime<Utc>,
    },
    /// A call the model got wrong; the error goes back to it as the tool result.
    Invalid {
        error: String,
    },
}

pub fn specs(fields: &[QualificationField]) -> Vec<ToolSpec> {
    let mut props = serde_json::Map::new();
    for f in fields {
        props.insert(
            f.name.clone(),
            json!({"type": f.kind, "description": f.description}),
        );
    }
    vec![
        ToolSpec {
            name: "end_call".into(),
            description: "Hang up after your last sentence has been spoken.".into(),
            parameters: json!({"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]}),
        },
        ToolSpec {
            name: "record_outcome".into(),
            description: "Record what the person wants, as soon as it is clear.".into(),
            parameters: json!({"type": "object", "properties": {
                "intent": {"type": "string", "enum": INTENTS},
                "notes": {"type": "string"},
                "qualification": {"type": "object", "properties": props}
            }, "required": ["intent"]}),
        },
        ToolSpec {
            name: "schedule_callback".into(),
            description: "Schedule a call back at the time the person asked for.".into(),
            parameters: json!({"type": "object", "properties": {
                "at": {"type": "string", "description": "RFC 3339 time, e.g. 2026-11-26T17:00:00+05:30"}
            }, "required": ["at"]}),
        },
    ]
}

/// Reads a tool call; bad arguments become `Invalid` (told to the model, never a panic).
pub fn parse(call: &ToolCall) -> Action {
    let args: Value = match serde_json::from_str(if call.arguments_json.trim().is_empty() {
        "{}"
    } else {
        &call.arguments_json
    }) {
        Ok(v) => v,
        Err(e) => {
            return Action::Invalid {
                error: format!("arguments are not JSON: {e}"),
            };
        }
    };
    let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
    match call.name.as_str() {
        "end_call" => Action::EndCall {
            reason: text("reason").unwrap_or_else(|| "done".into()),
        },
        "record_outcome" => match text("intent") {
            Some(i) if INTENTS.contains(&i.as_str()) => Action::RecordOutcome {
                intent: i,
                notes: text("notes"),
                qualification: args
                    .get("qualification")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            },
            other => Action::Invalid {
                error: format!("intent must be one of {INTENTS:?}, got {other:?}"),
            },
        },
        "schedule_callback" => match text("at").map(|t| DateTime::parse_from_rfc3339(&t)) {
            Some(Ok(t)) => Action::ScheduleCallback {
                at: t.with_timezone(&Utc),
            },
            _ => Action::Invalid {
                error: "`at` must be an RFC 3339 time".into(),
            },
        },
        other => Action::Invalid {
            error: format!("unknown tool `{other}`"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &str) -> ToolCall {
        ToolCall {
            id: "c1".into(),
            name: name.into(),
            arguments_json: args.into(),
        }
    }

    #[test]
    fn tool_calls_parse_into_actions() {
        assert_eq!(
            parse(&call("end_call", r#"{"reason":"done"}"#)),
            Action::EndCall {
                reason: "done".into()
            }
        );
        let Action::RecordOutcome {
            intent,
            qualification,
            ..
        } = parse(&call(
            "record_outcome",
            r#"{"intent":"interested","qualification":{"budget":"2L"}}"#,
        ))
        else {
            panic!()
        };
        assert_eq!(intent, "interested");
        assert_eq!(qualification["budget"], "2L");
        let Action::ScheduleCallback { at } = parse(&call(
            "schedule_callback",
            r#"{"at":"2026-11-26T17:00:00+05:30"}"#,
        )) else {
            panic!()
        };
        assert_eq!(at.to_rfc3339(), "2026-11-26T11:30:00+00:00");
    }

    #[test]
    fn bad_tool_calls_are_invalid_not_panics() {
        assert!(matches!(
            parse(&call("record_outcome", r#"{"intent":"maybe"}"#)),
            Action::Invalid { .. }
        ));
        assert!(matches!(
            parse(&call("schedule_callback", r#"{"at":"tomorrow"}"#)),
            Action::Invalid { .. }
        ));
        assert!(matches!(
            parse(&call("dance", "{}")),
            Action::Invalid { .. }
        ));
        assert!(matches!(
            parse(&call("end_call", "{not json")),
            Action::Invalid { .. }
        ));
    }
}
