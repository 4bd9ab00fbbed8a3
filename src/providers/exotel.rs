//! Exotel REST: placing a call (`Calls/connect`) and reading a call's details (the fallback when
//! a status webhook is lost). Wire facts: `shared/protocols/exotel.md` §2.
//!
//! Every request has a timeout. Errors are classified by what the dialer must do about them:
//! a configuration problem pauses the campaign, a rate limit backs off, a server error retries
//! later, a refused number fails the lead.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use crate::config::Secret;
use crate::phone::E164;

#[derive(Debug, thiserror::Error)]
pub enum ExotelError {
    /// 401/402/403: credentials, balance or plan. Retrying cannot help.
    #[error("Exotel refused the account ({status}): {message}")]
    Config { status: u16, message: String },
    /// 429: back off.
    #[error("Exotel rate limit (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// 400: the request (usually the number) was refused.
    #[error("Exotel refused the call: {message}")]
    Rejected { message: String },
    /// 404 on call details.
    #[error("Exotel does not know call {0}")]
    UnknownCall(String),
    /// 5xx or another unexpected status: try again later.
    #[error("Exotel error {status}: {message}")]
    Server { status: u16, message: String },
    #[error("Exotel did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach Exotel: {0}")]
    Network(String),
    #[error("unexpected Exotel response: {0}")]
    Decode(String),
}

/// How the call reaches our `/media` WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMode {
    /// The call runs the flow (app) holding the Voicebot applet, whose URL is set in Exotel's
    /// dashboard: `Url=http://my.exotel.com/{sid}/exoml/start_voice/{app_id}`.
    Flow { app_id: String },
    /// "Connect Voice AI": the call streams straight to `StreamUrl`.
    Direct,
}

#[derive(Debug, Clone)]
pub struct ExotelClient {
    http: reqwest::Client,
    base_url: String,
    account_sid: String,
    api_key: Secret,
    api_token: Secret,
    caller_id: String,
    mode: StreamMode,
    timeout: Duration,
}

/// One outbound call to place.
#[derive(Debug, Clone)]
pub struct ConnectRequest<'a> {
    pub to: &'a E164,
    /// Our call id, echoed back in webhooks (`CustomField`).
    pub custom_field: String,
    pub status_callback: String,
    /// Our `/media` URL; used in direct-stream mode.
    pub stream_url: Option<String>,
    pub time_limit_secs: u32,
    pub ring_timeout_secs: u32,
    pub record: bool,
}

/// What Exotel knows of a call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallDetails {
    pub sid: String,
    pub status: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub duration: Option<i32>,
    pub recording_url: Option<String>,
    pub answered_by: Option<String>,
}

