//! Provider failures and recoveries, labelled by provider and by a closed set of kinds, and the
//! mapping from each client's typed error to its kind (so the clients stay free of metrics
//! vocabulary beyond one `record` call).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::providers::deepgram::SttError;
use crate::providers::elevenlabs::{SessionError, TtsError};
use crate::providers::exotel::ExotelError;
use crate::providers::openai::LlmError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Deepgram,
    OpenAi,
    ElevenLabs,
    Exotel,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Deepgram => "deepgram",
            Provider::OpenAi => "openai",
            Provider::ElevenLabs => "elevenlabs",
            Provider::Exotel => "exotel",
        }
    }
}

/// What went wrong, at the level an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No answer (or no first token) in time.
    Timeout,
    /// The connection could not be made (DNS, TCP, TLS, WebSocket handshake).
    Connect,
    /// An HTTP 4xx answer (429 rate limits and quota included).
    Http4xx,
    /// An HTTP 5xx answer.
    Http5xx,
    /// An answer that does not follow the protocol (bad JSON, a stream cut before its end).
    Protocol,
    /// An error reported inside a stream that had started fine.
    Stream,
    /// An open socket dropped mid-call.
    Dropped,
    /// A signal the call waited for never came within its bound (an end of turn, a mark echo):
    /// the call went on without it.
    Stalled,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Stream => "stream_error",
            ErrorKind::Dropped => "dropped",
            ErrorKind::Stalled => "stalled",
        }
    }

    /// The class of an HTTP error status (anything below 500 counts as 4xx).
    pub fn from_status(status: u16) -> Self {
        if status >= 500 {
            ErrorKind::Http5xx
        } else {
            ErrorKind::Http4xx
        }
    }
}

/// How a call got a provider back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconnectKind {
    /// A new socket, with the unfinalised audio replayed (Deepgram).
    Reconnect,
    /// The rest of a turn spoken over the HTTP stream after the WebSocket failed (ElevenLabs).
    HttpFallback,
}

impl ReconnectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconnectKind::Reconnect => "reconnect",
            ReconnectKind::HttpFallback => "http_fallback",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: &'static str,
    kind: &'static str,
}

/// Provider errors and recoveries. Cheap to clone; clients hold one. Failures are rare, so a
/// label lookup per failure is fine.
#[derive(Clone, Debug, Default)]
pub struct ProviderMetrics {
    errors: Family<ProviderLabels, Counter>,
    reconnects: Family<ProviderLabels, Counter>,
}

const PROVIDERS: [Provider; 4] = [
    Provider::Deepgram,
    Provider::OpenAi,
    Provider::ElevenLabs,
    Provider::Exotel,
];
const KINDS: [ErrorKind; 8] = [
    ErrorKind::Timeout,
    ErrorKind::Connect,
    ErrorKind::Http4xx,
    ErrorKind::Http5xx,
    ErrorKind::Protocol,
    ErrorKind::Stream,
    ErrorKind::Dropped,
    ErrorKind::Stalled,
];

impl ProviderMetrics {
    /// Every provider and kind starts at zero, so alerts on `increase()` see the first error.
    pub(super) fn create_known_series(&self) {
        for provider in PROVIDERS {
            for kind in KINDS {
                let _ = self.errors.get_or_create(&ProviderLabels {
                    provider: provider.as_str(),
                    kind: kind.as_str(),
                });
            }
        }
        for (provider, how) in [
            (Provider::Deepgram, ReconnectKind::Reconnect),
            (Provider::ElevenLabs, ReconnectKind::HttpFallback),
        ] {
            let _ = self.reconnects.get_or_create(&ProviderLabels {
                provider: provider.as_str(),
                kind: how.as_str(),
            });
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "provider_errors",
            "Failed provider requests and sessions, by provider and kind (each failed attempt \
             counts, retried or not)",
            self.errors.clone(),
        );
        registry.register(
            "provider_reconnects",
            "Provider sessions recovered mid-call, by provider and how",
            self.reconnects.clone(),
        );
    }

    pub fn error(&self, provider: Provider, kind: ErrorKind) {
        let labels = ProviderLabels {
            provider: provider.as_str(),
            kind: kind.as_str(),
        };
        self.errors.get_or_create(&labels).inc();
    }

    /// A wait on `provider` ended by its deadline (see `media::call::waits`).
    pub fn stalled(&self, provider: Provider) {
        self.error(provider, ErrorKind::Stalled);
    }

    pub fn reconnect(&self, provider: Provider, how: ReconnectKind) {
        let labels = ProviderLabels {
            provider: provider.as_str(),
            kind: how.as_str(),
        };
        self.reconnects.get_or_create(&labels).inc();
    }

