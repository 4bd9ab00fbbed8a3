//! ElevenLabs text-to-speech client: a per-call [`TtsSession`] over the `multi-stream-input`
//! WebSocket (one context per agent turn, `session`), and [`ElevenLabs::synthesize_stream`],
//! the HTTP streaming fallback (`http`); `wire` reads the socket's messages. Wire facts:
//! `/work/shared/protocols/elevenlabs.md`.
//!
//! What this module guarantees to the pipeline:
//! - audio comes out in whole samples (an odd byte of a PCM stream is carried to the next chunk);
//! - every text chunk sent ends with whitespace, so phrases are never glued ("Solar.We");
//! - each turn's context is closed as soon as its text is complete (and on barge-in), so a
//!   socket never nears the 5-context limit; audio still arriving for a cancelled turn is dropped;
//! - keep-alives only ever target the live, unclosed context (a closed one would be reopened).
//!
//! It owns no audio pacing and no carrier framing; it must not import `crate::emulators`.

mod http;
mod session;
mod wire;

pub use http::{AudioStream, ElevenLabs, SampleAligner};
pub use session::{SEND_TIMEOUT, SessionError, TtsSession};
pub use wire::{AlignedChars, Alignment};

use async_trait::async_trait;

use crate::metrics::ProviderMetrics;
use crate::voice::tts::{self, AudioFormat, TtsOptions};
use crate::voice::{ErrorKind, Provider};

/// ElevenLabs as the call's TTS vendor (`TTS_PROVIDER=elevenlabs`): a multi-context socket per
/// call, in the call's own PCM rate, the campaign's voice and language.
#[derive(Debug, Clone)]
pub struct ElevenLabsTts {
    config: ElevenLabsConfig,
    http: reqwest::Client,
    metrics: ProviderMetrics,
}

impl ElevenLabsTts {
    pub fn new(config: ElevenLabsConfig, http: reqwest::Client, metrics: ProviderMetrics) -> Self {
        Self {
            config,
            http,
            metrics,
        }
    }

    /// The socket's settings for one call.
    pub fn config_for(&self, options: &TtsOptions) -> ElevenLabsConfig {
        let mut config = self.config.clone();
        if let Some(voice) = &options.voice {
            config.voice_id = voice.clone();
        }
        let primary = options.language.split(['-', '_']).next().unwrap_or("en");
        config.language_code = Some(primary.to_ascii_lowercase());
        // The call's own rate, so nothing is transcoded.
        config.output_format = match options.format {
            AudioFormat::Pcm16 { sample_rate: 16000 } => OutputFormat::Pcm16000,
            AudioFormat::Pcm16 { .. } => OutputFormat::Pcm8000,
        };
        config
    }
}

#[async_trait]
impl tts::TtsVendor for ElevenLabsTts {
    fn provider(&self) -> Provider {
        Provider::ElevenLabs
    }

    async fn open(&self, options: &TtsOptions) -> Result<Box<dyn tts::TtsSession>, tts::TtsError> {
        let config = self.config_for(options);
        match TtsSession::connect(config, self.http.clone(), self.metrics.clone()).await {
            Ok(session) => Ok(Box::new(session)),
            Err(e) => {
                self.metrics.error(Provider::ElevenLabs, e.kind());
                Err(tts::TtsError::Failed {
                    provider: Provider::ElevenLabs,
                    kind: e.kind(),
                    message: e.to_string(),
                })
            }
        }
    }
}

use std::time::Duration;

use reqwest::Url;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use tokio_tungstenite::tungstenite;

use crate::config::{ElevenLabsSettings, Secret};

/// The low-latency model (Hindi supported).
pub const DEFAULT_MODEL: &str = "eleven_flash_v2_5";

