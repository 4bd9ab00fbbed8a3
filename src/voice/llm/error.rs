//! [`LlmError`]: every way a request can fail, and which failures no retry can fix.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// 429 rate limit; retried while the deadline allows.
    #[error("rate limited (HTTP 429): {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 429 `insufficient_quota`: waiting does not help; alert an operator.
    #[error("insufficient quota: {message}")]
    InsufficientQuota { message: String },
    /// 401/403: the key is wrong or lacks access.
    #[error("authentication refused (HTTP {status}): {message}")]
    Auth { status: u16, message: String },
    /// 400, 404, 422: the request itself is wrong; retrying cannot help.
    #[error("request refused (HTTP {status}, code {code:?}): {message}")]
    BadRequest {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// 408, 409, 5xx after the retries the deadline allowed.
    #[error("server error (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    /// No first token before the deadline, or the stream stalled after it.
    #[error("timed out after {elapsed:?} (first token received: {first_token_received})")]
    Timeout {
        elapsed: Duration,
        first_token_received: bool,
    },
    /// An error event inside a stream that had started with HTTP 200.
    #[error("error event mid-stream (code {code:?}): {message}")]
    MidStream {
        code: Option<String>,
        message: String,
    },
    #[error("connection failed: {message}")]
    Connection { message: String },
    /// A response that does not follow the protocol (bad JSON, stream cut before its end).
    #[error("unexpected response: {message}")]
    Protocol { message: String },
    #[error("cancelled")]
    Cancelled,
}

impl LlmError {
    /// Errors no retry can fix (configuration or billing): alert rather than retry the lead.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::InsufficientQuota { .. } | Self::Auth { .. } | Self::BadRequest { .. }
        )
    }

    /// What kind of failure this is, for the metrics; `None` for a cancellation (barge-in,
    /// hang-up), which is not one.
    pub fn kind(&self) -> Option<crate::voice::ErrorKind> {
        use crate::voice::ErrorKind;
        Some(match self {
            Self::RateLimited { .. } | Self::InsufficientQuota { .. } | Self::Auth { .. } => {
                ErrorKind::Http4xx
            }
            Self::BadRequest { status, .. } | Self::Server { status, .. } => {
                ErrorKind::from_status(*status)
            }
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::MidStream { .. } => ErrorKind::Stream,
            Self::Connection { .. } => ErrorKind::Connect,
            Self::Protocol { .. } => ErrorKind::Protocol,
            Self::Cancelled => return None,
        })
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        Self::Protocol {
            message: message.into(),
        }
    }
}
