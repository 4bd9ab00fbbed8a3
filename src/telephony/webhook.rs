//! `POST /webhooks/exotel/status`: Exotel's status callbacks.
//!
//! Accepts JSON, urlencoded and multipart bodies (Exotel sends multipart by default, JSON when
//! asked); keys are matched case-insensitively and numbers may come as strings. Requests must
//! carry our secret (`?secret=`). Idempotent: a (CallSid, event) pair is applied once. Answers
//! 200 quickly even for calls we do not know, so Exotel does not retry forever.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::constant_time_eq;
use crate::config::limits::fields;
use crate::dialer::reconciler::terminal_status;
use crate::dialer::settle::settle_call;
use crate::error::{ApiError, ErrorBody, error_response};
use crate::providers::exotel::{parse_exotel_time, text};
use crate::startup::AppState;
use crate::store::{CallStatus, CarrierUpdate};
use crate::text::LogSafe;

/// The OpenAPI description of [`routes`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(status_callback))]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/webhooks/exotel/status",
        // Exotel's callbacks are a few hundred bytes; a larger body is not one.
        post(status_callback).layer(axum::extract::DefaultBodyLimit::max(
            fields::STATUS_CALLBACK_BYTES,
        )),
    )
}

#[derive(Debug, Deserialize)]
struct SecretParam {
    secret: Option<String>,
}

/// One status callback, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusEvent {
    pub call_sid: String,
    pub status: Option<String>,
    /// `answered` or `terminal`; absent in Exotel's default (terminal-only) callback.
    pub event_type: Option<String>,
    pub custom_field: Option<String>,
    pub conversation_duration: Option<i32>,
    pub recording_url: Option<String>,
    pub answered_by: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
}

impl StatusEvent {
    /// Reads a callback, refusing (with a message naming the field, never echoing it) text
    /// over its limit, control characters in one-line fields and an out-of-range duration.
    /// A `RecordingUrl` that is not an `http(s)` link is dropped (the dashboard makes it a
    /// link): the rest of the callback still applies.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let line = |key: &'static str, max: usize| -> Result<Option<String>, String> {
            match text(v, key) {
                Some(t) => crate::text::check_line(key, &t, max)
                    .map(|()| Some(t))
                    .map_err(|e| e.to_string()),
                None => Ok(None),
            }
        };
        let call_sid = line("CallSid", fields::CARRIER_ID)?.ok_or("`CallSid` is missing")?;
        // `Legs[]` carries AnsweredBy; urlencoded bodies flatten it to `Legs[0][AnsweredBy]`.
        let answered_by = text(v, "AnsweredBy")
            .or_else(|| {
                crate::providers::exotel::field(v, "Legs")
                    .and_then(|l| l.as_array())
                    .and_then(|legs| legs.iter().find_map(|leg| text(leg, "AnsweredBy")))
            })
            .or_else(|| {
                v.as_object()?.iter().find_map(|(k, val)| {
                    (k.to_ascii_lowercase().ends_with("[answeredby]"))
                        .then(|| val.as_str().map(str::to_string))
                        .flatten()
                })
            });
        if let Some(a) = &answered_by {
            crate::text::check_line("AnsweredBy", a, fields::CARRIER_TEXT)
                .map_err(|e| e.to_string())?;
        }
        let conversation_duration = match text(v, "ConversationDuration") {
            None => None,
            Some(d) => match d.parse::<f64>() {
                Ok(secs)
                    if secs.is_finite()
                        && (0.0..=fields::MAX_CONVERSATION_SECS as f64).contains(&secs) =>
                {
                    Some(secs as i32)
                }
                Ok(_) => {
                    return Err(format!(
                        "`ConversationDuration` must be between 0 and {} seconds",
                        fields::MAX_CONVERSATION_SECS
                    ));
                }
                // Not a number (Exotel sends none for unanswered calls): as if absent.
                Err(_) => None,
            },
        };
        let recording_url = text(v, "RecordingUrl").and_then(|u| {
            match crate::urls::UrlPolicy::default().check_link(&u) {
                Ok(_) => Some(u),
                Err(e) => {
                    tracing::warn!(call_sid = %LogSafe(&call_sid), url = %LogSafe(&u), error = %e,
                        "RecordingUrl dropped");
                    None
                }
            }
        });
        Ok(StatusEvent {
            status: line("Status", fields::CARRIER_TEXT)?
                .or(line("CallStatus", fields::CARRIER_TEXT)?)
                .map(|s| s.to_ascii_lowercase()),
            event_type: line("EventType", fields::CARRIER_TEXT)?.map(|s| s.to_ascii_lowercase()),
            custom_field: line("CustomField", fields::CARRIER_ID)?,
            conversation_duration,
            recording_url,
            answered_by,
            start_time: line("StartTime", fields::CARRIER_TEXT)?,
            end_time: line("EndTime", fields::CARRIER_TEXT)?
                .or(line("DateUpdated", fields::CARRIER_TEXT)?),
            call_sid,
        })
    }

    /// The idempotency key's event part.
    pub fn dedupe_kind(&self) -> String {
        match (&self.event_type, &self.status) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) if terminal_status(s).is_some() => "terminal".into(),
            (None, Some(s)) => format!("status:{s}"),
            (None, None) => "unknown".into(),
        }
    }
}