/// Audio encodings we ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// 16-bit little-endian mono PCM at 8 kHz: Exotel's format, no transcoding.
    Pcm8000,
    Pcm16000,
    /// G.711 μ-law at 8 kHz (Twilio), one byte per sample.
    Ulaw8000,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Pcm8000 => "pcm_8000",
            OutputFormat::Pcm16000 => "pcm_16000",
            OutputFormat::Ulaw8000 => "ulaw_8000",
        }
    }

    pub fn sample_rate(self) -> u32 {
        match self {
            OutputFormat::Pcm16000 => 16_000,
            OutputFormat::Pcm8000 | OutputFormat::Ulaw8000 => 8_000,
        }
    }

    pub fn bytes_per_sample(self) -> usize {
        match self {
            OutputFormat::Ulaw8000 => 1,
            OutputFormat::Pcm8000 | OutputFormat::Pcm16000 => 2,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VoiceSettings {
    pub stability: f32,
    pub similarity_boost: f32,
    pub style: f32,
    pub use_speaker_boost: bool,
    pub speed: f32,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        Self {
            stability: 0.5,
            similarity_boost: 0.75,
            style: 0.0,
            use_speaker_boost: true,
            speed: 1.0,
        }
    }
}

/// Everything both transports need.
#[derive(Debug, Clone)]
pub struct ElevenLabsConfig {
    /// `https://api.elevenlabs.io` or an emulator; the WebSocket URL is derived from it.
    pub base_url: String,
    pub api_key: Secret,
    pub voice_id: String,
    pub model_id: String,
    pub language_code: Option<String>,
    pub output_format: OutputFormat,
    pub voice_settings: VoiceSettings,
    /// WebSocket handshake; HTTP time to response headers.
    pub connect_timeout: Duration,
    /// HTTP: longest wait between two body chunks.
    pub stall_timeout: Duration,
    /// HTTP: the whole synthesis.
    pub request_timeout: Duration,
    /// Asked of the server (`inactivity_timeout`, whole seconds, max 180).
    pub inactivity_timeout_secs: u32,
    /// A live context that sent nothing for this long gets a keep-alive.
    pub keepalive_interval: Duration,
    /// A turn whose text is complete and that has had no audio at all this long is taken as a
    /// stuck socket: it is spoken over HTTP and the next turn opens a new socket.
    pub end_audio_timeout: Duration,
}

impl ElevenLabsConfig {
    pub fn from_settings(settings: &ElevenLabsSettings) -> Result<Self, ElevenLabsError> {
        let api_key = settings
            .api_key
            .clone()
            .ok_or(ElevenLabsError::NotConfigured("ELEVENLABS_API_KEY"))?;
        let voice_id = settings
            .voice_id
            .clone()
            .ok_or(ElevenLabsError::NotConfigured("ELEVENLABS_VOICE_ID"))?;
        Ok(Self::new(&settings.base_url, api_key, voice_id))
    }

    /// Defaults: `eleven_flash_v2_5`, `pcm_8000`, 5 s connect, 60 s inactivity.
    pub fn new(base_url: &str, api_key: Secret, voice_id: impl Into<String>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            voice_id: voice_id.into(),
            model_id: DEFAULT_MODEL.into(),
            language_code: None,
            output_format: OutputFormat::Pcm8000,
            voice_settings: VoiceSettings::default(),
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            inactivity_timeout_secs: 60,
            keepalive_interval: Duration::from_secs(10),
            end_audio_timeout: Duration::from_secs(2),
        }
    }

    fn endpoint(&self, voice_id: &str, last: &str) -> Result<Url, ElevenLabsError> {
        let mut url = Url::parse(&self.base_url)
            .map_err(|e| ElevenLabsError::Protocol(format!("bad ElevenLabs base URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| {
                ElevenLabsError::Protocol("ElevenLabs base URL cannot have a path".into())
            })?
            .pop_if_empty()
            .extend(["v1", "text-to-speech", voice_id, last]);
        Ok(url)
    }

    fn ws_url(&self) -> Result<Url, ElevenLabsError> {
        let mut url = self.endpoint(&self.voice_id, "multi-stream-input")?;
        let scheme = match url.scheme() {
            "https" | "wss" => "wss",
            _ => "ws",
        };
        url.set_scheme(scheme)
            .map_err(|_| ElevenLabsError::Protocol("cannot derive the WebSocket URL".into()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("model_id", &self.model_id)
                .append_pair("output_format", self.output_format.as_str())
                .append_pair(
                    "inactivity_timeout",
                    &self.inactivity_timeout_secs.clamp(1, 180).to_string(),
                );
            if let Some(lang) = &self.language_code {
                q.append_pair("language_code", lang);
            }
        }
        Ok(url)
    }
}

/// What went wrong, typed by what the caller should do about it.
#[derive(Debug, Error)]
pub enum ElevenLabsError {
    #[error("ElevenLabs is not configured: {0} is missing")]
    NotConfigured(&'static str),
    #[error("ElevenLabs rejected the API key: {0}")]
    InvalidApiKey(String),
    #[error("ElevenLabs voice not found: {0}")]
    VoiceNotFound(String),
    #[error("ElevenLabs quota exceeded: {0}")]
    QuotaExceeded(String),
    #[error("ElevenLabs: too many concurrent requests (retry): {0}")]
    TooManyConcurrentRequests(String),
    #[error("ElevenLabs system busy (back off): {0}")]
    SystemBusy(String),
    #[error("ElevenLabs answered {status} `{code}`: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("ElevenLabs timed out {0}")]
    Timeout(&'static str),
    #[error("ElevenLabs HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("ElevenLabs WebSocket failed: {0}")]
    WebSocket(#[from] Box<tungstenite::Error>),
    #[error("unexpected answer from ElevenLabs: {0}")]
    Protocol(String),
}

/// What to do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAdvice {
    /// Queue and try again soon (`too_many_concurrent_requests`, transport hiccups).
    Retry,
    /// Try again later, with backoff (`system_busy`, 5xx).
    BackOff,
    /// Retrying will not help (bad key, unknown voice, quota, bad request).
    GiveUp,
}

impl ElevenLabsError {
    /// What kind of failure this is, for the metrics.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ElevenLabsError::InvalidApiKey(_)
            | ElevenLabsError::VoiceNotFound(_)
            | ElevenLabsError::QuotaExceeded(_)
            | ElevenLabsError::TooManyConcurrentRequests(_) => ErrorKind::Http4xx,
            ElevenLabsError::SystemBusy(_) => ErrorKind::Http5xx,
            ElevenLabsError::Api { status, .. } => ErrorKind::from_status(*status),
            ElevenLabsError::Timeout(_) => ErrorKind::Timeout,
            ElevenLabsError::Http(e) if e.is_timeout() => ErrorKind::Timeout,
            ElevenLabsError::Http(e) => e
                .status()
                .map_or(ErrorKind::Connect, |s| ErrorKind::from_status(s.as_u16())),
            ElevenLabsError::NotConfigured(_) | ElevenLabsError::WebSocket(_) => ErrorKind::Connect,
            ElevenLabsError::Protocol(_) => ErrorKind::Protocol,
        }
    }

    pub fn retry_advice(&self) -> RetryAdvice {
        match self {
            ElevenLabsError::TooManyConcurrentRequests(_)
            | ElevenLabsError::Timeout(_)
            | ElevenLabsError::Http(_)
            | ElevenLabsError::WebSocket(_) => RetryAdvice::Retry,
            ElevenLabsError::SystemBusy(_) => RetryAdvice::BackOff,
            ElevenLabsError::Api { status, .. } if *status >= 500 || *status == 429 => {
                RetryAdvice::BackOff
            }
            _ => RetryAdvice::GiveUp,
        }
    }

    /// Maps an error answer (`{"detail":{"status":…,"message":…}}`) to a variant.
    fn from_answer(status: u16, body: &[u8]) -> ElevenLabsError {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let detail = &parsed["detail"];
        let code = detail["status"].as_str().unwrap_or("").to_string();
        let message = detail["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
        match (code.as_str(), status) {
            ("invalid_api_key", _) | ("", 401) => ElevenLabsError::InvalidApiKey(message),
            ("voice_not_found", _) => ElevenLabsError::VoiceNotFound(message),
            ("quota_exceeded", _) => ElevenLabsError::QuotaExceeded(message),
            ("too_many_concurrent_requests", _) => {
                ElevenLabsError::TooManyConcurrentRequests(message)
            }
            ("system_busy", _) => ElevenLabsError::SystemBusy(message),
            _ => ElevenLabsError::Api {
                status,
                code,
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_typed_errors() {
        let body = br#"{"detail":{"status":"system_busy","message":"busy"}}"#;
        let e = ElevenLabsError::from_answer(429, body);
        assert!(matches!(e, ElevenLabsError::SystemBusy(_)));
        assert_eq!(e.retry_advice(), RetryAdvice::BackOff);
        let body = br#"{"detail":{"status":"too_many_concurrent_requests","message":"x"}}"#;
        assert_eq!(
            ElevenLabsError::from_answer(429, body).retry_advice(),
            RetryAdvice::Retry
        );
        assert!(matches!(
            ElevenLabsError::from_answer(401, b"nope"),
            ElevenLabsError::InvalidApiKey(_)
        ));
        assert_eq!(
            ElevenLabsError::from_answer(400, br#"{"detail":{"status":"quota_exceeded"}}"#)
                .retry_advice(),
            RetryAdvice::GiveUp
        );
    }

    #[test]
    fn websocket_url_is_derived_from_the_base_url() {
        let mut c = ElevenLabsConfig::new("https://api.elevenlabs.io/", Secret::new("k"), "v1d");
        c.language_code = Some("hi".into());
        let url = c.ws_url().unwrap();
        assert_eq!(
            url.as_str(),
            "wss://api.elevenlabs.io/v1/text-to-speech/v1d/multi-stream-input?model_id=eleven_flash_v2_5&output_format=pcm_8000&inactivity_timeout=60&language_code=hi"
        );
        let c = ElevenLabsConfig::new("http://127.0.0.1:9", Secret::new("k"), "v");
        assert!(
            c.ws_url()
                .unwrap()
                .as_str()
                .starts_with("ws://127.0.0.1:9/v1/")
        );
    }
}