impl ExotelClient {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        account_sid: &str,
        api_key: Secret,
        api_token: Secret,
        caller_id: &str,
        mode: StreamMode,
    ) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            account_sid: account_sid.to_string(),
            api_key,
            api_token,
            caller_id: caller_id.to_string(),
            mode,
            timeout: Duration::from_secs(10),
        }
    }

    /// Builds a client from settings, or says which variable is missing.
    pub fn from_settings(
        http: reqwest::Client,
        s: &crate::config::ExotelSettings,
        direct: bool,
    ) -> Result<Self, String> {
        let need =
            |v: &Option<String>, name: &str| v.clone().ok_or_else(|| format!("{name} is not set"));
        let sid = need(&s.account_sid, "EXOTEL_ACCOUNT_SID")?;
        let caller = need(&s.virtual_number, "EXOTEL_VIRTUAL_NUMBER")?;
        let key = s.api_key.clone().ok_or("EXOTEL_API_KEY is not set")?;
        let token = s.api_token.clone().ok_or("EXOTEL_API_TOKEN is not set")?;
        let mode = if direct {
            StreamMode::Direct
        } else {
            StreamMode::Flow {
                app_id: need(&s.exophlo_id, "EXOTEL_EXOPHLO_ID")?,
            }
        };
        Ok(Self::new(
            http,
            &s.base_url,
            &sid,
            key,
            token,
            &caller,
            mode,
        ))
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn calls_url(&self) -> String {
        format!("{}/v1/Accounts/{}/Calls", self.base_url, self.account_sid)
    }

    /// The form fields of `Calls/connect`, in Exotel's PascalCase.
    pub fn connect_form(&self, req: &ConnectRequest<'_>) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("From", req.to.as_str().to_string()),
            ("CallerId", self.caller_id.clone()),
            ("CallType", "trans".to_string()),
            ("TimeOut", req.ring_timeout_secs.to_string()),
            ("TimeLimit", req.time_limit_secs.to_string()),
            ("StatusCallback", req.status_callback.clone()),
            ("StatusCallbackEvents[]", "terminal".to_string()),
            ("StatusCallbackEvents[]", "answered".to_string()),
            ("StatusCallbackContentType", "application/json".to_string()),
            ("Record", req.record.to_string()),
            ("CustomField", req.custom_field.chars().take(128).collect()),
        ];
        match &self.mode {
            StreamMode::Flow { app_id } => form.push((
                "Url",
                format!(
                    "http://my.exotel.com/{}/exoml/start_voice/{app_id}",
                    self.account_sid
                ),
            )),
            StreamMode::Direct => {
                form.push(("StreamUrl", req.stream_url.clone().unwrap_or_default()));
                form.push(("StreamType", "bidirectional".to_string()));
            }
        }
        form
    }

    /// Places a call; returns Exotel's `Call.Sid`.
    #[tracing::instrument(skip_all, fields(call_id = %req.custom_field))]
    pub async fn connect(&self, req: &ConnectRequest<'_>) -> Result<String, ExotelError> {
        let url = format!("{}/connect.json", self.calls_url());
        let request = self
            .http
            .post(url)
            .basic_auth(self.api_key.expose(), Some(self.api_token.expose()))
            .form(&self.connect_form(req));
        let body = self.send(request).await?;
        let call =
            field(&body, "Call").ok_or_else(|| ExotelError::Decode("no `Call` object".into()))?;
        text(call, "Sid").ok_or_else(|| ExotelError::Decode("no `Call.Sid`".into()))
    }

    /// Reads a call's current state.
    #[tracing::instrument(skip_all, fields(sid = %sid))]
    pub async fn call_details(&self, sid: &str) -> Result<CallDetails, ExotelError> {
        let url = format!("{}/{sid}.json", self.calls_url());
        let request = self
            .http
            .get(url)
            .basic_auth(self.api_key.expose(), Some(self.api_token.expose()));
        let body = match self.send(request).await {
            Err(ExotelError::Server { status: 404, .. }) => {
                return Err(ExotelError::UnknownCall(sid.to_string()));
            }
            other => other?,
        };
        let call =
            field(&body, "Call").ok_or_else(|| ExotelError::Decode("no `Call` object".into()))?;
        Ok(CallDetails {
            sid: text(call, "Sid").unwrap_or_else(|| sid.to_string()),
            status: text(call, "Status")
                .unwrap_or_default()
                .to_ascii_lowercase(),
            start_time: text(call, "StartTime").and_then(|t| parse_exotel_time(&t)),
            end_time: text(call, "EndTime").and_then(|t| parse_exotel_time(&t)),
            duration: text(call, "Duration")
                .and_then(|d| d.parse::<f64>().ok())
                .map(|d| d as i32),
            recording_url: text(call, "RecordingUrl"),
            answered_by: text(call, "AnsweredBy"),
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ExotelError> {
        let response = request.timeout(self.timeout).send().await.map_err(|e| {
            if e.is_timeout() {
                ExotelError::Timeout(self.timeout)
            } else {
                ExotelError::Network(e.to_string())
            }
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let raw = tokio::time::timeout(self.timeout, response.text())
            .await
            .map_err(|_| ExotelError::Timeout(self.timeout))?
            .map_err(|e| ExotelError::Network(e.to_string()))?;
        let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            if body.is_null() {
                return Err(ExotelError::Decode("body is not JSON".into()));
            }
            return Ok(body);
        }
        let message = error_message(&body).unwrap_or_else(|| raw.chars().take(200).collect());
        Err(match status {
            401..=403 => ExotelError::Config { status, message },
            429 => ExotelError::RateLimited { retry_after },
            400 => ExotelError::Rejected { message },
            _ => ExotelError::Server { status, message },
        })
    }
}

/// `{"RestException":{"Message":…}}`, shape not guaranteed.
fn error_message(body: &Value) -> Option<String> {
    let ex = field(body, "RestException").unwrap_or(body);
    text(ex, "Message").or_else(|| text(ex, "message"))
}

/// A key looked up case-insensitively (Exotel's guides disagree on case).
pub fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// A field as text, whether it came as a string or a number; empty and null are `None`.
pub fn text(v: &Value, key: &str) -> Option<String> {
    match field(v, key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Exotel's `YYYY-MM-DD HH:mm:ss`, in India time; RFC 3339 also accepted.
pub fn parse_exotel_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    chrono_tz::Asia::Kolkata
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exotel_times_are_india_time() {
        let t = parse_exotel_time("2017-03-03 12:30:24").unwrap();
        assert_eq!(t.to_rfc3339(), "2017-03-03T07:00:24+00:00");
        assert!(parse_exotel_time("yesterday").is_none());
    }

    #[test]
    fn fields_are_found_whatever_their_case_and_type() {
        let v = serde_json::json!({"call": {"sid": "abc", "Duration": 42, "RecordingUrl": null}});
        let call = field(&v, "Call").unwrap();
        assert_eq!(text(call, "Sid").as_deref(), Some("abc"));
        assert_eq!(text(call, "duration").as_deref(), Some("42"));
        assert_eq!(text(call, "RecordingUrl"), None);
    }
}