    /// Counts an OpenAI failure; a cancellation (barge-in, hang-up) is not one.
    pub fn llm_error(&self, e: &LlmError) {
        let kind = match e {
            LlmError::RateLimited { .. }
            | LlmError::InsufficientQuota { .. }
            | LlmError::Auth { .. } => ErrorKind::Http4xx,
            LlmError::BadRequest { status, .. } | LlmError::Server { status, .. } => {
                ErrorKind::from_status(*status)
            }
            LlmError::Timeout { .. } => ErrorKind::Timeout,
            LlmError::MidStream { .. } => ErrorKind::Stream,
            LlmError::Connection { .. } => ErrorKind::Connect,
            LlmError::Protocol { .. } => ErrorKind::Protocol,
            LlmError::Cancelled => return,
        };
        self.error(Provider::OpenAi, kind);
    }

    pub fn stt_error(&self, e: &SttError) {
        let kind = match e {
            SttError::Rejected { status, .. } => ErrorKind::from_status(*status),
            SttError::ConnectTimeout(_) | SttError::CloseTimeout(_) => ErrorKind::Timeout,
            SttError::InvalidUrl { .. } | SttError::InvalidApiKey | SttError::WebSocket(_) => {
                ErrorKind::Connect
            }
            SttError::SessionEnded => ErrorKind::Dropped,
            SttError::QueueFull => ErrorKind::Protocol,
        };
        self.error(Provider::Deepgram, kind);
    }

    pub fn tts_error(&self, e: &TtsError) {
        let kind = match e {
            TtsError::InvalidApiKey(_)
            | TtsError::VoiceNotFound(_)
            | TtsError::QuotaExceeded(_)
            | TtsError::TooManyConcurrentRequests(_) => ErrorKind::Http4xx,
            TtsError::SystemBusy(_) => ErrorKind::Http5xx,
            TtsError::Api { status, .. } => ErrorKind::from_status(*status),
            TtsError::Timeout(_) => ErrorKind::Timeout,
            TtsError::Http(e) if e.is_timeout() => ErrorKind::Timeout,
            TtsError::Http(e) => e
                .status()
                .map_or(ErrorKind::Connect, |s| ErrorKind::from_status(s.as_u16())),
            TtsError::NotConfigured(_) | TtsError::WebSocket(_) => ErrorKind::Connect,
            TtsError::Protocol(_) | TtsError::NoTurn => ErrorKind::Protocol,
            TtsError::SessionClosed => ErrorKind::Dropped,
            TtsError::SessionBusy => ErrorKind::Stalled,
        };
        self.error(Provider::ElevenLabs, kind);
    }

    pub fn tts_session_error(&self, e: &SessionError) {
        let kind = match e {
            SessionError::Server { .. } => ErrorKind::Stream,
            SessionError::Dropped(_) => ErrorKind::Dropped,
            SessionError::Connect(_) => ErrorKind::Connect,
        };
        self.error(Provider::ElevenLabs, kind);
    }

    pub fn exotel_error(&self, e: &ExotelError) {
        let kind = match e {
            ExotelError::Config { status, .. } | ExotelError::Server { status, .. } => {
                ErrorKind::from_status(*status)
            }
            ExotelError::RateLimited { .. }
            | ExotelError::Rejected { .. }
            | ExotelError::UnknownCall(_) => ErrorKind::Http4xx,
            ExotelError::Timeout(_) => ErrorKind::Timeout,
            ExotelError::Network(_) => ErrorKind::Connect,
            ExotelError::Decode(_) => ErrorKind::Protocol,
        };
        self.error(Provider::Exotel, kind);
    }

    /// The count for one provider and kind (tests, the bench).
    pub fn errors_of(&self, provider: Provider, kind: ErrorKind) -> u64 {
        let labels = ProviderLabels {
            provider: provider.as_str(),
            kind: kind.as_str(),
        };
        self.errors.get(&labels).map_or(0, |c| c.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn errors_are_labelled_by_status_class_and_kind() {
        let m = ProviderMetrics::default();
        m.llm_error(&LlmError::RateLimited {
            retry_after: None,
            message: "slow down".into(),
        });
        m.llm_error(&LlmError::Server {
            status: 503,
            message: "down".into(),
        });
        m.llm_error(&LlmError::Cancelled);
        m.exotel_error(&ExotelError::Timeout(Duration::from_secs(10)));
        m.stt_error(&SttError::Rejected {
            status: 401,
            message: "bad key".into(),
        });
        assert_eq!(m.errors_of(Provider::OpenAi, ErrorKind::Http4xx), 1);
        assert_eq!(m.errors_of(Provider::OpenAi, ErrorKind::Http5xx), 1);
        assert_eq!(m.errors_of(Provider::Exotel, ErrorKind::Timeout), 1);
        assert_eq!(m.errors_of(Provider::Deepgram, ErrorKind::Http4xx), 1);
        let openai: u64 = KINDS
            .iter()
            .map(|k| m.errors_of(Provider::OpenAi, *k))
            .sum();
        assert_eq!(openai, 2, "a cancellation is not an error");
    }
}
