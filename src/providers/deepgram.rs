//! Deepgram live speech-to-text: the product's client.
//!
//! Owns the wire protocol (query string, `Authorization: Token`, JSON events) and a resilient
//! per-call [`SttSession`] that keeps the transcript going through dropped sockets (see the
//! `session` and `worker` submodules). It knows nothing about calls, turns or the emulators: it
//! turns audio into typed [`SttEvent`]s on the call's audio timeline.

mod events;
mod port;
mod replay;
mod session;
mod tuning;
mod worker;

use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};

pub use events::{Metadata, SttEvent, Transcript, Word, parse_event};
pub use port::{DeepgramSession, DeepgramStt};
pub use session::{SttEvents, SttSession};
pub use tuning::SessionTuning;

use crate::config::{DeepgramSettings, Secret};

/// What to ask Deepgram for; becomes the query string of `/v1/listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    pub model: String,
    /// BCP-47 (`hi`, `en-IN`) or `multi` for Hindi–English code-switching.
    pub language: String,
    pub encoding: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub interim_results: bool,
    /// Silence (ms) before `speech_final`; `None` sends `endpointing=false`.
    pub endpointing_ms: Option<u32>,
    pub utterance_end_ms: Option<u32>,
    pub vad_events: bool,
    pub punctuate: bool,
    pub smart_format: bool,
    /// Words to boost (product names); sent as repeated `keyterm` parameters.
    pub keyterms: Vec<String>,
}

impl Default for ListenOptions {
    /// Exotel's audio as-is (8 kHz linear16 mono) and the events turn-taking needs. `multi` with
    /// `endpointing=100` is Deepgram's recommendation for code-switched speech.
    fn default() -> Self {
        Self {
            model: "nova-3".into(),
            language: "multi".into(),
            encoding: "linear16".into(),
            sample_rate: 8000,
            channels: 1,
            interim_results: true,
            endpointing_ms: Some(100),
            utterance_end_ms: Some(1000),
            vad_events: true,
            punctuate: true,
            smart_format: true,
            keyterms: Vec::new(),
        }
    }
}

impl ListenOptions {
    /// Query parameters in order; booleans as `true`/`false`, lists as repeated keys.
    pub fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("model", self.model.clone()),
            ("language", self.language.clone()),
            ("encoding", self.encoding.clone()),
            ("sample_rate", self.sample_rate.to_string()),
            ("channels", self.channels.to_string()),
            ("interim_results", self.interim_results.to_string()),
            (
                "endpointing",
                self.endpointing_ms
                    .map_or_else(|| "false".to_string(), |ms| ms.to_string()),
            ),
        ];
        if let Some(ms) = self.utterance_end_ms {
            pairs.push(("utterance_end_ms", ms.to_string()));
        }
        pairs.push(("vad_events", self.vad_events.to_string()));
        pairs.push(("punctuate", self.punctuate.to_string()));
        pairs.push(("smart_format", self.smart_format.to_string()));
        pairs.extend(self.keyterms.iter().map(|k| ("keyterm", k.clone())));
        pairs
    }

    /// `base` (e.g. `wss://api.deepgram.com/v1/listen`) with the query appended, URL-encoded.
    pub fn url(&self, base: &str) -> Result<reqwest::Url, SttError> {
        let mut url = reqwest::Url::parse(base).map_err(|e| SttError::InvalidUrl {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(SttError::InvalidUrl {
                url: base.to_string(),
                reason: "scheme must be ws or wss".into(),
            });
        }
        url.query_pairs_mut().extend_pairs(self.query_pairs());
        Ok(url)
    }

    /// Bytes of audio per second, to convert between audio time and buffered bytes.
    pub(crate) fn bytes_per_second(&self) -> u64 {
        self.sample_rate as u64 * 2 * self.channels.max(1) as u64
    }
}

#[derive(Debug, Error)]
pub enum SttError {
    #[error("invalid Deepgram URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The handshake was answered with an HTTP error; `dg-error` carries Deepgram's reason.
    #[error("Deepgram refused the connection with HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("connecting to Deepgram timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("Deepgram WebSocket error: {0}")]
    WebSocket(#[source] Box<tungstenite::Error>),
    #[error("the API key cannot be sent as a header")]
    InvalidApiKey,
    #[error("the STT session has ended")]
    SessionEnded,
    /// The writer is behind (network stalled); the frame was dropped rather than block the call.
    #[error("the STT audio queue is full; frame dropped")]
    QueueFull,
    #[error("Deepgram did not finish closing within {0:?}")]
    CloseTimeout(Duration),
}

impl SttError {
    /// What kind of failure this is, for the metrics.
    pub fn kind(&self) -> crate::voice::ErrorKind {
        use crate::voice::ErrorKind;
        match self {
            SttError::Rejected { status, .. } => ErrorKind::from_status(*status),
            SttError::ConnectTimeout(_) | SttError::CloseTimeout(_) => ErrorKind::Timeout,
            SttError::InvalidUrl { .. } | SttError::InvalidApiKey | SttError::WebSocket(_) => {
                ErrorKind::Connect
            }
            SttError::SessionEnded => ErrorKind::Dropped,
            SttError::QueueFull => ErrorKind::Protocol,
        }
    }

