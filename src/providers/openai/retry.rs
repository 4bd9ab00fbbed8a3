//! Retries: one HTTP attempt, a non-2xx answer classified into an error and a retry decision
//! (status, `x-should-retry`, `retry-after-ms`/`retry-after`), and backoff with jitter, all
//! inside the caller's deadline.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use tokio::time::{Instant, timeout_at};

use super::client::Inner;
use super::wire::WireErrorBody;
use crate::voice::llm::LlmError;

/// A failed attempt and whether another may help.
struct Failure {
    error: LlmError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Inner {
    /// Sends until a 2xx response arrives, retrying what the protocol says may be retried, as
    /// long as the wait ends before `deadline`. Returns the response and the attempts made.
    pub(super) async fn send_with_retries(
        &self,
        body: &Bytes,
        started: Instant,
        deadline: Instant,
    ) -> Result<(reqwest::Response, u32), LlmError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match timeout_at(deadline, self.send_once(body.clone())).await {
                Err(_) => {
                    return self.observed(Err(LlmError::Timeout {
                        elapsed: started.elapsed(),
                        first_token_received: false,
                    }));
                }
                Ok(Ok(response)) => return Ok((response, attempt)),
                Ok(Err(failure)) => failure,
            };
            self.count(&failure.error);
            if !failure.retryable || attempt > self.options.max_retries {
                return Err(failure.error);
            }
            let wait = failure
                .retry_after
                .filter(|d| *d <= self.options.max_retry_after)
                .unwrap_or_else(|| self.backoff(attempt));
            if Instant::now() + wait >= deadline {
                return Err(failure.error);
            }
            tracing::warn!(error = %failure.error, attempt, wait_ms = wait.as_millis() as u64, "LLM request retried");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(&self, body: Bytes) -> Result<reqwest::Response, Failure> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| Failure {
            error: LlmError::Connection {
                message: e.to_string(),
            },
            retryable: true,
            retry_after: None,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        Err(classify(status.as_u16(), &headers, &body))
    }

    /// Exponential backoff with jitter: `initial · 2^(attempt-1)`, capped, minus up to 25 %.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .options
            .initial_backoff
            .saturating_mul(1 << (attempt - 1).min(16));
        exp.min(self.options.max_backoff)
            .mul_f64(1.0 - 0.25 * rand::random::<f64>())
    }
}

/// Maps a non-2xx response to an error and a retry decision.
fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> Failure {
    let detail = serde_json::from_slice::<WireErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default();
    let message = detail
        .message
        .clone()
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    let code = detail.code_string();
    let quota = code.as_deref() == Some("insufficient_quota")
        || detail.kind.as_deref() == Some("insufficient_quota");
    let retry_after = retry_after(headers, chrono::Utc::now());
    let error = match status {
        401 | 403 => LlmError::Auth { status, message },
        429 if quota => LlmError::InsufficientQuota { message },
        429 => LlmError::RateLimited {
            retry_after,
            message,
        },
        408 | 409 | 500.. => LlmError::Server { status, message },
        _ => LlmError::BadRequest {
            status,
            code,
            message,
        },
    };
    let by_status = matches!(status, 408 | 409 | 500..) || (status == 429 && !quota);
    let retryable = match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
        Some("true") => true,
        Some("false") => false,
        _ => by_status,
    };
    Failure {
        error,
        retryable,
        retry_after,
    }
}

/// `retry-after-ms`, else `retry-after` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::openai::OpenAiClient;

    #[test]
    fn errors_are_classified_with_their_retry_decision() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        let f = classify(
            429,
            &headers,
            br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert!(f.retryable);
        assert_eq!(f.retry_after, Some(Duration::from_millis(1500)));
        assert!(matches!(f.error, LlmError::RateLimited { .. }));

        let f = classify(429, &HeaderMap::new(), br#"{"error":{"message":"pay","type":"insufficient_quota","code":"insufficient_quota"}}"#);
        assert!(!f.retryable && f.error.is_permanent());

        let mut no_retry = HeaderMap::new();
        no_retry.insert("x-should-retry", "false".parse().unwrap());
        assert!(!classify(503, &no_retry, b"").retryable);
        assert!(classify(409, &HeaderMap::new(), b"").retryable);
        assert!(matches!(
            classify(401, &HeaderMap::new(), b"").error,
            LlmError::Auth { status: 401, .. }
        ));
        assert!(matches!(
            classify(400, &HeaderMap::new(), b"{}").error,
            LlmError::BadRequest { status: 400, .. }
        ));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:30Z")
            .unwrap()
            .to_utc();
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(2)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn backoff_grows_from_half_a_second_and_is_capped() {
        let client = OpenAiClient::new(reqwest::Client::new(), "http://x", None, "m");
        let b1 = client.inner.backoff(1);
        assert!(
            b1 <= Duration::from_millis(500) && b1 >= Duration::from_millis(375),
            "{b1:?}"
        );
        let b2 = client.inner.backoff(2);
        assert!(
            b2 <= Duration::from_secs(1) && b2 >= Duration::from_millis(750),
            "{b2:?}"
        );
        assert!(client.inner.backoff(30) <= Duration::from_secs(8));
    }
}