/// The fields of a status callback we read (others are kept in the event log). Keys match in
/// any case; `Legs[]` may carry `AnsweredBy`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only describes the body; `read_body` accepts any object.
#[schema(as = ExotelStatusCallback)]
struct StatusCallbackBody {
    #[schema(rename = "CallSid")]
    call_sid: String,
    /// `completed`, `busy`, `no-answer`, `failed`, `canceled`, `in-progress`, …
    #[schema(rename = "Status")]
    status: Option<String>,
    /// `answered` or `terminal`; absent in the default (terminal-only) callback.
    #[schema(rename = "EventType")]
    event_type: Option<String>,
    /// Our call id, as we set it when dialling.
    #[schema(rename = "CustomField")]
    custom_field: Option<String>,
    #[schema(rename = "ConversationDuration")]
    conversation_duration: Option<String>,
    #[schema(rename = "RecordingUrl")]
    recording_url: Option<String>,
    /// `human` or `machine`, when answering-machine detection ran.
    #[schema(rename = "AnsweredBy")]
    answered_by: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS`, Exotel's local time.
    #[schema(rename = "StartTime")]
    start_time: Option<String>,
    #[schema(rename = "EndTime")]
    end_time: Option<String>,
}

/// What a callback did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CallbackResult {
    /// Applied to the call.
    Applied {
        call_id: i64,
        status: CallStatus,
        /// The lead's status after the call was settled (absent while the call is active).
        lead_status: Option<crate::store::LeadStatus>,
    },
    /// This (call, event) pair was applied before.
    Duplicate { duplicate: bool },
    /// Not a call of ours: acknowledged so Exotel stops retrying.
    Ignored { ignored: String },
}

/// Exotel status callback
///
/// Exotel calls this when a call is answered and when it ends (the `StatusCallback` we set when
/// dialling). JSON, urlencoded and multipart bodies are accepted. Idempotent: a repeated
/// (CallSid, event) is acknowledged and not applied again; a callback for an unknown call is
/// acknowledged too, so Exotel does not retry forever.
#[utoipa::path(
    post, path = "/webhooks/exotel/status", tag = "carrier", operation_id = "exotel_status_callback",
    request_body(content(
        (StatusCallbackBody = "application/json"),
        (StatusCallbackBody = "application/x-www-form-urlencoded"),
        (StatusCallbackBody = "multipart/form-data"),
    )),
    security(("carrier_secret" = [])),
    responses(
        (status = 200, description = "Applied, duplicate or ignored", body = CallbackResult),
        (status = 400, description = "`malformed_json`, `bad_multipart` or `bad_request`: the body could not be read", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong `secret`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body over 64 KiB", body = ErrorBody),
        (status = 422, description = "`validation_failed`: no `CallSid`; a NUL character anywhere; a field over its limit (`CallSid`, `CustomField` 128 characters; `Status`, `EventType`, `AnsweredBy`, times 64) or with control characters; `ConversationDuration` outside 0–86400", body = ErrorBody),
    )
)]
async fn status_callback(
    State(state): State<AppState>,
    Query(q): Query<SecretParam>,
    request: Request,
) -> Response {
    let expected = state.settings.webhook_secret.expose().as_bytes();
    if !q
        .secret
        .is_some_and(|s| constant_time_eq(s.as_bytes(), expected))
    {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong webhook secret",
        );
    }
    let body = match read_body(request).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let event = match nul_free(&body).and_then(|()| StatusEvent::from_value(&body)) {
        Ok(e) => e,
        Err(msg) => {
            let sid = text(&body, "CallSid").unwrap_or_default();
            tracing::warn!(call_sid = %LogSafe(&sid), error = %msg, "status callback refused");
            return ApiError::validation(msg).into_response();
        }
    };
    match apply(&state, &event, &body).await {
        Ok(result) => (StatusCode::OK, axum::Json(result)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Every text of the body, keys included, is NUL-free: the whole body is stored in the event
/// log, and PostgreSQL refuses a NUL in `jsonb` (SQLite would keep it).
fn nul_free(v: &Value) -> Result<(), String> {
    let refuse = |key: &str| {
        Err(format!(
            "`{}` must not contain a NUL character",
            LogSafe(key)
        ))
    };
    match v {
        Value::String(s) if s.contains('\0') => refuse("(a value)"),
        Value::Array(items) => items.iter().try_for_each(nul_free),
        Value::Object(map) => map.iter().try_for_each(|(k, val)| {
            if k.contains('\0') {
                return refuse("(a key)");
            }
            nul_free(val).map_err(|_| format!("`{}` must not contain a NUL character", LogSafe(k)))
        }),
        _ => Ok(()),
    }
}

/// Reads the body into a JSON object whatever its encoding.
async fn read_body(request: Request) -> Result<Value, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::BadRequest("bad_multipart", e.body_text()))?;
        let mut map = Map::new();
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::BadRequest("bad_multipart", e.to_string()))?
        {
            let name = field.name().unwrap_or_default().to_string();
            let value = field
                .text()
                .await
                .map_err(|e| ApiError::BadRequest("bad_multipart", e.to_string()))?;
            map.insert(name, Value::String(value));
        }
        return Ok(Value::Object(map));
    }
    let bytes = Bytes::from_request(request, &()).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "a status callback is at most {} bytes",
                fields::STATUS_CALLBACK_BYTES
            ))
        } else {
            ApiError::BadRequest("bad_request", e.body_text())
        }
    })?;
    if content_type.starts_with("application/json") || bytes.first() == Some(&b'{') {
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest("malformed_json", format!("malformed JSON: {e}")))?;
        return Ok(v);
    }
    let map: Map<String, Value> = form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Ok(Value::Object(map))
}

async fn apply(
    state: &AppState,
    event: &StatusEvent,
    raw: &Value,
) -> Result<CallbackResult, ApiError> {
    let store = state.store.as_ref();
    let now = state.clock.now();
    let mut call = store.find_call_by_sid(&event.call_sid).await?;
    if call.is_none()
        && let Some(id) = event
            .custom_field
            .as_deref()
            .and_then(|c| c.parse::<i64>().ok())
        && let Ok(c) = store.get_call(id).await
        && c.carrier_sid.is_none()
    {
        // The dial answer was lost (e.g. a timeout) but Exotel placed the call.
        store.set_call_sid(c.id, &event.call_sid).await?;
        call = Some(c);
    }
    let Some(call) = call else {
        tracing::warn!(call_sid = %LogSafe(&event.call_sid), "status callback for an unknown call");
        return Ok(CallbackResult::Ignored {
            ignored: "unknown call".into(),
        });
    };
    let kind = event.dedupe_kind();
    if !store
        .record_call_event(&event.call_sid, &kind, raw, now)
        .await?
    {
        return Ok(CallbackResult::Duplicate { duplicate: true });
    }
    let terminal = event.status.as_deref().and_then(terminal_status);
    let update = if kind == "answered"
        || (terminal.is_none() && event.status.as_deref() == Some("in-progress"))
    {
        CarrierUpdate {
            status: Some(CallStatus::InProgress),
            answered_at: event
                .start_time
                .as_deref()
                .and_then(parse_exotel_time)
                .or(Some(now)),
            answered_by: event.answered_by.clone(),
            ..Default::default()
        }
    } else {
        CarrierUpdate {
            status: terminal,
            answered_by: event.answered_by.clone(),
            recording_url: event.recording_url.clone(),
            conversation_duration: event.conversation_duration,
            answered_at: event
                .start_time
                .as_deref()
                .and_then(parse_exotel_time)
                .filter(|_| event.conversation_duration.is_some_and(|d| d > 0)),
            ended_at: terminal.map(|_| {
                event
                    .end_time
                    .as_deref()
                    .and_then(parse_exotel_time)
                    .unwrap_or(now)
            }),
            error: None,
        }
    };
    let updated = store.update_call_carrier(call.id, &update, now).await?;
    state.metrics.calls.ended(call.status, updated.status);
    let lead = if updated.status.is_active() {
        None
    } else {
        settle_call(store, call.id, now).await?
    };
    tracing::info!(call_id = call.id, event = %kind, status = %updated.status, "carrier status applied");
    Ok(CallbackResult::Applied {
        call_id: call.id,
        status: updated.status,
        lead_status: lead.map(|l| l.status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_event_with_legs() {
        let v = json!({"CallSid": "abc", "Status": "completed", "EventType": "terminal",
            "ConversationDuration": "42", "Legs": [{"OnCallDuration": 50, "Status": "completed", "AnsweredBy": "Human"}],
            "CustomField": "17"});
        let e = StatusEvent::from_value(&v).unwrap();
        assert_eq!(e.conversation_duration, Some(42));
        assert_eq!(e.answered_by.as_deref(), Some("Human"));
        assert_eq!(e.custom_field.as_deref(), Some("17"));
        assert_eq!(e.dedupe_kind(), "terminal");
    }

    #[test]
    fn default_callback_without_event_type_is_terminal() {
        let v = json!({"callsid": "abc", "CallStatus": "no-answer", "Legs[0][AnsweredBy]": "NA"});
        let e = StatusEvent::from_value(&v).unwrap();
        assert_eq!(e.status.as_deref(), Some("no-answer"));
        assert_eq!(e.dedupe_kind(), "terminal");
        assert_eq!(e.answered_by.as_deref(), Some("NA"));
        assert!(StatusEvent::from_value(&json!({"Status": "busy"})).is_err());
    }
}