    /// Retrying cannot help: bad URL or key, or a 4xx other than 408/429 at the handshake
    /// (401 bad key, 403 no access, 400 bad parameters).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::InvalidUrl { .. } | Self::InvalidApiKey => true,
            Self::Rejected { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            _ => false,
        }
    }
}

/// Connects to Deepgram; cheap to clone, one per process.
#[derive(Debug, Clone)]
pub struct DeepgramClient {
    url: String,
    api_key: Option<Secret>,
    tuning: SessionTuning,
}

impl DeepgramClient {
    pub fn new(settings: &DeepgramSettings) -> Self {
        Self {
            url: settings.url.clone(),
            api_key: settings.api_key.clone(),
            tuning: SessionTuning::default(),
        }
    }

    pub fn with_tuning(mut self, tuning: SessionTuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Opens a live session (retrying transient failures with backoff; a permanent error such
    /// as 401 returns at once). Call it while the phone rings so the first words are not late.
    #[tracing::instrument(skip_all, fields(model = %options.model, language = %options.language))]
    pub async fn connect(
        &self,
        options: &ListenOptions,
    ) -> Result<(SttSession, SttEvents), SttError> {
        let dialer = Dialer::new(&self.url, self.api_key.as_ref(), options, &self.tuning)?;
        let mut attempt = 1;
        let ws = loop {
            match dialer.dial().await {
                Ok(ws) => break ws,
                Err(e) if e.is_permanent() || attempt >= self.tuning.max_reconnect_attempts => {
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "Deepgram connect failed; retrying");
                    tokio::time::sleep(self.tuning.backoff(attempt)).await;
                    attempt += 1;
                }
            }
        };
        Ok(session::start(ws, dialer, options, self.tuning.clone()))
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Everything needed to open one more connection of a session (first connect and reconnects).
#[derive(Clone)]
struct Dialer {
    url: String,
    auth: Option<HeaderValue>,
    timeout: Duration,
}

impl Dialer {
    fn new(
        base: &str,
        api_key: Option<&Secret>,
        options: &ListenOptions,
        tuning: &SessionTuning,
    ) -> Result<Self, SttError> {
        let url = options.url(base)?.to_string();
        let auth = api_key
            .map(|key| {
                let mut value = HeaderValue::from_str(&format!("Token {}", key.expose()))
                    .map_err(|_| SttError::InvalidApiKey)?;
                value.set_sensitive(true);
                Ok::<_, SttError>(value)
            })
            .transpose()?;
        Ok(Self {
            url,
            auth,
            timeout: tuning.connect_timeout,
        })
    }

    async fn dial(&self) -> Result<Ws, SttError> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| SttError::WebSocket(Box::new(e)))?;
        if let Some(auth) = &self.auth {
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, auth.clone());
        }
        let connect = super::ws_connect(request);
        match tokio::time::timeout(self.timeout, connect).await {
            Err(_) => Err(SttError::ConnectTimeout(self.timeout)),
            Ok(Ok((ws, _response))) => Ok(ws),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let message = response
                    .headers()
                    .get("dg-error")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .or_else(|| {
                        let body = response.body().as_deref()?;
                        Some(String::from_utf8_lossy(body).into_owned())
                    })
                    .unwrap_or_default();
                Err(SttError::Rejected {
                    status: response.status().as_u16(),
                    message,
                })
            }
            Ok(Err(e)) => Err(SttError::WebSocket(Box::new(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_uses_true_false_and_repeats_keyterms() {
        let options = ListenOptions {
            endpointing_ms: None,
            keyterms: vec!["solar panel".into(), "सोलर".into()],
            ..ListenOptions::default()
        };
        let url = options.url("wss://api.deepgram.com/v1/listen").unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().filter(|(key, _)| key == k).count();
        assert!(pairs.contains(&("endpointing".into(), "false".into())));
        assert!(pairs.contains(&("interim_results".into(), "true".into())));
        assert!(pairs.contains(&("sample_rate".into(), "8000".into())));
        assert!(pairs.contains(&("keyterm".into(), "सोलर".into())));
        assert_eq!(get("keyterm"), 2);
    }

    #[test]
    fn only_client_errors_other_than_408_and_429_are_permanent() {
        let rejected = |status| SttError::Rejected {
            status,
            message: String::new(),
        };
        assert!(rejected(401).is_permanent());
        assert!(rejected(400).is_permanent());
        assert!(!rejected(429).is_permanent());
        assert!(!rejected(503).is_permanent());
        assert!(!SttError::ConnectTimeout(Duration::from_secs(1)).is_permanent());
    }

    #[test]
    fn http_urls_are_refused() {
        let err = ListenOptions::default().url("https://api.deepgram.com/v1/listen");
        assert!(matches!(err, Err(SttError::InvalidUrl { .. })));
    }
}
